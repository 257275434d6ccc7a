"""``arena defend``: a defense run on a model file (never executed: safetensors only)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from arena.cli.args import add_param_arguments, build_configs, data_ref
from arena.cli.base import CLIError, Command, emit_json


class DefendCommand(Command):
    name = "defend"
    help = "run a defense on a model file (safetensors only; never executes the file)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--model-file",
            "--model",
            dest="model_file",
            required=True,
            help="model file written by `arena train`",
        )
        parser.add_argument("--defender", required=True, help="defense name (see `arena list`)")
        parser.add_argument(
            "--dataset",
            default=None,
            help="defender's data (default: the dataset the file records)",
        )
        parser.add_argument("--data-path", default=None)
        parser.add_argument("--image-size", type=int, default=None)
        parser.add_argument("--limit", type=int, default=None)
        parser.add_argument("--seed", type=int, default=0, help="seed of the defense")
        parser.add_argument(
            "--cache",
            default="runs/cache",
            help="where trained parts of defenses are kept (default runs/cache)",
        )
        add_param_arguments(parser, attack=False, defense=True)
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def run(self, args: argparse.Namespace) -> int:
        import torch

        from arena.cell.rules import measure
        from arena.core.cache import ArtifactCache
        from arena.core.model_files import load_model
        from strategies import attack_class, defense_class

        model, header = load_model(args.model_file)
        ref = data_ref(args, default=header.get("data"))
        data = ref.load()
        if tuple(data.image_shape) != tuple(model.image_shape):
            raise CLIError(
                f"{args.model_file} takes images of shape {model.image_shape} but {ref.name} has "
                f"{data.image_shape}; pass --dataset/--image-size to match"
            )
        cache = ArtifactCache(args.cache)
        defense = defense_class(args.defender)(
            build_configs(args, None, args.defender)["defense"], seed=args.seed, cache=cache
        )
        deployed = defense.fit(model, data.val)
        out: dict[str, Any] = {"flagged": deployed.flagged, "details": deployed.details}
        recorded = header.get("attack")
        if recorded:
            cls = attack_class(recorded["name"])
            attack = cls(
                cls.config_cls(**recorded["config"]),
                image_shape=data.image_shape,
                num_classes=data.num_classes,
                cache=cache,
            )
            attack.prepare(data.train)
            triggered = attack.poisoned_test(
                data.test, torch.Generator().manual_seed(args.seed + 1)
            )
        else:
            triggered = data.test.subset(torch.zeros(0, dtype=torch.long))
        out.update(asdict(measure(model, deployed, data.test, triggered)))
        if args.json:
            emit_json(out)
        else:
            from arena.report.cell import print_defend

            print_defend(args.model_file, args.defender, out, has_attack=bool(recorded))
        return 0
