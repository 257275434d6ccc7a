"""The ``arena`` command line: small command classes in one table, one module per command.

Heavy modules (torch, the strategies, Ray) are imported inside each command's ``run`` so that
``arena --help`` answers at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import traceback
from typing import NoReturn

from arena.cli.audit import AuditCommand
from arena.cli.base import CLIError, Command
from arena.cli.cache import CacheCommand
from arena.cli.dashboard import DashboardCommand
from arena.cli.defend import DefendCommand
from arena.cli.duel import DuelCommand
from arena.cli.evaluate import EvaluateCommand
from arena.cli.list import ListCommand
from arena.cli.show_defense import ShowDefenseCommand
from arena.cli.show_triggers import ShowTriggersCommand
from arena.cli.table import TableCommand
from arena.cli.train import TrainCommand
from arena.core.memory import keep_freed_memory

DESCRIPTION = """\
Arena: an adaptive-attack game solver for neural-network backdoors.

An attacker poisons training data to plant a backdoor; a defender inspects, filters or repairs
the model. `arena evaluate` scores one attack against one defense (one cell of the game) by the
payoff rules: the attack success that survives the defense, zero if the model is flagged or if
the BadNet is too inaccurate to be deployed, the undefended ASR if the defense costs too much.
"""

DEBUG_HELP = "show the traceback of an error (also ARENA_DEBUG=1)"
PLUGIN_HELP = (
    "load attacks, defenses, models or datasets from a module or a .py file (repeatable; also "
    "ARENA_PLUGINS; installed plugins load by themselves: docs/extending.md)"
)

EXPECTED: tuple[type[BaseException], ...] = (CLIError, ValueError, OSError)
"""Errors a user can cause and fix (a bad option, a file that is not there or cannot be
written, a storage or a Ray cluster that cannot be reached: Arena's own errors derive from
``ValueError``): one line and exit status 2. Anything else is a fault of Arena's: one line,
exit status 1 and a report file."""

EPILOG = """\
examples:
  arena list
  arena list --plugin my_defense.py
  arena evaluate --attacker badnets --defender strip
  arena evaluate --attacker tca --defender abs --json
  arena duel --attacker tca --defender abs --budget quick
  arena duel --attacker badnets --defender strip --budget quick --audit 20
  arena audit badnets-vs-strip-1a2b3c4d --trials 40
  arena table --attackers badnets,sig,wanet --defenders strip,fine-pruning --dry-run
  arena dashboard --storage sqlite:///runs/arena.db
  arena evaluate --attacker badnets --defender abs -A size=0.25 -D mask_budget=0.1
  arena train --attacker badnets --out badnet.safetensors
  arena defend --model badnet.safetensors --defender strip
  arena show-defense --defender neural-cleanse --attacker badnets --out figures
  arena show-triggers --out figures
  arena cache
  arena cache prune --unreferenced --dry-run
"""


def commands() -> list[Command]:
    return [
        ListCommand(),
        EvaluateCommand(),
        DuelCommand(),
        AuditCommand(),
        TableCommand(),
        DashboardCommand(),
        TrainCommand(),
        DefendCommand(),
        ShowDefenseCommand(),
        ShowTriggersCommand(),
        CacheCommand(),
    ]


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors are one line (``--help`` still shows the usage);
    the commands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="arena",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)"
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    parser.add_argument(
        "--plugin", action="append", default=[], metavar="MODULE_OR_FILE", help=PLUGIN_HELP
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in commands():
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        # also after the command's name; SUPPRESS keeps it from undoing `arena --debug CMD`
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        p.add_argument(
            "--plugin",
            action="append",
            dest="command_plugin",
            default=[],
            metavar="MODULE_OR_FILE",
            help=PLUGIN_HELP,
        )
        p.set_defaults(handler=command)
    return parser


def load_plugins(specs: list[str]) -> None:
    """The installed plugins and those ``--plugin`` names, before the command reads any
    registry; the named ones also go into ``ARENA_PLUGINS`` (made absolute), so the processes
    a command starts (``arena table --jobs``) load them too. A plugin that cannot be loaded is
    one warning line; the rest of the catalog works."""
    from arena.plugins import ENV, source_key
    from arena.plugins import load_plugins as load

    load(specs)
    if specs:
        given = [source_key(s) for s in specs]
        known = [s for s in os.environ.get(ENV, "").split(os.pathsep) if s]
        os.environ[ENV] = os.pathsep.join(dict.fromkeys([*known, *given]))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    debug = args.debug or os.environ.get("ARENA_DEBUG", "") not in ("", "0")
    keep_freed_memory()  # commands that score cells here (evaluate, defend) allocate as workers do
    try:
        load_plugins([*args.plugin, *args.command_plugin])
        return int(args.handler.run(args))
    except KeyboardInterrupt:
        print("arena: interrupted", file=sys.stderr)
        return 130
    except EXPECTED as e:
        if debug:
            raise
        print(f"arena {args.command}: error: {one_line(root_cause(e))}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the boundary: no user sees a traceback unasked
        if debug:
            raise
        report = write_report(args.command, argv)
        print(
            f"arena {args.command}: internal error: {type(e).__name__}: {one_line(e)}; the full "
            f"report is in {report} (rerun with --debug to see it here)",
            file=sys.stderr,
        )
        return 1


def root_cause(error: BaseException) -> BaseException:
    """The error a Ray task or trial raised, rather than Ray's wrapper around it."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


def one_line(error: BaseException, limit: int = 400) -> str:
    """An error's message on one line (its lines joined), at most ``limit`` characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_report(command: str, argv: list[str] | None) -> str:
    """The current exception's traceback, with the command line, in a file under the system's
    temporary folder; its path."""
    fd, path = tempfile.mkstemp(prefix=f"arena-{command}-", suffix=".txt")
    with os.fdopen(fd, "w") as out:
        out.write("arena " + " ".join(sys.argv[1:] if argv is None else argv) + "\n\n")
        out.write(traceback.format_exc())
    return path


if __name__ == "__main__":
    sys.exit(main())
