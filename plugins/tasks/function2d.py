"""Two-dimensional test functions: the optimizer's path can be drawn on the contour plot.

The model is a single 2-D point; the loss is the function at that point. `surface` evaluates the
same code on a grid for contour plots, and `FUNCTIONS` holds each function's known minima.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from descentlab.engine.params import Param
from descentlab.engine.plugin import Task, TaskPlugin
from descentlab.plugins.tasks.common import output_as_loss

Objective = Callable[[Tensor, Tensor, dict[str, Any]], Tensor]
Gradient = Callable[[np.ndarray, np.ndarray, dict[str, Any]], tuple[np.ndarray, np.ndarray]]
"""(∂f/∂x, ∂f/∂y) in closed form, on numpy arrays: the 2-D playground races four optimizers
through 500 steps per redraw, and autograd's per-call overhead would be most of that time.
Tested against autograd on the torch objective."""


def _rosenbrock(x: Tensor, y: Tensor, params: dict[str, Any]) -> Tensor:
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _rastrigin(x: Tensor, y: Tensor, params: dict[str, Any]) -> Tensor:
    return 20 + x**2 - 10 * torch.cos(2 * math.pi * x) + y**2 - 10 * torch.cos(2 * math.pi * y)


def _beale(x: Tensor, y: Tensor, params: dict[str, Any]) -> Tensor:
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _himmelblau(x: Tensor, y: Tensor, params: dict[str, Any]) -> Tensor:
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def _saddle(x: Tensor, y: Tensor, params: dict[str, Any]) -> Tensor:
    return x**2 - y**2


def _quadratic2d(x: Tensor, y: Tensor, params: dict[str, Any]) -> Tensor:
    return 0.5 * (x**2 + params["condition"] * y**2)


def _rosenbrock_grad(x: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> tuple:
    return -2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)


def _rastrigin_grad(x: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> tuple:
    return (
        2 * x + 20 * math.pi * np.sin(2 * math.pi * x),
        2 * y + 20 * math.pi * np.sin(2 * math.pi * y),
    )


def _beale_grad(x: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> tuple:
    a, b, c = 1.5 - x + x * y, 2.25 - x + x * y**2, 2.625 - x + x * y**3
    return (
        2 * a * (y - 1) + 2 * b * (y**2 - 1) + 2 * c * (y**3 - 1),
        2 * a * x + 4 * b * x * y + 6 * c * x * y**2,
    )


def _himmelblau_grad(x: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> tuple:
    u, v = x**2 + y - 11, x + y**2 - 7
    return 4 * x * u + 2 * v, 2 * u + 4 * y * v


def _saddle_grad(x: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> tuple:
    return 2 * x, -2 * y


def _quadratic2d_grad(x: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> tuple:
    return x, params["condition"] * y


@dataclass(frozen=True)
class Function2D:
    """One test function: its formula, a classic start, known minima and a view for plots."""

    objective: Objective
    gradient: Gradient
    formula: str
    start: tuple[float, float]
    minima: tuple[tuple[float, float], ...]
    """Known global minimisers; empty when the function is unbounded below (the saddle)."""
    minimum_value: float | None
    view: tuple[float, float, float, float]
    """(x_min, x_max, y_min, y_max) of a contour plot showing the start and the minima."""


FUNCTIONS: dict[str, Function2D] = {
    "rosenbrock": Function2D(
        _rosenbrock,
        _rosenbrock_grad,
        "(1 − x)² + 100 (y − x²)²",
        (-1.5, 2.0),
        ((1.0, 1.0),),
        0.0,
        (-2, 2, -1, 3),
    ),
    "rastrigin": Function2D(
        _rastrigin,
        _rastrigin_grad,
        "20 + Σ (v² − 10 cos 2πv)",
        (2.5, 2.2),
        ((0.0, 0.0),),
        0.0,
        (-3, 3, -3, 3),
    ),
    "beale": Function2D(
        _beale,
        _beale_grad,
        "(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²",
        (1.0, 1.5),
        ((3.0, 0.5),),
        0.0,
        (-4.5, 4.5, -4.5, 4.5),
    ),
    "himmelblau": Function2D(
        _himmelblau,
        _himmelblau_grad,
        "(x² + y − 11)² + (x + y² − 7)²",
        (0.0, 0.0),
        (
            (3.0, 2.0),
            (-2.805118086952745, 3.131312518250573),
            (-3.779310253377747, -3.283185991286170),
            (3.584428340330492, -1.848126526964404),
        ),
        0.0,
        (-5, 5, -5, 5),
    ),
    "saddle": Function2D(
        _saddle, _saddle_grad, "x² − y²", (-1.0, 0.01), (), None, (-1.5, 1.5, -1.5, 1.5)
    ),
    "quadratic2d": Function2D(
        _quadratic2d,
        _quadratic2d_grad,
        "½ (x² + condition · y²)",
        (-2.0, 0.5),
        ((0.0, 0.0),),
        0.0,
        (-2.5, 2.5, -1, 1),
    ),
}


def surface(
    function_name: str, params: dict[str, Any], xs: np.ndarray, ys: np.ndarray
) -> np.ndarray:
    """The objective on the grid `xs × ys`, shape (len(ys), len(xs)): row i is y = ys[i].

    Evaluated in float64 by the same code as the training loss, so contours and losses agree.
    """
    x = torch.as_tensor(np.asarray(xs, dtype=np.float64))[None, :]
    y = torch.as_tensor(np.asarray(ys, dtype=np.float64))[:, None]
    values = FUNCTIONS[function_name].objective(x, y, params)
    return values.expand(y.shape[0], x.shape[1]).numpy()


class Point2D(nn.Module):
    """A point in the plane whose forward pass is the objective there; inputs are ignored."""

    def __init__(self, objective: Objective, params: dict[str, Any], start: Tensor) -> None:
        super().__init__()
        self.point = nn.Parameter(start)
        self.objective = objective
        self.params = params

    def forward(self, inputs: Tensor) -> Tensor:
        return self.objective(self.point[0], self.point[1], self.params)


def _trajectory(model: nn.Module) -> dict[str, np.ndarray]:
    return {
        "trajectory/params": model.get_parameter("point").detach().cpu().numpy().astype(np.float64)
    }


def build(params: dict[str, Any], seed: int, device: torch.device, dtype: torch.dtype) -> Task:
    """The point starts where the user asked or at the function's classic start; no randomness."""
    function = FUNCTIONS[params["function"]]
    start = params["start"] if params["start"] is not None else function.start
    model = Point2D(function.objective, params, torch.tensor(start, device=device, dtype=dtype))
    placeholder = torch.zeros(1, 0, device=device, dtype=dtype)
    return Task(
        model=model,
        criterion=output_as_loss,
        probe=(placeholder, placeholder),
        roles={"point": "other"},
        step_series=_trajectory,
    )


PLUGIN = TaskPlugin(
    id="function2d",
    title="2-D test function",
    summary=(
        "Classic two-dimensional optimisation test functions: the banana valley of Rosenbrock, "
        "the many local minima of Rastrigin, Beale's flat plateaus, Himmelblau's four minima, a "
        "saddle x² − y² and an ill-conditioned quadratic. The model is a single point, so every "
        "optimizer's path can be drawn on the contour plot and compared at a glance."
    ),
    params=(
        Param(
            "function",
            "choice",
            "rosenbrock",
            "Which test function to minimise.",
            choices=tuple(FUNCTIONS),
        ),
        Param(
            "start",
            "floats",
            None,
            "Starting point (x, y); unset uses the function's classic start.",
            length=2,
            nullable=True,
        ),
        Param(
            "condition",
            "float",
            100.0,
            "Curvature ratio of quadratic2d along y versus x (other functions ignore it).",
            low=1.0,
            high=1e6,
            log=True,
        ),
    ),
    build=build,
    reference=(
        "Rosenbrock (1960), The Computer Journal 3(3); Rastrigin (1974); Beale (1958); "
        "Himmelblau (1972), Applied Nonlinear Programming."
    ),
)
