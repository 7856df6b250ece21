"""The plugin registry: every optimizer, diagnostic and task, found through entry points.

Built-ins are declared in `pyproject.toml` exactly like third-party plugins, so there is one
discovery path. A plugin that fails to load is reported with its entry point's name instead of
breaking the whole catalogue.

A test, a notebook or a user's script can add a plugin without packaging it: `register(plugin)`
for the rest of the process, or `with registered(plugin): ...` for a block. Registration is per
process: the window trains in a spawned worker, which sees packaged plugins only.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any, Literal, overload

from descentlab.engine.plugin import DiagnosticPlugin, OptimizerPlugin, Plugin, TaskPlugin

Kind = Literal["optimizers", "diagnostics", "tasks"]
KINDS: tuple[Kind, ...] = ("optimizers", "diagnostics", "tasks")
_TYPES: dict[Kind, type[OptimizerPlugin] | type[DiagnosticPlugin] | type[TaskPlugin]] = {
    "optimizers": OptimizerPlugin,
    "diagnostics": DiagnosticPlugin,
    "tasks": TaskPlugin,
}
_REGISTERED: dict[Kind, dict[str, Plugin]] = {kind: {} for kind in KINDS}
"""Plugins added by `register`, by kind and id, apart from the entry points' cached catalogue."""


@functools.cache
def _load(kind: Kind) -> tuple[dict[str, Plugin], tuple[str, ...]]:
    plugins: dict[str, Plugin] = {}
    failures: list[str] = []
    for ep in entry_points(group=f"descentlab.{kind}"):
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken third-party plugin must not hide the others
            failures.append(f"{ep.name} ({ep.value}): {type(exc).__name__}: {exc}")
            continue
        items = loaded if isinstance(loaded, (list, tuple)) else [loaded]
        for item in items:
            if not isinstance(item, _TYPES[kind]):
                failures.append(f"{ep.name}: {item!r} is not a {_TYPES[kind].__name__}")
            elif item.id in plugins:
                failures.append(f"{ep.name}: id {item.id!r} is already registered")
            else:
                plugins[item.id] = item
    return plugins, tuple(failures)


@overload
def plugins(kind: Literal["optimizers"]) -> dict[str, OptimizerPlugin]: ...
@overload
def plugins(kind: Literal["diagnostics"]) -> dict[str, DiagnosticPlugin]: ...
@overload
def plugins(kind: Literal["tasks"]) -> dict[str, TaskPlugin]: ...
def plugins(kind: Kind) -> dict[str, Any]:
    """All plugins of a kind, by id, sorted by id."""
    found, _ = _load(kind)
    return dict(sorted({**found, **_REGISTERED[kind]}.items()))


def load_failures(kind: Kind) -> tuple[str, ...]:
    """Entry points of this kind that failed to load, one line each."""
    return _load(kind)[1]


def get(kind: Kind, plugin_id: str) -> Plugin:
    """The plugin with this id; KeyError with the known ids when there is none."""
    found = plugins(kind)
    if plugin_id not in found:
        raise KeyError(f"unknown {kind[:-1]} {plugin_id!r}; known: {', '.join(found)}")
    return found[plugin_id]


def kind_of(plugin: Plugin) -> Kind:
    """The kind a plugin object belongs to; TypeError for anything that is not a plugin."""
    for kind, cls in _TYPES.items():
        if isinstance(plugin, cls):
            return kind
    names = ", ".join(cls.__name__ for cls in _TYPES.values())
    raise TypeError(f"{plugin!r} is not a plugin; expected one of {names}")


def register(plugin: Plugin) -> None:
    """Add `plugin` to its kind's catalogue for the rest of this process, as if it were packaged.

    Raises:
        TypeError: `plugin` is not an OptimizerPlugin, DiagnosticPlugin or TaskPlugin.
        ValueError: its id is taken (by a packaged plugin or an earlier registration).
    """
    kind = kind_of(plugin)
    if plugin.id in plugins(kind):
        raise ValueError(f"{kind[:-1]} id {plugin.id!r} is already registered")
    _REGISTERED[kind][plugin.id] = plugin


def unregister(plugin: Plugin) -> None:
    """Remove a plugin that `register` added; packaged plugins cannot be removed.

    Raises:
        KeyError: `plugin` was not added by `register` (or was removed already).
    """
    kind = kind_of(plugin)
    if _REGISTERED[kind].get(plugin.id) is not plugin:
        raise KeyError(f"{kind[:-1]} {plugin.id!r} was not added by register()")
    del _REGISTERED[kind][plugin.id]


@contextmanager
def registered(*added: Plugin) -> Iterator[None]:
    """Register `added` for the duration of a `with` block, then remove them again."""
    done: list[Plugin] = []
    try:
        for plugin in added:
            register(plugin)
            done.append(plugin)
        yield
    finally:
        for plugin in reversed(done):
            unregister(plugin)
