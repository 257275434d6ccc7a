"""Arena from Python: one cell of the game, or a whole duel, with typed results.

::

    import arena

    cell = arena.evaluate("badnets", "strip", limit=120)
    cell.payoff, cell.metrics, cell.to_dict()      # what `arena evaluate --json` prints

    outcome = arena.duel("badnets", "strip", budget="quick")
    outcome.value, outcome.value_ci, outcome.attacker_mix
    outcome.payoff_matrix()                        # pandas DataFrames
    outcome.trials(side="attacker")
    outcome.rounds()

:func:`evaluate` and :func:`duel` take the settings of ``arena evaluate`` and ``arena duel``,
named after their flags (``--delta-attack`` is ``delta_attack``, ``-A`` is ``attack_params``),
and check them with the same code, so a bad setting raises the ``ValueError`` the command
line reports in one line. The commands call them too: ``arena evaluate`` is :func:`evaluate`,
``arena duel`` is :func:`prepare_duel` and :meth:`DuelPlan.run`, as :func:`duel` is.

Strategy parameters are given as a mapping (``{"poison_rate": 0.05}``; for a pipeline,
``{"strip.overlays": 8}`` or ``{"strip": {"overlays": 8}}``) or as ``KEY=VALUE`` strings, as
on the command line; both go through :func:`arena.core.overrides.apply_overrides`.

Heavy modules (torch, Ray, Optuna, pandas) are imported inside the functions that use them, so
importing this package, as ``arena.evaluate`` does on first use, costs little by itself. Its
modules: :mod:`arena.api.settings` (parameters and settings, checked as the commands check
them), :mod:`arena.api.cells` (:func:`evaluate`, :class:`Cell`) and :mod:`arena.api.duels`
(:func:`duel`, :func:`prepare_duel`, :class:`DuelPlan`, :class:`DuelOutcome`).
"""

from arena.api.cells import Cell, evaluate
from arena.api.duels import (
    BUDGET_FIELDS,
    TRIAL_COLUMNS,
    DuelOutcome,
    DuelPlan,
    duel,
    prepare_duel,
    resolve_budget,
)
from arena.api.settings import (
    Params,
    check_output_dir,
    override_items,
    players,
    strategy_configs,
)

__all__ = [
    "BUDGET_FIELDS",
    "TRIAL_COLUMNS",
    "Cell",
    "DuelOutcome",
    "DuelPlan",
    "Params",
    "check_output_dir",
    "duel",
    "evaluate",
    "override_items",
    "players",
    "prepare_duel",
    "resolve_budget",
    "strategy_configs",
]
