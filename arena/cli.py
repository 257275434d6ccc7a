"""The ``arena`` command line: small command classes in one table.

Heavy modules (torch, the strategies) are imported inside each command's ``run`` so that
``arena --help`` answers at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from abc import ABC, abstractmethod
from typing import Any

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


class CLIError(Exception):
    """A user error the CLI reports in one line and exits 2 for."""


class Command(ABC):
    name: str
    help: str

    @abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    @abstractmethod
    def run(self, args: argparse.Namespace) -> int: ...


def add_dataset_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The options :func:`data_ref` reads: ``--dataset``, ``--data-path``, ``--image-size``,
    ``--limit``."""
    parser.add_argument(
        "--dataset", default=None, help="digits (default), shapes, cifar10, mnist, gtsrb, folder"
    )
    parser.add_argument("--data-path", default=None, help="where cifar10/mnist/gtsrb/folder live")
    parser.add_argument("--image-size", type=int, default=None, help="resize images to this side")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images a split")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data and model")
    add_dataset_arguments(group)
    group.add_argument("--model", default="small-cnn", help="architecture (see `arena list`)")
    group.add_argument("--seed", type=int, default=0, help="seed of poisoning and training")
    group.add_argument(
        "--cache",
        default="runs/cache",
        help="artifact cache: a directory or fsspec URL (default runs/cache)",
    )


def add_param_arguments(parser: argparse.ArgumentParser, *, attack: bool, defense: bool) -> None:
    group = parser.add_argument_group("strategy parameters (KEY=VALUE, repeatable)")
    if attack:
        group.add_argument(
            "-A",
            "--attack-param",
            action="append",
            metavar="KEY=VALUE",
            help="attack config field, e.g. -A poison_rate=0.05",
        )
        group.add_argument(
            "-T",
            "--train-param",
            action="append",
            metavar="KEY=VALUE",
            help="BadNet training recipe field, e.g. -T optimizer=sgd -T lr=0.01",
        )
    if defense:
        group.add_argument(
            "-D",
            "--defense-param",
            action="append",
            metavar="KEY=VALUE",
            help="defense config field, e.g. -D frr_target=0.01",
        )


def add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    gates = parser.add_argument_group("gates")
    gates.add_argument(
        "--delta-attack",
        type=float,
        default=0.03,
        help="largest CA drop of a BadNet the user accepts (default 0.03)",
    )
    gates.add_argument(
        "--delta-defense",
        type=float,
        default=0.05,
        help="largest CA drop a defense may cost (default 0.05)",
    )
    gates.add_argument(
        "--frr-budget",
        type=float,
        default=0.05,
        help="largest share of clean inputs a defense may reject (0.05)",
    )


def data_ref(args: argparse.Namespace, default: dict[str, Any] | None = None) -> Any:
    from arena.evaluate import DataRef

    base = DataRef(**default) if default is not None and args.dataset is None else DataRef()
    given = {
        "name": args.dataset,
        "path": args.data_path,
        "image_size": args.image_size,
        "limit": args.limit,
    }
    return dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})


def build_configs(
    args: argparse.Namespace, attacker: str | None, defender: str | None
) -> dict[str, Any]:
    from arena.overrides import apply_overrides
    from arena.train import TrainConfig
    from strategies import attack_class, defense_class
    from strategies.defenses import parse_defenses

    out: dict[str, Any] = {}
    if attacker is not None:
        attack_cfg = attack_class(attacker).config_cls()
        out["attack"] = apply_overrides(attack_cfg, getattr(args, "attack_param", None), attacker)
        out["train"] = apply_overrides(TrainConfig(), getattr(args, "train_param", None), "train")
    if defender is not None:
        names = parse_defenses(defender)
        items = getattr(args, "defense_param", None) or []
        if len(names) == 1:
            defense_cfg = defense_class(defender).config_cls()
            out["defense"] = apply_overrides(defense_cfg, items, defender)
        else:  # a pipeline: -D stage.field=value
            stray = [i for i in items if i.partition("=")[0].partition(".")[0] not in names]
            if stray:
                raise ValueError(
                    f"defense parameter {stray[0]!r} names no stage of {defender}; in a pipeline "
                    f"write -D STAGE.FIELD=VALUE, e.g. -D {names[-1]}.FIELD=VALUE"
                )
            out["defense"] = [
                apply_overrides(
                    defense_class(n).config_cls(),
                    [i.partition(".")[2] for i in items if i.partition(".")[0] == n],
                    n,
                )
                for n in names
            ]
    return out


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


class ListCommand(Command):
    name = "list"
    help = "list attacks, defenses, models and datasets"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON object")

    def run(self, args: argparse.Namespace) -> int:
        from arena.catalog import catalog

        cat = catalog()
        if args.json:
            emit_json(cat)
            return 0
        from arena.report import print_catalog

        print_catalog(cat)
        return 0


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
        from arena.cache import ArtifactCache
        from arena.evaluate import Gates, evaluate

        configs = build_configs(args, args.attacker, args.defender)
        result = evaluate(
            args.attacker,
            args.defender,
            data_ref=data_ref(args),
            model_name=args.model,
            recipe=configs["train"],
            attack_config=configs["attack"],
            defense_config=configs["defense"],
            seed=args.seed,
            cache=ArtifactCache(args.cache),
            gates=Gates(args.delta_attack, args.delta_defense, args.frr_budget),
        )
        if args.json:
            emit_json(result.to_json())
        else:
            from arena.report import print_cell

            print_cell(args.attacker, args.defender, result)
        return 0


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

        from arena.cache import ArtifactCache
        from arena.evaluate import train_model
        from arena.infer import accuracy
        from arena.model_files import save_model
        from arena.overrides import apply_overrides
        from arena.train import TrainConfig
        from strategies import attack_class

        ref = data_ref(args)
        data = ref.load()
        cache = ArtifactCache(args.cache)
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
        trained = train_model(data, ref, args.model, recipe, args.seed, cache, attack=attack)
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

        from arena.cache import ArtifactCache
        from arena.evaluate import measure
        from arena.model_files import load_model
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
        out.update(measure(model, deployed, data.test, triggered))
        if args.json:
            emit_json(out)
        else:
            from arena.report import print_defend

            print_defend(args.model_file, args.defender, out, has_attack=bool(recorded))
        return 0


def commands() -> list[Command]:
    from arena.cli_dashboard import DashboardCommand
    from arena.cli_duel import DuelCommand
    from arena.cli_show import ShowDefenseCommand
    from arena.cli_triggers import ShowTriggersCommand

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
