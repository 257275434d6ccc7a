"""What the oracle tells a watcher about each finished trial."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrialEvent:
    """One finished trial, as the progress display and the benchmarks see it."""

    side: str
    round: int
    study: str
    number: int
    objective: float
    strategy: str
    wall_seconds: float
    inner_seconds: float
    trained: int
    cache_hits: int
    node: str = ""
    retries: int = 0
    pruned: str = ""  # why the pruning rule stopped the trial; empty if it ran to the end
