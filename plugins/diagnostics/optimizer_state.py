"""Optimizer-state diagnostic: Adam's effective step sizes, and how often updates go uphill.

- `optimizer_state/effective_step_histogram`: for optimizers that keep a second-moment estimate
  `exp_avg_sq` (Adam, AdamW, NAdam, RAdam, and the AdamW half of Muon), the distribution over
  every coordinate of η / (√v̂ + ε), v̂ = v / (1 − β₂ᵗ) the bias-corrected second moment (with
  AMSGrad, its running maximum), each coordinate with its own group's η, ε, β₂ and its own step
  count t. Bins are fixed when the run starts: `bins` bins even in log₁₀ from 10⁻⁸·η to 10³·η
  (η the learning rate of the first Adam-type group at that time), their edges in the output's
  attrs; values beyond the ends are counted in the first or last bin, so each record's fractions
  sum to 1. Without state yet (step 0) there is no record.
- `optimizer_state/sign_disagreement`, for every optimizer: among the coordinates where both the
  update Δθ and the gradient g that produced it are nonzero, the fraction where sign(Δθ) ≠
  sign(−g), i.e. where the step the optimizer took goes uphill against plain descent (momentum
  overshooting, sign-based or orthogonalised updates, weight decay). Coordinates where either is
  zero have no sign to compare and are left out. The record at step t pairs Δθ_{t−1} = θ_t − θ_{t−1}
  (`StepContext.update`) with exactly the gradient g_{t−1} of step t−1: diagnostics see only the
  steps they are due at, so a pre-step hook on the optimizer keeps a copy of the gradients of the
  step before the next due one (of every step until the schedule's spacing is known).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.hooks import RemovableHandle

from descentlab.engine.params import Param
from descentlab.engine.plugin import (
    Diagnostic,
    DiagnosticPlugin,
    Display,
    Output,
    SetupContext,
    StepContext,
)

HISTOGRAM = "optimizer_state/effective_step_histogram"
DISAGREEMENT = "optimizer_state/sign_disagreement"
LOW, HIGH = 1e-8, 1e3
"""The histogram's range as multiples of η."""

ADAM_FAMILY = (torch.optim.Adam, torch.optim.AdamW, torch.optim.NAdam, torch.optim.RAdam)

PARAMS = (
    Param(
        "bins",
        "int",
        60,
        "Bins of the effective step-size histogram, even in log₁₀ from 10⁻⁸·η to 10³·η.",
        low=2,
        high=1000,
    ),
)


def has_second_moment(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimizer keeps `exp_avg_sq` (also for wrappers that hold inner optimizers)."""
    inner = getattr(optimizer, "_inner", {})
    inner_list = list(inner.values()) if isinstance(inner, dict) else []
    return (
        isinstance(optimizer, ADAM_FAMILY)
        or any(isinstance(o, ADAM_FAMILY) for o in inner_list)
        or any("exp_avg_sq" in s for s in optimizer.state.values())
    )


def histogram_edges(lr: float, bins: int) -> np.ndarray:
    """`bins + 1` edges even in log₁₀ from 10⁻⁸·η to 10³·η."""
    return np.logspace(math.log10(LOW * lr), math.log10(HIGH * lr), bins + 1)


def _step_count(state: dict[str, Any]) -> float:
    step = state.get("step", 0)
    return float(step.item() if isinstance(step, Tensor) else step)


def effective_steps(optimizer: torch.optim.Optimizer) -> Tensor | None:
    """η/(√v̂ + ε) of every coordinate that has a second moment, flat; None if none has one."""
    pieces: list[Tensor] = []
    for group in optimizer.param_groups:
        if "betas" not in group:
            continue
        lr, eps, beta2 = float(group["lr"]), float(group["eps"]), float(group["betas"][1])
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            if "exp_avg_sq" not in state:
                continue
            v = state["max_exp_avg_sq"] if group.get("amsgrad") else state["exp_avg_sq"]
            t = _step_count(state)
            correction = 1.0 - beta2**t if t > 0 else 1.0
            v_hat = v.detach().to(torch.float64).reshape(-1) / correction
            pieces.append(lr / (v_hat.sqrt() + eps))
    return torch.cat(pieces) if pieces else None


def sign_disagreement(update: dict[str, Tensor], grads: dict[str, Tensor]) -> float:
    """Fraction of coordinates with sign(Δθ) ≠ sign(−g) among those where both are nonzero."""
    names = [n for n in update if n in grads]
    if not names:
        return math.nan
    with torch.no_grad():
        products = torch.cat(
            [(torch.sign(update[n]) * torch.sign(grads[n])).reshape(-1) for n in names]
        )
        counts = torch.stack([(products > 0).sum(), (products != 0).sum()]).tolist()
    uphill, compared = counts
    return uphill / compared if compared else math.nan


class OptimizerStateDiagnostic(Diagnostic):
    """Histogram of Adam's effective step sizes and the update/descent sign disagreement."""

    needs_update = True

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.bins = int(params.get("bins", 60))
        self.edges: np.ndarray | None = None
        self._hook: RemovableHandle | None = None
        self._named: dict[str, torch.nn.Parameter] = {}
        self._cached: dict[str, Tensor] | None = None
        self._cached_at = -1
        """The value of `_since` at the step whose gradients `_cached` holds."""
        self._since = 0
        """Optimizer steps since the last compute call (the hook counts them)."""
        self._last_step: int | None = None
        self._gap: int | None = None
        """Steps between due steps, once two calls have shown it."""

    def outputs(self, ctx: SetupContext) -> list[Output]:
        outputs = []
        if has_second_moment(ctx.optimizer):
            groups = [g for g in ctx.optimizer.param_groups if "betas" in g]
            lr = float((groups or ctx.optimizer.param_groups)[0]["lr"])
            self.edges = histogram_edges(lr, self.bins)
            attrs = {"edges": self.edges.tolist(), "log10": True, "lr": lr}
            outputs.append(Output(HISTOGRAM, "histogram", (self.bins,), attrs=attrs))
        outputs.append(Output(DISAGREEMENT, "scalar"))
        return outputs

    def compute(self, ctx: StepContext) -> dict[str, Any]:
        records: dict[str, Any] = {}
        if self.edges is not None:
            steps = effective_steps(ctx.optimizer)
            if steps is not None and steps.numel():
                records[HISTOGRAM] = self._histogram(steps.cpu().numpy())
        if ctx.update is not None and self._cached is not None and self._cached_at == self._since:
            records[DISAGREEMENT] = sign_disagreement(ctx.update, self._cached)
        self._after_compute(ctx)
        return records

    def _histogram(self, values: np.ndarray) -> np.ndarray:
        assert self.edges is not None
        logs = np.log10(np.clip(values, self.edges[0], self.edges[-1]))
        log_edges = np.log10(self.edges)
        index = np.clip(np.searchsorted(log_edges, logs, side="right") - 1, 0, self.bins - 1)
        counts = np.bincount(index, minlength=self.bins).astype(np.float64)
        return counts / counts.sum()

    # -- the exact pairing of Δθ_{t−1} with g_{t−1} -------------------------------------------

    def _after_compute(self, ctx: StepContext) -> None:
        if self._last_step is not None and ctx.step > self._last_step:
            self._gap = ctx.step - self._last_step
        self._last_step = ctx.step
        self._since = 0
        self._cached, self._cached_at = None, -1
        self._named = dict(ctx.named_params)
        if self._hook is None:
            self._hook = ctx.optimizer.register_step_pre_hook(self._before_step)

    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        """Before each optimizer step: keep its gradients if the next compute pairs with them.

        The update the next due step sees, Δθ_{t−1}, is made by the `gap`-th optimizer step
        after this compute; until the gap is known every step's gradients are kept.
        """
        self._since += 1
        if self._gap is None or self._since == self._gap:
            with torch.no_grad():
                self._cached = {
                    n: p.grad.detach().clone() for n, p in self._named.items() if p.grad is not None
                }
            self._cached_at = self._since


PLUGIN = DiagnosticPlugin(
    id="optimizer-state",
    title="Optimizer state",
    summary="For Adam-type optimizers (those keeping a second moment v), the histogram over all "
    "coordinates of the effective step size η/(√v̂ + ε) with v̂ bias-corrected, on fixed log₁₀ "
    "bins from 10⁻⁸·η to 10³·η: how far Adam's per-coordinate rates spread, and how many "
    "coordinates sit at the η/ε ceiling. For every optimizer, the fraction of coordinates whose "
    "last update has the sign of +g rather than −g (the gradient of the same step): 0 for plain "
    "SGD, larger with momentum, sign-based or orthogonalised updates and weight decay.",
    params=PARAMS,
    create=OptimizerStateDiagnostic,
    outputs=(
        Output(
            HISTOGRAM,
            "histogram",
            display=Display("Adam effective step sizes η/(√v̂ + ε)", "Adam steps", "η/(√v̂ + ε)"),
        ),
        Output(
            DISAGREEMENT,
            "scalar",
            unit="fraction",
            display=Display("Fraction of coordinates moving uphill", "Uphill share", "share"),
        ),
    ),
    cost="cheap",
    every=10,
)
