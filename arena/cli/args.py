"""Argument groups several commands share, and what they turn into: a dataset reference, the
players' strategies with ``KEY=VALUE`` overrides applied, a cell's setting.

What they build is imported inside each function, so that ``arena --help`` stays fast."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arena.cell.setting import Gates, Setting
    from arena.data import DataRef
    from strategies.players import AttackerStrategy, DefenderStrategy


SEED_MAX = 2**32 - 1


def seed(text: str) -> int:
    """``--seed``: an integer every generator takes (torch's and NumPy's), 0 to 2**32 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{value} is not in 0..{SEED_MAX}")
    return value


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
    group.add_argument("--seed", type=seed, default=0, help="seed of poisoning and training")
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


def data_ref(args: argparse.Namespace, default: dict[str, Any] | None = None) -> DataRef:
    from arena.data import DataRef

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
    """The attack's, recipe's and defense's configs with ``-A``, ``-T`` and ``-D`` applied
    (:func:`arena.api.strategy_configs`)."""
    from arena.api import strategy_configs

    return strategy_configs(
        attacker,
        defender,
        attack_params=getattr(args, "attack_param", None),
        train_params=getattr(args, "train_param", None),
        defense_params=getattr(args, "defense_param", None),
    )


def build_players(
    args: argparse.Namespace, attacker: str, defender: str
) -> tuple[AttackerStrategy, DefenderStrategy]:
    """The attacker and defender strategies the command line names, with ``-A``, ``-T`` and
    ``-D`` applied (:func:`arena.api.players`)."""
    from arena.api import players

    return players(
        attacker,
        defender,
        attack_params=getattr(args, "attack_param", None),
        train_params=getattr(args, "train_param", None),
        defense_params=getattr(args, "defense_param", None),
    )


def gates(args: argparse.Namespace) -> Gates:
    """The gates of :func:`add_gate_arguments`."""
    from arena.cell.setting import Gates

    return Gates(args.delta_attack, args.delta_defense, args.frr_budget)


def setting(args: argparse.Namespace) -> Setting:
    """The cell's setting of :func:`add_data_arguments` (and of :func:`add_gate_arguments`,
    where the command has them)."""
    from arena.cell.setting import Gates, Setting

    return Setting(
        data=data_ref(args),
        model=args.model,
        gates=gates(args) if hasattr(args, "delta_attack") else Gates(),
        cache_url=args.cache,
    )


def check_output_dir(path: str, option: str = "--out") -> None:
    """Fail, in one line naming ``option``, unless ``path`` is a folder that exists or can be
    made, and can be written in: checked before any work (:func:`arena.api.check_output_dir`)."""
    from arena.api import check_output_dir as check
    from arena.cli.base import CLIError

    try:
        check(path, option)
    except ValueError as e:
        raise CLIError(str(e)) from None


def check_output_file(path: str, option: str = "--out") -> None:
    """Fail, in one line naming ``option``, unless a file can be written at ``path``: not a
    folder, and in a folder that exists or can be made."""
    from pathlib import Path

    from arena.cli.base import CLIError

    target = Path(path)
    if target.is_dir():
        raise CLIError(f"{option} {path} is a folder; give {option} a file name")
    if target.exists() and not target.is_file():
        raise CLIError(f"{option} {path} is not a regular file; give {option} a file name")
    check_output_dir(str(target.parent) if str(target.parent) else ".", option)


def writable_cache(url: str) -> Any:
    """The :class:`~arena.core.cache.ArtifactCache` at ``url`` (``--cache``), checked
    writable before any work."""
    from arena.core.cache import ArtifactCache

    cache = ArtifactCache(url)
    cache.check_writable()
    return cache
