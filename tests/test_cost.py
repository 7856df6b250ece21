"""The diagnostics' cost model (engine.cost), without Qt: shares per step in closed form."""

from __future__ import annotations

from types import SimpleNamespace

from descentlab.engine.cost import COST_STEPS, describe_overhead, estimate_overhead


def _plugin(plugin_id: str, cost: str) -> SimpleNamespace:
    return SimpleNamespace(id=plugin_id, cost=cost)  # what the estimate reads of a plugin


def test_each_diagnostic_costs_its_class_price_over_its_schedule() -> None:
    enabled = [(_plugin("norms", "cheap"), 10), (_plugin("hessian", "heavy"), 50)]
    total, parts = estimate_overhead(enabled)  # type: ignore[arg-type]
    assert COST_STEPS == {"free": 0.0, "cheap": 1.0, "heavy": 50.0}
    assert parts == [("hessian", 50, 1.0), ("norms", 10, 0.1)]  # largest first
    assert total == 1.1
    assert describe_overhead(total, parts) == (
        "Estimate: diagnostics add ≈ +110% time per step "
        "(hessian every 50: +100%, norms every 10: +10%)"
    )


def test_free_unknown_and_no_diagnostics() -> None:
    enabled = [(_plugin("eval", "free"), 1), (_plugin("mystery", "exotic"), 1000)]
    total, parts = estimate_overhead(enabled)  # type: ignore[arg-type]
    assert parts == [("mystery", 1000, 0.001), ("eval", 1, 0.0)]  # unknown class: cheap
    assert describe_overhead(total, parts) == (
        "Estimate: diagnostics add ≈ +<1% time per step "
        "(mystery every 1000: +<1%, eval every 1: +0%)"
    )
    assert describe_overhead(*estimate_overhead([])) == (
        "Estimate: no diagnostics enabled, no overhead."
    )
