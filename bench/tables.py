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

``papers``: the papers' tables with Arena's figures beside them (``bench/paper_tables.py``,
the papers' numbers in ``bench/paper_figures.py``).

    python bench/tables.py attacks [--attacks a b] [--seeds 0 1 2] [--out docs/attacks.md]
    python bench/tables.py defenses [--defenses d e] [--attacks a b] [--out docs/defenses.md]
    python bench/tables.py papers --seeds 0 1 2 --out docs/paper-tables.md

An ``--out`` file that holds the markers ``<!-- tables: made by bench/tables.py -->`` and
``<!-- /tables -->`` keeps everything outside them: only the table between them is rewritten.
"""

from __future__ import annotations

import argparse
import json
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


Overrides = tuple[tuple[tuple[str, Any], ...], ...]
"""Changes to each stage's default config, as ``((field, value), ...)`` per stage."""
Job = tuple[str, str, int, str, str, Overrides]


def job(attacker: str, defender: str, seed: int, cache: str, dataset: str, **stage0: Any) -> Job:
    """A cell with the defense's defaults, changed by ``stage0`` in its first stage."""
    rest: Overrides = ((),) * defender.count("+")
    return (attacker, defender, seed, cache, dataset, (tuple(sorted(stage0.items())), *rest))


def _cell(job: Job) -> dict[str, Any]:
    """One ``arena evaluate`` in a worker process (one torch thread)."""
    attacker, defender, seed, cache, dataset, overrides = job
    import dataclasses

    import torch

    torch.set_num_threads(1)
    from arena.cell.play import evaluate
    from arena.cell.setting import Setting
    from arena.data import DataRef
    from strategies import defense_class
    from strategies.defenses import parse_defenses
    from strategies.players import AttackerStrategy, DefenderStrategy

    configs = [
        dataclasses.replace(defense_class(name).config_cls(), **dict(changes))
        for name, changes in zip(parse_defenses(defender), overrides, strict=True)
    ]
    start = time.perf_counter()
    result = evaluate(
        AttackerStrategy.of(attacker),
        DefenderStrategy.of(defender, configs),
        Setting(data=DataRef(name=dataset), cache_url=cache),
        seed=seed,
    ).to_json()
    result["wall"] = time.perf_counter() - start
    result["job"] = {
        "attacker": attacker,
        "defender": defender,
        "seed": seed,
        "overrides": [dict(o) for o in overrides],
    }
    return result


def run_cells(jobs: Sequence[Job], workers: int) -> list[dict[str, Any]]:
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
        "| attack | clean-label | clean CA % | BadNet CA % | ASR % | ASR per trigger % | "
        "CA drop (points) | BadNet training s | cell s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in attacks:
        rows = [r for r in results if r["job"]["attacker"] == name]
        clean = [r["gates"]["clean_ca"] for r in rows]
        drop = [r["gates"]["clean_ca"] - r["ca"] for r in rows]
        train = [r["seconds"].get("badnet", 0.0) for r in rows]
        walls = [r["wall"] for r in rows]
        triggers = rows[0].get("triggers", [])
        per_trigger = ", ".join(
            f"{t} {_pct([r['asr_per_trigger'][i] for r in rows])}"
            for i, t in enumerate(triggers)
        )
        lines.append(
            f"| `{name}` | {'yes' if attack_class(name).clean_label else 'no'} | {_pct(clean)} | "
            f"{_pct([r['ca'] for r in rows])} | {_pct([r['asr'] for r in rows])} | "
            f"{per_trigger} | {100 * statistics.fmean(drop):+.1f} | "
            f"{statistics.fmean(train):.1f} | {statistics.fmean(walls):.1f} |"
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


def _setting(text: str) -> tuple[str, Any]:
    """``FIELD=VALUE``, the value read as JSON where it is JSON (numbers), else a string."""
    field, sep, raw = text.partition("=")
    if not sep or not field:
        raise SystemExit(f"--set takes FIELD=VALUE, not {text!r}")
    try:
        return field, json.loads(raw)
    except ValueError:
        return field, raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=("attacks", "defenses", "papers"))
    parser.add_argument("--attacks", nargs="*", help="attack names (default: see the docstring)")
    parser.add_argument("--defenses", nargs="*", help="defense names or pipelines (default all)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--cache", default="runs/bench-cache", help="artifact cache folder")
    parser.add_argument("--jobs", type=int, default=max(1, len(os.sched_getaffinity(0))))
    parser.add_argument("--out", help="write the Markdown table here too")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="defenses table: change this field of every defense's (first stage's) config",
    )
    args = parser.parse_args(argv)
    changes = dict(_setting(s) for s in args.set)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    from strategies import ATTACKS, DEFENSES

    if args.table == "attacks":
        attacks = args.attacks or sorted(ATTACKS)
        jobs = [job(a, "none", s, args.cache, args.dataset) for a in attacks for s in args.seeds]
    elif args.table == "papers":
        import paper_tables

        jobs = paper_tables.jobs(args.seeds, job, args.cache, args.dataset)
    else:
        attacks = args.attacks or [a for a in DEFAULT_ATTACKS_FOR_DEFENSES if a in ATTACKS]
        defenses = args.defenses or sorted(DEFENSES)
        jobs = [
            job(a, d, s, args.cache, args.dataset, **changes)
            for d in defenses
            for a in attacks
            for s in args.seeds
        ]
    start = time.perf_counter()
    # train every BadNet first, one per (attack, seed), so that workers never train one twice
    warm = sorted({job(j[0], "none", j[2], args.cache, args.dataset) for j in jobs})
    warm_results = run_cells(warm, args.jobs)
    rest = [j for j in jobs if j not in warm]
    results = warm_results + run_cells(rest, args.jobs)
    if args.table == "attacks":
        lines = attack_table(results, attacks)
    elif args.table == "papers":
        lines = paper_tables.render(results, args.seeds)
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
        write_between_markers(Path(args.out), text)
    return 0


BEGIN, END = "<!-- tables: made by bench/tables.py -->", "<!-- /tables -->"


def write_between_markers(path: Path, text: str) -> None:
    """Write ``text`` to ``path``; where the file holds the markers :data:`BEGIN` and
    :data:`END`, only what lies between them is replaced, so prose written around generated
    tables survives a new run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.exists() else ""
    if BEGIN in old and END in old:
        head, _, tail = old.partition(BEGIN)
        _, _, tail = tail.partition(END)
        text = f"{head}{BEGIN}\n{text}{END}{tail}"
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
