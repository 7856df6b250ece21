"""Parameter schemas: what a plugin accepts, and the checks that turn user input into values.

One schema serves three readers: the spec validator (errors name the field, the bad value and
what is allowed), the GUI (forms, sliders, log scales) and `descentlab list` (help text). Live
edits (the window's dialog and run table, the engine's `SetHyper`) use the same `check_value`
through `check_one`, so a value is admissible in one place exactly when it is in all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

ParamType = Literal["float", "int", "bool", "str", "choice", "floats", "ints"]


@dataclass(frozen=True)
class Param:
    """One hyperparameter of a plugin.

    `floats`/`ints` are lists (e.g. Adam's betas, an MLP's hidden widths); `length` fixes their
    size when the plugin needs exactly that many. `low`/`high` bound every number, inclusive.
    `nullable` admits the TOML-less "not set" value None, written as an omitted key.
    """

    name: str
    type: ParamType
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[str, ...] = ()
    length: int | None = None
    nullable: bool = False

    def allowed(self) -> str:
        """Human description of the admissible values, used in error messages and listings."""
        if self.type == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.type == "bool":
            return "true or false"
        if self.type == "str":
            return "a string"
        kind = "integer" if self.type in ("int", "ints") else "number"
        bounds = _bounds_text(self.low, self.high)
        if self.type in ("floats", "ints"):
            size = f"{self.length} " if self.length is not None else ""
            return f"a list of {size}{kind}s{' each ' + bounds if bounds else ''}"
        article = "an" if kind == "integer" else "a"
        return f"{article} {kind}{' ' + bounds if bounds else ''}"


def _bounds_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"in [{low:g}, {high:g}]"
    if low is not None:
        return f">= {low:g}"
    if high is not None:
        return f"<= {high:g}"
    return ""


@dataclass
class Problems:
    """Collects every error in a spec so the user sees all of them at once."""

    items: list[str] = field(default_factory=list)

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def __bool__(self) -> bool:
        return bool(self.items)


def _number(p: Param, where: str, value: Any, problems: Problems, integer: bool) -> Any:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        problems.add(where, f"{value!r} is not {p.allowed()}")
        return None
    if not integer and not math.isfinite(value):
        problems.add(where, f"{value!r} is not finite; allowed: {p.allowed()}")
        return None
    if (p.low is not None and value < p.low) or (p.high is not None and value > p.high):
        problems.add(where, f"{value!r} is out of range; allowed: {p.allowed()}")
        return None
    return int(value) if integer else float(value)


def check_value(p: Param, where: str, value: Any, problems: Problems) -> Any:
    """Return `value` converted to the parameter's type, or record why it is not admissible."""
    if value is None:
        if p.nullable:
            return None
        problems.add(where, f"a value is required; allowed: {p.allowed()}")
        return None
    if p.type in ("float", "int"):
        return _number(p, where, value, problems, integer=p.type == "int")
    if p.type == "bool":
        if not isinstance(value, bool):
            problems.add(where, f"{value!r} is not true or false")
            return None
        return value
    if p.type == "str":
        if not isinstance(value, str):
            problems.add(where, f"{value!r} is not a string")
            return None
        return value
    if p.type == "choice":
        if value not in p.choices:
            problems.add(where, f"{value!r} is not allowed; allowed: {p.allowed()}")
            return None
        return value
    # floats / ints
    if not isinstance(value, (list, tuple)):
        problems.add(where, f"{value!r} is not {p.allowed()}")
        return None
    if p.length is not None and len(value) != p.length:
        problems.add(where, f"{list(value)!r} has {len(value)} items; allowed: {p.allowed()}")
        return None
    before = len(problems.items)
    out = [_number(p, f"{where}[{i}]", v, problems, p.type == "ints") for i, v in enumerate(value)]
    return None if len(problems.items) > before else out


def check_one(p: Param, value: Any) -> Any:
    """`value` converted to `p`'s type, or ValueError naming the parameter, the value and what
    is allowed: the spec validator's own check, for callers that judge one value at a time (a
    live edit in the window or the engine's `SetHyper`), so they refuse exactly what a spec does.
    """
    problems = Problems()
    checked = check_value(p, p.name, value, problems)
    if problems:
        raise ValueError("; ".join(problems.items))
    return checked


def check_params(
    schema: tuple[Param, ...], values: dict[str, Any], where: str, problems: Problems
) -> dict[str, Any]:
    """Validate a plugin's parameter table against its schema, filling in defaults.

    Unknown keys are errors (a typo such as `betas1` must not be silently ignored).
    """
    by_name = {p.name: p for p in schema}
    for key in values:
        if key not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            problems.add(f"{where}.{key}", f"unknown parameter; known parameters: {known}")
    out: dict[str, Any] = {}
    for p in schema:
        if p.name in values:
            out[p.name] = check_value(p, f"{where}.{p.name}", values[p.name], problems)
        else:  # lists, not tuples: a default and a typed value must compare equal
            out[p.name] = list(p.default) if isinstance(p.default, tuple) else p.default
    return out


def defaults(schema: tuple[Param, ...]) -> dict[str, Any]:
    """The parameter table a plugin gets when the user sets nothing."""
    return {p.name: p.default for p in schema}
