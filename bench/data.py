"""How long the built-in datasets take to load (the target for ``digits``: 0.5 s).

Loads each dataset once (the first load in a process, which reads scikit-learn's files), then
``--repeats`` times more in the same process, and reports the first, the median and the slowest
load; ``--image-size`` and
``--limit`` are passed through.

    python bench/data.py [--datasets digits shapes] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from arena.data import load_dataset

TARGET_SECONDS = {"digits": 0.5}


def measure(
    name: str, repeats: int, image_size: int | None, limit: int | None
) -> dict[str, Any]:
    start = time.perf_counter()
    load_dataset(name, image_size=image_size, limit=limit)  # imports and file caches
    first = time.perf_counter() - start
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        load_dataset(name, image_size=image_size, limit=limit)
        seconds.append(time.perf_counter() - start)
    target = TARGET_SECONDS.get(name)
    return {
        "dataset": name,
        "first_s": first,
        "median_s": statistics.median(seconds),
        "max_s": max(seconds),
        "target_s": target,
        "within_target": None if target is None else statistics.median(seconds) <= target,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "shapes"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(n, args.repeats, args.image_size, args.limit) for n in args.datasets]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        target = "" if r["target_s"] is None else f" (target {r['target_s']} s)"
        print(
            f"{r['dataset']}: first {r['first_s']:.3f} s, then median {r['median_s']:.3f} s, "
            f"slowest {r['max_s']:.3f} s{target}"
        )


if __name__ == "__main__":
    main()
