"""Which pruning rules are safe: replayed on completed attacker studies.

Every attacker trial records the learning curve of the BadNet it trained (clean accuracy after
each epoch, the study's intermediate values) and the gate's threshold. For each candidate rule
(:class:`arena.cell.pruning.GateRule`: stop after ``after`` of the epochs when the accuracy lies
``margin`` below the threshold) this replays every curve and counts the trials the rule would
have stopped, how many of those went on to beat the study's incumbent (the best value of the
trials before them, or 0, what a BadNet the gate rejects scores) or to pass the gate, and the
share of the training epochs it would have saved. A rule is safe when at most 5% of the trials
it stops beat the incumbent.

    python bench/pruning.py --sample 60                      # a random search first, then replay
    python bench/pruning.py --storage sqlite:///runs/arena.db  # replay the studies stored there
    python bench/pruning.py --sample 60 --json

``--sample N`` runs an attacker study of N random trials (uniform sampler, no warm start, no
pruning) against ``--defender`` on the built-in data, in a temporary folder, with the same
Ray Tune oracle the duel uses; ``--storage`` reads every attacker study of a storage instead
(trials that ran without the curve are skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from arena.cell.pruning import GateRule  # noqa: E402

AFTERS = (0.2, 0.3, 0.5)
MARGINS = (0.0, 0.05, 0.1, 0.2, 0.3)
SAFE = 0.05


def sample(n: int, attackers: str, defender: str, seed: int, folder: str) -> str:
    """Run an attacker study of ``n`` random trials; return its storage URL."""
    from arena.cell.runner import ensure_ray
    from arena.cell.setting import Setting
    from strategies.players import DefenderStrategy, parse_attackers
    from studies.oracle import TuneOracle
    from studies.spaces import AttackerSpace

    ensure_ray(num_cpus=os.cpu_count())
    setting = Setting(cache_url=f"{folder}/cache")
    data = setting.splits()
    url = f"sqlite:///{folder}/pruning.db"
    oracle = TuneOracle(
        space=AttackerSpace(parse_attackers(attackers), num_classes=data.num_classes),
        duel="pruning",
        setting=setting,
        seeds=(0,),
        trials=n,
        storage_url=url,
        tune_dir=f"{folder}/tune",
        seed=seed,
        sampler="random",
        warm_start=False,
        on_trial=lambda e: print(
            f"  {e.number:>3} {e.strategy:<24} {e.objective:.3f} {e.wall_seconds:.1f}s",
            file=sys.stderr,
        ),
    )
    oracle(0, [], [DefenderStrategy.of(defender)], np.ones(1))
    return url


def curves(url: str) -> list[list[dict[str, Any]]]:
    """Per attacker study, its complete trials in order: value, threshold, curve."""
    storage = optuna.storages.RDBStorage(url)
    out = []
    for summary in optuna.get_all_study_summaries(storage):
        if summary.user_attrs.get("side") != "attacker":
            continue
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            curve = t.user_attrs.get("curve") or []
            threshold = t.user_attrs.get("gate_threshold")
            if curve and threshold is not None:
                trials.append(
                    {
                        "number": t.number,
                        "value": float(t.value or 0.0),
                        "threshold": float(threshold),
                        "curve": curve,
                        "passed": float(curve[-1][1]) >= float(threshold),
                    }
                )
        out.append(sorted(trials, key=lambda t: t["number"]))
    return out


def replay(studies: list[list[dict[str, Any]]], rule: GateRule) -> dict[str, Any]:
    """What ``rule`` would have done to every trial of ``studies``."""
    stopped = beat = passed = epochs = saved = trials = 0
    for trials_ in studies:
        incumbent = 0.0  # what a trial that fails the gate scores: beating it means more
        for t in trials_:
            trials += 1
            n = int(t["curve"][-1][0])
            epochs += n
            stop = next(
                (
                    int(e)
                    for e, ca, _ in t["curve"]
                    if rule.stops(int(e), n, float(ca), t["threshold"])
                ),
                None,
            )
            if stop is not None:
                stopped += 1
                saved += n - stop
                beat += t["value"] > incumbent
                passed += t["passed"]
            incumbent = max(incumbent, t["value"])
    return {
        **asdict(rule),
        "trials": trials,
        "stopped": stopped,
        "stopped_beat_incumbent": beat,
        "unsafe_share": beat / stopped if stopped else 0.0,
        "stopped_passed_gate": passed,
        "epochs_saved_share": saved / epochs if epochs else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", help="replay the attacker studies of this Optuna storage")
    parser.add_argument("--sample", type=int, help="run a random attacker study of N trials first")
    parser.add_argument("--attackers", default="badnets,tca,blend-noise,sig,wanet")
    parser.add_argument("--defender", default="none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.storage and not args.sample:
        parser.error("give --storage URL or --sample N")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        url = args.storage or sample(args.sample, args.attackers, args.defender, args.seed, folder)
        studies = curves(url)
    rows = [replay(studies, GateRule(a, m)) for a in AFTERS for m in MARGINS]
    safe = [r for r in rows if r["unsafe_share"] <= SAFE and r["stopped"]]
    best = max(safe, key=lambda r: r["epochs_saved_share"], default=None)
    report = {
        "studies": len(studies),
        "trials": sum(map(len, studies)),
        "passed_gate": sum(t["passed"] for s in studies for t in s),
        "rules": rows,
        "best_safe": best,
        "seconds": round(time.perf_counter() - start, 1),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{report['trials']} trials in {report['studies']} studies, "
        f"{report['passed_gate']} passed the gate ({report['seconds']} s)"
    )
    print(f"{'after':>5} {'margin':>6} {'stopped':>7} {'beat inc.':>9} {'unsafe':>6} "
          f"{'passed':>6} {'epochs saved':>12}")  # fmt: skip
    for r in rows:
        print(
            f"{r['after']:>5} {r['margin']:>6} {r['stopped']:>7} {r['stopped_beat_incumbent']:>9} "
            f"{r['unsafe_share']:>6.1%} {r['stopped_passed_gate']:>6} "
            f"{r['epochs_saved_share']:>12.1%}"
        )
    if best:
        print(f"safest saving rule: after {best['after']}, margin {best['margin']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
