"""The tables in ``docs/``: every attack against no defense, and defenses against attacks.

``attacks``: for every registered attack (or those named), ``arena evaluate --attacker X
--defender none`` on each seed: the clean model's CA, the BadNet's CA and ASR, and the seconds
the cell took from a cold cache (BadNet training included; the clean model is trained once per
seed and shared, so its time is reported apart).

``defenses``: every registered defense (or those named, pipelines included) against each
named attack, Table V of Le Roux et al. style: SDA (clean accuracy of the defended system) and
SASR (triggered inputs that pass and hit the target) per cell, with the payoff and, for
detectors, the verdicts on the BadNet and the clean model.

Each run writes a Markdown table (``--out``) headed by the command that made it, and prints it.
Cells run in ``--jobs`` worker processes with one torch thread each; BadNets and clean models
are cached in ``--cache`` and shared by every cell that needs them.

    python bench/tables.py attacks [--attacks a b] [--seeds 0 1 2] [--out docs/attacks.md]
    python bench/tables.py defenses [--defenses d e] [--attacks a b] [--out docs/defenses.md]
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("bench.tables")

DEFAULT_ATTACKS_FOR_DEFENSES = ("badnets", "blend-noise", "sig", "wanet", "tca")


def _cell(job: tuple[str, str, int, str, str]) -> dict[str, Any]:
    """One ``arena evaluate`` in a worker process (one torch thread)."""
    attacker, defender, seed, cache, dataset = job
    import torch

    torch.set_num_threads(1)
    from arena.cell.play import evaluate
    from arena.cell.setting import Setting
    from arena.data import DataRef
    from strategies.players import AttackerStrategy, DefenderStrategy

    start = time.perf_counter()
    result = evaluate(
        AttackerStrategy.of(attacker),
        DefenderStrategy.of(defender),
        Setting(data=DataRef(name=dataset), cache_url=cache),
        seed=seed,
    ).to_json()
    result["wall"] = time.perf_counter() - start
    result["job"] = {"attacker": attacker, "defender": defender, "seed": seed}
    return result


def run_cells(jobs: Sequence[tuple[str, str, int, str, str]], workers: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(_cell, jobs):
            j = result["job"]
            log.info(
                "%s vs %s, seed %d: payoff %.3f (%.1fs)",
                j["attacker"],
                j["defender"],
                j["seed"],
                result["payoff"],
                result["wall"],
            )
            out.append(result)
    return out


def _pct(values: Sequence[float | None]) -> str:
    """Mean in percent, with the range over seeds when there are several."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    mean = 100 * statistics.fmean(vals)
    if len(vals) == 1:
        return f"{mean:.1f}"
    return f"{mean:.1f} ({100 * min(vals):.1f}-{100 * max(vals):.1f})"


def attack_table(results: list[dict[str, Any]], attacks: Sequence[str]) -> list[str]:
    from strategies import attack_class

    lines = [
        "| attack | clean-label | clean CA % | BadNet CA % | ASR % | CA drop (points) | "
        "BadNet training s | cell s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in attacks:
        rows = [r for r in results if r["job"]["attacker"] == name]
        clean = [r["gates"]["clean_ca"] for r in rows]
        drop = [r["gates"]["clean_ca"] - r["ca"] for r in rows]
        train = [r["seconds"].get("badnet", 0.0) for r in rows]
        walls = [r["wall"] for r in rows]
        lines.append(
            f"| `{name}` | {'yes' if attack_class(name).clean_label else 'no'} | {_pct(clean)} | "
            f"{_pct([r['ca'] for r in rows])} | {_pct([r['asr'] for r in rows])} | "
            f"{100 * statistics.fmean(drop):+.1f} | {statistics.fmean(train):.1f} | "
            f"{statistics.fmean(walls):.1f} |"
        )
    return lines


def defense_table(
    results: list[dict[str, Any]], defenses: Sequence[str], attacks: Sequence[str]
) -> list[str]:
    head = "| defense | " + " | ".join(f"`{a}` SDA / SASR / payoff" for a in attacks) + " |"
    lines = [head, "|---|" + "---|" * len(attacks)]
    for d in defenses:
        cells = []
        for a in attacks:
            rows = [r for r in results if r["job"]["defender"] == d and r["job"]["attacker"] == a]
            if not rows:
                cells.append("-")
                continue
            text = (
                f"{_pct([r['sda'] for r in rows])} / {_pct([r['sasr'] for r in rows])} / "
                f"{statistics.fmean(r['payoff'] for r in rows):.2f}"
            )
            notes = sorted({_note(r) for r in rows} - {""})
            cells.append(text + (f" ({'; '.join(notes)})" if notes else ""))
        lines.append(f"| `{d}` | " + " | ".join(cells) + " |")
    return lines


def _note(result: dict[str, Any]) -> str:
    """Why a cell's payoff is what it is, in a few words."""
    gates, det = result["gates"], result["detection"]
    if gates["decided_by"] == "user":
        return "BadNet rejected by the user"
    if gates["decided_by"] == "defense":
        reasons = " ".join(gates["reasons"])
        if "clean reference" in reasons:
            return "clean model flagged (FP)"
        if "rejects" in reasons:
            return "FRR over budget"
        return "CA cost over budget"
    if det.get("badnet") is True:
        return "flagged (TP)"
    if det.get("badnet") is False:
        return "not flagged (FN)"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=("attacks", "defenses"))
    parser.add_argument("--attacks", nargs="*", help="attack names (default: see the docstring)")
    parser.add_argument("--defenses", nargs="*", help="defense names or pipelines (default all)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--cache", default="runs/bench-cache", help="artifact cache folder")
    parser.add_argument("--jobs", type=int, default=max(1, len(os.sched_getaffinity(0))))
    parser.add_argument("--out", help="write the Markdown table here too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    from strategies import ATTACKS, DEFENSES

    if args.table == "attacks":
        attacks = args.attacks or sorted(ATTACKS)
        jobs = [(a, "none", s, args.cache, args.dataset) for a in attacks for s in args.seeds]
    else:
        attacks = args.attacks or [a for a in DEFAULT_ATTACKS_FOR_DEFENSES if a in ATTACKS]
        defenses = args.defenses or sorted(DEFENSES)
        jobs = [
            (a, d, s, args.cache, args.dataset)
            for d in defenses
            for a in attacks
            for s in args.seeds
        ]
    start = time.perf_counter()
    # train every BadNet first, one per (attack, seed), so that workers never train one twice
    warm = sorted({(a, "none", s, args.cache, args.dataset) for a, _, s, _, _ in jobs})
    warm_results = run_cells(warm, args.jobs)
    results = warm_results if args.table == "attacks" else run_cells(jobs, args.jobs)
    if args.table == "attacks":
        lines = attack_table(results, attacks)
    else:
        lines = defense_table(results, defenses, attacks)
    command = "python bench/tables.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    header = [
        f"`{command}` on {args.dataset}, seeds {', '.join(map(str, args.seeds))}; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {time.perf_counter() - start:.0f} s "
        f"with {args.jobs} worker process(es).",
        "",
    ]
    text = "\n".join(header + lines) + "\n"
    sys.stdout.write(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
