"""What a duel leaves behind for people: ``report.md`` and two plots.

``payoff_matrix.png`` shows every cell the duel computed (attackers down, defenders across,
each strategy's weight in the equilibrium beside its label); ``bounds.png`` shows the value
and its bounds per round, with the gap (the exploitability) the loop drove down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_matrix(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pm = result["payoff_matrix"]
    m = np.asarray(pm["values"], dtype=float)
    weights_a = {e["strategy"]: e["weight"] for e in result["attacker_mix"]}
    weights_d = {e["strategy"]: e["weight"] for e in result["defender_mix"]}
    rows = [f"{a} ({weights_a.get(a, 0):.2f})" for a in pm["attackers"]]
    cols = [f"{d} ({weights_d.get(d, 0):.2f})" for d in pm["defenders"]]
    size = (max(6.0, 3.0 + 1.3 * len(cols)), max(3.6, 2.2 + 0.55 * len(rows)))
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    image = ax.imshow(m, vmin=0.0, vmax=1.0, cmap="magma")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for (i, j), v in np.ndenumerate(m):
        ax.text(
            j,
            i,
            f"{v:.2f}",
            ha="center",
            va="center",
            fontsize=8,
            color="black" if v > 0.5 else "white",
        )
    ax.set_xlabel("defender strategy (equilibrium weight)")
    ax.set_ylabel("attacker strategy (weight)")
    ax.set_title(f"post-defense attack success; game value {result['value']:.3f}", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_bounds(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = result["rounds"]
    r = [x["round"] for x in rounds]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 5), sharex=True)
    top.fill_between(
        r,
        [x["lower_bound"] for x in rounds],
        [x["upper_bound"] for x in rounds],
        alpha=0.25,
        label="[lower, upper] bound",
    )
    top.plot(r, [x["value"] for x in rounds], "o-", label="restricted game value")
    top.set_ylabel("payoff")
    top.set_ylim(-0.02, 1.02)
    top.legend(fontsize=8)
    bottom.plot(r, [x["gap"] for x in rounds], "s-", color="tab:red")
    bottom.axhline(result["duel"]["budget"]["epsilon"], ls="--", color="gray", label="epsilon")
    bottom.set_ylabel("gap (exploitability)")
    bottom.set_xlabel("round")
    bottom.set_xticks(r)
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fields(config: dict[str, Any]) -> str:
    """``k=v, ...`` with floats to 4 significant digits (``duel.json`` keeps them exact)."""
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items()
    )


def _params(entry: dict[str, Any]) -> str:
    if "stages" in entry:
        return "; ".join(f"{s['name']}: {_fields(s['config'])}" for s in entry["stages"])
    return f"{_fields(entry['attack'])}; train: {_fields(entry['train'])}"


def _budget(b: dict[str, Any]) -> str:
    return (
        f"up to {b['rounds']} rounds of {b['attacker_trials']} attacker and "
        f"{b['defender_trials']} defender trials, {b['seeds']} seed(s) per cell, "
        f"epsilon {b['epsilon']}"
    )


def _fmt(v: Any) -> str:
    return "n/a" if v is None or v != v else f"{v:.3f}"


def markdown(result: dict[str, Any]) -> str:
    d, ci = result["duel"], result["value_ci"]
    lines = [
        f"# Duel {d['name']}",
        "",
        f"Attacker `{d['attacker']}` against defender `{d['defender']}` on `{d['data']['name']}` "
        f"with `{d['model']}`; {_budget(d['budget'])}; seed {d['seed']}.",
        f"Studies: `{d['storage']}`; cache: `{d['cache']}`.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| game value (post-defense attack success at equilibrium) | {_fmt(result['value'])} |",
        f"| value on {len(ci['seeds'])} fresh seed(s), 95% interval | {_fmt(ci['mean'])} "
        f"[{_fmt(ci['low'])}, {_fmt(ci['high'])}] |",
        f"| lower / upper bound | {_fmt(result['lower_bound'])} / {_fmt(result['upper_bound'])} |",
        f"| exploitability (gap) | {_fmt(result['exploitability'])} ({result['stopped']}) |",
        f"| best single defense, worst case | {_fmt(result['best_pure_defense']['worst_case'])} "
        f"(`{result['best_pure_defense']['strategy']}`) |",
        f"| models trained / cells from cache | {result['trainings']} / {result['cache_hits']} |",
        f"| seconds | {result['seconds']['total']} |",
        "",
        "The bounds come from the oracles' searches: the upper bound is the best attack found "
        "against the defender's mix, the lower bound the best defense found against the "
        "attacker's mix. They are only as good as those searches: a longer search can find a "
        "stronger response and so only widen them.",
        "",
        "## Rounds",
        "",
        "| round | value | lower | upper | gap | attacker study | defender study |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rounds"]:
        lines.append(
            f"| {r['round']} | {_fmt(r['value'])} | {_fmt(r['lower_bound'])} | "
            f"{_fmt(r['upper_bound'])} | {_fmt(r['gap'])} | `{r['attacker_study']}` | "
            f"`{r['defender_study']}` |"
        )
    for side in ("attacker", "defender"):
        lines += [
            "",
            f"## {side.capitalize()} mix",
            "",
            "| weight | strategy | parameters |",
            "|---|---|---|",
        ]
        for e in result[f"{side}_mix"]:
            lines.append(f"| {e['weight']:.3f} | `{e['strategy']}` | {_params(e)} |")
    lines += ["", "![payoff matrix](payoff_matrix.png)", "", "![bounds](bounds.png)", ""]
    return "\n".join(lines)


def write_report(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """``report.md``, ``payoff_matrix.png`` and ``bounds.png`` in ``out_dir``."""
    out = Path(out_dir)
    paths = [out / "report.md", out / "payoff_matrix.png", out / "bounds.png"]
    paths[0].write_text(markdown(result))
    plot_matrix(result, paths[1])
    plot_bounds(result, paths[2])
    return paths
