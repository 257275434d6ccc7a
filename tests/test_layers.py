"""The layers of the house (docs/architecture.md), read from the imports.

Every module of ``arena``, ``strategies`` and ``studies`` is parsed with :mod:`ast`; each import
it makes, at module level or inside a function, must name a module of its own layer or of a
layer below. Within the project, the graph of imports (deferred ones included) has no circle:
a deferred import that dodges a circle is a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("arena", "strategies", "studies")

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("package", ("arena",)),
    ("core", ("arena.core", "arena.data", "arena.models", "arena.game")),
    ("strategies", ("strategies",)),
    ("plugins", ("arena.plugins",)),
    ("cell", ("arena.cell",)),
    ("studies", ("studies",)),
    ("testing", ("arena.testing",)),
    ("duel", ("arena.duels",)),
    ("presentation", ("arena.report",)),
    ("api", ("arena.api",)),
    ("cli", ("arena.cli", "arena.__main__")),
)
"""Bottom to top. ``arena`` alone is its package's ``__init__``, which imports nothing when it
is imported, so that importing the core never imports the stack above it."""

LAZY = {("arena", "arena.api")}
"""``(module, target)`` imports allowed upward: the package's ``__getattr__`` imports the Python
API the first time ``arena.evaluate`` or ``arena.duel`` is looked up, never on ``import arena``."""

ONLY_ITSELF = {"arena"}
"""Prefixes that place only the module of that name, not what lies under it."""


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the project module it names
    line: int

    def __str__(self) -> str:
        return f"{self.module} (line {self.line}) imports {self.target}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path) -> dict[str, Path]:
    """``{dotted name: file}`` for every module of the project's packages under ``root``."""
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            out[module_name(path, root)] = path
    return out


def layer_of(module: str) -> int | None:
    """The index in :data:`LAYERS` of the longest prefix that ``module`` falls under."""
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            below = module.startswith(prefix + ".") and prefix not in ONLY_ITSELF
            if (module == prefix or below) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def imports(module: str, path: Path, known: set[str]) -> Iterator[Import]:
    """The project modules that ``module`` imports anywhere in its file (relative imports
    resolved; ``from package import submodule`` names the submodule)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([base] if base else []))
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield Import(module, name, node.lineno)


def upward_imports(root: Path) -> list[str]:
    """Every import of a module from a layer above its own, and every module in no layer."""
    modules = project_modules(root)
    problems = []
    for module, path in modules.items():
        own = layer_of(module)
        if own is None:
            problems.append(f"{module} belongs to no layer; place it in LAYERS")
            continue
        for imp in imports(module, path, set(modules)):
            theirs = layer_of(imp.target)
            if (module, imp.target) in LAZY:
                continue
            if theirs is not None and theirs > own:
                problems.append(
                    f"{imp}: the {LAYERS[own][0]} layer may not import the {LAYERS[theirs][0]} "
                    "layer above it"
                )
    return problems


def import_cycles(root: Path) -> list[list[str]]:
    """Circles in the project's import graph, deferred imports included (each once)."""
    modules = project_modules(root)
    graph = {
        m: sorted({i.target for i in imports(m, p, set(modules)) if i.target != m})
        for m, p in modules.items()
    }
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    cycles.append([*cycle, nxt])
            elif nxt in graph and state.get(nxt) is None:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in graph:
        if state.get(node) is None:
            visit(node)
    return cycles


def test_every_import_goes_down_the_layers() -> None:
    problems = upward_imports(ROOT)
    assert not problems, "imports that go up a layer:\n" + "\n".join(problems)


def test_no_import_circle_even_through_deferred_imports() -> None:
    cycles = import_cycles(ROOT)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_arena_package_imports_nothing_until_the_api_is_asked_for() -> None:
    tree = ast.parse((ROOT / "arena" / "__init__.py").read_text())
    lazy = [
        n
        for f in tree.body
        if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
        for n in ast.walk(f)
        if isinstance(n, ast.Import | ast.ImportFrom)
    ]
    every = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert every == lazy, "arena/__init__.py imports only inside __getattr__"
    assert all(isinstance(n, ast.ImportFrom) and n.module == "arena.api" for n in lazy)


# the test of the test: a small tree with deliberate faults


def _tree(root: Path, files: dict[str, str]) -> Path:
    for package in PACKAGES:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(text)
    return root


def test_the_layer_check_names_an_upward_import_inside_a_function(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "arena/core/cache.py": "import json\n\ndef f():\n    from arena.cli.app import main\n",
            "arena/cli/app.py": "from arena.core import cache\nmain = None\n",
            "strategies/players.py": "from studies.spaces import X\n",
            "studies/spaces.py": "from strategies import players\nX = 1\n",
        },
    )
    problems = upward_imports(root)
    assert len(problems) == 2
    assert any(
        p.startswith("arena.core.cache (line 4) imports arena.cli.app: the core layer")
        for p in problems
    )
    assert any("strategies.players (line 1) imports studies.spaces" in p for p in problems)


def test_the_layer_check_resolves_relative_imports_and_flags_unplaced_modules(
    tmp_path: Path,
) -> None:
    root = _tree(
        tmp_path,
        {
            "arena/cell/play.py": "from ..duels import run\n",
            "arena/duels/run.py": "",
            "arena/stray.py": "",
        },
    )
    problems = upward_imports(root)
    assert any("arena.cell.play (line 1) imports arena.duels.run" in p for p in problems)
    assert any(p.startswith("arena.stray belongs to no layer") for p in problems)


def test_the_cycle_check_sees_a_circle_hidden_by_a_deferred_import(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "studies/oracle.py": "def tune():\n    from studies.progress import P\n",
            "studies/progress.py": "from studies.oracle import tune\nP = 1\n",
        },
    )
    assert import_cycles(root) == [["studies.oracle", "studies.progress", "studies.oracle"]]
    assert upward_imports(root) == []  # one layer: only the circle is wrong


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("arena", "package"),
        ("arena.core.train", "core"),
        ("arena.game.solver", "core"),
        ("strategies.players", "strategies"),
        ("arena.plugins", "plugins"),
        ("arena.testing", "testing"),
        ("arena.api", "api"),
        ("arena.cell.runner", "cell"),
        ("studies.oracle", "studies"),
        ("arena.duels.run", "duel"),
        ("arena.report.duel", "presentation"),
        ("arena.cli.app", "cli"),
        ("arena.__main__", "cli"),
    ],
)
def test_modules_fall_in_their_layers(module: str, layer: str) -> None:
    index = layer_of(module)
    assert index is not None and LAYERS[index][0] == layer
