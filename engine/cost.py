"""A rough cost model of diagnostics: the extra time per training step their schedules add.

Only a diagnostic's declared cost class is known before running (a Hessian record costs tens of
Hessian-vector products, a norm record a few reductions), so the estimate is order-of-magnitude
and labelled as such wherever it is shown.
"""

from __future__ import annotations

from collections.abc import Iterable

from descentlab.engine.plugin import DiagnosticPlugin

COST_STEPS: dict[str, float] = {"free": 0.0, "cheap": 1.0, "heavy": 50.0}
"""Rough price of one record of a diagnostic, in training steps, by its declared cost class."""


def estimate_overhead(
    enabled: Iterable[tuple[DiagnosticPlugin, int]],
) -> tuple[float, list[tuple[str, int, float]]]:
    """Estimated extra time per training step of the enabled diagnostics, as a fraction.

    Each (plugin, every) costs `COST_STEPS[plugin.cost] / every`; returns the total and the
    (id, every, share) parts, largest first, so the label can name what is expensive.
    """
    parts = [(p.id, every, COST_STEPS.get(p.cost, 1.0) / every) for p, every in enabled]
    parts.sort(key=lambda part: -part[2])
    return sum(part[2] for part in parts), parts


def describe_overhead(total: float, parts: list[tuple[str, int, float]]) -> str:
    """One line for the cost label, e.g. 'Estimate: diagnostics add ≈ +126% time per step
    (hessian every 50: +100%, …)'."""
    if not parts:
        return "Estimate: no diagnostics enabled, no overhead."
    detail = ", ".join(f"{i} every {every}: +{_percent(share)}" for i, every, share in parts)
    return f"Estimate: diagnostics add ≈ +{_percent(total)} time per step ({detail})"


def _percent(fraction: float) -> str:
    percent = 100 * fraction
    if percent == 0:
        return "0%"
    return f"{percent:.0f}%" if percent >= 1 else "<1%"
