"""The ``arena`` command line (:mod:`arena.cli.app`), one module per command."""
