"""Matrix sensing: recover a low-rank PSD matrix from random linear measurements, M = U Uᵀ.

From a small initialisation, gradient descent on the factor U learns the target's singular
values one at a time (incremental learning) and stays near low rank even when U is wider than
needed: the standard lab for the implicit bias of optimizers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from descentlab.engine.params import Param
from descentlab.engine.plugin import Task, TaskPlugin
from descentlab.plugins.tasks.common import as_tensor, batch_size_param, numpy_rng

HELD_OUT = 256
"""Fresh measurements for evaluation; their mean squared error estimates ‖M − M*‖²_F."""


class FactorizedPSD(nn.Module):
    """M = U Uᵀ; the forward pass maps measurement matrices A_i (B, d, d) to ⟨A_i, M⟩ (B,).

    `target` holds M*, so diagnostics can compare the learned spectrum with the true one.
    """

    def __init__(self, factor: Tensor, target: Tensor) -> None:
        super().__init__()
        self.factor = nn.Parameter(factor)
        self.register_buffer("target", target)

    def matrix(self) -> Tensor:
        return self.factor @ self.factor.T

    def forward(self, measurements: Tensor) -> Tensor:
        return torch.einsum("bij,ij->b", measurements, self.matrix())


def build(params: dict[str, Any], seed: int, device: torch.device, dtype: torch.dtype) -> Task:
    """M* = U* U*ᵀ with U* ~ N(0, 1/d), standard Gaussian A_i, U₀ ~ N(0, init_scale²)."""
    dim, true_rank, rank, m = (
        params["dim"],
        params["true_rank"],
        params["rank"],
        params["measurements"],
    )
    if true_rank > dim:
        raise ValueError(f"true_rank ({true_rank}) must not exceed dim ({dim})")
    if rank < true_rank:
        raise ValueError(
            f"rank ({rank}) must be at least true_rank ({true_rank}): "
            "the factor U must be wide enough to represent the target"
        )
    rng = numpy_rng(seed, "data")
    truth = rng.standard_normal((dim, true_rank)) / dim**0.5
    target = truth @ truth.T
    sensing = rng.standard_normal((m + HELD_OUT, dim, dim))
    values = (sensing * target).sum(axis=(1, 2))
    factor = params["init_scale"] * numpy_rng(seed, "init").standard_normal((dim, rank))
    model = FactorizedPSD(as_tensor(factor, device, dtype), as_tensor(target, device, dtype))
    sensing_t, values_t = as_tensor(sensing, device, dtype), as_tensor(values, device, dtype)
    train = (sensing_t[:m], values_t[:m])
    return Task(
        model=model,
        criterion=F.mse_loss,
        probe=train,
        train=train,
        held_out=(sensing_t[m:], values_t[m:]),
        batch_size=params["batch_size"],
        roles={"factor": "hidden"},
    )


PLUGIN = TaskPlugin(
    id="matrix-sensing",
    title="Matrix sensing",
    summary=(
        "Recover a rank-r positive semidefinite d×d matrix M* from m random Gaussian linear "
        "measurements y_i = ⟨A_i, M*⟩ by fitting M = U Uᵀ with U of shape d×k, k ≥ r, under "
        "mean squared error. From a small initialisation gradient descent picks up the target's "
        "singular values one at a time and finds the low-rank solution even when k and m would "
        "allow others: a compact study of implicit regularisation."
    ),
    params=(
        Param("dim", "int", 20, "Size d of the square matrix.", low=1, high=512),
        Param("true_rank", "int", 3, "Rank r of the target matrix M*.", low=1, high=512),
        Param("rank", "int", 5, "Columns k of the factor U (k ≥ true_rank).", low=1, high=512),
        Param(
            "measurements", "int", 600, "Number m of training measurements.", low=1, high=100_000
        ),
        Param(
            "init_scale",
            "float",
            1e-3,
            "Standard deviation of U's initial entries; small values show incremental learning.",
            low=1e-8,
            high=10.0,
            log=True,
        ),
        batch_size_param(0),
    ),
    build=build,
    reference=(
        "Li, Ma & Zhang (2018), Algorithmic Regularization in Over-parameterized Matrix Sensing "
        "and Neural Networks with Quadratic Activations, COLT; Gunasekar et al. (2017), Implicit "
        "Regularization in Matrix Factorization, NeurIPS."
    ),
)
