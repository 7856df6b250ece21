"""The plugin registry: every optimizer, diagnostic and task, found through entry points.

Built-ins are declared in `pyproject.toml` exactly like third-party plugins, so there is one
discovery path. A plugin that fails to load is reported with its entry point's name instead of
breaking the whole catalogue.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points
from typing import Literal, overload

from descentlab.engine.plugin import DiagnosticPlugin, OptimizerPlugin, Plugin, TaskPlugin

Kind = Literal["optimizers", "diagnostics", "tasks"]
KINDS: tuple[Kind, ...] = ("optimizers", "diagnostics", "tasks")
_TYPES = {"optimizers": OptimizerPlugin, "diagnostics": DiagnosticPlugin, "tasks": TaskPlugin}


class PluginLoadError(RuntimeError):
    """An entry point that could not be imported or does not hold plugins of its group."""


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
def plugins(kind: Kind) -> dict[str, Plugin]:
    """All plugins of a kind, by id, sorted by id."""
    found, _ = _load(kind)
    return dict(sorted(found.items()))


def load_failures(kind: Kind) -> tuple[str, ...]:
    """Entry points of this kind that failed to load, one line each."""
    return _load(kind)[1]


def get(kind: Kind, plugin_id: str) -> Plugin:
    """The plugin with this id; KeyError with the known ids when there is none."""
    found = plugins(kind)
    if plugin_id not in found:
        raise KeyError(f"unknown {kind[:-1]} {plugin_id!r}; known: {', '.join(found)}")
    return found[plugin_id]
