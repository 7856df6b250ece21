"""One training step of any catalogue optimizer, honouring what its descriptor says it needs.

Every loop that steps a catalogue optimizer (the Runner, a Recorder in a user's loop, sweep
workers, the conformance suite, the benchmarks) calls `take_step`, so an optimizer that needs a
closure, `create_graph` or the batch runs the same way everywhere. Build with `build_optimizer`,
which also puts train/eval optimizers in training mode once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn

from descentlab.engine.plugin import Batch, Needs, OptimizerPlugin, Role

Criterion = Callable[[Tensor, Tensor], Tensor]


def build_optimizer(
    plugin: OptimizerPlugin,
    named_params: list[tuple[str, nn.Parameter]],
    roles: dict[str, Role],
    hyper: dict[str, Any],
) -> torch.optim.Optimizer:
    """`plugin.build(named_params, roles, hyper)`, in training mode if it switches modes.

    Schedule-free methods (`needs.train_eval`) must be put in training mode before their first
    step; a loop that wants the evaluation point brackets the look with `optimizer.eval()` …
    `optimizer.train()` (the Runner does so around its diagnostics).
    """
    optimizer = plugin.build(named_params, roles, hyper)
    if plugin.needs.train_eval:
        optimizer.train()  # type: ignore[attr-defined]
    return optimizer


def take_step(
    optimizer: torch.optim.Optimizer,
    needs: Needs,
    model: nn.Module,
    criterion: Criterion,
    batch: Batch,
    before_step: Callable[[Tensor], bool] | None = None,
) -> Tensor:
    """One step on `batch`; returns the loss at θ before the step (with its graph).

    The contract, in order:

    1. grads are zeroed (set to None), L = criterion(model(inputs), targets) and
       `L.backward(create_graph=needs.create_graph)`;
    2. `before_step(L)`, if given, sees θ_t with the gradients of L in `.grad`, before any
       optimizer can overwrite them (the Runner records the loss and runs its diagnostics here);
       returning False skips the rest (a diverged loss);
    3. `needs.batch`: `optimizer.set_batch(model, criterion, batch)`;
    4. `needs.closure`: `optimizer.step(closure)`, whose first call returns L and the gradients
       already computed and whose later calls zero the grads, recompute the loss on `batch`
       and backpropagate (with `create_graph` if needed); otherwise `optimizer.step()`.

    Train/eval mode is the caller's (see `build_optimizer`): this function never switches it.
    """
    inputs, targets = batch
    optimizer.zero_grad(set_to_none=True)
    loss = criterion(model(inputs), targets)
    loss.backward(create_graph=needs.create_graph)
    if before_step is not None and not before_step(loss):
        return loss
    if needs.batch:
        optimizer.set_batch(model, criterion, batch)  # type: ignore[attr-defined]
    if needs.closure:
        closure = _closure(optimizer, needs, model, criterion, batch, loss)
        # torch types a closure as returning float; optimizers return what it returns (a tensor)
        optimizer.step(cast("Callable[[], float]", closure))
    else:
        optimizer.step()
    return loss


def _closure(
    optimizer: torch.optim.Optimizer,
    needs: Needs,
    model: nn.Module,
    criterion: Criterion,
    batch: Batch,
    first_loss: Tensor,
) -> Callable[[], Tensor]:
    """The loss closure; its first call returns the loss and gradients already computed."""
    pending = [first_loss]
    inputs, targets = batch

    def closure() -> Tensor:
        if pending:
            return pending.pop()
        optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = criterion(model(inputs), targets)
            loss.backward(create_graph=needs.create_graph)
        return loss

    return closure
