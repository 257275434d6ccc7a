"""Ray Tune's overhead on a duel's trials, and the cost of replaying a finished duel.

Runs ``arena duel --attacker A --defender D --budget B`` (default tca / abs / quick) twice in one
process, on a fresh cache and storage in a temporary folder, and reports:

* per trial, as the driver sees it: wall time from Tune's ``on_trial_start`` to
  ``on_trial_complete`` (a callback in the driver), the time inside the trainable (measured in
  the trial), and the overhead ``wall - inside`` as a share of the wall time (summed over
  trials). Target: at most 10%;
* the studies' ``Tuner.fit`` wall time (one ``Tuner`` a round runs both sides' studies)
  against the trials' time inside the trainable divided by the trials that can run at once
  (the Ray CPUs), i.e. what the studies would take with no scheduling cost;
* the whole duel's wall time, and the second (identical) run's wall time as a share of it.

    python bench/duel.py [--attacker tca] [--defender abs] [--budget quick] [--json]

``--profile`` instead runs the duel once, from a cold cache, and says where its time goes:
wall and CPU seconds per phase (the data, the clean models and BadNets trained, the defenses'
fits on the BadNet and on the clean model, the scoring passes, the driver's Optuna storage
calls and LP solves, Ray's scheduling and transfer around each trial), per trial and in
total, with the CPU time of every process of the duel (the driver, Ray's daemons and workers,
read from ``/proc``) against the wall time times the CPUs: the share of the cores kept busy;
``workers_by_title`` splits Ray's workers by what they ran (the titles Ray gives a worker's
command line: ``ray::ImplicitFunc`` for Tune's trial actors, ``ray::score_task`` for a trial's
work, ``ray::_cell_task`` for the payoff matrix's and the interval's cells, ``ray::IDLE``).
The phases inside cells come from the cells' own clocks (``seconds`` and ``cpu_seconds`` of
every cell the duel computed, read back from its cache); the driver's phases from timers this
script wraps around the storage, the solver and the data loader.

    python bench/duel.py --profile [--attacker tca] [--defender abs] [--budget quick] [--json]

``--compare REF`` plays the same duels from a cold cache on this checkout and on the commit
REF (a git worktree of it in a temporary folder, imported first through ``PYTHONPATH`` by the
driver and its Ray workers), interleaved pair by pair (REF first, then this code; the order
swaps on each repeat), each ``arena duel ... --json`` its own process with its own cache and
storage: wall time, value, the value re-solved on fresh seeds with its 95% interval, the
1-minute load before and after; and whether each side's values lie within the other's
interval. Default pairs ``tca:abs,badnets:strip``, budget ``default``.

    python bench/duel.py --compare d1b43f7 [--pairs tca:abs,badnets:strip] [--budget default]
    python bench/duel.py --compare d1b43f7 --budget quick --repeats 3
    python bench/duel.py --compare d1b43f7 --current-args=--reproducible

``--current-args`` adds flags to this code's ``arena duel`` only: ``--reproducible`` makes this
code's search the same from run to run (the reference's still depends on which trial ends
first, so its figure is one path among several; ``--repeats`` takes the median).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
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


CELL_PHASES = ("clean_model", "badnet", "defense", "defense_clean", "metrics")


def process_tree(root: int) -> dict[tuple[int, int], tuple[str, float, str]]:
    """The kind (:func:`kind`), CPU seconds (user + system) and title (the start of its command
    line, which Ray workers rewrite to say what they run) of process ``root`` and every live
    descendant, by (pid, start time) (Linux ``/proc``; empty elsewhere)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    used: dict[int, tuple[int, str, float, str]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        parent[int(entry)] = int(fields[1])
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        try:
            title = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, UnicodeDecodeError):
            title = comm
        title = title.split()[0] if title.strip() else comm
        used[int(entry)] = (int(fields[19]), kind(comm, int(entry) == root), cpu, title)
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in used:
            start, name, cpu, title = used[pid]
            out[pid, start] = (name, cpu, title)
        todo.extend(children.get(pid, []))
    return out


def kind(comm: str, root: bool) -> str:
    """``driver``, ``Ray daemons`` (GCS, raylet, agents) or ``Ray workers``, by the process's
    name (Ray workers retitle themselves ``ray::...``)."""
    if root:
        return "driver"
    if comm.startswith(("gcs_server", "raylet")) or "agent" in comm.lower() or "dashboard" in comm:
        return "Ray daemons"
    return "Ray workers"


class CpuSampler:
    """The CPU seconds of this process and its descendants (the driver, Ray's daemons and
    workers) while it runs: the tree is read every ``every`` seconds and each process counts
    its last reading, so a worker that exits keeps what it had used (Ray's raylet does not
    collect its workers' times; at most ``every`` seconds of each exiting process are lost)."""

    def __init__(self, every: float = 0.5) -> None:
        self.every = every
        self.first = process_tree(os.getpid())
        self.last = dict(self.first)
        self.titles: dict[tuple[int, int], list[str]] = {}  # its ray:: titles but ray::IDLE
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._read()

    def _read(self) -> None:
        tree = process_tree(os.getpid())
        self.last.update(tree)
        for key, (_, _, title) in tree.items():
            seen = self.titles.setdefault(key, [])
            if title.startswith("ray::") and title != "ray::IDLE" and title not in seen:
                seen.append(title)

    def stop(self) -> dict[str, float]:
        """CPU seconds used since the start, by kind of process."""
        self._stop.set()
        self._thread.join()
        self._read()
        out: dict[str, float] = {}
        for key, (name, cpu, _) in self.last.items():
            out[name] = out.get(name, 0.0) + cpu - self._before(key)
        return out

    def _before(self, key: tuple[int, int]) -> float:
        return self.first[key][1] if key in self.first else 0.0

    def workers_by_title(self) -> dict[str, dict[str, float]]:
        """Ray workers' processes and CPU seconds, by the ``ray::`` titles each took other than
        ``ray::IDLE``, in order, joined by ``+`` (for those that never ran anything: their
        last title)."""
        out: dict[str, dict[str, float]] = {}
        for key, (name, cpu, last_title) in self.last.items():
            if name == "Ray workers":
                title = "+".join(self.titles.get(key, [])) or last_title
                row = out.setdefault(title, {"processes": 0, "cpu_s": 0.0})
                row["processes"] += key not in self.first
                row["cpu_s"] += cpu - self._before(key)
        return out

    def started(self, name: str) -> int:
        """How many processes of kind ``name`` started while it ran."""
        return sum(k not in self.first and n == name for k, (n, _, _) in self.last.items())


class Timer:
    """Wall and CPU seconds (this process's) spent in the wrapped callables, outermost calls
    only (a wrapped method that calls another counts once)."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self.calls = 0
        self._depth = threading.local()

    def wrap(self, fn: Any) -> Any:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._depth, "n", 0)
            self._depth.n = depth + 1
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth.n = depth
                if depth == 0:
                    self.wall += time.perf_counter() - start
                    self.cpu += time.process_time() - cpu
                    self.calls += 1

        return timed


@contextlib.contextmanager
def driver_timers() -> Iterator[dict[str, Timer]]:
    """Timers around the driver's Optuna storage calls, its LP solves and its data loading."""
    # by import_module: arena.game's package exports a function of the same name as the module
    rdb = importlib.import_module("optuna.storages._rdb.storage")
    setting_module = importlib.import_module("arena.cell.setting")
    do = importlib.import_module("arena.game.double_oracle")

    timers = {"storage": Timer(), "solver": Timer(), "data": Timer()}
    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, timer: Timer) -> None:
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, timer.wrap(getattr(owner, name)))

    for name, member in vars(rdb.RDBStorage).items():
        if callable(member) and not name.startswith("_"):
            patch(rdb.RDBStorage, name, timers["storage"])
    patch(do, "solve_zero_sum", timers["solver"])
    patch(setting_module, "load_data", timers["data"])
    try:
        yield timers
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def profile(
    attacker: str, defender: str, budget: str, root: Path, limit: int | None = None
) -> dict[str, Any]:
    """One duel from a cold cache, and where its wall and CPU time went (module docstring);
    ``limit``: at most that many images a split (a smoke run)."""
    import ray

    from arena.data import DataRef

    load = os.getloadavg()[0]
    setting = Setting(data=DataRef(limit=limit), cache_url=str(root / "cache"))
    spec = DuelSpec(attacker, defender, setting, BUDGETS[budget], seed=0)
    sampler = CpuSampler()
    start = time.perf_counter()
    with driver_timers() as timers:
        result = run_duel(spec, storage_url=f"sqlite:///{root / 'arena.db'}", out_dir=root / "out")
    wall = time.perf_counter() - start
    by_kind = sampler.stop()
    cpu = sum(by_kind.values())
    cpus = int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else 1
    cells = [json.loads(p.read_text()) for p in (root / "cache" / "cell").glob("*/*.json")]
    phases: dict[str, dict[str, float]] = {}
    for name in CELL_PHASES:
        phases[f"cell: {name}"] = {
            "wall_s": sum(c["seconds"].get(name, 0.0) for c in cells),
            "cpu_s": sum(c.get("cpu_seconds", {}).get(name, 0.0) for c in cells),
        }
    for name, timer in timers.items():
        phases[f"driver: {name}"] = {"wall_s": timer.wall, "cpu_s": timer.cpu, "calls": timer.calls}
    trials = result["trials"]
    around = [t["wall_seconds"] - t["inner_seconds"] for t in trials]
    phases["ray: around each trial"] = {"wall_s": sum(around), "cpu_s": float("nan")}
    in_cells = sum(p["cpu_s"] for n, p in phases.items() if n.startswith("cell"))
    in_driver = sum(t.cpu for t in timers.values())
    nan = float("nan")
    phases["Ray workers, outside cells (start-up, imports, Tune)"] = {
        "wall_s": nan,
        "cpu_s": by_kind.get("Ray workers", 0.0) - in_cells,
    }
    phases["driver, outside storage and solver (Tune, searcher)"] = {
        "wall_s": nan,
        "cpu_s": by_kind.get("driver", 0.0) - in_driver,
    }
    phases["Ray daemons (GCS, raylet, agents)"] = {
        "wall_s": nan,
        "cpu_s": by_kind.get("Ray daemons", 0.0),
    }
    seconds = result["seconds"]
    return {
        "duel": f"{attacker} vs {defender}, budget {budget}, cold cache",
        "cpus": cpus,
        "wall_s": wall,
        "cpu_s": cpu,
        "cores_busy": cpu / (wall * cpus),
        "studies_wall_s": seconds["studies"],
        "payoff_matrix_wall_s": seconds["payoff_matrix"],
        "interval_wall_s": seconds["confidence_interval"],
        "trials": len(trials),
        "trial_wall_mean_s": statistics.mean(t["wall_seconds"] for t in trials),
        "trial_inside_mean_s": statistics.mean(t["inner_seconds"] for t in trials),
        "cells": len(cells),
        "trainings": result["trainings"],
        "phases": phases,
        "value": result["value"],
        "load_before": load,
        "worker_processes": sampler.started("Ray workers"),
        "workers_by_title": sampler.workers_by_title(),
    }


def print_profile(figures: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    head = Table(title=figures["duel"], title_justify="left", show_header=False)
    for key, value in figures.items():
        if key not in ("duel", "phases"):
            head.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(head)
    table = Table(title="where the time went", title_justify="left")
    for column in ("phase", "wall s (summed over workers)", "CPU s", "share of CPU"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for name, p in figures["phases"].items():
        share = p["cpu_s"] / figures["cpu_s"] if p["cpu_s"] == p["cpu_s"] else float("nan")
        table.add_row(name, f"{p['wall_s']:.1f}", f"{p['cpu_s']:.1f}", f"{share:.0%}")
    console.print(table)


def play(
    checkout: Path,
    pythonpath: str | None,
    pair: str,
    budget: str,
    root: Path,
    extra: Sequence[str] = (),
) -> dict:
    """One cold ``arena duel`` of ``pair`` (``attacker:defender``) run by ``checkout``'s code in
    its own process, with the flags ``extra`` added: its wall time, value, interval and the
    load around it."""
    attacker, defender = pair.split(":")
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    argv = [
        sys.executable, "-m", "arena", "duel", "--attacker", attacker, "--defender", defender,
        "--budget", budget, "--cache", str(root / "cache"),
        "--storage", f"sqlite:///{root / 'arena.db'}", "--out", str(root / "out"), "--json",
        *extra,
    ]  # fmt: skip
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{pair} on {checkout} failed:\n{done.stderr[-3000:]}")
    result, _ = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{") :])
    ci = result.get("value_ci") or {}
    return {
        "wall_s": round(wall, 1),
        "value": result["value"],
        "fresh_value": ci.get("mean"),
        "ci": [ci.get("low"), ci.get("high")],
        "trainings": result["trainings"],
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def within(value: float, ci: list[float | None]) -> bool | None:
    low, high = ci
    return None if low is None or high is None else low - 1e-9 <= value <= high + 1e-9


def compare(
    ref: str,
    pairs: list[str],
    budget: str,
    repeats: int,
    tmp: Path,
    current_args: Sequence[str] = (),
) -> dict:
    """Each pair on ``ref`` and on this checkout (with ``current_args`` added to its
    ``arena duel``: flags the reference may not have), interleaved (module docstring)."""
    here = Path(__file__).resolve().parents[1]
    tree = tmp / "ref"
    subprocess.run(
        ["git", "-C", str(here), "worktree", "add", "--detach", str(tree), ref],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        commit = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        runs: dict[str, dict[str, list[dict]]] = {p: {"ref": [], "current": []} for p in pairs}
        for r in range(repeats):
            for pair in pairs:
                order = [("ref", tree, str(tree), ()), ("current", here, None, current_args)]
                for side, checkout, path, extra in order if r % 2 == 0 else order[::-1]:
                    root = tmp / f"{side}-{pair.replace(':', '-')}-{r}"
                    figures = play(checkout, path, pair, budget, root, extra)
                    runs[pair][side].append(figures)
                    print(f"{pair} {side}: {figures}", file=sys.stderr)
        out: dict[str, Any] = {
            "ref": ref,
            "ref_commit": commit,
            "budget": budget,
            "current_args": list(current_args),
            "pairs": {},
        }
        for pair, sides in runs.items():
            ref_wall = statistics.median(f["wall_s"] for f in sides["ref"])
            cur_wall = statistics.median(f["wall_s"] for f in sides["current"])
            last_ref, last_cur = sides["ref"][-1], sides["current"][-1]
            out["pairs"][pair] = {
                **sides,
                "wall_ratio": round(cur_wall / ref_wall, 3),
                "current_value_in_ref_ci": within(last_cur["value"], last_ref["ci"]),
                "ref_value_in_current_ci": within(last_ref["value"], last_cur["ci"]),
                # the value the interval is about: the game re-solved on fresh seeds
                # (docs/values.md); the duel's own value is measured on the seeds its oracles
                # chose their responses on, and lies above it by the winner's curse
                "current_fresh_value_in_ref_ci": within(last_cur["fresh_value"], last_ref["ci"]),
                "ref_fresh_value_in_current_ci": within(last_ref["fresh_value"], last_cur["ci"]),
            }
        return out
    finally:
        subprocess.run(
            ["git", "-C", str(here), "worktree", "remove", "--force", str(tree)],
            capture_output=True,
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attacker", default="tca")
    parser.add_argument("--defender", default="abs")
    parser.add_argument("--budget", default="quick", choices=sorted(BUDGETS))
    parser.add_argument("--profile", action="store_true", help="where one duel's time goes")
    parser.add_argument("--limit", type=int, default=None, help="images a split (--profile)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--compare", metavar="REF", help="this code against commit REF")
    parser.add_argument("--pairs", default="tca:abs,badnets:strip", help="with --compare")
    parser.add_argument("--repeats", type=int, default=1, help="with --compare")
    parser.add_argument(
        "--current-args",
        default="",
        help="with --compare: flags added to this code's `arena duel` only (e.g. "
        "'--reproducible', which the reference may lack)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.compare:
            budget = (
                "default" if args.budget == "quick" and "--budget" not in sys.argv else args.budget
            )
            figures = compare(
                args.compare,
                args.pairs.split(","),
                budget,
                args.repeats,
                Path(tmp),
                shlex.split(args.current_args),
            )
            print(json.dumps(figures, indent=2))
            return
        if args.profile:
            figures = profile(args.attacker, args.defender, args.budget, Path(tmp), args.limit)
        else:
            figures = measure(args.attacker, args.defender, args.budget, Path(tmp))
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    if args.profile:
        print_profile(figures)
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
