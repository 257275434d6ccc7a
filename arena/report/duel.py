"""What a duel leaves behind for people: ``report.md`` and two plots.

``payoff_matrix.png`` shows every cell the duel computed (attackers down, defenders across,
each strategy's weight in the equilibrium beside its label); ``bounds.png`` shows the value
and its bounds per round, with the gap (the exploitability) the loop drove down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def matrix_figure(result: dict[str, Any]) -> Any:
    """The payoff heatmap as a matplotlib figure: the cells fill the width beside their labels
    (not a square floating in a wide canvas), and the title and labels stay inside the image
    however many strategies and however long their labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pm = result["payoff_matrix"]
    m = np.asarray(pm["values"], dtype=float)
    weights_a = {e["strategy"]: e["weight"] for e in result["attacker_mix"]}
    weights_d = {e["strategy"]: e["weight"] for e in result["defender_mix"]}
    rows = [f"{a} ({weights_a.get(a, 0):.2f})" for a in pm["attackers"]]
    cols = [f"{d} ({weights_d.get(d, 0):.2f})" for d in pm["defenders"]]
    # the row labels take ~0.065 in a character; each cell ~0.8 in wide, ~0.4 in high
    label = 0.065 * max(map(len, rows), default=10)
    size = (max(6.0, 2.2 + label + 0.8 * len(cols)), max(3.6, 2.4 + 0.4 * len(rows)))
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    image = ax.imshow(m, vmin=0.0, vmax=1.0, cmap="magma", aspect="auto")
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
    # the figure's title, not the axes': constrained layout keeps it inside the image
    fig.suptitle(f"post-defense attack success; game value {result['value']:.3f}", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


def plot_matrix(result: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = matrix_figure(result)
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


def estimate(e: dict[str, Any]) -> str:
    """``0.412 [0.301, 0.523] on 3 seeds`` (no interval from one seed)."""
    n = len(e["values"])
    if e["low"] is None:
        return f"{_fmt(e['mean'])} on {n} seed"
    return f"{_fmt(e['mean'])} [{_fmt(e['low'])}, {_fmt(e['high'])}] on {n} seeds"


def stopping(result: dict[str, Any]) -> str:
    """Why the duel stopped, in one sentence (with the noise where it decided)."""
    s = result.get("stopping") or {"reason": result["stopped"]}
    reason = s["reason"]
    if reason == "within noise":
        sd = (
            f" (a cell's payoff varies by {s['noise_sd']:.3f} from seed to seed)"
            if s.get("noise_sd") is not None
            else ""
        )
        return (
            f"stopped within noise: the gap {_fmt(s['gap'])} is under epsilon {s['epsilon']}, "
            f"but the cells' noise{sd} resolves only gaps above {_fmt(s['resolution'])}, so "
            "convergence is not shown; more seeds per cell (--seeds) would resolve it"
        )
    if reason == "converged":
        extra = (
            f", which the cells' noise resolves (it resolves gaps above {_fmt(s['resolution'])})"
            if s.get("resolution") is not None
            else ""
        )
        return f"converged: the gap is under epsilon{extra}"
    if reason == "no new strategy":
        return "stopped: neither oracle found a strategy the game did not have"
    return "stopped: the budget's rounds were spent"


def verdict(audit: dict[str, Any]) -> str:
    """Whether the duel's value stands, in one sentence."""
    if audit["stands"]:
        return (
            "the value stands: neither audited response beats the duel's bounds by more "
            "than its 95% interval"
        )
    beaten = [
        f"the audited {side} beats the duel's {'upper' if side == 'attacker' else 'lower'} bound "
        f"{_fmt(audit[side]['bound'])}"
        for side in ("attacker", "defender")
        if audit[side]["beats_bound"]
    ]
    return "the value does not stand: " + " and ".join(beaten) + " beyond its 95% interval"


def audit_markdown(audit: dict[str, Any]) -> list[str]:
    """The report's audit section."""
    lines = [
        "",
        "## Audit",
        "",
        f"An independent search ({audit['sampler']} sampler, {audit['trials']['attacker']} "
        f"attacker and {audit['trials']['defender']} defender trials, no warm start, seeds "
        f"{', '.join(map(str, audit['search_seeds']))}) for each side's best response to the "
        "other's final mix; each best find re-measured on confirmation seeds "
        f"{', '.join(map(str, audit['confirmation_seeds']))}, which neither the duel nor the "
        "search played, beside the duel's own best response (its last round's) and the "
        "strategies of the side's own mix, and the best of them kept.",
        "",
        "| side | audited best response | found by | on its search's seeds | confirmed, 95% "
        "interval | duel's bound | beyond it |",
        "|---|---|---|---|---|---|---|",
    ]
    for side in ("attacker", "defender"):
        r = audit[side]
        found_by = {"duel": "the duel's oracle", "mix": "the duel's mix"}.get(
            r.get("source", "audit"), "the audit's search"
        )
        lines.append(
            f"| {side} | `{r['strategy']}` | {found_by} | {_fmt(r['search_value'])} | "
            f"{estimate(r['confirmed'])} | {_fmt(r['bound'])} "
            f"({'upper' if side == 'attacker' else 'lower'}) | "
            f"{'yes' if r['beats_bound'] else 'no'} |"
        )
    lines += [
        "",
        f"Audited exploitability (audited attacker response minus audited defender response, "
        f"paired over the confirmation seeds): {estimate(audit['exploitability'])}.",
        "",
        f"**Verdict**: {verdict(audit)}.",
    ]
    for side in ("attacker", "defender"):
        lines.append(f"- audited {side}: {_params(audit[side])}")
    return lines


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
        f"| value re-solved on {len(ci['seeds'])} fresh seed(s), 95% interval | "
        f"{_fmt(ci['mean'])} [{_fmt(ci['low'])}, {_fmt(ci['high'])}] |",
        f"| lower / upper bound | {_fmt(result['lower_bound'])} / {_fmt(result['upper_bound'])} |",
        f"| exploitability (gap) | {_fmt(result['exploitability'])} ({result['stopped']}) |",
        f"| best single defense, worst case | {_fmt(result['best_pure_defense']['worst_case'])} "
        f"(`{result['best_pure_defense']['strategy']}`) |",
        f"| models trained / cells from cache | {result['trainings']} / {result['cache_hits']} |",
        f"| seconds | {result['seconds']['total']} |",
        "",
        f"Stopping: {stopping(result)}.",
        "",
        "The interval: the restricted game's strategies near the equilibrium are played again "
        "on seeds the duel never played, the game is solved again on the mean of those cells, "
        "and the interval is the Student-t interval of its mixes' payoff seed by seed, which "
        "carries every cell's noise (docs/values.md).",
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
    if result.get("audit"):
        lines += audit_markdown(result["audit"])
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
