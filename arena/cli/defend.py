"""``arena defend``: a defense run on a model file (never executed: safetensors only).

The file's header is untrusted. The network it describes is checked by
``arena.core.model_files``; the attack it records is rebuilt only from a registered attack
and a config that its class accepts; and the defender's data comes from the command's options.
The dataset name and image size the header records serve only as defaults of ``--dataset`` and
``--image-size``; a path it records is never read.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from arena.cli.args import add_param_arguments, build_configs, data_ref, seed, writable_cache
from arena.cli.base import CLIError, Command, emit_json

if TYPE_CHECKING:
    from arena.data import Splits
    from strategies.attacks import Attack


class DefendCommand(Command):
    name = "defend"
    help = "run a defense on a model file (safetensors only; never executes the file)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--model-file",
            "--model",
            dest="model_file",
            required=True,
            help="model file written by `arena train`, or a plain safetensors file of weights "
            "with --model-config",
        )
        parser.add_argument(
            "--model-config",
            default=None,
            metavar="JSON",
            help="the network of a plain safetensors file trained outside Arena: a JSON object "
            "with arch (a built-in or --plugin architecture), image_shape, num_classes and "
            "optionally data (docs/extending.md)",
        )
        parser.add_argument("--defender", required=True, help="defense name (see `arena list`)")
        parser.add_argument(
            "--dataset",
            default=None,
            help="defender's data (default: the dataset the file records)",
        )
        parser.add_argument(
            "--data-path",
            default=None,
            help="where cifar10/mnist/gtsrb/folder live (never taken from the file)",
        )
        parser.add_argument(
            "--image-size",
            type=int,
            default=None,
            help="resize images to this side (default: the size the file records)",
        )
        parser.add_argument(
            "--limit", type=int, default=None, help="at most this many images a split"
        )
        parser.add_argument("--seed", type=seed, default=0, help="seed of the defense")
        parser.add_argument(
            "--cache",
            default="runs/cache",
            help="where trained parts of defenses are kept (default runs/cache)",
        )
        add_param_arguments(parser, attack=False, defense=True)
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def run(self, args: argparse.Namespace) -> int:
        import torch

        from arena.cell.rules import measure_clean, measure_each
        from arena.core.model_files import load_model
        from strategies import defense_class

        cache = writable_cache(args.cache)
        model, header = load_model(args.model_file, args.model_config)
        ref = data_ref(args, default=recorded_data(header, args))
        data = ref.load()
        if tuple(data.image_shape) != tuple(model.image_shape):
            raise CLIError(
                f"{args.model_file} takes images of shape {model.image_shape} but {ref.name} has "
                f"{data.image_shape}; pass --dataset/--image-size to match"
            )
        defense = defense_class(args.defender)(
            build_configs(args, None, args.defender)["defense"], seed=args.seed, cache=cache
        )
        deployed = defense.fit(model, data.val)
        out: dict[str, Any] = {"flagged": deployed.flagged, "details": deployed.details}
        clean = measure_clean(model, deployed, data.test)
        out.update(ca=clean[0], asr=None, sda=clean[1], sasr=None, far=None, frr=clean[2])
        recorded = header.get("attack")
        if recorded:
            attack = recorded_attack(recorded, args.model_file, data, cache)
            attack.prepare(data.train)
            sets = attack.poisoned_tests(data.test, torch.Generator().manual_seed(args.seed + 1))
            each = measure_each(model, deployed, data.test, sets, clean)
            measured = {name: m for name, m in each.items() if m is not None}
            if measured:  # the trigger that survives the defense best (there is no payoff here)
                best = max(measured, key=lambda n: (measured[n].sasr, measured[n].asr))
                out.update(asdict(measured[best]))
            out["triggers"] = list(each)
            out["asr_per_trigger"] = [None if m is None else m.asr for m in each.values()]
            out["sasr_per_trigger"] = [None if m is None else m.sasr for m in each.values()]
        if args.json:
            from arena.cell.provenance import stamped

            emit_json(stamped(out, data=ref, seeds=[args.seed]))
        else:
            from arena.report.cell import print_defend

            print_defend(args.model_file, args.defender, out, has_attack=bool(recorded))
        return 0


def recorded_data(header: dict[str, Any], args: argparse.Namespace) -> dict[str, Any] | None:
    """The defaults the header may give the defender's data: the dataset's name and image size
    it records, checked, and nothing else (never its path). ``None`` when ``--dataset`` is
    given or the header records no data. A file-based dataset with no ``--data-path`` is a
    one-line :class:`CLIError`."""
    from arena.data import DATASETS
    from arena.data.common import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE

    data = header.get("data")
    if args.dataset is not None or data is None:
        return None
    source = args.model_file
    if not isinstance(data, dict):
        raise CLIError(f"{source}: header field data is not an object; pass --dataset")
    name, size = data.get("name"), data.get("image_size")
    if not isinstance(name, str) or name not in DATASETS:
        raise CLIError(
            f"{source}: header field data.name={name!r} is not a known dataset; pass --dataset "
            f"({', '.join(DATASETS)})"
        )
    if size is not None and (
        not isinstance(size, int)
        or isinstance(size, bool)
        or not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE
    ):
        raise CLIError(
            f"{source}: header field data.image_size={size!r} is not a side from "
            f"{MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}; pass --image-size"
        )
    if DATASETS[name].needs_path and args.data_path is None:
        raise CLIError(
            f"{source} was trained on {name}, which is read from files: pass --data-path "
            f"(and --dataset for another dataset); a path in the file is never used"
        )
    return {"name": name, "image_size": size}


def recorded_attack(recorded: Any, source: str, data: Splits, cache: Any) -> Attack:
    """The attack the header records, rebuilt from a registered attack and a config its class
    accepts (no unknown field, every value in its domain); anything else is a one-line
    :class:`CLIError` naming the file."""
    from arena.core.config import config_from_dict
    from strategies import attack_class

    if (
        not isinstance(recorded, dict)
        or not isinstance(recorded.get("name"), str)
        or not isinstance(recorded.get("config", {}), dict)
    ):
        raise CLIError(
            f"{source}: header field attack is not {{'name': ..., 'config': {{...}}}}; "
            "the file is damaged or not written by `arena train`"
        )
    try:
        cls = attack_class(recorded["name"])
        config = config_from_dict(cls.config_cls, recorded.get("config", {}))
        return cls(config, image_shape=data.image_shape, num_classes=data.num_classes, cache=cache)
    except (TypeError, ValueError) as e:
        message = " ".join(str(e).split())
        raise CLIError(f"{source}: header field attack is not a valid attack: {message}") from None
