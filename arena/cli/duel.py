"""``arena duel``: the double oracle, from the command line, with a line per trial and round."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from arena.cli.args import add_data_arguments, add_gate_arguments, setting
from arena.cli.base import CLIError, Command

BUDGET_HELP = """\
budget presets (each value can be overridden by the flags below):
  quick     2 rounds, 4 attacker + 3 defender trials per round, 1 seed, CI on 2 fresh seeds
  default   4 rounds, 10 + 8 trials, 1 seed, CI on 10 fresh seeds
  thorough  8 rounds, 30 + 20 trials, 2 seeds per cell, CI on 16 fresh seeds
"""


def add_compute_arguments(group: argparse._ArgumentGroup) -> None:
    """Where trials run: the Ray cluster, the device, resources per trial, retries."""
    group.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join ('auto', 'HOST:6379', 'ray://HOST:10001'; default: "
        "$RAY_ADDRESS if set, else a private Ray instance on this machine)",
    )
    group.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where trials train and infer (default auto: cuda if a GPU is visible here "
        "or on the cluster, else cpu)",
    )
    group.add_argument(
        "--cpus-per-trial",
        type=float,
        default=None,
        help="CPUs per trial and cell task (default: 1, or 2-4 for large networks)",
    )
    group.add_argument(
        "--gpus-per-trial",
        type=float,
        default=None,
        help="GPUs per trial with --device cuda (default: 0.25 for small networks, "
        "0.5 or 1 for large ones)",
    )
    group.add_argument(
        "--max-failures",
        type=int,
        default=2,
        help="times a trial whose worker died is run again (default 2)",
    )


def compute_of(args: argparse.Namespace) -> Any:
    """The :class:`~arena.cell.runner.Compute` of :func:`add_compute_arguments`' flags."""
    from arena.cell.runner import Compute

    return Compute(
        address=args.address,
        device=args.device,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_failures=args.max_failures,
    )


class DuelCommand(Command):
    name = "duel"
    help = "solve the attacker-defender game by double oracle over Optuna studies on Ray Tune"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = BUDGET_HELP + (
            "\nexamples:\n"
            "  arena duel --attacker tca --defender abs --budget quick\n"
            "  arena duel --attacker all --defender strip+abs\n"
            "  arena duel --attacker all --defender all --budget quick   # both sides choose\n"
            "  arena duel ... --address auto --storage postgresql://arena@head/arena "
            "--cache /shared/arena-cache\n"
            "  arena dashboard --storage sqlite:///runs/arena.db    # watch the studies "
            "(optuna-dashboard)\n"
            "\nclusters, shared storage, the dashboard and recovery: docs/cluster.md\n"
        )
        parser.add_argument(
            "--attacker",
            required=True,
            help="attack family, comma-separated families, or 'all' (the attacker picks)",
        )
        parser.add_argument(
            "--defender",
            required=True,
            help="defense, pipeline joined by '+' (strip+abs), comma-separated choices, or 'all' "
            "(the defender picks among every defense and valid two-stage pipeline)",
        )
        add_data_arguments(parser)
        add_budget_arguments(parser, default="default")
        add_gate_arguments(parser)
        run = parser.add_argument_group("where it runs and writes")
        run.add_argument(
            "--storage",
            default=None,
            help="Optuna storage URL: sqlite:///FILE (default sqlite:///runs/arena.db), "
            "journal:///FILE.log, postgresql://USER:PASSWORD@HOST/DB",
        )
        run.add_argument("--out", default=None, help="output folder (default runs/duels/NAME)")
        run.add_argument(
            "--name",
            default=None,
            help="duel name (default: from the attacker, defender and a "
            "hash of every setting, so an identical run replays from storage and cache)",
        )
        run.add_argument(
            "--resume",
            action="store_true",
            help="continue a duel that stopped early, keeping every finished trial",
        )
        add_compute_arguments(run)
        parser.add_argument(
            "--audit",
            type=int,
            default=None,
            metavar="TRIALS",
            help="after the duel, audit its final mixes with TRIALS trials per side of an "
            "independent search (what `arena audit NAME --trials TRIALS` does)",
        )
        parser.add_argument("--json", action="store_true", help="print duel.json at the end")

    def run(self, args: argparse.Namespace) -> int:
        from arena.api import prepare_duel
        from arena.core.jsonio import dumps
        from arena.report.duel import write_report
        from studies.lease import LeaseError
        from studies.oracle import DuelInterrupted
        from studies.storage import redact

        budget = budget_of(args)
        # names, device, storage, cache, output folder and data are checked before anything
        # runs, so a typo costs nothing (the cluster, if any, is joined and checked when the
        # duel runs, still before any work)
        plan = prepare_duel(
            args.attacker,
            args.defender,
            setting=setting(args),
            budget=budget,
            seed=args.seed,
            storage=args.storage,
            out=args.out,
            name=args.name,
            resume=args.resume,
            address=args.address,
            device=args.device,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            max_failures=args.max_failures,
            audit=args.audit,
        )
        name, storage, out, compute = plan.name, plan.storage, plan.out, plan.compute
        view = DuelView(quiet=args.json)
        view.start(name, plan.spec, storage, compute.where())
        try:
            result = plan.run(hooks=view.hooks(show_nodes=bool(compute.target)))
            if plan.audit is not None:
                view.say(f"[bold]audit[/] of {name}: {plan.audit.trials} trials per side")
                plan.run_audit(
                    result, hooks=view.hooks(show_nodes=bool(compute.target), audit=True)
                )
        except (DuelInterrupted, LeaseError) as e:  # another driver has the duel, or had it
            raise CLIError(str(e)) from None
        except KeyboardInterrupt:
            view.say(
                f"interrupted. Finished trials are kept in {redact(storage)} and the cache; "
                "continue with the same command and --resume"
            )
            return 130
        paths = write_report(result, out)
        if args.json:
            sys.stdout.write(dumps(result, indent=2, default=float) + "\n")
        else:
            view.summary(result, [f"{out}/duel.json", *map(str, paths)], storage)
        return 0


def add_budget_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    """``--budget`` (a preset) and the flags that override each of its fields."""
    budget = parser.add_argument_group("budget")
    budget.add_argument(
        "--budget",
        choices=("quick", "default", "thorough"),
        default=default,
        help=f"preset (default: {default})",
    )
    budget.add_argument("--rounds", type=int, help="double-oracle rounds at most")
    budget.add_argument("--attacker-trials", type=int, help="new trials per attacker study")
    budget.add_argument("--defender-trials", type=int, help="new trials per defender study")
    budget.add_argument("--epsilon", type=float, help="stop when the gap is at most this")
    budget.add_argument("--seeds", type=int, help="seeds each cell is averaged over")
    budget.add_argument("--ci-seeds", type=int, help="fresh seeds for the value's interval")
    budget.add_argument(
        "--ci-half-width",
        type=float,
        help="after --ci-seeds, add the fresh seeds the first ones' spread says the "
        "interval needs to be at most this wide each side, once (0, the default: exactly "
        "--ci-seeds; covers 90-96%% instead of 94-96%%: docs/values.md)",
    )
    budget.add_argument(
        "--max-ci-seeds", type=int, help="fresh seeds --ci-half-width may reach at most"
    )
    budget.add_argument(
        "--no-prune",
        dest="prune",
        action="store_false",
        default=None,
        help="train every attacker trial's BadNet to the end, even one whose clean accuracy "
        "shows early that it cannot pass the gate (pruned by default: bench/README.md)",
    )
    budget.add_argument(
        "--reproducible",
        action="store_true",
        default=None,
        help="sample each trial from the same finished trials whatever the timing (those "
        "twice the concurrent trials or more before it, told in order), so the same seed "
        "replays the same duel (a trial may wait for one that far back; README)",
    )


def budget_of(args: argparse.Namespace) -> Any:
    """The :class:`~arena.game.budget.Budget` of :func:`add_budget_arguments`' flags."""
    from arena.api import BUDGET_FIELDS, resolve_budget

    return resolve_budget(args.budget, **{k: getattr(args, k) for k in BUDGET_FIELDS})


class DuelView:
    """Progress lines and the final summary, on stderr while running (stdout stays clean for
    ``--json``)."""

    def __init__(self, quiet: bool = False) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet = quiet

    def say(self, text: str) -> None:
        self.console.print(text)

    def start(self, name: str, spec: Any, storage: str, where: str = "") -> None:
        from studies.storage import redact

        b = spec.budget
        self.say(
            f"[bold]duel {name}[/]: {spec.attacker} vs {spec.defender} on "
            f"{spec.setting.data.name} ({spec.setting.model}); up to {b.rounds} rounds of "
            f"{b.attacker_trials}+{b.defender_trials} trials; studies in {redact(storage)}"
            + (f"; on {where}" if where else "")
        )

    def hooks(self, show_nodes: bool = False, audit: bool = False) -> Any:
        from arena.duels.run import Hooks

        def on_trial(e: Any) -> None:
            extra = f", trained {e.trained}" if e.trained else ""
            if e.retries:
                extra += f", retried {e.retries}x"
            if show_nodes and e.node:
                extra += f", node {e.node[:8]}"
            where = "audit" if audit else f"r{e.round}"
            payoff = f"pruned: {e.pruned}" if e.pruned else f"payoff {e.objective:.3f}"
            self.say(
                f"  {where} {e.side:<8} {e.strategy:<22} {payoff}  "
                f"[dim]{e.wall_seconds:.1f}s{extra}[/]"
            )

        def on_round(r: Any) -> None:
            added = [
                s for s, f in (("attacker", r.added_attacker), ("defender", r.added_defender)) if f
            ]
            self.say(
                f"[bold]round {r.round}[/]: value {r.value:.3f}, bounds "
                f"[{r.lower_bound:.3f}, {r.upper_bound:.3f}], gap {r.gap:.3f}"
                + (f"; adds the {' and '.join(added)} response" if added else "")
            )

        return Hooks(
            on_trial=on_trial, on_round=on_round, on_phase=lambda text: self.say(f"[dim]{text}[/]")
        )

    def summary(self, result: dict[str, Any], files: list[str], storage: str) -> None:
        from rich.console import Console
        from rich.table import Table

        from arena.report.duel import stopping
        from studies.storage import redact

        out = Console(highlight=False)
        ci = result["value_ci"]
        table = Table(show_header=False, show_edge=False, title="result", title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        interval = (
            "n/a"
            if ci["mean"] is None or ci["low"] is None
            else (
                f"{ci['mean']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}] "
                f"re-solved on {len(ci['seeds'])} fresh seeds"
            )
        )
        pure = result["best_pure_defense"]
        rows = [
            ("game value", f"{result['value']:.3f}  (post-defense attack success at equilibrium)"),
            ("value, 95% interval", interval),
            ("bounds", f"[{result['lower_bound']:.3f}, {result['upper_bound']:.3f}]"),
            ("exploitability", f"{result['exploitability']:.3f} ({result['stopped']})"),
            ("stopping", stopping(result)),
            ("best single defense", f"{pure['strategy']}: worst case {pure['worst_case']:.3f}"),
            (
                "work",
                f"{result['trainings']} models trained, {result['cache_hits']} cells from "
                f"the cache, {result['seconds']['total']:.0f} s",
            ),
            ("where", _where(result)),
        ]
        for side in ("attacker", "defender"):
            mix = ", ".join(f"{e['strategy']} {e['weight']:.2f}" for e in result[f"{side}_mix"])
            rows.append((f"{side} mix", mix))
        rows += audit_rows(result.get("audit"))
        for k, v in rows:
            table.add_row(k, v)
        out.print(table)
        out.print("wrote " + ", ".join(files))
        out.print(f"watch the studies: arena dashboard --storage {redact(storage)}")


def audit_rows(audit: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The summary's lines for an audit: each side's confirmed response and the verdict."""
    if not audit:
        return []
    from arena.report.duel import estimate, verdict

    rows = [
        (
            f"audited {side}",
            f"{audit[side]['strategy']}: {estimate(audit[side]['confirmed'])} "
            f"(duel's {'upper' if side == 'attacker' else 'lower'} bound "
            f"{audit[side]['bound']:.3f})",
        )
        for side in ("attacker", "defender")
    ]
    rows.append(("audited exploitability", estimate(audit["exploitability"])))
    rows.append(("audit", verdict(audit)))
    return rows


def _where(result: dict[str, Any]) -> str:
    """``cpu, 2 Ray nodes (3 + 2 trials, ...)``: the device and how the work spread."""
    nodes = result.get("nodes", {})
    line = f"{result['duel'].get('device', 'cpu')} on {result['duel'].get('ray', 'local')} Ray"
    if len(nodes) > 1:
        trials = " + ".join(str(n["trials"]) for n in nodes.values())
        tasks = " + ".join(str(n["cell_tasks"]) for n in nodes.values())
        line += f", {len(nodes)} nodes: {trials} trials, {tasks} cell tasks"
    return line
