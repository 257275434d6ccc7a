"""Seconds per defense on one digits BadNet: its fit, then the evaluator's use of the deployment.

The default BadNet (``badnets``, ``small-cnn``, ``TrainConfig()``, seed 0, ``digits``) and the
clean reference model are trained once and cached (``--cache``). Then every registered defense,
read from the registry, runs with its default config, as ``arena evaluate`` runs it:

* fit: ``Defense.fit(badnet, val)``;
* serve: ``arena.cell.rules.measure`` on the deployment (``accept`` and ``predict`` on the clean
  and the triggered test sets);
* clean check, detectors only: the fit on the clean model that the evaluator adds to catch
  false alarms (a duel caches it per clean model, so it is reported apart).

Each phase is timed in wall seconds and in CPU seconds of this process (all its threads), which
other processes' load does not inflate. Trained parts of defenses (inpainters, autoencoders) go
to a fresh temporary cache, so their training is part of the fit; ``--warm-parts`` reuses
``--cache`` instead (a second run then shows the cost with the parts cached). One-time costs
of the process (the first backward pass, importing kornia) are paid by an untimed warm-up
before the first defense (``warm_up_s``). Target: at most 30 s per defense (fit + serve +
clean check) on a 2-core machine.

    OMP_NUM_THREADS=1 python bench/defenses.py [--defenders a,b] [--cache DIR] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch

from arena.cell.artifacts import train_model
from arena.cell.rules import measure, score
from arena.cell.setting import Gates, Setting
from arena.core.cache import ArtifactCache
from arena.core.infer import accuracy
from arena.core.train import TrainConfig
from arena.data import DataRef, Split
from strategies import DEFENSES, UnknownStrategy, attack_class, defense_class

TARGET_SECONDS = 30.0
T = TypeVar("T")


def loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """``fn()``, its wall seconds and this process's CPU seconds (user + system, all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def warm_up(model: torch.nn.Module, data: Split) -> None:
    """One-time costs of a process that would otherwise fall on the first defense timed: the
    first backward pass and optimizer step, and importing kornia's transforms and filters."""
    import kornia.filters
    import kornia.geometry.transform  # noqa: F401

    net = copy.deepcopy(model).train()
    optimizer = torch.optim.Adam(net.parameters())
    torch.nn.functional.cross_entropy(net(data.x[:64]), data.y[:64]).backward()
    optimizer.step()
    kornia.filters.median_blur(data.x[:64], 3)


def bench(names: list[str], cache_url: str, parts_url: str, seed: int) -> dict[str, Any]:
    setting = Setting(data=DataRef(), model="small-cnn")
    data = setting.splits()
    cache = ArtifactCache(cache_url)
    parts = ArtifactCache(parts_url)
    attack = attack_class("badnets")(
        None, image_shape=data.image_shape, num_classes=data.num_classes, cache=cache
    )
    recipe = TrainConfig()
    clean, clean_s, _ = timed(partial(train_model, setting, seed, cache, recipe=recipe))
    bad, bad_s, _ = timed(partial(train_model, setting, seed, cache, recipe=recipe, attack=attack))
    triggered = attack.poisoned_test(data.test, torch.Generator().manual_seed(seed + 1))
    clean_ca = accuracy(clean.model, data.test.x, data.test.y)
    _, warm_s, _ = timed(partial(warm_up, bad.model, data.val))
    rows = []
    for name in names:
        defense = defense_class(name)(None, seed=seed, cache=parts)
        load = loadavg()
        deployed, fit_s, fit_cpu = timed(partial(defense.fit, bad.model, data.val))
        m, serve_s, serve_cpu = timed(partial(measure, bad.model, deployed, data.test, triggered))
        check_s = check_cpu = 0.0
        clean_flagged = None
        if defense.kind == "detector":
            verdict, check_s, check_cpu = timed(partial(defense.fit, clean.model, data.val))
            clean_flagged = verdict.flagged
        ruling = score(
            m,
            clean_ca=clean_ca,
            flagged=deployed.flagged,
            clean_flagged=clean_flagged,
            gates=Gates(),
        )
        rows.append(
            {
                "defense": name,
                "kind": defense.kind,
                "access": defense.access,
                "fit_s": fit_s,
                "serve_s": serve_s,
                "clean_check_s": check_s,
                "total_s": fit_s + serve_s + check_s,
                "fit_cpu_s": fit_cpu,
                "serve_cpu_s": serve_cpu,
                "clean_check_cpu_s": check_cpu,
                "total_cpu_s": fit_cpu + serve_cpu + check_cpu,
                "within_target": fit_s + serve_s + check_s <= TARGET_SECONDS,
                "sda": m.sda,
                "sasr": m.sasr,
                "frr": m.frr,
                "payoff": ruling.payoff,
                "decided_by": ruling.decided_by,
                "loadavg_1min_before": load,
            }
        )
    return {
        "badnet": {
            "ca": accuracy(bad.model, data.test.x, data.test.y),
            "asr": accuracy(bad.model, triggered.x, triggered.y),
            "clean_ca": clean_ca,
            "cached": bad.cached and clean.cached,
            "train_s": clean_s + bad_s,
        },
        "warm_up_s": warm_s,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "target_s": TARGET_SECONDS,
        "loadavg_1min_after": loadavg(),
        "defenses": rows,
    }


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    bad = result["badnet"]
    table = Table(
        title=(
            f"seconds per defense on the digits BadNet (CA {bad['ca']:.3f}, ASR {bad['asr']:.3f}), "
            f"{result['torch_threads']} torch thread(s)"
        ),
        title_justify="left",
    )
    table.add_column("defense", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    for column in ("fit", "serve", "check", "total", "CPU", "payoff", "load"):
        table.add_column(column, justify="right")
    for row in result["defenses"]:
        total = f"{row['total_s']:.2f}"
        table.add_row(
            row["defense"],
            row["kind"],
            f"{row['fit_s']:.2f}",
            f"{row['serve_s']:.2f}",
            f"{row['clean_check_s']:.2f}" if row["kind"] == "detector" else "-",
            total if row["within_target"] else f"[red]{total}[/red]",
            f"{row['total_cpu_s']:.2f}",
            f"{row['payoff']:.3f}",
            f"{row['loadavg_1min_before']:.1f}",
        )
    console = Console()
    if not console.is_terminal:  # piped: no 80-column default that crops the figures
        console = Console(width=120)
    console.print(table)
    print(
        f"check: the detector's fit on the clean model; CPU: this process's CPU seconds; load: "
        f"1-minute load average before the defense (after all: {result['loadavg_1min_after']:.1f})."
        f" Target: at most {result['target_s']:.0f} s per defense (red: over)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--defenders", default=None, help="comma-separated names (default: every registered one)"
    )
    parser.add_argument("--cache", default="runs/cache", help="where the BadNet is cached")
    parser.add_argument(
        "--warm-parts", action="store_true", help="keep defenses' trained parts in --cache"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    names = sorted(DEFENSES) if args.defenders is None else args.defenders.split(",")
    for name in names:
        try:
            defense_class(name)
        except UnknownStrategy as e:
            parser.error(str(e))
    with tempfile.TemporaryDirectory() as tmp:
        parts = args.cache if args.warm_parts else str(Path(tmp) / "parts")
        result = bench(names, args.cache, parts, args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
