"""The one stepping function: its contract, checked on a linear least-squares model whose
gradients and losses are known in closed form."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from descentlab.engine.plugin import Needs, OptimizerPlugin
from descentlab.engine.registry import plugins
from descentlab.engine.stepping import build_optimizer, take_step

INPUTS = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]], dtype=torch.float64)
TARGETS = torch.tensor([[1.0], [0.0], [2.0]], dtype=torch.float64)


def _model() -> nn.Linear:
    model = nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5, -0.25]]))
    return model


def _mse(outputs: Tensor, targets: Tensor) -> Tensor:
    return ((outputs - targets) ** 2).mean()


def _exact(weight: Tensor) -> tuple[float, Tensor]:
    """Loss and gradient of L(w) = mean((Xwᵀ − y)²): ∇L = 2/n·(Xwᵀ − y)ᵀX."""
    residual = INPUTS @ weight.T - TARGETS
    return float((residual**2).mean()), 2 / len(INPUTS) * residual.T @ INPUTS


class Recording(torch.optim.SGD):
    """SGD that records what the loop did to it: closure calls, the batch, `.grad` at step."""

    def __init__(self, params: Any) -> None:
        super().__init__(params, lr=0.1)
        self.events: list[Any] = []

    def set_batch(self, model: nn.Module, criterion: Any, batch: Any) -> None:
        self.events.append(("set_batch", model, criterion, batch))

    def step(self, closure: Any = None) -> Any:
        if closure is not None:
            first = closure()
            second = closure()
            self.events.append(("closure", first, second))
        self.events.append(("grad", self.param_groups[0]["params"][0].grad.clone()))
        return super().step()


def test_a_plain_step_is_backward_then_step_and_returns_the_loss_before_it() -> None:
    model = _model()
    before = model.weight.detach().clone()
    loss_before, gradient = _exact(before)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = take_step(opt, Needs(), model, _mse, (INPUTS, TARGETS))
    assert loss.item() == pytest.approx(loss_before, rel=1e-12)
    assert torch.allclose(model.weight.detach(), before - 0.1 * gradient, rtol=0, atol=1e-12)


def test_before_step_sees_the_gradient_before_the_step_and_can_skip_it() -> None:
    model = _model()
    before = model.weight.detach().clone()
    _, gradient = _exact(before)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen: list[Tensor] = []

    def look(loss: Tensor) -> bool:
        seen.append(model.weight.grad.clone())
        return False

    take_step(opt, Needs(), model, _mse, (INPUTS, TARGETS), look)
    assert torch.allclose(seen[0], gradient, rtol=0, atol=1e-12)
    assert torch.equal(model.weight.detach(), before), "a skipped step moved θ"


def test_the_closure_returns_the_computed_loss_first_and_recomputes_after() -> None:
    model = _model()
    opt = Recording(model.parameters())
    calls = []

    def counted(outputs: Tensor, targets: Tensor) -> Tensor:
        calls.append(1)
        return _mse(outputs, targets)

    loss = take_step(opt, Needs(closure=True, batch=True), model, counted, (INPUTS, TARGETS))
    assert len(calls) == 2, "one forward for the step, one for the second closure call"
    kind, model_seen, criterion_seen, batch = opt.events[0]
    assert kind == "set_batch" and model_seen is model and criterion_seen is counted
    assert batch[0] is INPUTS
    _, first, second = opt.events[1]
    assert first is loss
    assert second is not loss and second.item() == pytest.approx(loss.item(), rel=1e-12)


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_create_graph_keeps_the_backward_graph_for_hessian_vector_products() -> None:
    model = _model()
    opt = Recording(model.parameters())
    hessians: list[Tensor] = []

    def hvp(loss: Tensor) -> bool:
        grad = model.weight.grad
        (h,) = torch.autograd.grad(grad[0, 0], model.weight)
        hessians.append(h)
        return True

    take_step(opt, Needs(create_graph=True), model, _mse, (INPUTS, TARGETS), hvp)
    # ∂²L/∂w₀∂w = 2/n·(XᵀX)₀
    want = 2 / len(INPUTS) * (INPUTS.T @ INPUTS)[0]
    assert torch.allclose(hessians[0][0], want, rtol=0, atol=1e-12)


def test_build_optimizer_puts_train_eval_optimizers_in_training_mode() -> None:
    plugin: OptimizerPlugin = plugins("optimizers")["schedulefreesgd"]
    assert plugin.needs.train_eval
    model = _model()
    opt = build_optimizer(plugin, list(model.named_parameters()), {}, {})
    assert all(group["train_mode"] for group in opt.param_groups)
