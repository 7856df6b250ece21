"""Randomised trace and Frobenius-norm estimates of a symmetric operator from its products.

Hutchinson (1989); Hutch++: Meyer, Musco, Musco & Woodruff, SOSA 2021 (Algorithm 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from descentlab.engine.curvature.operators import LinearOperator


@dataclass(frozen=True)
class TraceEstimate:
    """tr A and ‖A‖_F estimated together, from `matvecs` products with A."""

    trace: float
    frobenius: float
    """From Rademacher products Az, through E‖Az‖² = tr(AᵀA) = ‖A‖_F²."""
    matvecs: int


def rademacher(
    n: int,
    count: int,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device,
) -> Tensor:
    """`count` probe columns (n, count) of independent ±1 entries, drawn on the CPU.

    Drawing on the CPU makes the probes depend on the seed alone, not on the device.
    """
    signs = torch.randint(0, 2, (n, count), generator=generator, dtype=torch.int8) * 2 - 1
    return signs.to(device=device, dtype=dtype)


def hutchinson(
    op: LinearOperator, budget: int = 30, generator: torch.Generator | None = None
) -> TraceEstimate:
    """tr A ≈ (1/m) Σ z_iᵀ A z_i with m = `budget` Rademacher probes z_i.

    Unbiased, with variance 2(‖A‖_F² − Σ A_ii²)/m: the error falls like 1/√m whatever the
    spectrum. The same products give ‖A‖_F² ≈ (1/m) Σ ‖A z_i‖².

    Args:
        op: symmetric operator of shape (n, n).
        budget: products with `op` (probes); doubling it shrinks the error by √2.
        generator: source of the probes (CPU generator; None uses torch's global one).
    """
    if budget < 1:
        raise ValueError(f"the budget must be at least 1 product, got {budget}")
    z = rademacher(op.shape[0], budget, generator, op.dtype, op.device)
    az = (op @ z).double()
    return TraceEstimate(
        trace=(z.double() * az).sum().item() / budget,
        frobenius=math.sqrt(az.square().sum().item() / budget),
        matvecs=budget,
    )


def hutchpp(
    op: LinearOperator, budget: int = 30, generator: torch.Generator | None = None
) -> TraceEstimate:
    """Hutch++: tr A ≈ tr(QᵀAQ) + (1/g) Σ g_iᵀ(I − QQᵀ)A(I − QQᵀ)g_i.

    Q is an orthonormal basis of A S for s = budget // 3 Rademacher probes S; the top of the
    spectrum is counted exactly in that range and Hutchinson estimates only the deflated rest
    with the remaining g = budget − 2s Rademacher probes G. For spectra dominated by a few
    outliers (Hessians of networks) the error falls like 1/m rather than 1/√m.
    ‖A‖_F² = tr(A²) is split the same way from the same products, with P = I − QQᵀ:
    ‖A‖_F² ≈ ‖AQ‖_F² + (1/g) Σ ‖A P g_i‖², since E‖APg‖² = tr(PA²P); AP G = AG − AQ(QᵀG)
    costs no extra product. Both are unbiased for any Q, and exact once Q spans everything.

    Args:
        op: symmetric operator of shape (n, n).
        budget: products with `op`, at least 3; a third sketches the range, a third measures
            it, a third samples the rest. When the sketch covers all n dimensions both
            estimates are exact and only 2n products are spent.
        generator: source of the probes (CPU generator; None uses torch's global one).
    """
    if budget < 3:
        raise ValueError(f"Hutch++ needs a budget of at least 3 products, got {budget}")
    n = op.shape[0]
    s = min(budget // 3, n)
    q, _ = torch.linalg.qr(op @ rademacher(n, s, generator, op.dtype, op.device))
    aq = op @ q
    trace = (q.double() * aq.double()).sum().item()
    squares = aq.double().square().sum().item()
    if s == n:
        return TraceEstimate(trace, math.sqrt(squares), matvecs=2 * n)
    g = budget - 2 * s
    probes = rademacher(n, g, generator, op.dtype, op.device)
    a_probes = op @ probes
    overlap = q.T @ probes
    deflated = (probes - q @ overlap).double()
    a_deflated = (a_probes - aq @ overlap).double()
    trace += (deflated * a_deflated).sum().item() / g
    squares += a_deflated.square().sum().item() / g
    return TraceEstimate(trace, math.sqrt(squares), matvecs=budget)
