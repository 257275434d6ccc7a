"""Neural Cleanse's verdict after part of its steps, against its verdict after all of them.

A defender's trial could stop Neural Cleanse early where its verdict is already clear. Before
any such rule is used, this measures how often the verdict read part-way agrees with the one
at the end. Neural Cleanse's reversal (``reverse_triggers``) does nothing that depends on its
total ``steps`` (the cost schedule, the shuffles and the kept triggers are step by step), so a
run of ``f * steps`` steps is exactly the first part of the full run: the bench runs the scan
for each fraction of the steps and reads the verdict (a class below the median whose anomaly
index exceeds the threshold) from the norms each leaves.

Models: ``small-cnn`` digits BadNets of ``--attacks`` for ``--seeds``, and clean models of
``--clean-seeds`` (trained, or read from ``--cache``). Each is scanned with the default
configuration and ``--steps`` (the searched range is 150-500; default 300), the verdict read at
every anomaly threshold of ``--thresholds`` (the searched range is 1.5-4). A rule "stop after a
fraction ``f`` of the steps when the smallest norm's anomaly index lies more than ``margin``
from the threshold" is scored for each ``f`` and ``margin``: the fits it stops, those whose
early verdict differs from the final one, and the share of steps saved.

    python bench/nc_early.py [--attacks badnets,tca,fsa,wanet,blend-noise,sig] [--seeds 0,1,2]
        [--clean-seeds 0,1,2,3] [--steps 300] [--cache DIR] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from typing import Any

import torch
from abs_scout import digits_models  # the same 22 models (bench/ is on the path)

from arena.core.memory import keep_freed_memory
from strategies.defenses.neural_cleanse import (
    NeuralCleanse,
    NeuralCleanseConfig,
    anomaly_indices,
    flagged_classes,
    reverse_triggers,
)
from strategies.defenses.reversal import frozen_copy

FRACTIONS = (0.25, 0.5, 0.75, 1.0)
MARGINS = (0.0, 0.5, 1.0, 2.0)


def scan(model: Any, val: Any, steps: int, thresholds: list[float]) -> dict[str, Any]:
    """The scan at every fraction of ``steps``: each fraction's smallest-norm anomaly index
    and its verdict at each threshold, and the CPU seconds of the full scan."""
    cfg = dataclasses.replace(NeuralCleanseConfig(), steps=steps)
    out: dict[str, Any] = {}
    for f in FRACTIONS:
        part = dataclasses.replace(cfg, steps=max(1, round(f * steps)))
        start = time.process_time()
        # the defense's own generator for seed 0, as a duel's first seed fits it
        gen = NeuralCleanse(part, seed=0).generator()
        labels = torch.arange(model.num_classes)
        found = reverse_triggers(frozen_copy(model), val.x, labels, part, gen)
        cpu = time.process_time() - start
        index = anomaly_indices(found.norms)
        smallest = int(found.norms.argmin())
        out[str(f)] = {
            "index": float(index[smallest]),
            "label": smallest,
            "flagged": {str(t): bool(len(flagged_classes(found.norms, t))) for t in thresholds},
            "cpu_s": cpu,
        }
    return out


def rules(fits: list[dict[str, Any]], thresholds: list[float]) -> list[dict[str, Any]]:
    """Each (fraction, margin) rule scored on every fit and threshold (module docstring)."""
    rows = []
    for f in FRACTIONS[:-1]:
        for margin in MARGINS:
            stopped = wrong = total = 0
            saved = 0.0
            for fit in fits:
                early, final = fit["scan"][str(f)], fit["scan"]["1.0"]
                for t in thresholds:
                    total += 1
                    if abs(early["index"] - t) <= margin:
                        continue  # not clear yet: runs on
                    stopped += 1
                    saved += 1 - f
                    wrong += early["flagged"][str(t)] != final["flagged"][str(t)]
            rows.append(
                {
                    "after": f,
                    "margin": margin,
                    "verdicts": total,
                    "stopped": stopped,
                    "stopped_wrong": wrong,
                    "wrong_share_of_stopped": wrong / stopped if stopped else 0.0,
                    "steps_saved": saved / total,
                }
            )
    return rows


def bench(
    attacks: list[str],
    seeds: list[int],
    clean_seeds: list[int],
    steps: int,
    thresholds: list[float],
    cache: str,
) -> dict[str, Any]:
    data, models = digits_models(attacks, seeds, clean_seeds, cache)
    fits: list[dict[str, Any]] = []
    for name, model in models:
        fits.append({"model": name, "scan": scan(model, data.val, steps, thresholds)})
    return {
        "steps": steps,
        "thresholds": thresholds,
        "fits": fits,
        "rules": rules(fits, thresholds),
        "cpu_s_full_scans": sum(f["scan"]["1.0"]["cpu_s"] for f in fits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attacks", default="badnets,tca,fsa,wanet,blend-noise,sig")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--clean-seeds", default="0,1,2,3")
    parser.add_argument("--steps", type=int, default=NeuralCleanseConfig().steps)
    parser.add_argument("--thresholds", default="1.5,2,3,4")
    parser.add_argument("--cache", default="runs/cache")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    keep_freed_memory()  # as in a duel's workers
    ints = [int(s) for s in args.seeds.split(",") if s]
    figures = bench(
        args.attacks.split(","),
        ints,
        [int(s) for s in args.clean_seeds.split(",") if s],
        args.steps,
        [float(t) for t in args.thresholds.split(",")],
        args.cache,
    )
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    fits = Table(title=f"smallest-norm anomaly index by share of {args.steps} steps")
    fits.add_column("model")
    for f in FRACTIONS:
        fits.add_column(f"{f:.0%}", justify="right")
    for fit in figures["fits"]:
        fits.add_row(fit["model"], *(f"{fit['scan'][str(f)]['index']:.2f}" for f in FRACTIONS))
    console.print(fits)
    table = Table(
        title="stop after a share of the steps when the index is margin from the threshold"
    )
    for column in ("after", "margin", "verdicts", "stopped", "wrong", "wrong share", "steps saved"):
        table.add_column(column, justify="right")
    for r in figures["rules"]:
        table.add_row(
            f"{r['after']:.0%}",
            f"{r['margin']:.1f}",
            str(r["verdicts"]),
            str(r["stopped"]),
            str(r["stopped_wrong"]),
            f"{r['wrong_share_of_stopped']:.1%}",
            f"{r['steps_saved']:.1%}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
