"""The ``arena`` command line: small command classes in one table, one module per command.

Heavy modules (torch, the strategies, Ray) are imported inside each command's ``run`` so that
``arena --help`` answers at once.
"""

from __future__ import annotations

import argparse
import logging
import sys

from arena.cli.base import CLIError, Command
from arena.cli.dashboard import DashboardCommand
from arena.cli.defend import DefendCommand
from arena.cli.duel import DuelCommand
from arena.cli.evaluate import EvaluateCommand
from arena.cli.list import ListCommand
from arena.cli.show_defense import ShowDefenseCommand
from arena.cli.show_triggers import ShowTriggersCommand
from arena.cli.train import TrainCommand

DESCRIPTION = """\
Arena: an adaptive-attack game solver for neural-network backdoors.

An attacker poisons training data to plant a backdoor; a defender inspects, filters or repairs
the model. `arena evaluate` scores one attack against one defense (one cell of the game) by the
payoff rules: the attack success that survives the defense, zero if the model is flagged or if
the BadNet is too inaccurate to be deployed, the undefended ASR if the defense costs too much.
"""

EPILOG = """\
examples:
  arena list
  arena evaluate --attacker badnets --defender strip
  arena evaluate --attacker tca --defender abs --json
  arena duel --attacker tca --defender abs --budget quick
  arena dashboard --storage sqlite:///runs/arena.db
  arena evaluate --attacker badnets --defender abs -A size=0.25 -D mask_budget=0.1
  arena train --attacker badnets --out badnet.safetensors
  arena defend --model badnet.safetensors --defender strip
  arena show-defense --defender neural-cleanse --attacker badnets --out figures
  arena show-triggers --out figures
"""


def commands() -> list[Command]:
    return [
        ListCommand(),
        EvaluateCommand(),
        DuelCommand(),
        DashboardCommand(),
        TrainCommand(),
        DefendCommand(),
        ShowDefenseCommand(),
        ShowTriggersCommand(),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arena",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in commands():
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(handler=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler.run(args))
    except KeyboardInterrupt:
        print("arena: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, FileNotFoundError) as e:
        print(f"arena {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
