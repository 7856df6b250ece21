"""Live hyperparameters: which parameter groups, and which key in them, a schema name sets.

A user names a hyperparameter as the optimizer's schema does (`lr`, `adamw_lr`, `momentum`); the
built optimizer keeps it in `param_groups`, under that key or under another. By default the
schema name `n` governs key `n` of every group that has it. A group that holds a setting under
another schema name says so with the tag `group[SCHEMA_NAMES] = {schema name: key}`: Muon's AdamW
group carries {"adamw_lr": "lr", "adamw_betas": "betas", ...}, so `adamw_lr` sets that group's `lr`
and `lr` leaves it alone (a key that a tag gives to another name is no longer governed by its
own); Riemannian groups map `manifold` to None, since the manifold is fixed when the optimizer is
built. The tag lives in the group dict itself, so it goes wherever the groups go: wrappers that
share their base's groups, `state_dict`, checkpoints and forks.

A change is recorded as a `hyper` event whose detail `describe` writes and `parse` reads back,
so that the window can show the value in force of every named rate from the session alone.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any

from descentlab.engine.params import Param, check_one

SCHEMA_NAMES = "schema_names"
"""Group tag: {schema name: key of this group} for keys set by a name other than their own;
a name mapped to None sets nothing in this group (a build-time choice kept in the group)."""

Target = tuple[int, str]
"""(group index, key) of one value a live edit sets."""

_NOT_SETTINGS = ("params", SCHEMA_NAMES)


def governed(groups: Sequence[dict[str, Any]], name: str) -> list[Target]:
    """The (group index, key) pairs that the schema hyperparameter `name` sets, in group order."""
    targets: list[Target] = []
    for index, group in enumerate(groups):
        aliases: dict[str, str | None] = group.get(SCHEMA_NAMES, {})
        if name in aliases:
            key = aliases[name]
            if key is not None and key in group:
                targets.append((index, key))
        elif name in group and name not in aliases.values() and name not in _NOT_SETTINGS:
            targets.append((index, name))
    return targets


def live_names(groups: Sequence[dict[str, Any]], schema: Sequence[Param]) -> list[str]:
    """The schema's names that set something in `groups`, in schema order."""
    return [p.name for p in schema if governed(groups, p.name)]


def rate_names(schema: Sequence[Param]) -> list[str]:
    """The learning rates a schema names: its float parameters called `lr` or `<part>_lr`
    (`adamw_lr`, `embedding_lr`, ...), in schema order."""
    return [
        p.name for p in schema if p.type == "float" and (p.name == "lr" or p.name.endswith("_lr"))
    ]


def check_live(p: Param, value: Any) -> Any:
    """`value` as the schema admits it (`params.check_one`); a live value must also be set,
    since "unset" means "the optimizer's default" only when it is built."""
    if value is None:
        raise ValueError(f"{p.name}: a value is required for a live change; allowed: {p.allowed()}")
    return check_one(p, value)


def describe(name: str, old: Any, new: Any, groups: Sequence[int], total: int) -> str:
    """The detail of a `hyper` event: `lr: 0.02 -> 0.01`, followed by ` (group 1 of 2)` or
    ` (groups 0, 2 of 3)` when the name governs only some of the optimizer's groups."""
    text = f"{name}: {old!r} -> {new!r}"
    if len(groups) < total:
        plural = "s" if len(groups) > 1 else ""
        text += f" (group{plural} {', '.join(str(g) for g in groups)} of {total})"
    return text


_DETAIL = re.compile(r"^(?P<name>\w+): .* -> (?P<new>.*?)(?: \(groups? [\d, ]+ of \d+\))?$")


def parse(detail: str) -> tuple[str, Any] | None:
    """(name, new value) of a `hyper` event's detail written by `describe`; None for any other
    text (events written by older versions included)."""
    found = _DETAIL.match(detail)
    if found is None:
        return None
    try:
        return found["name"], ast.literal_eval(found["new"])
    except (ValueError, SyntaxError):
        return None
