"""The online convex counter-example of Reddi, Kale & Kumar on which Adam does not converge.

On the feasible set x ∈ [−1, 1] the losses arrive in a fixed cycle of three,

    f_t(x) = C·x  when t mod 3 = 1,   f_t(x) = −x  otherwise   (t = 1, 2, …),

so their average ((C − 2)/3)·x is minimised at x* = −1 whenever C > 2. The rare large gradient C
points the right way, the two frequent small ones the wrong way. Adam with a short memory of
squared gradients (β₂ ≤ 1/(1 + C²) in the paper's Theorem 1) divides the large gradient by a
second-moment estimate that has just grown, and the small ones by one that has decayed again, so
its net drift per cycle is towards +1, the worst point; AMSGrad's running maximum of v keeps the
large gradient's weight and converges.

The optimizer sees an ordinary parameter x; the projection onto [−1, 1] of projected online
gradient descent, x_{t+1} = Π(x_t − step), is applied at the start of each loss evaluation, so
every loss and gradient is taken at a feasible point and any optimizer of the catalogue runs
unchanged. The batch of step t carries the coefficient of f_t; the probe carries the average
coefficient (C − 2)/3, so curvature diagnostics and the probe loss see the average loss.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from descentlab.engine.params import Param
from descentlab.engine.plugin import Batch, Task, TaskPlugin
from descentlab.plugins.tasks.common import output_as_loss

OPTIMUM = -1.0
"""The minimiser of the average loss for every C > 2."""


class ProjectedPoint(nn.Module):
    """A point x kept in [−1, 1]; its forward pass projects x, then returns coefficient · x."""

    def __init__(self, start: Tensor) -> None:
        super().__init__()
        self.x = nn.Parameter(start)

    def project(self) -> None:
        """Π onto [−1, 1], in place, outside autograd: the optimizer's state is left as it is."""
        with torch.no_grad():
            self.x.clamp_(-1.0, 1.0)

    def forward(self, coefficient: Tensor) -> Tensor:
        self.project()
        return (coefficient.reshape(-1) * self.x).mean()


def _step_series(model: nn.Module) -> dict[str, np.ndarray]:
    """The feasible iterate x_t = Π(x) and its distance to the optimum, |x_t − x*|."""
    x = float(model.get_parameter("x").detach().clamp(-1.0, 1.0).item())
    return {
        "online/x": np.array([x]),
        "online/distance": np.array([abs(x - OPTIMUM)]),
    }


def build(params: dict[str, Any], seed: int, device: torch.device, dtype: torch.dtype) -> Task:
    """The cycle of losses is deterministic; the seed is not used."""
    c = params["C"]
    if c <= 2.0:
        raise ValueError(f"C = {c:g}: the counter-example needs C > 2 (so that x* = −1)")
    model = ProjectedPoint(torch.tensor([params["start"]], device=device, dtype=dtype))
    no_target = torch.zeros(1, 0, device=device, dtype=dtype)

    def coefficient(value: float) -> Batch:
        return torch.full((1, 1), value, device=device, dtype=dtype), no_target

    # t = 1, 2, 3, … : C, −1, −1, C, −1, −1, … ; the runner draws one batch per global step,
    # shared by every run, so the cycle is the same for all of them.
    cycle = itertools.cycle([coefficient(c), coefficient(-1.0), coefficient(-1.0)])

    def sample_batch(generator: torch.Generator) -> Batch:
        return next(cycle)

    return Task(
        model=model,
        criterion=output_as_loss,
        probe=coefficient((c - 2.0) / 3.0),
        roles={"x": "other"},
        sample_batch=sample_batch,
        step_series=_step_series,
    )


PLUGINS = [
    TaskPlugin(
        id="online-convex",
        title="Online convex counter-example (Adam vs AMSGrad)",
        summary=(
            "The one-dimensional online problem on [−1, 1] where the losses cycle through "
            "C·x, −x, −x: the optimum of their average is x* = −1, yet Adam with a short "
            "second-moment memory drifts to +1, the worst point, while AMSGrad (and ADOPT) "
            "converge. Iterates are projected onto [−1, 1] before each loss; the series "
            "online/x and online/distance (|x − x*|) show who converges."
        ),
        params=(
            Param(
                "C",
                "float",
                3.0,
                "Size of the rare gradient; the counter-example needs C > 2.",
                low=2.0,
                high=1000.0,
            ),
            Param("start", "float", 1.0, "Starting point x₁ in [−1, 1].", low=-1.0, high=1.0),
        ),
        build=build,
        reference=(
            "Reddi, Kale & Kumar (2018), On the Convergence of Adam and Beyond, ICLR (Theorem 1)."
        ),
    )
]
