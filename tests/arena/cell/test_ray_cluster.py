"""A duel on a multi-node Ray cluster (``ray.cluster_utils.Cluster``) joined with ``--address``.

The cluster lives in a subprocess (see ``tests/arena/conftest.py``): a head node with no CPUs
(like a real cluster's, it runs nothing) and two 1-CPU worker nodes, each with a custom
resource, so the two trials a study runs at once must land on different nodes. The duel is the
session's reference duel, from a fresh cache, so every model is trained on the workers.

Each trial is held a few seconds (a worker setup hook): a study's first trial replays a cached
cell in a fraction of a second, and Tune hands a finished trial's actor to the next trial when
that trial's own actor is still starting, so without the hold two trials of this tiny duel may
never overlap. Real trials train for minutes.

On the same cluster, a ``--plugin`` file's config reaches a task on each worker node, whose
worker imports the plugin to read it; and an installed plugin that a node lacks is named
before any work.
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

from arena.cell.setting import Setting
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


PLUGIN = '''
from dataclasses import dataclass

from arena.core.config import param
from arena.plugins import register_defense
from strategies.defenses.base import Defense, DefenseConfig, Deployment


@dataclass(frozen=True)
class NoddingConfig(DefenseConfig):
    nods: int = param(1, low=1, high=3, help="nods")


@register_defense
class Nodding(Defense[NoddingConfig]):
    name = "nodding"
    version = 1
    summary = "serves the model as it is"
    kind = "none"
    access = "black-box"
    config_cls = NoddingConfig

    def fit_copy(self, model, clean):
        return Deployment(model)
'''


def played_on_every_node(nodes):
    # a --plugin file's defense config, sent to a task on each node: what each worker read
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    import arena.plugins as plugins
    from arena.cell import runner

    # not beside the script, whose folder Ray puts on its workers' path
    Path("plugins").mkdir()
    Path("plugins/nodding_plugin.py").write_text(PLUGIN)
    [loaded] = plugins.load_plugins([str(Path("plugins/nodding_plugin.py").resolve())])
    assert loaded.error is None, loaded.error

    def read(config):
        from arena.cell.runner import prepare_worker
        from arena.cell.setting import Setting
        from strategies import DEFENSES

        prepare_worker(Setting())
        return type(config).__module__, config.nods, DEFENSES["nodding"].__name__

    config = plugins.tables()["defense"]["nodding"].config_cls(nods=2)
    options = runner.plan_resources(runner.Compute(), Setting()).for_task()
    seen = {
        node: ray.get(
            ray.remote(read)
            .options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False), **options
            )
            .remote(config)
        )
        for node in nodes
    }
    # an installed plugin the driver loaded but a node lacks is named before any work
    runner.installed_distributions = lambda: ["arena-ghost 9.9"]
    try:
        runner.check_plugins()
        missing = ""
    except RayUnavailable as exc:
        missing = str(exc)
    return {"seen": seen, "missing": missing}


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
    plugin = played_on_every_node([n for n, res in nodes.items() if res.get("CPU")])
    Path(sys.argv[1]).write_text(
        json.dumps({"nodes": nodes, "refused": refused, "plugin": plugin})
    )
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

    # a --plugin file reaches the workers of both worker nodes; a missing installed one is named
    plugin = seen["plugin"]
    assert set(plugin["seen"]) == workers
    assert all(v == ["nodding_plugin", 2, "Nodding"] for v in plugin["seen"].values())
    assert plugin["missing"].startswith("the plugin arena-ghost 9.9 is not installed on node ")
