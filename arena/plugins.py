"""Plugins: attacks, defenses, model architectures and datasets from outside Arena.

Two ways in (docs/extending.md):

- **Installed packages** declare entry points in the groups of :data:`GROUPS`
  (``arena.attacks``, ``arena.defenses``, ``arena.models``, ``arena.datasets``); each entry
  point names an :class:`~strategies.attacks.Attack` or :class:`~strategies.defenses.Defense`
  subclass, a :class:`~arena.models.ModelSpec` or a model builder, a
  :class:`~arena.data.DatasetSpec` or a dataset loader. They join every command (an installed
  plugin is one the user means to play), unless ``ARENA_NO_INSTALLED_PLUGINS=1``.
- **A module or a ``.py`` file** named with ``--plugin`` (repeatable) or in ``ARENA_PLUGINS``
  (separated by ``os.pathsep``), which registers its strategies when imported
  (``register_attack``, ``register_defense``, ``register_model``, ``register_dataset``). A file
  is imported under its stem as module name, so that what it defines pickles by reference and
  Ray's workers import the same module: :func:`runtime_env` ships the files and modules to every
  worker (Ray's ``py_modules``) and names them in ``ARENA_PLUGINS``, which
  :func:`arena.cell.runner.prepare_worker` loads.

Nothing is imported because a file or a storage names it: a model file's header that names an
architecture no loaded plugin registers is refused (:mod:`arena.core.model_files`).

A plugin that fails to import, registers a name already taken, or declares a search range that
is empty is refused whole (whatever it registered before the fault is taken back), with one line
that names the plugin and the problem; the built-in catalog and the other plugins keep working.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from arena.core.config import searchable_fields
from arena.data import DATASETS, DatasetSpec, register_dataset
from arena.models import MODELS, ModelSpec, register_model
from strategies import ATTACKS, DEFENSES
from strategies.attacks import Attack
from strategies.defenses import Defense
from strategies.registry import register_attack, register_defense

log = logging.getLogger(__name__)

GROUPS = {
    "arena.attacks": "attack",
    "arena.defenses": "defense",
    "arena.models": "model",
    "arena.datasets": "dataset",
}
"""Entry-point group -> the kind of thing its entry points register."""

ENV = "ARENA_PLUGINS"
"""Modules and ``.py`` files to load, separated by ``os.pathsep`` (as ``--plugin`` each)."""
NO_INSTALLED = "ARENA_NO_INSTALLED_PLUGINS"
"""Set to 1 to leave installed plugins (entry points) out: the built-in catalog only, plus
what ``--plugin`` names. Arena's own test suite runs so."""

BUILT_IN = "built-in"

__all__ = [
    "GROUPS",
    "Plugin",
    "PluginError",
    "isolated",
    "load_plugins",
    "origin",
    "register_attack",
    "register_dataset",
    "register_defense",
    "register_model",
]


class PluginError(ValueError):
    """A plugin Arena refuses (one line: the plugin and the problem)."""


@dataclass
class Plugin:
    """One loaded (or refused) plugin: where it came from, the module it was imported as, what
    it registered (``kind:name``) and, if it was refused, why."""

    source: str  # a file's path, a module's name, or the distribution ("name version")
    kind: Literal["file", "module", "installed"]
    module: str | None = None
    registered: list[str] = field(default_factory=list)
    error: str | None = None
    path: str | None = None  # a file plugin's path, shipped to Ray's workers

    @property
    def origin(self) -> str:
        """What ``arena list`` shows: ``file x.py``, ``module m``, ``dist 1.0``."""
        if self.kind == "file":
            return f"file {Path(self.source).name}"
        return f"module {self.source}" if self.kind == "module" else self.source

    @property
    def shipped(self) -> bool:
        """A ``--plugin`` file or module that loaded: Ray's workers get it from the task."""
        return self.error is None and self.kind != "installed"


@dataclass
class _State:
    origins: dict[tuple[str, str], str] = field(default_factory=dict)
    plugins: dict[str, Plugin] = field(default_factory=dict)  # by source
    installed: bool = False  # entry points read


_STATE = _State()


def tables() -> dict[str, dict[str, Any]]:
    """The four registries by kind."""
    return {"attack": ATTACKS, "defense": DEFENSES, "model": MODELS, "dataset": DATASETS}


def origin(kind: str, name: str) -> str:
    """Where the ``kind`` (attack, defense, model, dataset) named ``name`` comes from:
    ``built-in`` or the plugin that registered it."""
    return _STATE.origins.get((kind, name), BUILT_IN)


def is_builtin(kind: str, name: str) -> bool:
    return (kind, name) not in _STATE.origins


def specs_from_env() -> list[str]:
    """The plugins :data:`ENV` names."""
    return [s for s in os.environ.get(ENV, "").split(os.pathsep) if s.strip()]


def load_plugins(
    specs: Iterable[str] = (), *, installed: bool | None = None, strict: bool = False
) -> list[Plugin]:
    """Load the installed plugins (once; unless ``installed`` is False or
    :data:`NO_INSTALLED` is set), then each module or ``.py`` file of ``specs`` and of
    :data:`ENV` not loaded yet. A refused plugin is logged in one line (or, with ``strict``,
    raised as :class:`PluginError`). Returns the plugins met in this call."""
    if installed is None:
        installed = os.environ.get(NO_INSTALLED, "") in ("", "0")
    met: list[Plugin] = []
    if installed and not _STATE.installed:
        _STATE.installed = True
        met += _load_installed()
    for spec in [*specs, *specs_from_env()]:
        key = source_key(spec)
        if key in _STATE.plugins:
            continue
        met.append(_load_spec(spec, key))
    for plugin in met:
        if plugin.error:
            if strict:
                raise PluginError(plugin.error)
            log.warning("%s; it is skipped", plugin.error)
    return met


def source_key(spec: str) -> str:
    """A ``--plugin`` as this process knows it: a file by its absolute path (which any
    working folder, and the processes a command starts, read the same), a module by name."""
    return str(Path(spec).resolve()) if _is_file(spec) else spec


def _is_file(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec or "/" in spec


def _load_spec(spec: str, key: str) -> Plugin:
    if _is_file(spec):
        path = Path(spec)
        plugin = Plugin(key, "file", path=key)
        _STATE.plugins[key] = plugin
        with _guard(plugin):
            if path.is_file():
                plugin.module = _import_file(path)
            elif path.suffix == ".py" and importlib.util.find_spec(path.stem) is not None:
                # a node that does not share the driver's files: Ray's py_modules brought it
                plugin.module = importlib.import_module(path.stem).__name__
            else:
                raise PluginError(f"no such file {spec}; give --plugin a .py file or a module")
        return plugin
    plugin = Plugin(spec, "module", module=spec)
    _STATE.plugins[key] = plugin
    with _guard(plugin):
        _reach_from_working_folder(spec)
        module = importlib.import_module(spec)
        plugin.path = getattr(module, "__file__", None)
    return plugin


def _reach_from_working_folder(module: str) -> None:
    """Let a module of the working folder be named by ``--plugin``, as ``python -m`` would
    (the ``arena`` command does not put that folder on the path): it goes last on the path, so
    it shadows no installed module."""
    top = module.partition(".")[0]
    here = os.getcwd()
    if top and top not in sys.modules and here not in sys.path:
        with contextlib.suppress(ImportError, ValueError):
            if importlib.util.find_spec(top) is None and (
                (Path(here) / f"{top}.py").is_file() or (Path(here) / top).is_dir()
            ):
                sys.path.append(here)


def _import_file(path: Path) -> str:
    """Import the file ``path`` under its stem as module name; that name."""
    name = path.stem
    if not name.isidentifier():
        raise PluginError(f"its name {name!r} is not a Python module name; rename the file")
    taken = sys.modules.get(name)
    if taken is not None:
        if Path(getattr(taken, "__file__", "") or "").resolve() == path.resolve():
            return name  # the same file, imported already (a Ray worker unpickling its classes)
        raise PluginError(f"module name {name!r} is taken by {taken!r}; rename the file")
    found = importlib.util.find_spec(name)
    if found is not None and found.origin and Path(found.origin).resolve() != path.resolve():
        # Ray's workers import the file by this name, so it must not be another module's
        raise PluginError(f"module name {name!r} is taken by {found.origin}; rename the file")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError("it cannot be imported as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: dataclasses and pickle look it up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return name


def _load_installed() -> list[Plugin]:
    """Every entry point of :data:`GROUPS`, one :class:`Plugin` per distribution."""
    by_dist: dict[str, list[importlib.metadata.EntryPoint]] = {}
    for group in GROUPS:
        for ep in importlib.metadata.entry_points(group=group):
            dist = ep.dist
            label = f"{dist.name} {dist.version}" if dist is not None else ep.value
            by_dist.setdefault(label, []).append(ep)
    out = []
    for label, eps in by_dist.items():
        plugin = Plugin(label, "installed", module=eps[0].module)
        _STATE.plugins[label] = plugin
        with _guard(plugin):
            for ep in eps:
                _register_entry_point(ep)
        out.append(plugin)
    return out


def _register_entry_point(ep: importlib.metadata.EntryPoint) -> None:
    kind = GROUPS[ep.group]
    try:
        obj = ep.load()
    except Exception as e:
        raise PluginError(f"entry point {ep.name} = {ep.value}: {_reason(e)}") from e
    if kind in ("attack", "defense"):
        base = Attack if kind == "attack" else Defense
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise PluginError(
                f"entry point {ep.name} = {ep.value} in {ep.group} is not a subclass of "
                f"{base.__module__}.{base.__name__}"
            )
        if obj.name != ep.name:
            raise PluginError(
                f"entry point {ep.name} = {ep.value} names a class whose name is {obj.name!r}; "
                "give the entry point the class's name"
            )
        table, register = (
            (ATTACKS, register_attack) if kind == "attack" else (DEFENSES, register_defense)
        )
        if table.get(obj.name) is not obj:  # the module may register it itself on import
            register(obj)
    elif kind == "model":
        spec = obj if isinstance(obj, ModelSpec) else ModelSpec(ep.name, obj, _summary(obj))
        there = MODELS.get(spec.name)
        if there is None or there.build is not spec.build:  # not registered by its own module
            register_model(spec)
    else:
        data = (
            obj
            if isinstance(obj, DatasetSpec)
            else DatasetSpec(ep.name, obj, _summary(obj), bool(getattr(obj, "needs_path", False)))
        )
        found = DATASETS.get(data.name)
        if found is None or found.loader is not data.loader:
            register_dataset(data)


def _summary(obj: Callable[..., Any]) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else f"{getattr(obj, '__module__', '?')} (a plugin)"


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _snapshot() -> dict[str, dict[str, Any]]:
    """A copy of the four registries (:func:`tables`)."""
    return {kind: dict(table) for kind, table in tables().items()}


def _restore(saved: dict[str, dict[str, Any]]) -> None:
    """The registries as :func:`_snapshot` saw them, in place (other modules hold them)."""
    for kind, table in tables().items():
        table.clear()
        table.update(saved[kind])


@contextlib.contextmanager
def _guard(plugin: Plugin) -> Iterator[None]:
    """Run a plugin's import: what it registers is checked and credited to it; on any fault,
    its registrations are taken back and ``plugin.error`` says why in one line."""
    before = _snapshot()
    try:
        yield
        added = {
            kind: [n for n in table if n not in before[kind]] for kind, table in tables().items()
        }
        for kind in ("attack", "defense"):
            for name in added[kind]:
                check_ranges(tables()[kind][name], f"{kind} {name!r}")
    except Exception as e:  # noqa: BLE001 - a plugin's fault must not stop Arena
        _restore(before)
        reason = str(e) if isinstance(e, PluginError) else _reason(e)
        if isinstance(e, ValueError) and "registered twice" in str(e):
            reason = f"{e}; a built-in or another plugin has that name, rename it"
        plugin.error = f"plugin {plugin.source}: {reason}"
        return
    except BaseException:
        _restore(before)
        raise
    for kind, names in added.items():
        for name in names:
            _STATE.origins[(kind, name)] = plugin.origin
            plugin.registered.append(f"{kind}:{name}")


def check_ranges(cls: Any, what: str) -> None:
    """Refuse a strategy whose config declares a search range with nothing in it."""
    for f, rng in searchable_fields(cls.config_cls):
        if rng.empty():
            raise PluginError(
                f"{what}: the search range of {f.name} is empty (low {rng.low} > high "
                f"{rng.high}); give param(low, high) with low <= high"
            )


def runtime_env() -> dict[str, Any] | None:
    """What a Ray task's worker needs to load this process's ``--plugin`` modules and files:
    :data:`ENV` naming them, and their folders at the end of ``PYTHONPATH``, so that a worker
    that unpickles a plugin's config (pickled by reference, by module name) imports the same
    module, whose registrations run as it is imported; ``None`` if there are none. A file's
    folder is reached from a node that is this machine or shares its file system; for other
    nodes, :func:`job_runtime_env` (passed to ``ray.init``) ships the files. Installed plugins
    are not shipped: they must be installed on every node
    (:func:`arena.cell.runner.check_plugins`)."""
    shipped = _shipped()
    if not shipped:
        return None
    specs, folders = [], []
    for p in shipped:
        specs.append(str(p.path) if p.kind == "file" else str(p.module))
        where = p.path if p.kind == "file" else _top_folder(p)
        if where:
            folders.append(str(Path(where).parent))
    path = [s for s in os.environ.get("PYTHONPATH", "").split(os.pathsep) if s]
    path += [f for f in dict.fromkeys(folders) if f not in path]
    return {"env_vars": {ENV: os.pathsep.join(specs), "PYTHONPATH": os.pathsep.join(path)}}


def _top_folder(plugin: Plugin) -> str | None:
    """The folder holding a module plugin's top package (``None``: installed, found anyway)."""
    assert plugin.module is not None
    top = sys.modules[plugin.module.partition(".")[0]]
    if _installed(top):
        return None
    where = getattr(top, "__file__", None)
    if where is None:
        return None
    return str(Path(where).parent) if Path(where).name == "__init__.py" else where


def job_runtime_env() -> dict[str, Any]:
    """What ``ray.init`` of a driver that joins a cluster gets (:func:`runtime_env` plus Ray's
    ``py_modules`` with the plugin files and the modules not installed here), so that nodes
    that do not share this machine's files import them by module name; ``{}`` without
    plugins."""
    env = runtime_env()
    if env is None:
        return {}
    modules: list[Any] = []
    for p in _shipped():
        if p.kind == "file":
            modules.append(p.path)
        else:
            assert p.module is not None
            top = sys.modules[p.module.partition(".")[0]]
            if not _installed(top):
                modules.append(top)
    return {**env, "py_modules": modules} if modules else env


def _shipped() -> list[Plugin]:
    return [p for p in _STATE.plugins.values() if p.shipped]


def _installed(module: Any) -> bool:
    """Whether ``module`` lives in site-packages (every node has it the same way)."""
    where = str(getattr(module, "__file__", "") or "")
    return "site-packages" in where or "dist-packages" in where


def installed_distributions() -> list[str]:
    """The distributions (``name version``) whose entry points this process loaded."""
    return [p.source for p in _STATE.plugins.values() if p.error is None and not p.shipped]


def missing(wanted: Iterable[str]) -> list[str]:
    """Of the distributions ``wanted`` (``name version``), those not installed here (run on
    each node of a cluster: :func:`arena.cell.runner.check_plugins`)."""
    have = {f"{d.metadata['Name']} {d.version}" for d in importlib.metadata.distributions()}
    return [w for w in wanted if w not in have]


@contextlib.contextmanager
def isolated() -> Iterator[None]:
    """Within the body, loading plugins changes nothing outside it: the registries and this
    module's state are restored on the way out (tests; a notebook trying a plugin)."""
    global _STATE
    saved = _snapshot()
    state = _STATE
    inner = _State(dict(state.origins), dict(state.plugins), state.installed)
    modules = set(sys.modules)
    _STATE = inner
    try:
        yield
    finally:
        _restore(saved)
        _STATE = state
        for p in inner.plugins.values():  # so that the same file can be loaded afresh
            if p.module and p.module not in modules:
                sys.modules.pop(p.module, None)
