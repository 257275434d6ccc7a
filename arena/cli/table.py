"""``arena table``: the leaderboard, one duel per attack and defense, static beside adaptive."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from arena.cli.args import add_data_arguments, add_gate_arguments, check_output_dir, setting
from arena.cli.base import CLIError, Command
from arena.cli.duel import (
    BUDGET_HELP,
    DuelView,
    add_budget_arguments,
    add_compute_arguments,
    budget_of,
    compute_of,
)

EPILOG = """\
For each pair the table gives the static payoff (both sides at their default settings, what
papers report) and the adaptive value (the duel's equilibrium) on the same fresh seeds with
their 95% intervals, the adaptive gap (adaptive minus static) and the audited exploitability;
for each defense its worst case over the attacks. It writes table.json, table.csv, table.md
and table.png to --out, after every pair. Each duel is an ordinary `arena duel` (runs/duels/
NAME, the shared storage and cache): a table run again replays them; one that was stopped
continues with --resume.

examples:
  arena table --attackers badnets,blend-noise --defenders strip,fine-pruning --budget quick
  arena table --attackers all --defenders strip,abs --budget quick --dry-run
  arena table --attackers badnets,sig,wanet --defenders all --no-audit
  arena table --attackers all --defenders all --address auto --jobs 8   # on a Ray cluster
"""


class TableCommand(Command):
    name = "table"
    help = "the leaderboard: one duel per attack and defense, static vs adaptive"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = BUDGET_HELP + "\n" + EPILOG
        parser.add_argument(
            "--attackers", required=True, help="comma-separated attack families, or 'all'"
        )
        parser.add_argument(
            "--defenders",
            required=True,
            help="comma-separated defenses or pipelines (strip,abs,strip+bdmae), or 'all' "
            "(every registered defense but none)",
        )
        add_data_arguments(parser)
        add_budget_arguments(parser, default="quick")
        audit = parser.add_argument_group("the audit of each duel")
        audit.add_argument(
            "--audit",
            type=int,
            default=None,
            metavar="TRIALS",
            help="trials per side of each duel's audit (default: 3 times the duel's trials "
            "per round)",
        )
        audit.add_argument(
            "--no-audit", action="store_true", help="no audit: the table leaves its column empty"
        )
        audit.add_argument(
            "--sampler",
            choices=("qmc", "random"),
            default="qmc",
            help="the audit's Optuna sampler (default qmc)",
        )
        add_gate_arguments(parser)
        run = parser.add_argument_group("where it runs and writes")
        run.add_argument(
            "--storage",
            default=None,
            help="Optuna storage URL every duel shares (default sqlite:///runs/arena.db)",
        )
        run.add_argument(
            "--out", default=None, help="the table's folder (default runs/tables/NAME)"
        )
        run.add_argument(
            "--duels-dir",
            default="runs/duels",
            help="where each duel's folder goes (default runs/duels, as `arena duel`)",
        )
        run.add_argument(
            "--resume",
            action="store_true",
            help="continue a table that stopped early (finished duels replay either way)",
        )
        run.add_argument(
            "--dry-run",
            action="store_true",
            help="print the duels the table would run and an estimate of their time from the "
            "cache's measured cell costs; run nothing",
        )
        run.add_argument(
            "--jobs",
            type=int,
            default=1,
            help="duels run at once, each a driver of its own on the same Ray (default 1: one "
            "after another, each using every CPU; more pays on a cluster larger than one "
            "duel's trials)",
        )
        add_compute_arguments(run)
        parser.add_argument("--json", action="store_true", help="print table.json at the end")

    def run(self, args: argparse.Namespace) -> int:
        from arena.core.jsonio import dumps
        from arena.duels.audit import AuditSpec
        from arena.duels.jobs import TableJobError
        from arena.duels.run import absolute_storage, preflight
        from arena.duels.table import TableHooks, TableSpec, plan, run_table
        from arena.report.duel import write_report
        from arena.report.table import write_table
        from studies.lease import LeaseError
        from studies.oracle import DuelInterrupted
        from studies.storage import DEFAULT_STORAGE, redact

        if args.jobs < 1:
            raise CLIError(f"--jobs must be at least 1, not {args.jobs}")
        if args.no_audit and args.audit is not None:
            raise CLIError("--audit and --no-audit contradict each other; give one")
        audit = None if args.no_audit else AuditSpec(trials=args.audit, sampler=args.sampler)
        spec = TableSpec.parse(
            args.attackers,
            args.defenders,
            setting=setting(args),
            budget=budget_of(args),
            seed=args.seed,
            audit=audit,
        )
        storage = args.storage or DEFAULT_STORAGE
        out = args.out or f"runs/tables/{spec.name}"
        if args.dry_run:
            sys.stdout.write(plan(spec, args.duels_dir) + "\n")
            return 0
        compute = compute_of(args)
        check_output_dir(out)
        check_output_dir(args.duels_dir, "--duels-dir")
        preflight(spec.duels()[0], absolute_storage(storage))
        view = DuelView(quiet=args.json)
        n = len(spec.duels())
        view.say(
            f"[bold]table {spec.name}[/]: {len(spec.attackers)} attack(s) x "
            f"{len(spec.defenders)} defense(s), {n} duels at the {args.budget} budget"
            + ("" if audit is None else ", each audited")
            + f"; studies in {redact(storage)}"
        )

        def on_start(i: int, total: int, duel: Any) -> None:
            view.say(f"[bold]{i + 1}/{total} {duel.attacker} vs {duel.defender}[/] ({duel.name})")

        def on_pair(i: int, total: int, row: dict[str, Any]) -> None:
            view.say(
                f"  static {row['static']:.3f} -> adaptive {row['adaptive']:.3f} "
                f"(gap {row['gap']:+.3f}), {row['seconds']:.0f} s"
            )

        hooks = TableHooks(
            duel=view.hooks(),
            audit=view.hooks(audit=True),
            on_pair=on_pair,
            on_start=on_start,
            on_duel=write_report,
            on_record=write_table,
        )
        try:
            record = run_table(
                spec,
                storage_url=storage,
                out_dir=out,
                duels_dir=args.duels_dir,
                resume=args.resume,
                compute=compute,
                hooks=hooks,
                jobs=args.jobs,
            )
        except (DuelInterrupted, LeaseError, TableJobError) as e:
            raise CLIError(
                str(e).replace(
                    "continue the duel with --resume", "continue the table with --resume"
                )
            ) from None
        except KeyboardInterrupt:
            view.say(
                f"interrupted. The pairs done are in {out}; finished trials are kept in "
                f"{redact(storage)} and the cache; continue with the same command and --resume"
            )
            return 130
        if args.json:
            sys.stdout.write(dumps(record, indent=2, default=float) + "\n")
            return 0
        from rich.console import Console

        console = Console(highlight=False)
        console.print((Path(out) / "table.md").read_text())
        console.print(
            f"wrote {out}/table.json, table.csv, table.md, table.png in {record['seconds']:.0f} s"
        )
        return 0
