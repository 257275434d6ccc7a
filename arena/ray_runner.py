"""Ray: starting it quietly, and computing payoff cells as Ray tasks.

Ray is imported here, where it is used, so that ``arena --help`` and cache-only replays never
pay its start-up. By default Arena starts a local Ray instance on this machine; ``address``
(``"auto"`` or ``"ray://host:10001"``) joins an existing cluster, whose nodes then share the
cache URL and the Optuna storage given to the duel.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from arena.cache import ArtifactCache
from arena.payoff import Cell, Setting, Tally, cached_cell, play_row
from studies.players import AttackerStrategy, DefenderStrategy

log = logging.getLogger(__name__)

QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "60",
}


def quiet_ray_env() -> None:
    """Environment that keeps Ray and Tune from printing their own progress and banners."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Start (or join) Ray once per process, with its own logging quiet."""
    quiet_ray_env()
    import ray

    # local instances keep Ray's token authentication on; only its notice is silenced
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.WARNING,
            "log_to_driver": False,  # trial errors come back through Tune; the rest is noise
        }
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, **kwargs)
        logging.getLogger("ray").setLevel(logging.WARNING)
        # Tune's own notices (its Ctrl-C and restore hints, metrics it could not fetch) do not
        # apply to Arena, which resumes from its Optuna storage and reports failed trials itself
        logging.getLogger("ray.tune").setLevel(logging.ERROR)
    return ray


def pin_threads() -> int:
    """Inside a Ray task or trial: as many torch threads as the CPUs Ray granted it (one by
    default). Two OpenMP threads that share a core with another trial run many times slower
    than one (bench/README.md, "Under load")."""
    import ray
    import torch

    cpus = 1
    if ray.is_initialized():
        granted = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        cpus = max(1, int(granted))
    torch.set_num_threads(cpus)
    return cpus


def _cell_task(
    attacker: AttackerStrategy,
    defenders: Sequence[DefenderStrategy],
    seed: int,
    setting: Setting,
) -> list[Cell]:
    pin_threads()
    return [cells[0] for cells in play_row(attacker, defenders, [seed], setting)]


def play_rows(
    rows: Sequence[tuple[AttackerStrategy, Sequence[DefenderStrategy]]],
    seeds: Sequence[int],
    setting: Setting,
    tally: Tally,
    *,
    address: str | None = None,
) -> list[list[list[Cell]]]:
    """``cells[r][j][s]`` for each ``(attacker, defenders)`` row, seed by seed. Cached cells are
    read here; each (row, seed) with a missing cell becomes one Ray task, so the row's BadNet
    for that seed is trained once and the seeds run in parallel."""
    cache = ArtifactCache(setting.cache_url)
    out = [
        [[cached_cell(a, d, s, setting, cache) for s in seeds] for d in defenders]
        for a, defenders in rows
    ]
    pending = [
        (r, k)
        for r in range(len(rows))
        for k in range(len(seeds))
        if any(out[r][j][k] is None for j in range(len(rows[r][1])))
    ]
    if pending:
        ray = ensure_ray(address)
        task = ray.remote(num_cpus=1)(_cell_task)
        refs = [task.remote(rows[r][0], rows[r][1], seeds[k], setting) for r, k in pending]
        for (r, k), cells in zip(pending, ray.get(refs), strict=True):
            for j, cell in enumerate(cells):
                out[r][j][k] = cell
    for row in out:
        for cells in row:
            for cell in cells:
                assert cell is not None
                tally.add(cell)
    return out  # type: ignore[return-value]
