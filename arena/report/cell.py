"""Human-readable terminal output of the CLI (rich tables)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from arena.cell.result import CellResult

console = Console()


def _pct(v: float | None) -> str:
    if v is None or v != v:  # None or NaN
        return "n/a"
    return f"{100 * v:.1f}%"


def print_catalog(cat: dict[str, Any]) -> None:
    for section, columns in [
        ("attacks", ["description", "origin"]),
        ("defenses", ["kind", "access", "description", "origin"]),
        ("models", ["description", "origin"]),
        ("datasets", ["description", "origin"]),
    ]:
        table = Table(title=section, title_justify="left", show_edge=False)
        table.add_column("name", style="bold")
        for c in columns:
            table.add_column(c)
        for name, entry in cat[section].items():
            table.add_row(name, *(str(entry[c]) for c in columns))
        console.print(table)
        console.print()
    console.print("Parameters and ranges: `arena list --json`.")


def print_cell(attacker: str, defender: str, r: CellResult) -> None:
    table = Table(title=f"{attacker} vs {defender}", title_justify="left", show_edge=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    rows = [
        ("CA", r.ca, "clean accuracy of the BadNet"),
        ("ASR", r.asr, "attack success, no defense"),
        ("SDA", r.sda, "clean accuracy with the defense"),
        ("SASR", r.sasr, "attack success that passes the defense"),
        ("FAR", r.far, "triggered inputs the filter accepts"),
        ("FRR", r.frr, "clean inputs the filter rejects"),
    ]
    for name, value, meaning in rows:
        table.add_row(name, _pct(value), meaning)
    console.print(table)
    triggers = r.triggers
    if len(triggers) > 1:
        each = ", ".join(
            f"{t} {_pct(a)} / {_pct(s)}"
            for t, a, s in zip(triggers, r.asr_per_trigger, r.sasr_per_trigger, strict=True)
        )
        console.print(f"per trigger (ASR / SASR): {each}; the cell is the best trigger's")
    d = r.detection
    if d.badnet is not None:
        named = ""
        if d.target_named is not None:
            named = ", naming the target" if d.target_named else ", naming another label"
        clean = "" if d.clean is None else (
            f", clean model {'flagged' if d.clean else 'not flagged'} ({d.clean_outcome})"
        )
        console.print(
            f"detection: BadNet {'flagged' if d.badnet else 'not flagged'} ({d.outcome}{named})"
            + clean
        )
    gate = r.gates.decided_by
    why = "; ".join(r.gates.reasons)
    console.print(
        f"[bold]payoff {r.payoff:.3f}[/bold]"
        + (f"  (decided by the {gate} gate: {why})" if gate else (f"  ({why})" if why else ""))
    )
    cached = [k for k, v in r.gates.cached.items() if v]
    console.print(
        f"time {r.seconds['total']:.1f}s" + (f"; from cache: {', '.join(cached)}" if cached else "")
    )


def print_defend(path: str, defender: str, out: dict[str, Any], *, has_attack: bool) -> None:
    console.print(f"[bold]{defender}[/bold] on {path}")
    if out["flagged"] is not None:
        console.print(f"verdict: {'FLAGGED as backdoored' if out['flagged'] else 'not flagged'}")
    console.print(
        f"clean accuracy {_pct(out['ca'])}, with the defense {_pct(out['sda'])}, "
        f"clean inputs rejected {_pct(out['frr'])}"
    )
    if has_attack:
        console.print(f"attack success {_pct(out['asr'])}, through the defense {_pct(out['sasr'])}")
    for key, value in out["details"].items():
        if not isinstance(value, list | dict):
            console.print(f"  {key}: {value}")
