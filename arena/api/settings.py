"""The settings the API shares with the command line: strategy parameters as ``-A``, ``-T``
and ``-D`` give them, the cell's setting, the seed and the output folder, each checked as
the commands check them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from arena.cell.setting import Setting
    from strategies.players import AttackerStrategy, DefenderStrategy


Params: TypeAlias = Mapping[str, Any] | Sequence[str] | None
"""Strategy parameters: ``{field: value}`` or ``["field=value", ...]`` (``None``: none)."""


def override_items(params: Params) -> list[str] | None:
    """``params`` as the ``KEY=VALUE`` strings that ``-A``, ``-T`` and ``-D`` collect.

    A mapping's values are written with ``str`` and parsed back by the field's type, so they
    meet exactly the checks a command line's do; a nested mapping names a pipeline's stage
    (``{"strip": {"overlays": 8}}`` is ``strip.overlays=8``). One string is one item."""
    if params is None:
        return None
    if isinstance(params, str):
        return [params]
    if isinstance(params, Mapping):
        items = []
        for key, value in params.items():
            if isinstance(value, Mapping):
                items += [f"{key}.{k}={v}" for k, v in value.items()]
            else:
                items.append(f"{key}={value}")
        return items
    return [str(item) for item in params]


def strategy_configs(
    attacker: str | None,
    defender: str | None,
    *,
    attack_params: Params = None,
    train_params: Params = None,
    defense_params: Params = None,
) -> dict[str, Any]:
    """The configs of an attack (``attack``, with its BadNet's training recipe, ``train``) and
    of a defense (``defense``: one config, or a list of one per stage of a pipeline
    ``a+b``), their defaults with the parameters applied; a side that is ``None`` is left
    out. An unknown name, field or value raises a one-line ``ValueError``."""
    from arena.core.overrides import apply_overrides
    from arena.core.train import TrainConfig
    from strategies import attack_class, defense_class
    from strategies.defenses import parse_defenses

    out: dict[str, Any] = {}
    if attacker is not None:
        attack_cfg = attack_class(attacker).config_cls()
        out["attack"] = apply_overrides(attack_cfg, override_items(attack_params), attacker)
        out["train"] = apply_overrides(TrainConfig(), override_items(train_params), "train")
    if defender is not None:
        names = parse_defenses(defender)
        items = override_items(defense_params) or []
        if len(names) == 1:
            defense_cfg = defense_class(defender).config_cls()
            out["defense"] = apply_overrides(defense_cfg, items, defender)
        else:  # a pipeline: STAGE.FIELD=VALUE
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


def players(
    attacker: str,
    defender: str,
    *,
    attack_params: Params = None,
    train_params: Params = None,
    defense_params: Params = None,
) -> tuple[AttackerStrategy, DefenderStrategy]:
    """The attacker's and the defender's strategies of one cell: the attack with its recipe,
    and the defense (or pipeline) stage by stage, each with its parameters applied."""
    from strategies.defenses import parse_defenses
    from strategies.players import AttackerStrategy, DefenderStrategy

    configs = strategy_configs(
        attacker,
        defender,
        attack_params=attack_params,
        train_params=train_params,
        defense_params=defense_params,
    )
    stages = configs["defense"] if isinstance(configs["defense"], list) else [configs["defense"]]
    return (
        AttackerStrategy(attacker, configs["attack"], configs["train"]),
        DefenderStrategy(tuple(zip(parse_defenses(defender), stages, strict=True))),
    )


def cell_setting(
    *,
    dataset: str,
    data_path: str | None,
    image_size: int | None,
    limit: int | None,
    model: str,
    cache: str,
    delta_attack: float,
    delta_defense: float,
    frr_budget: float,
) -> Setting:
    """The :class:`~arena.cell.setting.Setting` of the data, model, cache and gate settings."""
    from arena.cell.setting import Gates, Setting
    from arena.data import DataRef

    data = DataRef(name=dataset, path=data_path, image_size=image_size, limit=limit)
    return Setting(
        data=data,
        model=model,
        gates=Gates(delta_attack, delta_defense, frr_budget),
        cache_url=cache,
    )


def check_seed(seed: int) -> None:
    """Refuse, in one line naming --seed, a seed that torch and NumPy do not take."""
    from arena.core.config import SEED, check_option

    check_option("--seed", seed, SEED, integer=True)


def check_output_dir(path: str, option: str = "--out") -> None:
    """Raise a one-line ``ValueError`` naming ``option`` unless ``path`` is a folder that
    exists or can be made, and can be written in: checked before any work."""
    import os

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{option} {path} is a file, not a folder; give {option} a folder")
    existing = folder
    while not existing.exists():  # the nearest folder that exists must let us make the rest
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"{option} {path} cannot be written ({existing} is not a writable folder); give "
            f"{option} a folder you can write to"
        )
