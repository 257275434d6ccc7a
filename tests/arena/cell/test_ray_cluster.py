"""A duel on a multi-node Ray cluster (``ray.cluster_utils.Cluster``) joined with ``--address``.

The cluster lives in a subprocess (see ``tests/arena/conftest.py``): a head node with no CPUs
(like a real cluster's, it runs nothing) and two 1-CPU worker nodes, each with a custom
resource, so the two trials a study runs at once must land on different nodes. The duel is the
session's reference duel, from a fresh cache, so every model is trained on the workers.

Each trial is held a few seconds (a worker setup hook): a study's first trial replays a cached
cell in a fraction of a second, and Tune hands a finished trial's actor to the next trial when
that trial's own actor is still starting, so without the hold two trials of this tiny duel may
never overlap. Real trials train for minutes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from studies.storage import open_storage

CLUSTER = """
import json, sys
from pathlib import Path

from arena.cell.runner import RayUnavailable, check_shared_cache, quiet_ray_env

quiet_ray_env()
import ray
from ray.cluster_utils import Cluster

from arena.cli.app import main

cluster = Cluster(
    initialize_head=True,
    head_node_args={"num_cpus": 0, "resources": {"arena_head": 1}, "include_dashboard": False},
)
for i in (0, 1):
    cluster.add_node(num_cpus=1, resources={f"arena_worker_{i}": 1})
cluster.wait_for_nodes()


def hold_each_trial() -> None:
    import time

    import studies.scoring as oracle

    score = oracle.score_trial

    def held(params, job):
        time.sleep(4)
        return score(params, job)

    oracle.score_trial = held


ray.init(
    address=cluster.address,
    include_dashboard=False,
    log_to_driver=False,
    runtime_env={"worker_process_setup_hook": hold_each_trial},
)
try:
    rc = main([*sys.argv[2:], "--address", cluster.address])
    nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
    try:  # a cache only this process sees (fsspec's memory file system) is refused
        check_shared_cache("memory://arena-probe")
        refused = ""
    except RayUnavailable as exc:
        refused = str(exc)
    Path(sys.argv[1]).write_text(json.dumps({"nodes": nodes, "refused": refused}))
finally:
    ray.shutdown()
    cluster.shutdown()
sys.exit(rc)
"""


def test_a_duel_spreads_over_cluster_nodes_and_agrees_with_one_node(
    reference_duel: Any, ray_env: dict[str, str], ops: Any, tmp_path: Path
) -> None:
    done = ops.run_python(
        CLUSTER, [str(tmp_path / "nodes.json"), *reference_duel.argv(tmp_path)], ray_env, tmp_path
    )
    result = ops.duel_json(done)
    seen = json.loads((tmp_path / "nodes.json").read_text())
    nodes = seen["nodes"]
    workers = {n for n, res in nodes.items() if any(k.startswith("arena_worker_") for k in res)}
    head = {n for n, res in nodes.items() if "arena_head" in res}
    assert len(workers) == 2 and len(head) == 1 and len(nodes) == 3

    # every trial and cell task ran on a worker, and the trials on both of them
    trial_nodes = [t["node"] for t in result["trials"]]
    assert set(trial_nodes) == workers, trial_nodes
    assert set(result["nodes"]) <= workers
    assert sum(n["cell_tasks"] for n in result["nodes"].values()) >= 3
    assert result["duel"]["ray"] not in ("local", None) and result["duel"]["device"] == "cpu"
    assert result["trainings"] >= 4  # from a fresh cache: clean model and BadNet, 2+ seeds

    # the storage says the same: one node per trial, every planned trial complete
    storage = open_storage(f"sqlite:///{tmp_path / 'arena.db'}", create=False)
    stored = []
    for study in storage.get_all_studies():
        trials = storage.get_all_trials(study._study_id)
        assert len(trials) == study.user_attrs["planned_trials"]
        assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        stored += [t.user_attrs["node"] for t in trials]
    assert sorted(stored) == sorted(trial_nodes)

    ops.matches_reference(result, reference_duel.result)
    assert "'memory://arena-probe' is not shared with 3 of 3 nodes" in seen["refused"]
