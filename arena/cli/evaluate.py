"""``arena evaluate``: one cell of the game, scored by the payoff rules."""

from __future__ import annotations

import argparse

from arena.cli.args import add_data_arguments, add_gate_arguments, add_param_arguments
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
        from arena.api import evaluate

        data = {"dataset": args.dataset, "data_path": args.data_path,
                "image_size": args.image_size, "limit": args.limit}  # fmt: skip
        cell = evaluate(
            args.attacker,
            args.defender,
            **{k: v for k, v in data.items() if v is not None},  # unset: the data's defaults
            model=args.model,
            seed=args.seed,
            cache=args.cache,
            attack_params=args.attack_param,
            train_params=args.train_param,
            defense_params=args.defense_param,
            delta_attack=args.delta_attack,
            delta_defense=args.delta_defense,
            frr_budget=args.frr_budget,
        )
        if args.json:
            emit_json(cell.to_dict())
        else:
            from arena.report.cell import print_cell

            print_cell(args.attacker, args.defender, cell.result)
        return 0
