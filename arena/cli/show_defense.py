"""``arena show-defense``: a PNG of what a defense sees or does on one BadNet.

Trains the attack's BadNet (or reads it from the cache), fits the defense (or pipeline) on it
with the defender's clean validation data, and draws the panels of ``Defense.show`` (reversed
triggers per class, STRIP's entropy histograms, sampled triggers, ...) into
``OUT/DEFENSE-vs-ATTACK.png``.
"""

from __future__ import annotations

import argparse

from arena.cli.args import (
    add_data_arguments,
    add_param_arguments,
    build_configs,
    check_output_dir,
    setting,
    writable_cache,
)
from arena.cli.base import Command


class ShowDefenseCommand(Command):
    name = "show-defense"
    help = "draw what a defense sees or does on an attack's BadNet, as one PNG"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--defender", required=True, help="defense, or a pipeline joined by '+' (strip+abs)"
        )
        parser.add_argument("--attacker", required=True, help="attack whose BadNet is defended")
        parser.add_argument("--out", required=True, help="folder the PNG is written to")
        add_data_arguments(parser)
        add_param_arguments(parser, attack=True, defense=True)

    def run(self, args: argparse.Namespace) -> int:
        import torch

        from arena.cell.artifacts import train_model
        from arena.report.panels import render_panels
        from strategies import attack_class, defense_class
        from strategies.defenses import Defense, build_defense, parse_defenses

        names = parse_defenses(args.defender)
        configs = build_configs(args, None, args.defender)["defense"]  # one per stage
        if all(defense_class(n).show is Defense.show for n in names):
            print(f"{args.defender} has no panels to show (it draws nothing); nothing written")
            return 0
        check_output_dir(args.out)
        cache = writable_cache(args.cache)
        cell = setting(args)
        ref = cell.data
        data = cell.splits()
        recipe = build_configs(args, args.attacker, None)
        attack = attack_class(args.attacker)(
            recipe["attack"],
            image_shape=data.image_shape,
            num_classes=data.num_classes,
            cache=cache,
        )
        bad = train_model(cell, args.seed, cache, recipe=recipe["train"], attack=attack)
        stages = configs if isinstance(configs, list) else [configs]
        defense = build_defense(names, stages, seed=args.seed, cache=cache)
        deployed = defense.fit(bad.model, data.val)
        triggered = attack.poisoned_test(data.test, torch.Generator().manual_seed(args.seed + 1))
        panels = defense.show(deployed, data.val, triggered)
        if not panels:
            print(f"{args.defender} drew no panels for this BadNet; nothing written")
            return 0
        title = (
            f"{defense.name} on a {attack.name} BadNet ({ref.name}, {args.model}, seed {args.seed})"
        )
        path = render_panels(panels, f"{args.out}/{defense.name}-vs-{attack.name}.png", title=title)
        print(f"wrote {path}: {len(panels)} panel(s) of {defense.name} on the {attack.name} BadNet")
        return 0
