"""Arena: an adaptive-attack game solver for neural-network backdoors (docs/architecture.md).

The Python API (docs/python-api.md) is here, loaded on first use: ``arena.evaluate`` scores
one cell of the game and ``arena.duel`` solves it, returning an ``arena.Cell`` and an
``arena.DuelOutcome`` (all four from :mod:`arena.api`). ``import arena`` itself imports
nothing, so importing the core (``arena.core``, ``arena.data``, ...) never imports the layers
above it.
"""

__all__ = ["Cell", "DuelOutcome", "duel", "evaluate"]


# No return annotation: this file imports nothing but arena.api, and only in here (PEP 562), so
# ``typing.Any`` is not at hand; an unannotated return is ``Any`` to mypy all the same.
def __getattr__(name: str):
    """``arena.evaluate``, ``arena.duel`` and the result types, imported from :mod:`arena.api`
    the first time one is looked up, and kept in the package from then on."""
    if name not in __all__:
        raise AttributeError(f"module 'arena' has no attribute {name!r}")
    from arena.api import Cell, DuelOutcome, duel, evaluate

    found = {"Cell": Cell, "DuelOutcome": DuelOutcome, "duel": duel, "evaluate": evaluate}
    globals().update(found)
    return found[name]


def __dir__() -> list[str]:
    """The package's names, the lazy ones of :data:`__all__` included."""
    return sorted({*globals(), *__all__})
