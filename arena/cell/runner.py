"""Ray: joining or starting it, what each trial and task asks of it, payoff cells as tasks.

Ray is imported here, where it is used, so that ``arena --help`` and cache-only replays never
pay its start-up. Without an address (``--address`` or ``RAY_ADDRESS``) Arena starts a private
Ray instance on this machine, never joining one it happens to find; with one (``auto``,
``host:6379``, ``ray://host:10001``) it joins that cluster, whose nodes then share the cache
URL given to the duel (checked before any work: :func:`check_shared_cache`). Only the driver
writes to the Optuna storage.

What a trial or a cell task asks for follows the network's cost and the device
(:func:`trial_resources`): on the CPU, one core for small networks and more for large ones; on
a GPU, a fraction of one for small networks, so several trials share it. Tasks are spread over
the nodes, and a task whose worker dies is run again (``max_failures``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from arena.cell.play import Tally, cached_cell, play_row
from arena.cell.result import CellResult
from arena.cell.setting import Setting
from arena.core.cache import ArtifactCache
from arena.core.device import resolve_device, set_device
from arena.core.memory import keep_freed_memory
from arena.core.processes import pid_alive, processes_under
from arena.models import build_model
from arena.plugins import (
    installed_distributions,
    job_runtime_env,
    load_plugins,
    missing,
    runtime_env,
)
from strategies.players import AttackerStrategy, DefenderStrategy

log = logging.getLogger(__name__)

QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "60",
}

SMALL_FLOPS = 50e6  # forward FLOPs per image below which a network is "small" on a CPU
MEDIUM_FLOPS = 500e6
GPU_SMALL_FLOPS = 500e6  # below this, a quarter of a GPU per trial; below 10x this, half
TRIAL_ACTOR_CPU = 0.01
"""What a trial's Ray Tune actor asks for: it only waits for its task (``studies/trial.py``)."""
TRIAL_TASK_SHARE = 0.9
"""A trial's task asks this share of the trial's CPUs, so that it fits on a node beside the
actors of the trials running there (one CPU: 0.9 + a few 0.01); the share is a reservation only,
the task runs ``round(cpus)`` threads."""
TUNE_ACTOR_ENV = {"PL_DISABLE_FORK": "1"}
"""The environment variables Ray Tune gives each trial actor (its ``DEFAULT_ENV_VARS``). Ray keeps
a pool of worker processes per runtime environment, and a trial's task inherits its actor's:
the driver's cell tasks ask for the same (:meth:`Resources.for_task`), so that they and the
trials' tasks draw on one pool of warm workers instead of each importing torch and Arena in
processes of their own (bench/README.md, "One pool of warm workers")."""
WORKERS_PER_CPU = 3
"""A local Ray instance keeps this many idle worker processes per CPU before it ends any (Ray's
own default: one), so that the warm workers of trials' tasks survive from study to study beside
each study's new trial actors."""


class RayUnavailable(ValueError):
    """The Ray cluster named by ``--address`` or ``RAY_ADDRESS`` cannot be joined or used."""


@dataclass(frozen=True)
class Compute:
    """Where a duel's work runs and what each trial asks for.

    ``address``: a Ray cluster (``None``: ``RAY_ADDRESS`` if set, else a local instance).
    ``device``: ``auto``, ``cpu`` or ``cuda``. ``cpus_per_trial``/``gpus_per_trial``: override
    :func:`trial_resources`. ``max_failures``: how often a trial or task whose worker died
    (or that raised) is run again before it counts as failed."""

    address: str | None = None
    device: str = "auto"
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    max_failures: int = 2

    def __post_init__(self) -> None:
        if self.max_failures < 0:
            raise ValueError("--max-failures must not be negative")
        for name in ("cpus_per_trial", "gpus_per_trial"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive")

    @property
    def target(self) -> str | None:
        """The cluster to join, or ``None`` for a local instance."""
        return self.address or os.environ.get("RAY_ADDRESS") or None

    def where(self) -> str:
        return f"the Ray cluster at {self.target}" if self.target else "a local Ray instance"


@dataclass(frozen=True)
class Resources:
    """What one trial or cell task asks Ray for."""

    cpu: float
    gpu: float = 0.0

    def for_tune(self) -> dict[str, float]:
        return {"cpu": self.cpu, "gpu": self.gpu}

    def for_task(self) -> dict[str, Any]:
        """What a cell task of the driver asks for: its CPUs and GPU share, and the runtime
        environment of a trial's task (:data:`TUNE_ACTOR_ENV` and the plugins'), so that both
        run on the same warm workers."""
        env = runtime_env() or {}
        env = {**env, "env_vars": {**TUNE_ACTOR_ENV, **env.get("env_vars", {})}}
        return {"num_cpus": self.cpu, "num_gpus": self.gpu, "runtime_env": env}

    def for_trial_task(self) -> dict[str, Any]:
        """What a trial's task asks for (``studies/trial.py``): :data:`TRIAL_TASK_SHARE` of the
        CPUs, so that it fits beside trial actors of :data:`TRIAL_ACTOR_CPU` on any node that
        holds the whole trial; the task pins ``round(cpus)`` threads (:func:`pin_threads`)."""
        return {"num_cpus": self.cpu * TRIAL_TASK_SHARE, "num_gpus": self.gpu, **_plugin_env()}


def _plugin_env() -> dict[str, Any]:
    """The runtime environment that takes the ``--plugin`` modules and files to a task's worker
    (:func:`arena.plugins.runtime_env`); nothing without them, so tasks share Ray's workers."""
    env = runtime_env()
    return {} if env is None else {"runtime_env": env}


@dataclass(frozen=True)
class ClusterInfo:
    """The alive nodes of the Ray instance this process is connected to, with the CPUs and
    GPUs of each."""

    nodes: tuple[str, ...]
    cpus: tuple[float, ...]
    node_gpus: tuple[float, ...]

    @property
    def max_node_cpus(self) -> float:
        return max(self.cpus, default=0.0)

    @property
    def max_node_gpus(self) -> float:
        return max(self.node_gpus, default=0.0)

    @property
    def gpus(self) -> float:
        return sum(self.node_gpus)

    def slots(self, res: Resources) -> int:
        """How many trials asking ``res`` fit on the cluster at once."""
        total = 0
        for cpus, gpus in zip(self.cpus, self.node_gpus, strict=True):
            fit = int(cpus // res.cpu + 1e-9) if res.cpu > 0 else 1 << 16
            if res.gpu > 0:
                fit = min(fit, int(gpus // res.gpu + 1e-9))
            total += fit
        return max(1, total)


def trial_resources(
    flops: float,
    device: str,
    max_node_cpus: float,
    *,
    cpus: float | None = None,
    gpus: float | None = None,
) -> Resources:
    """Resources for a trial training a network of ``flops`` forward FLOPs per image.

    On the CPU: 1 core below ``SMALL_FLOPS`` (Arena's small networks on small images: one
    thread per trial and as many trials as cores is fastest, bench/README.md), 2 below
    ``MEDIUM_FLOPS``, 4 above (ResNet-18 on 32x32 images), never more than the largest node has.
    On a GPU: one core and a quarter of a GPU below ``GPU_SMALL_FLOPS``, half below ten times
    that, a whole GPU above. ``cpus``/``gpus`` override either."""
    if device == "cuda":
        share = 0.25 if flops < GPU_SMALL_FLOPS else 0.5 if flops < 10 * GPU_SMALL_FLOPS else 1.0
        return Resources(cpu=cpus or 1.0, gpu=gpus or share)
    wanted = 1.0 if flops < SMALL_FLOPS else 2.0 if flops < MEDIUM_FLOPS else 4.0
    return Resources(cpu=cpus or max(1.0, min(wanted, max_node_cpus)), gpu=0.0)


@functools.lru_cache(maxsize=16)
def forward_flops(model: str, image_shape: tuple[int, int, int], num_classes: int) -> float:
    """FLOPs of one image through the network, counted by torch's flop counter (a few ms)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    net = build_model(model, image_shape, num_classes).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, *image_shape))
    return float(counter.get_total_flops())


def quiet_ray_env() -> None:
    """Environment that keeps Ray and Tune from printing their own progress and banners."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), or start a local instance, once
    per process, with Ray's own logging quiet. A cluster that cannot be reached raises
    :class:`RayUnavailable` in one line."""
    quiet_ray_env()
    import ray

    # local instances keep Ray's token authentication on; only its notice is silenced
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )
    target = address or os.environ.get("RAY_ADDRESS") or None
    if target:
        probe_address(target)
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.WARNING,
            "log_to_driver": False,  # trial errors come back through Tune; the rest is noise
        }
        try:
            if target:
                # the --plugin files travel to nodes that do not share this machine's files
                ray.init(address=target, runtime_env=job_runtime_env() or None, **kwargs)
            else:  # "local": a private instance, never one that `ray start` left running
                cpus = num_cpus or os.cpu_count() or 1
                ray.init(
                    address="local",
                    num_cpus=num_cpus,
                    _system_config={"num_workers_soft_limit": WORKERS_PER_CPU * cpus},
                    **kwargs,
                )
                session = _session_dir()
                for listener in list(_LOCAL_LISTENERS):
                    listener(session)
        except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            where = f"the Ray cluster at {target!r}" if target else "a local Ray instance"
            raise RayUnavailable(
                f"cannot start or join {where} ({reason}); start one with `ray start --head`, "
                "or check --address and RAY_ADDRESS"
            ) from None
    logging.getLogger("ray").setLevel(logging.WARNING)
    # Tune's own notices (its Ctrl-C and restore hints, metrics it could not fetch) do not
    # apply to Arena, which resumes from its Optuna storage and reports failed trials itself;
    # the traceback of each failed attempt is shown with -v
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    # (and its experiment state, which Arena never restores from: a Ctrl-C that lands while
    # Tune copies it logs a copy error with a traceback)
    verbose = logging.getLogger().getEffectiveLevel() <= logging.INFO
    for name in ("ray.tune.execution.tune_controller", "ray.tune.execution.experiment_state"):
        logging.getLogger(name).setLevel(logging.ERROR if verbose else logging.CRITICAL)
    return ray


_LOCAL_LISTENERS: list[Callable[[str], None]] = []


@contextlib.contextmanager
def on_local_ray(listener: Callable[[str], None]) -> Iterator[None]:
    """Within the body, tell ``listener`` the session folder of a local Ray instance that
    :func:`ensure_ray` starts (a duel's lease records it: :func:`reap_session`)."""
    _LOCAL_LISTENERS.append(listener)
    try:
        yield
    finally:
        _LOCAL_LISTENERS.remove(listener)


def _session_dir() -> str:
    """The session folder of the Ray instance this process started (Ray keeps it only in its
    private node object; empty if that changes)."""
    try:
        import ray._private.worker as worker

        node: Any = worker._global_node
        return str(node.get_session_dir_path())
    except Exception:  # noqa: BLE001 - a private API: without it nothing is recorded
        return ""


def reap_session(session_dir: str, driver_pid: int) -> int:
    """Kill the processes a killed driver's local Ray instance left running, and return how
    many. After a SIGKILL, Ray's agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``)
    outlive their raylet; they are known by the files they hold open in the session folder.
    Only a session that driver started is touched: Ray names it ``session_..._<driver pid>``,
    and the driver must be gone (Linux only: it reads ``/proc``)."""
    folder = os.path.realpath(session_dir)
    if not session_dir or not folder.endswith(f"_{driver_pid}") or pid_alive(driver_pid):
        return 0
    killed = 0
    for pid in processes_under(folder):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


def probe_address(address: str, timeout: float = 5.0) -> None:
    """Fail at once, in one line, when nothing listens at a ``host:port`` cluster address (Ray
    itself retries for minutes); ``auto`` and addresses without a port are left to Ray."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    host = host.strip("[]")
    if host in ("127.0.0.1", "localhost", "::1"):  # Ray dials this node's own address instead
        import ray.util

        host = ray.util.get_node_ip_address()
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RayUnavailable(
            f"nothing answers at the Ray cluster address {address!r} "
            f"({exc.strerror or type(exc).__name__}); start one with `ray start --head`, or "
            "check --address and RAY_ADDRESS"
        ) from None


def cluster_info() -> ClusterInfo:
    """The alive nodes of the connected Ray instance and their CPUs and GPUs."""
    import ray

    alive = [n for n in ray.nodes() if n.get("Alive")]
    return ClusterInfo(
        nodes=tuple(str(n["NodeID"]) for n in alive),
        cpus=tuple(float(n.get("Resources", {}).get("CPU", 0)) for n in alive),
        node_gpus=tuple(float(n.get("Resources", {}).get("GPU", 0)) for n in alive),
    )


def resolve_compute(compute: Compute) -> str:
    """The device the duel runs on (``cpu`` or ``cuda``), checked before any work: on a
    cluster, by its GPU resources (joining it now); here, by this process's torch."""
    if compute.target:
        ensure_ray(compute.target)
        return resolve_device(compute.device, cluster_gpus=cluster_info().gpus)
    return resolve_device(compute.device)


def plan_resources(compute: Compute, setting: Setting) -> Resources:
    """What each trial and cell task of a duel asks for (Ray running), checked against the
    largest node so that no trial waits forever for a node that does not exist. How many run
    at once: ``cluster_info().slots(resources)``."""
    ensure_ray(compute.target)
    info = cluster_info()
    data = setting.splits()
    flops = forward_flops(setting.model, tuple(data.image_shape), data.num_classes)
    res = trial_resources(
        flops,
        setting.device,
        info.max_node_cpus,
        cpus=compute.cpus_per_trial,
        gpus=compute.gpus_per_trial,
    )
    if res.cpu > info.max_node_cpus:
        raise RayUnavailable(
            f"--cpus-per-trial {res.cpu:g}: no node of {compute.where()} has that many CPUs "
            f"(the largest has {info.max_node_cpus:g})"
        )
    if res.gpu > info.max_node_gpus:
        raise RayUnavailable(
            f"a trial needs {res.gpu:g} GPU but no node of {compute.where()} has that many "
            f"(the largest has {info.max_node_gpus:g}); use --device cpu or --gpus-per-trial"
        )
    log.info("each trial and cell task asks for %s (%.3g forward FLOPs per image)", res, flops)
    return res


def _node_sees(path: str, cache_url: str) -> bool:
    cache = ArtifactCache(cache_url)
    return bool(cache.fs.exists(path))


def on_every_node(nodes: Sequence[str], fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """``fn(*args)`` as a zero-CPU Ray task pinned to each of ``nodes``: its result by node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0)(fn)
    refs = {
        node: task.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
        ).remote(*args)
        for node in nodes
    }
    return {node: ray.get(ref) for node, ref in refs.items()}


def check_shared_cache(cache_url: str) -> None:
    """Fail unless every node of the connected cluster sees the artifact cache: the driver
    writes a probe file and a zero-CPU task on each node looks for it."""
    info = cluster_info()
    if len(info.nodes) < 2:
        return
    cache = ArtifactCache(cache_url)
    probe = f"{cache.root}/probe/{uuid.uuid4().hex}"
    cache.fs.makedirs(f"{cache.root}/probe", exist_ok=True)
    cache.fs.pipe_file(probe, b"arena")
    try:
        seen = on_every_node(info.nodes, _node_sees, probe, cache_url)
        blind = [node for node, sees in seen.items() if not sees]
    finally:
        cache.fs.rm(probe)
    if blind:
        raise RayUnavailable(
            f"the artifact cache {cache_url!r} is not shared with {len(blind)} of "
            f"{len(info.nodes)} nodes (first: {blind[0][:12]}); put --cache on a file system "
            "every node mounts at the same path, or use an fsspec URL such as s3://bucket/arena"
        )


def check_plugins() -> None:
    """Fail unless every node of the connected cluster has the installed plugins this driver
    loaded (the ``--plugin`` ones travel with the tasks): a zero-CPU task on each node lists
    the distributions it lacks."""
    wanted = installed_distributions()
    info = cluster_info()
    if not wanted or len(info.nodes) < 2:
        return
    for node, lacking in on_every_node(info.nodes, missing, wanted).items():
        if lacking:
            raise RayUnavailable(
                f"the plugin {lacking[0]} is not installed on node {node[:12]}; install it on "
                "every node (pip install it there, or put it in the cluster's image), or pass "
                "its module or file with --plugin, which travels with the tasks"
            )


def pin_threads() -> int:
    """Inside a Ray task or trial: as many torch threads as the CPUs Ray granted it (one by
    default). Two OpenMP threads that share a core with another trial run many times slower
    than one (bench/README.md, "Under load")."""
    import ray
    import torch

    cpus = 1
    if ray.is_initialized():
        granted = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        cpus = max(1, round(granted / TRIAL_TASK_SHARE if granted % 1 else granted))
    torch.set_num_threads(cpus)
    return cpus


def prepare_worker(setting: Setting) -> str:
    """Inside a Ray task or trial: the duel's device and the granted threads; returns the id of
    the node it runs on."""
    import ray

    keep_freed_memory()
    load_plugins()  # the installed ones and those ARENA_PLUGINS names (the task's runtime env)
    set_device(setting.device)
    pin_threads()
    return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else "local"


def _cell_task(
    attacker: AttackerStrategy,
    defenders: Sequence[DefenderStrategy],
    seed: int,
    setting: Setting,
) -> tuple[str, list[CellResult]]:
    node = prepare_worker(setting)
    return node, [cells[0] for cells in play_row(attacker, defenders, [seed], setting)]


def play_rows(
    rows: Sequence[tuple[AttackerStrategy, Sequence[DefenderStrategy]]],
    seeds: Sequence[int],
    setting: Setting,
    tally: Tally,
    *,
    compute: Compute | None = None,
) -> list[list[list[CellResult]]]:
    """``cells[r][j][s]`` for each ``(attacker, defenders)`` row, seed by seed. Cached cells are
    read here; each (row, seed) with a missing cell becomes one Ray task, spread over the
    nodes, so the row's BadNet for that seed is trained once and the seeds run in parallel."""
    compute = compute or Compute()
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
        ray = ensure_ray(compute.target)
        res = plan_resources(compute, setting)
        task = ray.remote(
            **res.for_task(), scheduling_strategy="SPREAD", max_retries=compute.max_failures
        )(_cell_task)
        refs = [task.remote(rows[r][0], rows[r][1], seeds[k], setting) for r, k in pending]
        for (r, k), (node, cells) in zip(pending, ray.get(refs), strict=True):
            tally.nodes[node] = tally.nodes.get(node, 0) + 1
            for j, cell in enumerate(cells):
                out[r][j][k] = cell
    for row in out:
        for cells in row:
            for cell in cells:
                assert cell is not None
                tally.add(cell)
    return out  # type: ignore[return-value]
