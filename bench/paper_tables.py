"""``python bench/tables.py papers``: the papers' tables with Arena's figures beside them.

Veldanda & Garg's Table 3 (nine attacks against Fine-pruning, Neural Cleanse with and without
the target, STRIP at 3% FRR and MESA) and Le Roux et al.'s Tables V (four input purifiers
against ten attacks) and VIII (STRIP at 1% FRR, then BDMAE). Each cell: the paper's figure,
Arena's median over the seeds with its range, each side's verdict by the paper's own criterion,
and whether the paper's verdict holds here. The figures come from ``arena evaluate`` cells
with the defense's defaults, except where the paper sets a value (STRIP's FRR target, the
target label given by oracle); the papers' numbers are in ``paper_figures.py``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

import paper_figures as pf

Job = tuple[str, str, int, str, str, tuple[tuple[tuple[str, Any], ...], ...]]
MakeJob = Callable[..., Job]

VG_STRIP_FRR = 0.03
LR_STRIP_FRR = 0.01


def _target(attack: str) -> int:
    from strategies.players import AttackerStrategy

    return int(AttackerStrategy.of(attack).attack.target)


def _vg_defenses(attack: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(row name, defender, first-stage changes) of Table 3's columns for ``attack``."""
    target = _target(attack)
    rows: list[tuple[str, str, dict[str, Any]]] = [
        ("baseline", "none", {}),
        ("fine-pruning", "fine-pruning", {}),
        ("neural-cleanse", "neural-cleanse", {}),
    ]
    if attack != "aaa":  # all-to-all: no one target to hand over
        rows.append(("neural-cleanse oracle", "neural-cleanse", {"target": target}))
    rows.append(("strip", "strip", {"frr_target": VG_STRIP_FRR}))
    oracle = "mesa oracle" in pf.VG_TABLE3[attack]
    rows.append(
        ("mesa oracle", "mesa", {"target": target}) if oracle else ("mesa", "mesa", {})
    )
    return rows


def jobs(seeds: Sequence[int], make: MakeJob, cache: str, dataset: str) -> list[Job]:
    """Every cell of the three tables, each once (Table VIII's BDMAE cells are Table V's)."""
    out: list[Job] = []
    for attack in pf.VG_ATTACKS:
        for _, defender, changes in _vg_defenses(attack):
            out += [make(attack, defender, s, cache, dataset, **changes) for s in seeds]
    for attack in pf.LR_ATTACKS:
        out += [make(attack, "none", s, cache, dataset) for s in seeds]
        for defender in pf.LR_TABLE5:
            out += [make(attack, defender, s, cache, dataset) for s in seeds]
        out += [
            make(attack, "strip+bdmae", s, cache, dataset, frr_target=LR_STRIP_FRR) for s in seeds
        ]
    return list(dict.fromkeys(out))


def _rows(results: list[dict[str, Any]], attack: str, defender: str, changes: dict[str, Any]):
    want = [changes] + [{}] * defender.count("+")
    return [
        r
        for r in results
        if r["job"]["attacker"] == attack
        and r["job"]["defender"] == defender
        and r["job"]["overrides"] == want
    ]


def _median(values: Sequence[float | None]) -> tuple[float, float, float] | None:
    vals = [100 * v for v in values if v is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def _fmt(stat: tuple[float, float, float] | None) -> str:
    if stat is None:
        return "-"
    med, lo, hi = stat
    return f"{med:.1f} ({lo:.1f}-{hi:.1f})" if hi > lo else f"{med:.1f}"


def _paper(value: pf.Figure) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " / ".join(f"{v:g}" for v in value)
    return f"{value:g}"


def _per_trigger(rows: list[dict[str, Any]], key: str) -> list[tuple[float, float, float] | None]:
    """Per trigger, the median and range over seeds of ``key`` (a per-trigger list)."""
    count = max((len(r[key]) for r in rows), default=0)
    return [_median([r[key][i] for r in rows if i < len(r[key])]) for i in range(count)]


def vg_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| attack (paper's data) | defense | paper CA | paper ASR (STRIP: FAR) | Arena CA "
        "| Arena ASR (STRIP: FAR) | paper's verdict | Arena's verdict | holds here |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for attack in pf.VG_ATTACKS:
        paper = pf.VG_TABLE3[attack]
        for name, defender, changes in _vg_defenses(attack):
            rows = _rows(results, attack, defender, changes)
            if not rows:
                continue
            baseline = defender == "none"
            if baseline:
                ca, key = _median([r["ca"] for r in rows]), "asr_per_trigger"
            else:
                ca = _median([r["sda"] for r in rows])
                key = "far_per_trigger" if defender == "strip" else "sasr_per_trigger"
            arena = _per_trigger(rows, key)
            arena_text = " / ".join(_fmt(a) for a in arena)
            # Arena runs Neural Cleanse with and without the oracle; the paper ran one of them
            paper_ca, paper_asr = paper.get(name, ("not run", "not run"))
            arena_ok = all(a is not None and a[0] < pf.VG_SUCCESS for a in arena)
            if baseline:
                paper_verdict, arena_verdict, holds = "", "", ""
            else:
                arena_verdict = "succeeds" if arena_ok else "fails"
                if isinstance(paper_asr, str):
                    paper_verdict, holds = paper_asr, "(not measured there)"
                else:
                    values = paper_asr if isinstance(paper_asr, list) else [paper_asr]
                    paper_ok = all(v < pf.VG_SUCCESS for v in values)
                    paper_verdict = "succeeds" if paper_ok else "fails"
                    holds = "yes" if paper_ok == arena_ok else "**no**"
            label = name.replace(" oracle", " (oracle target)")
            lines.append(
                f"| `{attack}` ({pf.VG_DATASETS[attack]}) | {label} | {_paper(paper_ca)} | "
                f"{_paper(paper_asr)} | {_fmt(ca)} | {arena_text} | {paper_verdict} | "
                f"{arena_verdict} | {holds} |"
            )
    return lines


def _lr_ok(cda: float, sda: float, sasr: float) -> bool:
    return cda - sda < pf.LR_SDA_POINTS and sasr < pf.LR_SASR


def _lr_head(paper: str) -> list[str]:
    """The head of a Le Roux et al. table; ``paper`` names the paper's column."""
    return [
        f"| defense | attack | {paper} | Arena SDA / SASR (CDA) "
        "| paper's verdict | Arena's verdict | holds here |",
        "|---|---|---|---|---|---|---|",
    ]


def lr_table5(results: list[dict[str, Any]]) -> list[str]:
    lines = _lr_head("paper SDA / SASR (CDA)")
    for defender, column in pf.LR_TABLE5.items():
        for attack in pf.LR_ATTACKS:
            rows = _rows(results, attack, defender, {})
            if not rows:
                continue
            sda, sasr = column[attack]
            cda = pf.LR_CDA[attack]
            source = " (CASIA)" if attack == pf.LR_GLASSES_FROM_CASIA else ""
            lines.append(_lr_line(defender, attack, (sda, sasr, cda), rows, source))
    return lines


def _lr_line(
    defender: str,
    attack: str,
    paper: tuple[float, float, float],
    rows: list[dict[str, Any]],
    source: str = "",
) -> str:
    sda, sasr, cda = paper
    a_sda = _median([r["sda"] for r in rows])
    a_sasr = _median([r["sasr"] for r in rows])
    a_cda = _median([r["ca"] for r in rows])
    paper_ok = _lr_ok(cda, sda, sasr)
    assert a_sda is not None and a_sasr is not None and a_cda is not None
    arena_ok = _lr_ok(a_cda[0], a_sda[0], a_sasr[0])
    return (
        f"| {defender} | `{attack}`{source} | {sda:g} / {sasr:g} ({cda:g}) | "
        f"{_fmt(a_sda)} / {_fmt(a_sasr)} ({a_cda[0]:.1f}) | "
        f"{'succeeds' if paper_ok else 'fails'} | {'succeeds' if arena_ok else 'fails'} | "
        f"{'yes' if paper_ok == arena_ok else '**no**'} |"
    )


def lr_table8(results: list[dict[str, Any]]) -> list[str]:
    lines = _lr_head("paper SDA / SASR (CDA), CASIA")
    for attack in pf.LR_ATTACKS:
        cda = pf.LR_CDA_CASIA[attack]
        mixed = _rows(results, attack, "strip+bdmae", {"frr_target": LR_STRIP_FRR})
        alone = _rows(results, attack, "bdmae", {})
        if mixed:
            sda, sasr = pf.LR_TABLE8[attack]
            lines.append(_lr_line("strip+bdmae", attack, (sda, sasr, cda), mixed))
        if alone:
            sda, sasr = pf.LR_BDMAE_CASIA[attack]
            lines.append(_lr_line("bdmae", attack, (sda, sasr, cda), alone))
    return lines


def summary(lines: list[str]) -> str:
    """How many verdicts hold, of those the paper measured."""
    held = sum(line.endswith("| yes |") for line in lines)
    differ = sum(line.endswith("| **no** |") for line in lines)
    return f"The paper's verdict holds in {held} of {held + differ} cells it measured."


def render(results: list[dict[str, Any]], seeds: Sequence[int]) -> list[str]:
    seeds_text = ", ".join(map(str, seeds))
    vg, t5, t8 = vg_table(results), lr_table5(results), lr_table8(results)
    return [
        "### Veldanda & Garg, Table 3",
        "",
        f"Arena: `digits`, `small-cnn`, seeds {seeds_text}; median (range) in percent. "
        "After a defense, ASR is the served system's (SASR: for Neural Cleanse and MESA the "
        "unlearned model, for Fine-pruning the pruned and fine-tuned one); STRIP's column is "
        "the FAR at a 3% FRR target. Multi-trigger rows give lipstick / eyebrow / sunglasses. "
        "A defense succeeds when every ASR (FAR) is below 20%.",
        "",
        *vg,
        "",
        summary(vg),
        "",
        "### Le Roux et al., Table V",
        "",
        f"Arena: `digits`, `small-cnn`, seeds {seeds_text}; SDA and SASR median (range) in "
        "percent, CDA the BadNet's clean accuracy (median). The paper's CIFAR-10 column (the "
        "glasses patch is not run on CIFAR-10: its CASIA column). A defense succeeds when its "
        "SDA is within 10 points of the CDA and its SASR below 30%.",
        "",
        *t5,
        "",
        summary(t5),
        "",
        "### Le Roux et al., Table VIII",
        "",
        "STRIP at a 1% FRR target, then BDMAE, against BDMAE alone; the paper's figures are "
        "on CASIA (Table VIII, and Table V's CASIA column for BDMAE alone).",
        "",
        *t8,
        "",
        summary(t8),
    ]
