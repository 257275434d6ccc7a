"""``arena evaluate``: one cell of the game, scored by the payoff rules."""

from __future__ import annotations

import argparse

from arena.cli.args import (
    add_data_arguments,
    add_gate_arguments,
    add_param_arguments,
    build_players,
    setting,
    writable_cache,
)
from arena.cli.base import Command, emit_json


class EvaluateCommand(Command):
    name = "evaluate"
    help = "score one attack against one defense (one cell of the game)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--attacker", required=True, help="attack name (see `arena list`)")
        parser.add_argument(
            "--defender", default="none", help="defense, or a pipeline such as strip+bdmae (none)"
        )
        add_data_arguments(parser)
        add_param_arguments(parser, attack=True, defense=True)
        add_gate_arguments(parser)
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def run(self, args: argparse.Namespace) -> int:
        from arena.cell.play import evaluate

        attacker, defender = build_players(args, args.attacker, args.defender)
        cache = writable_cache(args.cache)
        args_setting = setting(args)
        result = evaluate(attacker, defender, args_setting, seed=args.seed, cache=cache)
        if args.json:
            from arena.cell.provenance import stamped

            emit_json(stamped(result.to_json(), data=args_setting.data, seeds=[args.seed]))
        else:
            from arena.report.cell import print_cell

            print_cell(args.attacker, args.defender, result)
        return 0
