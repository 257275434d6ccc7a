"""The leaderboard's files for a person: ``table.csv``, ``table.md`` and ``table.png``."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from arena.duels.table import COLUMNS


def write_table(record: dict[str, Any], out: Path) -> list[Path]:
    """``table.csv``, ``table.md`` and ``table.png`` in ``out`` (``table.json`` is the duel
    layer's)."""
    paths = [out / "table.csv", out / "table.md", out / "table.png"]
    paths[0].write_text(table_csv(record["pairs"]))
    paths[1].write_text(table_markdown(record))
    plot_table(record, paths[2])
    return paths


def table_csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})
    return buf.getvalue()


def _f(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _interval(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f" [{_f(low)}, {_f(high)}]"


def table_markdown(record: dict[str, Any]) -> str:
    """The leaderboard for a person: a grid of static -> adaptive, each defense's worst case,
    and every pair's figures."""
    rows = record["pairs"]
    attackers, defenders = record["attackers"], record["defenders"]
    by = {(r["attacker"], r["defender"]): r for r in rows}
    lines = [
        f"# Leaderboard {record['name']}",
        "",
        f"{len(rows)} of {len(attackers) * len(defenders)} duels on `{record['data']['name']}`"
        f" ({record['model']}); budget: {record['budget']['rounds']} rounds of "
        f"{record['budget']['attacker_trials']}+{record['budget']['defender_trials']} trials; "
        f"this run {record['seconds']:.0f} s (a finished duel replays in seconds; column `s`: "
        "each pair's time in this run).",
        "",
        "Each cell: static payoff (both sides at their default settings) -> adaptive value "
        "(the duel's equilibrium), post-defense attack success, both averaged over the same "
        "fresh seeds; lower is better for the defense. `*` marks a duel whose audit found a "
        "response beyond its bounds.",
        "",
        "| attack | " + " | ".join(defenders) + " |",
        "|---|" + "---|" * len(defenders),
    ]
    for a in attackers:
        cells = []
        for d in defenders:
            r = by.get((a, d))
            if r is None:
                cells.append("")
                continue
            flag = "*" if r["stands"] is False else ""
            cells.append(f"{_f(r['static'])} -> {_f(r['adaptive'])}{flag}")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Each defense's worst case over the attacks",
        "",
        "| defense | static worst | adaptive worst | adaptive gap |",
        "|---|---|---|---|",
    ]
    for s in record["defenses"]:
        lines.append(
            f"| {s['defender']} | {_f(s['static_worst'])} ({s['static_worst_attacker']}) | "
            f"{_f(s['adaptive_worst'])} ({s['adaptive_worst_attacker']}) | "
            f"{s['adaptive_gap']:+.2f} |"
        )
    lines += [
        "",
        "## Every pair",
        "",
        "Static and adaptive on the same fresh seeds; the gap is their paired difference "
        "(negative where the tuned defense gains more than the tuned attack); bounds: the "
        "duel's; audited exploitability: the audited attacker response minus the audited "
        "defender response (`arena audit`).",
        "",
        "| attack | defense | static, 95% | adaptive, 95% | gap, 95% | bounds | "
        "audited exploitability | stands | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        audited = (
            "not audited"
            if r["audited_exploitability"] is None
            else f"{_f(r['audited_exploitability'])}{_interval(r['audit_low'], r['audit_high'])}"
        )
        stands = {None: "", True: "yes", False: "no"}[r["stands"]]
        lines.append(
            f"| {r['attacker']} | {r['defender']} | "
            f"{_f(r['static'])}{_interval(r['static_low'], r['static_high'])} | "
            f"{_f(r['adaptive'])}{_interval(r['adaptive_low'], r['adaptive_high'])} | "
            f"{_f(r['gap'])}{_interval(r['gap_low'], r['gap_high'])} | "
            f"[{_f(r['lower_bound'])}, {_f(r['upper_bound'])}] | {audited} | {stands} | "
            f"{r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot_table(record: dict[str, Any], path: Path) -> None:
    """Two heatmaps side by side, static and adaptive, attacks by defenses, each cell
    annotated; the title and labels inside the image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attackers, defenders = record["attackers"], record["defenders"]
    grids = {k: np.full((len(attackers), len(defenders)), np.nan) for k in ("static", "adaptive")}
    for r in record["pairs"]:
        i, j = attackers.index(r["attacker"]), defenders.index(r["defender"])
        for k, grid in grids.items():
            grid[i, j] = r[k]
    label = max(map(len, attackers), default=4)
    width = 2 * (0.9 * len(defenders) + 0.5) + 0.09 * label + 1.5
    height = 0.5 * len(attackers) + 0.09 * max(map(len, defenders), default=4) + 1.5
    fig, axes = plt.subplots(1, 2, figsize=(width, height), layout="constrained", sharey=True)
    cmap = plt.get_cmap("Reds").with_extremes(bad="#d9d9d9")  # a pair not played yet: grey
    for ax, (kind, grid) in zip(axes, grids.items(), strict=True):
        image = ax.imshow(np.ma.masked_invalid(grid), vmin=0, vmax=1, cmap=cmap, aspect="auto")
        ax.set_xticks(range(len(defenders)), defenders, rotation=40, ha="right")
        ax.set_yticks(range(len(attackers)), attackers)
        ax.set_title(kind)
        for i in range(len(attackers)):
            for j in range(len(defenders)):
                if not np.isnan(grid[i, j]):
                    ax.text(
                        j, i, f"{grid[i, j]:.2f}", ha="center", va="center",
                        color="white" if grid[i, j] > 0.6 else "black", fontsize=8,
                    )  # fmt: skip
    fig.colorbar(image, ax=axes, shrink=0.8, label="post-defense attack success")
    fig.suptitle(f"{record['name']}: static vs adaptive")
    fig.savefig(path, dpi=120)
    plt.close(fig)
