"""ABS's scout by successive halving against the full scout: the same verdicts, and the CPU saved.

Trains (or reads from ``--cache``) ``small-cnn`` digits BadNets of the given attacks and seeds,
and clean models, then fits ABS on each with each configuration twice, interleaved: with the
scout as it runs (:data:`strategies.defenses.abs.SCOUT_ROUNDS` rounds, each keeping a third of
every candidate's patch positions) and with one round (every position for every scout step:
the scout before halving; ``tests/strategies/test_abs.py`` checks that one round is that
scout). It reports each fit's verdict, best REASR, suspect label and kind of trigger, the fits
whose answers differ, and the CPU seconds of each mode (one thread, glibc's ``mmap`` threshold
raised as in a duel's workers).

    python bench/abs_scout.py [--attacks badnets,tca,fsa,wanet,blend-noise,sig] [--seeds 0,1,2]
        [--clean-seeds 0,1,2,3] [--configs default,patch,wide] [--cache DIR] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from typing import Any

import torch

import strategies.defenses.abs as abs_module
from arena.cell.artifacts import train_model
from arena.cell.setting import Setting
from arena.core.cache import ArtifactCache
from arena.core.memory import keep_freed_memory
from arena.core.train import TrainConfig
from arena.data import DataRef
from strategies import attack_class
from strategies.defenses.abs import ABS, ABSConfig

CONFIGS = {
    "default": ABSConfig(),
    "patch": ABSConfig(reversal="patch"),
    "wide": ABSConfig(steps=90, candidates=12, patch_stride=1),
}


def fit(model: torch.nn.Module, config: ABSConfig, val: Any, rounds: int) -> dict[str, Any]:
    """One ABS fit with the scout in ``rounds`` rounds: its answer and CPU seconds."""
    saved = abs_module.SCOUT_ROUNDS
    abs_module.SCOUT_ROUNDS = rounds
    try:
        start = time.process_time()
        deployed = ABS(config, seed=0).fit_copy(copy.deepcopy(model), val)  # type: ignore[arg-type]
        cpu = time.process_time() - start
    finally:
        abs_module.SCOUT_ROUNDS = saved
    d = deployed.details
    return {
        "flagged": deployed.flagged,
        "max_reasr": round(float(d["max_reasr"]), 3),
        "label": d["suspect_label"],
        "kind": d["suspect_kind"],
        "cpu_s": cpu,
    }


def digits_models(
    attacks: list[str], seeds: list[int], clean_seeds: list[int], cache: str
) -> tuple[Any, list[tuple[str, Any]]]:
    """The digits splits, and ``small-cnn`` BadNets of ``attacks`` for ``seeds`` then clean
    models of ``clean_seeds``, by label (``badnets/0``, ``clean/3``), trained or read from
    ``cache`` (also the models of ``bench/nc_early.py``)."""
    setting = Setting(data=DataRef(), model="small-cnn")
    data = setting.splits()
    store = ArtifactCache(cache)
    models = []
    for name in attacks:
        attack = attack_class(name)(
            None, image_shape=data.image_shape, num_classes=data.num_classes, cache=store
        )
        for seed in seeds:
            bad = train_model(setting, seed, store, recipe=TrainConfig(), attack=attack)
            models.append((f"{name}/{seed}", bad.model))
    for seed in clean_seeds:
        models.append(
            (f"clean/{seed}", train_model(setting, seed, store, recipe=TrainConfig()).model)
        )
    return data, models


def bench(
    attacks: list[str], seeds: list[int], clean_seeds: list[int], configs: list[str], cache: str
) -> dict[str, Any]:
    data, models = digits_models(attacks, seeds, clean_seeds, cache)
    fit(models[0][1], CONFIGS[configs[0]], data.val, 1)  # untimed: the process's first passes
    rows: list[dict[str, Any]] = []
    for config in configs:
        for label, model in models:
            full = fit(model, CONFIGS[config], data.val, 1)
            halved = fit(model, CONFIGS[config], data.val, abs_module.SCOUT_ROUNDS)
            same = all(full[k] == halved[k] for k in ("flagged", "max_reasr", "label", "kind"))
            rows.append(
                {"config": config, "model": label, "full": full, "halved": halved, "same": same}
            )
    full_cpu = sum(r["full"]["cpu_s"] for r in rows)
    halved_cpu = sum(r["halved"]["cpu_s"] for r in rows)
    return {
        "fits": len(rows),
        "same_answers": sum(r["same"] for r in rows),
        "full_cpu_s": full_cpu,
        "halved_cpu_s": halved_cpu,
        "cpu_ratio": halved_cpu / full_cpu if full_cpu else float("nan"),
        "torch_threads": torch.get_num_threads(),
        "loadavg_1min_after": os.getloadavg()[0],
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attacks", default="badnets,tca,fsa,wanet,blend-noise,sig")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--clean-seeds", default="0,1,2,3")
    parser.add_argument("--configs", default="default,patch,wide", help=", ".join(CONFIGS))
    parser.add_argument("--cache", default="runs/cache", help="where the models are cached")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    configs = args.configs.split(",")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown config {unknown[0]!r}; known: {', '.join(CONFIGS)}")
    torch.set_num_threads(1)
    keep_freed_memory()
    ints = [[int(s) for s in text.split(",") if s] for text in (args.seeds, args.clean_seeds)]
    result = bench(args.attacks.split(","), ints[0], ints[1], configs, args.cache)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    for r in result["rows"]:
        f, h = r["full"], r["halved"]
        mark = "" if r["same"] else "   <- differs"
        print(
            f"{r['config']:8} {r['model']:14} full {f['flagged']!s:5} {f['max_reasr']:.3f} "
            f"{f['label']} {f['kind']:6} {f['cpu_s']:5.2f}s | halved {h['flagged']!s:5} "
            f"{h['max_reasr']:.3f} {h['label']} {h['kind']:6} {h['cpu_s']:5.2f}s{mark}"
        )
    print(
        f"{result['same_answers']} of {result['fits']} fits give the same answer; CPU "
        f"{result['full_cpu_s']:.1f} s full, {result['halved_cpu_s']:.1f} s halved "
        f"({result['cpu_ratio']:.2f}x), {result['torch_threads']} thread"
    )


if __name__ == "__main__":
    main()
