"""Several duels at once, each an ``arena duel`` driver of its own (then ``arena audit``),
all joined to one Ray instance or cluster, whose scheduler shares the CPUs among their trials:
what ``arena table --jobs N`` runs before it builds the table from the finished duels. A small
duel cannot keep a large cluster busy; several at once can."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path

from arena.cell.runner import Compute
from arena.duels.audit import AuditSpec
from arena.duels.run import DuelSpec, absolute_storage, absolute_url
from arena.game.budget import flag


def duel_argv(
    duel: DuelSpec, folder: Path, storage_url: str, address: str, resume: bool, compute: Compute
) -> list[str]:
    """The ``arena duel`` command line of ``duel`` (the same name, so the table's replay finds
    it), joined to the Ray at ``address``."""
    s, d, g = duel.setting, duel.setting.data, duel.setting.gates
    argv = [
        "duel", "--attacker", duel.attacker, "--defender", duel.defender, "--dataset", d.name,
        "--model", s.model, "--seed", str(duel.seed), "--cache", absolute_url(s.cache_url),
        "--storage", storage_url, "--out", str(folder), "--address", address,
        "--delta-attack", str(g.delta_attack), "--delta-defense", str(g.delta_defense),
        "--frr-budget", str(g.frr_budget), "--device", compute.device,
        "--max-failures", str(compute.max_failures),
    ]  # fmt: skip
    for name, value in (("--data-path", d.path), ("--image-size", d.image_size),
                        ("--limit", d.limit), ("--cpus-per-trial", compute.cpus_per_trial),
                        ("--gpus-per-trial", compute.gpus_per_trial)):  # fmt: skip
        if value is not None:
            argv += [name, str(value)]
    for f in fields(duel.budget):
        if f.name == "prune":  # a switch, not a value
            argv += [] if duel.budget.prune else ["--no-prune"]
        elif f.name == "reproducible":
            argv += ["--reproducible"] if duel.budget.reproducible else []
        else:
            argv += [flag(f.name), str(getattr(duel.budget, f.name))]
    return argv + (["--resume"] if resume else [])


def audit_argv(
    folder: Path, audit: AuditSpec, storage_url: str, cache_url: str, address: str, resume: bool
) -> list[str]:
    """The ``arena audit`` command line of the duel in ``folder``."""
    argv = [
        "audit", str(folder), "--sampler", audit.sampler, "--storage", storage_url,
        "--cache", absolute_url(cache_url), "--address", address,
    ]  # fmt: skip
    if audit.trials is not None:
        argv += ["--trials", str(audit.trials)]
    if audit.confirm_seeds is not None:
        argv += ["--confirm-seeds", str(audit.confirm_seeds)]
    return argv + (["--resume"] if resume else [])


class TableJobError(RuntimeError):
    """A duel or audit that ran as a job of its own failed."""


def run_jobs(
    duels: Sequence[DuelSpec],
    audit: AuditSpec | None,
    *,
    storage_url: str,
    duels_dir: Path,
    resume: bool,
    compute: Compute,
    jobs: int,
    say: Callable[[str], None] = lambda _: None,
) -> None:
    """Each of ``duels`` (then its audit, if ``audit``) as an ``arena`` process of its own,
    ``jobs`` at once,
    all joined to this process's Ray (started here if it is not yet); each one's output in
    ``duel.out`` and ``duel.err`` in its folder. Ctrl-C here stops them all, cleanly."""
    import ray

    from arena.cell.runner import ensure_ray

    ensure_ray(compute.target)
    address = compute.target or ray.get_runtime_context().gcs_address
    storage_url = absolute_storage(storage_url)
    queue = []
    for duel in duels:
        folder = (duels_dir / duel.name).resolve()
        steps = [duel_argv(duel, folder, storage_url, address, resume, compute)]
        if audit is not None:
            cache = duel.setting.cache_url
            steps.append(audit_argv(folder, audit, storage_url, cache, address, resume))
        queue.append((duel, folder, steps))
    running: list[tuple[DuelSpec, Path, list[list[str]], subprocess.Popen[bytes], float]] = []

    def launch(duel: DuelSpec, folder: Path, steps: list[list[str]], t0: float) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "duel.out").open("ab") as out, (folder / "duel.err").open("ab") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "arena", *steps[0]], stdout=out, stderr=err
            )
        running.append((duel, folder, steps[1:], proc, t0))

    try:
        while queue or running:
            while queue and len(running) < jobs:
                duel, folder, steps = queue.pop(0)
                say(f"started {duel.attacker} vs {duel.defender} ({duel.name})")
                launch(duel, folder, steps, time.perf_counter())
            time.sleep(0.5)
            for item in list(running):
                duel, folder, rest, proc, t0 = item
                code = proc.poll()
                if code is None:
                    continue
                running.remove(item)
                if code != 0:
                    lines = (folder / "duel.err").read_text(errors="replace").strip().splitlines()
                    last = lines[-1] if lines else f"exit status {code}"
                    raise TableJobError(
                        f"{duel.attacker} vs {duel.defender} failed: {last} "
                        f"(its output: {folder / 'duel.err'})"
                    )
                if rest:
                    launch(duel, folder, rest, t0)
                else:
                    say(
                        f"finished {duel.attacker} vs {duel.defender} in "
                        f"{time.perf_counter() - t0:.0f} s"
                    )
    finally:
        for _, _, _, proc, _ in running:  # stopped early: each driver stops as at Ctrl-C
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for _, _, _, proc, _ in running:
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
