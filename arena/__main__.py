"""``python -m arena``: the ``arena`` command (the same as the installed script)."""

import sys

from arena.cli.app import main

sys.exit(main())
