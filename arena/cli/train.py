"""``arena train``: a clean model or a BadNet, written as a safetensors model file."""

from __future__ import annotations

import argparse

from arena.cli.args import (
    add_data_arguments,
    add_param_arguments,
    build_configs,
    check_output_file,
    setting,
    writable_cache,
)
from arena.cli.base import Command


class TrainCommand(Command):
    name = "train"
    help = "train a clean model or a BadNet and write it as a safetensors model file"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--attacker", default="none", help="attack to plant (default none: a clean model)"
        )
        parser.add_argument("--out", required=True, help="model file to write (.safetensors)")
        add_data_arguments(parser)
        add_param_arguments(parser, attack=True, defense=False)

    def run(self, args: argparse.Namespace) -> int:
        import torch

        from arena.cell.artifacts import train_model
        from arena.cell.play import check_memory_for_training
        from arena.core.infer import accuracy
        from arena.core.model_files import save_model
        from arena.core.overrides import apply_overrides
        from arena.core.train import TrainConfig
        from strategies import attack_class

        check_output_file(args.out)
        cache = writable_cache(args.cache)
        cell = setting(args)
        ref = cell.data
        data = cell.splits()
        attack = None
        if args.attacker == "none":
            recipe = apply_overrides(TrainConfig(), args.train_param, "train")
        else:
            configs = build_configs(args, args.attacker, None)
            recipe = configs["train"]
            attack = attack_class(args.attacker)(
                configs["attack"],
                image_shape=data.image_shape,
                num_classes=data.num_classes,
                cache=cache,
            )
        check_memory_for_training(cell, recipe.batch_size)
        trained = train_model(cell, args.seed, cache, recipe=recipe, attack=attack)
        save_model(args.out, trained.model, trained.header)
        ca = accuracy(trained.model, data.test.x, data.test.y)
        line = f"wrote {args.out}: {args.model} on {ref.name}, clean accuracy {ca:.3f}"
        if attack is not None:
            triggered = attack.poisoned_test(
                data.test, torch.Generator().manual_seed(args.seed + 1)
            )
            line += f", attack success {accuracy(trained.model, triggered.x, triggered.y):.3f}"
        print(line + (" (from cache)" if trained.cached else ""))
        return 0
