"""``arena show-triggers``: one PNG with a clean image and its triggered version per attack.

Every registered attack (or those named with ``--attackers``) is built with its default
config (``-A`` changes it, for every attack that has the field), prepared on the training set
(attacks with trained parts train them here, or read them from ``--cache``), and applied to the
first test image whose class its mapping moves. The grid goes to
``OUT/triggers-DATASET.png`` (see :mod:`arena.report.triggers`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

from arena.cli.args import add_dataset_arguments, check_output_dir, data_ref, seed, writable_cache
from arena.cli.base import CLIError, Command

log = logging.getLogger(__name__)


class ShowTriggersCommand(Command):
    name = "show-triggers"
    help = "draw a clean image and its triggered version for every attack, as one PNG"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", required=True, help="folder to write triggers-DATASET.png")
        parser.add_argument(
            "--attackers", default="all", help="comma-separated attack names (default all)"
        )
        add_dataset_arguments(parser)
        parser.add_argument("--seed", type=seed, default=0, help="seed of random trigger parts")
        parser.add_argument(
            "--cache",
            default="runs/cache",
            help="where trained parts of attacks are kept (default runs/cache)",
        )
        parser.add_argument(
            "-A",
            "--attack-param",
            action="append",
            metavar="KEY=VALUE",
            help="attack config field for every attack that has it, e.g. -A target=3",
        )

    def run(self, args: argparse.Namespace) -> int:
        import torch

        from arena.report.triggers import TriggerRow, render_trigger_grid
        from strategies import ATTACKS, attack_class

        names = sorted(ATTACKS) if args.attackers == "all" else args.attackers.split(",")
        classes = [attack_class(name) for name in names]  # unknown names fail here, at once
        fields = {f.name for cls in classes for f in dataclasses.fields(cls.config_cls)}
        for item in args.attack_param or []:
            if item.partition("=")[0] not in fields:
                raise CLIError(
                    f"-A {item}: no attack drawn has that field; see `arena list --json`"
                )
        check_output_dir(args.out)
        cache = writable_cache(args.cache)
        ref = data_ref(args)
        data = ref.load()
        rows = []
        for name, cls in zip(names, classes, strict=True):
            config = with_fields(cls.config_cls(), args.attack_param)
            attack = cls(
                config, image_shape=data.image_shape, num_classes=data.num_classes, cache=cache
            )
            attack.prepare(data.train)
            moved = attack.eligible(data.test.y).nonzero().flatten()
            if len(moved) == 0:
                raise CLIError(f"{name}: no test image of a class its mapping moves")
            clean = data.test.x[int(moved[0])]
            triggered = attack.stamp(clean[None], torch.Generator().manual_seed(args.seed))[0]
            rows.append(TriggerRow(name, clean, triggered))
            log.info("drew %s", name)
        path = Path(args.out) / f"triggers-{ref.name}.png"
        title = f"triggers on {ref.name} {tuple(data.image_shape)}"
        print(render_trigger_grid(rows, path, title=title))
        return 0


def with_fields(config: Any, items: list[str] | None) -> Any:
    """``config`` with the ``KEY=VALUE`` items that name its fields (others are left out, since
    one ``-A`` applies to attacks with different fields)."""
    from arena.core.overrides import apply_overrides

    names = {f.name for f in dataclasses.fields(config)}
    mine = [item for item in items or [] if item.partition("=")[0] in names]
    return apply_overrides(config, mine or None, type(config).__name__)
