"""Ray Tune's overhead on a duel's trials, and the cost of replaying a finished duel.

Runs ``arena duel --attacker A --defender D --budget B`` (default tca / abs / quick) twice in one
process, on a fresh cache and storage in a temporary folder, and reports:

* per trial, as the driver sees it: wall time from Tune's ``on_trial_start`` to
  ``on_trial_complete`` (a callback in the driver), the time inside the trainable (measured in
  the trial), and the overhead ``wall - inside`` as a share of the wall time (summed over
  trials). Target: at most 10%;
* per study: ``Tuner.fit`` wall time against the trials' time inside the trainable divided by
  the trials that can run at once (the Ray CPUs), i.e. what the study would take with no
  scheduling cost;
* the whole duel's wall time, and the second (identical) run's wall time as a share of it.

    python bench/duel.py [--attacker tca] [--defender abs] [--budget quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from arena.cell.setting import Setting
from arena.duels.run import DuelSpec, run_duel
from arena.game.budget import BUDGETS


def measure(attacker: str, defender: str, budget: str, root: Path) -> dict[str, Any]:
    load = os.getloadavg()[0]
    setting = Setting(cache_url=str(root / "cache"))
    spec = DuelSpec(attacker, defender, setting, BUDGETS[budget], seed=0)
    storage = f"sqlite:///{root / 'arena.db'}"
    start = time.perf_counter()
    first = run_duel(spec, storage_url=storage, out_dir=root / "first")
    first_wall = time.perf_counter() - start
    start = time.perf_counter()
    again = run_duel(spec, storage_url=storage, out_dir=root / "again")
    again_wall = time.perf_counter() - start

    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else 1
    trials = first["trials"]
    wall = [t["wall_seconds"] for t in trials]
    inside = [t["inner_seconds"] for t in trials]
    overhead = [w - i for w, i in zip(wall, inside, strict=True)]
    studies = first["seconds"]["studies"]
    return {
        "duel": f"{attacker} vs {defender}, budget {budget}",
        "cpus": cpus,
        "trials": len(trials),
        "trial_wall_median_s": statistics.median(wall),
        "trial_inside_median_s": statistics.median(inside),
        "trial_overhead_median_s": statistics.median(overhead),
        "trial_overhead_share": sum(overhead) / sum(wall),
        "studies_wall_s": studies,
        "studies_ideal_s": sum(inside) / cpus,
        "studies_overhead_share": 1 - (sum(inside) / cpus) / studies if studies else None,
        "duel_wall_s": first_wall,
        "trainings": first["trainings"],
        "replay_wall_s": again_wall,
        "replay_share": again_wall / first_wall,
        "replay_trainings": again["trainings"],
        "value": first["value"],
        "exploitability": first["exploitability"],
        "load_before": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attacker", default="tca")
    parser.add_argument("--defender", default="abs")
    parser.add_argument("--budget", default="quick", choices=sorted(BUDGETS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = measure(args.attacker, args.defender, args.budget, Path(tmp))
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=figures["duel"], title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        if key != "duel":
            table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    Console().print(table)


if __name__ == "__main__":
    main()
