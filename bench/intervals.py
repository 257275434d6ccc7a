"""Coverage of the value's interval against simulated noisy games whose value is known.

    python bench/intervals.py                 # 400 games per row, about 30 s
    python bench/intervals.py --games 1000 --json

Each game: a 4 x 4 payoff matrix with entries uniform in [0.1, 0.9], measured on seeds with
noise shaped like a duel's (a draw per attacker and seed shared by the row, the BadNet of that
seed, at half the spread; a draw per cell). For each rule the table gives how often its 95%
interval holds the game's true value, the mean number of seeds it measured and its mean
half-width. Rules: the game re-solved on a fixed number of fresh seeds (``game_interval``;
the quick budget uses 2, the default 10, the thorough 16); the two-stage rule behind
``--ci-half-width`` (``measure_until``: 3 seeds, then the count their spread asks for, once);
the rule that re-checks until the target is met; and, for comparison, the duel's own mixes
held fixed and measured on 10 fresh seeds (the method before ``docs/values.md``'s).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arena.game.noise import (  # noqa: E402
    Estimate,
    game_interval,
    measure_until,
    seeds_for,
    t_interval,
)
from arena.game.solver import solve_zero_sum  # noqa: E402

SIZE = 4
TARGET = 0.05


def game(seed: int, sd: float) -> tuple[float, Callable[[int], np.ndarray]]:
    rng = np.random.default_rng(seed)
    m = rng.uniform(0.1, 0.9, size=(SIZE, SIZE))

    def measure(n: int) -> np.ndarray:
        return m + rng.normal(0, sd / 2, size=(n, SIZE, 1)) + rng.normal(0, sd, (n, SIZE, SIZE))

    return solve_zero_sum(m).value, measure


def fixed(n: int) -> Callable[[Callable[[int], np.ndarray]], Estimate]:
    return lambda measure: game_interval(measure(n)).value


def two_stage(measure: Callable[[int], np.ndarray]) -> Estimate:
    return measure_until(measure, first=3, half_width=TARGET, most=16).value


def recheck(measure: Callable[[int], np.ndarray]) -> Estimate:
    per_seed = measure(3)
    while True:
        est = game_interval(per_seed).value
        if len(per_seed) >= 16 or (est.half_width or 1) <= TARGET:
            return est
        more = min(16, seeds_for(est, TARGET)) - len(per_seed)
        per_seed = np.concatenate([per_seed, measure(more)])


def fixed_mix(measure: Callable[[int], np.ndarray]) -> Estimate:
    eq = solve_zero_sum(measure(1)[0])  # the duel's mixes, chosen on its own seed
    fresh = measure(10)
    return t_interval([float(eq.attacker_mix @ f @ eq.defender_mix) for f in fresh], clip=None)


RULES = {
    "re-solved, 2 seeds (quick)": fixed(2),
    "re-solved, 10 seeds (default)": fixed(10),
    "re-solved, 16 seeds (thorough)": fixed(16),
    "two-stage, target 0.05": two_stage,
    "re-check until 0.05": recheck,
    "duel's mixes held fixed, 10 seeds": fixed_mix,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=400)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.05, 0.1, 0.15])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for sd in args.noise:
        for name, rule in RULES.items():
            hits, seeds, halves = 0, [], []
            for s in range(args.games):
                value, measure = game(s, sd)
                drawn: list[int] = []

                def counted(n: int, measure=measure, drawn=drawn) -> np.ndarray:  # type: ignore[no-untyped-def]
                    drawn.append(n)
                    return measure(n)

                est = rule(counted)
                hits += est.low is not None and est.low <= value <= (est.high or 0)
                seeds.append(sum(drawn) - (1 if rule is fixed_mix else 0))
                halves.append(est.half_width or float("nan"))
            rows.append(
                {
                    "noise": sd,
                    "rule": name,
                    "coverage": hits / args.games,
                    "seeds": float(np.mean(seeds)),
                    "half_width": float(np.nanmean(halves)),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{args.games} games per row; nominal coverage 0.95\n")
    print("| cell noise (sd) | rule | coverage | fresh seeds | half-width |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['noise']} | {r['rule']} | {r['coverage']:.3f} | {r['seeds']:.1f} | "
            f"{r['half_width']:.3f} |"
        )


if __name__ == "__main__":
    main()
