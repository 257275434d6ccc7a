"""``arena audit``: independent best responses against a finished duel's final mixes."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from arena.cli.base import CLIError, Command
from arena.cli.duel import DuelView, add_compute_arguments, audit_rows, compute_of

EPILOG = """\
The audit runs one more best-response search per side against the other side's final mix,
with another Optuna sampler than the duel's TPE, its own trial budget and seeds the duel never
played, then re-measures each side's best find on fresh confirmation seeds. The audited
exploitability is the audited attacker response minus the audited defender response; the
duel's value stands unless an audited response beats the duel's bound on its side by more
than its 95% interval. Results go to duel.json ("audit") and report.md; the studies are
NAME/audit/attacker and NAME/audit/defender in the duel's storage.

examples:
  arena audit tca-vs-abs-1a2b3c4d
  arena audit runs/duels/tca-vs-abs-1a2b3c4d --trials 40 --sampler random
  arena audit tca-vs-abs-1a2b3c4d --dry-run
"""


class AuditCommand(Command):
    name = "audit"
    help = "audit a finished duel: independent best responses against its final mixes"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = EPILOG
        parser.add_argument(
            "duel",
            metavar="NAME",
            help="the duel: its name (folder under runs/duels), its folder, or its duel.json",
        )
        search = parser.add_argument_group("the audit's search")
        search.add_argument(
            "--trials",
            type=int,
            default=None,
            help="trials per side (default: 3 times the duel's trials per round of that side)",
        )
        search.add_argument(
            "--sampler",
            choices=("qmc", "random"),
            default="qmc",
            help="Optuna sampler: scrambled Sobol quasi-Monte Carlo (default) or uniform random",
        )
        search.add_argument(
            "--confirm-seeds",
            type=int,
            default=None,
            help="fresh seeds each best find is re-measured on (default: the duel's interval "
            "seeds, at least 3)",
        )
        run = parser.add_argument_group("where it runs and writes")
        run.add_argument(
            "--storage",
            default=None,
            help="the duel's Optuna storage URL (default: the one duel.json names)",
        )
        run.add_argument(
            "--cache", default=None, help="the artifact cache (default: the one duel.json names)"
        )
        run.add_argument(
            "--resume", action="store_true", help="continue an audit that stopped early"
        )
        run.add_argument(
            "--dry-run",
            action="store_true",
            help="print the studies and trials the audit would run and an estimate of their "
            "time from the duel's measured trial times; run nothing",
        )
        add_compute_arguments(run)
        parser.add_argument("--json", action="store_true", help="print the audit's record")

    def run(self, args: argparse.Namespace) -> int:
        from arena.core.jsonio import dumps
        from arena.duels.audit import AuditSpec, load_duel, run_audit
        from arena.report.duel import write_report
        from studies.lease import LeaseError
        from studies.oracle import DuelInterrupted
        from studies.storage import redact

        spec = AuditSpec(trials=args.trials, sampler=args.sampler, confirm_seeds=args.confirm_seeds)
        folder, result = load_duel(args.duel)
        storage = args.storage or result["duel"]["storage"]
        if "***" in storage:
            raise CLIError(
                f"duel.json names its storage without the password ({storage}); give --storage "
                "the full URL"
            )
        if args.dry_run:
            sys.stdout.write(plan(result, spec, storage) + "\n")
            return 0
        view = DuelView(quiet=args.json)
        trials = spec.side_trials(_budget(result))
        view.say(
            f"[bold]audit {result['duel']['name']}[/]: {trials['attacker']} attacker and "
            f"{trials['defender']} defender trials ({spec.sampler}); studies in {redact(storage)}"
        )
        try:
            record = run_audit(
                result,
                spec,
                storage_url=storage,
                out_dir=folder,
                resume=args.resume,
                compute=compute_of(args),
                hooks=view.hooks(audit=True),
                cache_url=args.cache,
            )
        except (DuelInterrupted, LeaseError) as e:
            raise CLIError(str(e).replace("--resume", "arena audit --resume")) from None
        except KeyboardInterrupt:
            view.say(
                f"interrupted. Finished trials are kept in {redact(storage)}; continue with the "
                "same command and --resume"
            )
            return 130
        paths = write_report(result, folder)
        if args.json:
            sys.stdout.write(dumps(record, indent=2, default=float) + "\n")
            return 0
        from rich.console import Console
        from rich.table import Table

        table = Table(show_header=False, show_edge=False, title="audit", title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        table.add_row("duel's value", f"{result['value']:.3f}, bounds "
                      f"[{result['lower_bound']:.3f}, {result['upper_bound']:.3f}]")  # fmt: skip
        for k, v in audit_rows(record):
            table.add_row(k, v)
        table.add_row("work", f"{record['trainings']} models trained, {record['seconds']:.0f} s")
        out = Console(highlight=False)
        out.print(table)
        out.print("wrote " + ", ".join([str(folder / "duel.json"), *map(str, paths)]))
        return 0


def _budget(result: dict[str, Any]) -> Any:
    from arena.game.budget import Budget

    return Budget(**result["duel"]["budget"])


def plan(result: dict[str, Any], spec: Any, storage: str) -> str:
    """What the audit would run, and for how long, from the duel's own measured trials: each
    side's mean trial wall time, times the trials still to run, over this machine's cores."""
    from arena.duels.audit import audit_study_name
    from studies.storage import open_storage

    name = result["duel"]["name"]
    trials = spec.side_trials(_budget(result))
    slots = max(1, os.cpu_count() or 1)
    existing = {}
    try:
        for s in open_storage(storage, create=False).get_all_studies():
            existing[s.study_name] = s
    except ValueError:
        pass  # no storage yet: nothing done
    lines = [f"audit of {name} ({spec.sampler} sampler), on {slots} parallel trial slot(s):"]
    total = 0.0
    for side in ("attacker", "defender"):
        study = audit_study_name(name, side)
        walls = [t["wall_seconds"] for t in result.get("trials", []) if t["side"] == side]
        mean = sum(walls) / len(walls) if walls else float("nan")
        done = 0
        if study in existing:
            done = sum(
                1
                for t in open_storage(storage).get_all_trials(existing[study]._study_id)
                if t.state.is_finished()
            )
        left = max(0, trials[side] - done)
        seconds = left * mean / min(slots, max(1, left)) if left else 0.0
        total += seconds
        lines.append(
            f"  {study}: {trials[side]} trials, {done} finished, {left} to run; "
            f"~{seconds:.0f} s ({mean:.1f} s a trial in the duel)"
        )
    seeds = spec.seeds(_budget(result))
    cells = seeds * (len(result["defender_mix"]) + len(result["attacker_mix"]))
    ci_cells = (
        len(result["value_ci"]["seeds"]) * len(result["attacker_mix"]) * len(result["defender_mix"])
    )
    per_cell = result["seconds"]["confidence_interval"] / ci_cells if ci_cells else float("nan")
    confirm = cells * per_cell / slots
    total += confirm
    lines.append(
        f"  confirmation: {cells} cell(s) on {seeds} seeds; ~{confirm:.0f} s "
        f"({per_cell:.1f} s a cell in the duel's interval)"
    )
    lines.append(f"estimated total: ~{total:.0f} s")
    return "\n".join(lines)
