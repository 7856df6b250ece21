"""Conformance of every optimizer in the catalogue, whichever library or file it comes from.

Each check of `CONFORMANCE_CHECKS` runs for every registered optimizer. An optimizer that cannot
meet a check says why in its descriptor (`exempt`); the check then runs anyway and must fail
(strict xfail), so an exemption that has become untrue is reported instead of hiding a pass, and
`pytest -rx` lists every exemption with its reason. Nothing is skipped silently.

The problems are small on purpose (a 3-class logistic regression on 96 points, a 12-dimensional
quadratic) so that the whole catalogue runs in well under a minute on two cores.
"""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from descentlab.engine.catalogue import markdown
from descentlab.engine.memory import MemorySink
from descentlab.engine.params import defaults
from descentlab.engine.plugin import CONFORMANCE_CHECKS, FAMILIES, OptimizerPlugin, Role
from descentlab.engine.registry import load_failures, plugins
from descentlab.engine.runner import Runner
from descentlab.engine.spec import parse_spec
from descentlab.engine.stepping import build_optimizer, take_step

OPTIMIZERS = plugins("optimizers")
STEPS = 50
QUADRATIC = {"id": "quadratic", "dim": 12, "condition": 10.0}


# -- problems -----------------------------------------------------------------------------------


class Problem:
    """A model with its full-batch loss, built in a given dtype from a fixed seed."""

    def __init__(self, kind: str, dtype: torch.dtype = torch.float32) -> None:
        self.kind = kind
        generator = torch.Generator().manual_seed(0)
        if kind == "logistic":
            inputs = torch.randn(96, 8, generator=generator, dtype=torch.float64)
            weights = torch.randn(8, 3, generator=generator, dtype=torch.float64)
            self.batch = (inputs.to(dtype), (inputs @ weights).argmax(dim=1))
            torch.manual_seed(0)
            self.model: nn.Module = nn.Sequential(nn.Linear(8, 3)).to(dtype)
            # The single matrix plays the hidden role, so that Muon-type optimizers orthogonalise.
            self.roles: dict[str, Role] = {"0.weight": "hidden", "0.bias": "bias"}
            self.criterion: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy
        else:
            task = plugins("tasks")["quadratic"].build(
                defaults(plugins("tasks")["quadratic"].params) | QUADRATIC,
                0,
                torch.device("cpu"),
                dtype,
            )
            self.batch = task.probe
            self.model = task.model
            self.roles = dict(task.roles)
            self.criterion = task.criterion

    def loss(self) -> Tensor:
        inputs, targets = self.batch
        return self.criterion(self.model(inputs), targets)


def _build(plugin: OptimizerPlugin, problem: Problem) -> torch.optim.Optimizer:
    return build_optimizer(
        plugin, list(problem.model.named_parameters()), problem.roles, defaults(plugin.params)
    )


def _train(
    plugin: OptimizerPlugin, problem: Problem, opt: torch.optim.Optimizer, steps: int
) -> None:
    """Full-batch steps exactly as the Runner takes them, honouring every declared need."""
    for _ in range(steps):
        take_step(opt, plugin.needs, problem.model, problem.criterion, problem.batch)


def _eval_loss(plugin: OptimizerPlugin, problem: Problem, opt: torch.optim.Optimizer) -> float:
    """The loss at the point the optimizer reports (the average, for schedule-free methods)."""
    if plugin.needs.train_eval:
        opt.eval()  # type: ignore[attr-defined]
    with torch.no_grad():
        value = problem.loss().item()
    if plugin.needs.train_eval:
        opt.train()  # type: ignore[attr-defined]
    return value


def _params(problem: Problem) -> list[Tensor]:
    return [p.detach().clone() for p in problem.model.parameters()]


# -- the checks ---------------------------------------------------------------------------------


def _decreases(plugin: OptimizerPlugin, kind: str) -> None:
    problem = Problem(kind)
    opt = _build(plugin, problem)
    before = _eval_loss(plugin, problem, opt)
    _train(plugin, problem, opt, STEPS)
    after = _eval_loss(plugin, problem, opt)
    assert math.isfinite(after), f"loss became {after}"
    assert after < (1 - 1e-3) * before, f"loss {before:.6g} → {after:.6g} in {STEPS} steps"


def check_decreases_logistic(plugin: OptimizerPlugin) -> None:
    _decreases(plugin, "logistic")


def check_decreases_quadratic(plugin: OptimizerPlugin) -> None:
    _decreases(plugin, "quadratic")


def check_state_dict(plugin: OptimizerPlugin) -> None:
    """Saved as a checkpoint is (no pickled objects: `weights_only`), loaded into a fresh copy,
    the optimizer continues bit-identically; the global RNG is reseeded for both continuations
    so that optimizers drawing from it are compared fairly."""
    problem = Problem("logistic", torch.float64)
    opt = _build(plugin, problem)
    _train(plugin, problem, opt, 5)
    saved = io.BytesIO()
    torch.save(opt.state_dict(), saved)
    saved.seek(0)
    twin = copy.copy(problem)
    twin.model = copy.deepcopy(problem.model)
    twin_opt = _build(plugin, twin)
    twin_opt.load_state_dict(torch.load(saved, weights_only=True))
    torch.manual_seed(1)
    _train(plugin, problem, opt, 5)
    torch.manual_seed(1)
    _train(plugin, twin, twin_opt, 5)
    for (name, p), q in zip(problem.model.named_parameters(), twin.model.parameters(), strict=True):
        assert torch.equal(p, q), f"{name} differs after the round trip"


def check_float64(plugin: OptimizerPlugin) -> None:
    problem = Problem("logistic", torch.float64)
    opt = _build(plugin, problem)
    _train(plugin, problem, opt, 5)
    for name, p in problem.model.named_parameters():
        assert p.dtype == torch.float64, f"{name} became {p.dtype}"
        assert torch.isfinite(p).all(), f"{name} is not finite"
        for key, value in opt.state.get(p, {}).items():
            if isinstance(value, Tensor) and value.shape == p.shape and value.is_floating_point():
                assert value.dtype == torch.float64, f"state {key!r} of {name} is {value.dtype}"


def check_runner(plugin: OptimizerPlugin) -> None:
    spec = parse_spec(
        {
            "name": "conformance",
            "steps": 4,
            "task": {"id": "gaussian-mixture", "samples": 64, "hidden": [8]},
            "runs": [{"name": "run", "optimizer": {"id": plugin.id}}],
            "diagnostics": [{"id": "norms", "every": 2}],
        }
    )
    sink = MemorySink()
    Runner(spec).run(sink)
    run = sink.runs["run"]
    assert run.status == "finished", f"status {run.status}: {run.error}"
    steps, losses = run.series("train/loss")
    assert steps.tolist() == [0, 1, 2, 3]
    assert all(math.isfinite(v) for v in losses.tolist())


def check_live_lr(plugin: OptimizerPlugin) -> None:
    """After a few steps, lr = 0 in every group must freeze θ on the next step, while the same
    step at the original rate moves it: the rate is read from `param_groups` at each step."""
    problem = Problem("logistic", torch.float64)
    opt = _build(plugin, problem)
    _train(plugin, problem, opt, 3)
    twin = copy.copy(problem)
    twin.model = copy.deepcopy(problem.model)
    twin_opt = _build(plugin, twin)
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    before = _params(problem)
    for group in opt.param_groups:
        group["lr"] = 0.0
    _train(plugin, problem, opt, 1)
    frozen = _params(problem)
    names = [name for name, _ in problem.model.named_parameters()]
    for name, a, b in zip(names, before, frozen, strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12), f"{name} moved with lr = 0"
    _train(plugin, twin, twin_opt, 1)
    moved = _params(twin)
    assert any(not torch.equal(a, b) for a, b in zip(before, moved, strict=True)), (
        "no step at the default lr"
    )


CHECKS: dict[str, Callable[[OptimizerPlugin], None]] = {
    "decreases-logistic": check_decreases_logistic,
    "decreases-quadratic": check_decreases_quadratic,
    "state-dict": check_state_dict,
    "float64": check_float64,
    "runner": check_runner,
    "live-lr": check_live_lr,
}


def _cases() -> list:
    cases = []
    for pid, plugin in OPTIMIZERS.items():
        for check in CONFORMANCE_CHECKS:
            marks = ()
            if check in plugin.exempt:
                marks = (pytest.mark.xfail(strict=True, reason=plugin.exempt[check]),)
            cases.append(pytest.param(pid, check, marks=marks, id=f"{pid}-{check}"))
    return cases


def test_every_check_has_an_implementation() -> None:
    assert set(CHECKS) == set(CONFORMANCE_CHECKS)


def test_catalogue_loads_and_exemptions_name_real_checks() -> None:
    assert load_failures("optimizers") == ()
    for pid, plugin in OPTIMIZERS.items():
        unknown = set(plugin.exempt) - set(CONFORMANCE_CHECKS)
        assert not unknown, f"{pid} exempts unknown checks {sorted(unknown)}"
        for check, reason in plugin.exempt.items():
            assert len(reason) > 10, f"{pid} gives no real reason for skipping {check}"


@pytest.mark.parametrize(("pid", "check"), _cases())
def test_conformance(pid: str, check: str) -> None:
    CHECKS[check](OPTIMIZERS[pid])


def test_every_optimizer_is_in_a_known_family_with_a_reference() -> None:
    for pid, plugin in OPTIMIZERS.items():
        assert plugin.family in FAMILIES, f"{pid}: unknown family {plugin.family!r}"
        assert plugin.title and plugin.summary, f"{pid} lacks a title or summary"


def test_the_catalogue_page_is_generated_from_the_descriptors() -> None:
    """docs/optimizers.md must be what `descentlab list optimizers --markdown` prints now."""
    page = Path(__file__).resolve().parents[1] / "docs" / "optimizers.md"
    assert page.read_text(encoding="utf-8") == markdown(), (
        "docs/optimizers.md is stale: run `descentlab list optimizers --markdown > "
        "docs/optimizers.md`"
    )
