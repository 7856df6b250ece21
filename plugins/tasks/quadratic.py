"""An n-dimensional quadratic whose Hessian, spectrum and minimiser are known exactly.

f(x) = ½ (x − x*)ᵀ A (x − x*) with A = Qᵀ diag(λ) Q. It is the ground truth for curvature
diagnostics and the textbook setting of step-size stability (η < 2/λ_max).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from descentlab.engine.params import Param
from descentlab.engine.plugin import Batch, Task, TaskPlugin
from descentlab.plugins.tasks.common import as_tensor, numpy_rng, output_as_loss


def spectrum(params: dict[str, Any]) -> np.ndarray:
    """The requested eigenvalues, largest first: explicit, or `dim` of them in [1, condition]."""
    if params["eigenvalues"] is not None:
        if not params["eigenvalues"]:
            raise ValueError("eigenvalues: give at least one value, or leave it unset")
        values = np.asarray(params["eigenvalues"], dtype=np.float64)
    elif params["spectrum"] == "log":
        values = np.geomspace(params["condition"], 1.0, params["dim"])
    else:
        values = np.linspace(params["condition"], 1.0, params["dim"])
    return np.sort(values)[::-1].copy()


def random_orthogonal(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed orthogonal matrix: QR of a Gaussian with R's diagonal made positive."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


class Quadratic(nn.Module):
    """The point `x`; its forward pass is f(x) + mean(inputs) · x.

    The inputs are gradient-noise vectors z (zero on the probe), so a batch's gradient is
    A (x − x*) + z. `hessian`, `eigenvalues` (descending) and `minimizer` are the exact truth.
    """

    hessian: Tensor  # buffers, registered in __init__
    eigenvalues: Tensor
    minimizer: Tensor

    def __init__(self, hessian: Tensor, eigenvalues: Tensor, minimizer: Tensor, start: Tensor):
        super().__init__()
        self.x = nn.Parameter(start)
        self.register_buffer("hessian", hessian)
        self.register_buffer("eigenvalues", eigenvalues)
        self.register_buffer("minimizer", minimizer)

    def forward(self, noise: Tensor) -> Tensor:
        delta = self.x - self.minimizer
        return 0.5 * delta @ (self.hessian @ delta) + (noise @ self.x).mean()


def build(params: dict[str, Any], seed: int, device: torch.device, dtype: torch.dtype) -> Task:
    """Draw Q, x* and the start x₀ from the seed; add noise batches when `noise_std` > 0."""
    eigenvalues = spectrum(params)
    dim = eigenvalues.shape[0]
    rng = numpy_rng(seed, "quadratic")
    q = random_orthogonal(dim, rng)
    hessian = q.T @ np.diag(eigenvalues) @ q
    hessian = 0.5 * (hessian + hessian.T)  # exactly symmetric, so autograd's Hessian equals it
    minimizer = rng.standard_normal(dim)
    start = rng.standard_normal(dim)
    model = Quadratic(
        *(as_tensor(a, device, dtype) for a in (hessian, eigenvalues, minimizer, start))
    )
    no_target = torch.zeros(1, 0, device=device, dtype=dtype)
    probe = (torch.zeros(1, dim, device=device, dtype=dtype), no_target)
    noise_std = params["noise_std"]

    def sample_batch(generator: torch.Generator) -> Batch:
        """A noise vector z ~ N(0, noise_std² I), drawn in float64 so both dtypes see one z."""
        z = torch.randn(1, dim, generator=generator, dtype=torch.float64, device=generator.device)
        return (noise_std * z).to(device=device, dtype=dtype), no_target

    return Task(
        model=model,
        criterion=output_as_loss,
        probe=probe,
        roles={"x": "other"},
        sample_batch=sample_batch if noise_std > 0 else None,
    )


PLUGIN = TaskPlugin(
    id="quadratic",
    title="Quadratic with known spectrum",
    summary=(
        "The quadratic ½ (x − x*)ᵀ A (x − x*) in n dimensions, where A = Qᵀ diag(λ) Q has a random "
        "orthogonal basis Q and eigenvalues you choose: linear or logarithmic between 1 and a "
        "condition number, or an explicit list (negative values make saddles). The Hessian is A "
        "everywhere, so curvature diagnostics can be checked exactly and gradient descent is "
        "stable precisely when the learning rate is below 2/λ_max. Optional Gaussian gradient "
        "noise turns it into the noisy quadratic model of stochastic optimisation."
    ),
    params=(
        Param(
            "eigenvalues",
            "floats",
            None,
            "Explicit Hessian eigenvalues (negatives allowed); overrides spectrum, dim, condition.",
            nullable=True,
        ),
        Param(
            "spectrum",
            "choice",
            "log",
            "Spacing of generated eigenvalues between 1 and condition.",
            choices=("linear", "log"),
        ),
        Param(
            "dim", "int", 20, "Dimension of x when the eigenvalues are generated.", low=1, high=4096
        ),
        Param(
            "condition",
            "float",
            100.0,
            "Largest generated eigenvalue; the smallest is 1.",
            low=1.0,
            high=1e8,
            log=True,
        ),
        Param(
            "noise_std",
            "float",
            0.0,
            "Standard deviation of Gaussian noise added to each step's gradient; 0 is exact.",
            low=0.0,
        ),
    ),
    build=build,
    reference=(
        "Zhang et al. (2019), Which Algorithmic Choices Matter at Which Batch Sizes? Insights "
        "from a Noisy Quadratic Model, NeurIPS."
    ),
)
