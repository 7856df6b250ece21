"""Spectral density of a symmetric operator by stochastic Lanczos quadrature.

Ubaru, Chen & Saad, SIAM J. Matrix Anal. Appl. 38(4), 2017; Ghorbani, Krishnan & Xiao, ICML 2019.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from descentlab.engine.curvature.operators import LinearOperator


@dataclass(frozen=True)
class SpectralQuadrature:
    """Gauss quadrature rules, one per random start, for the spectral measure μ = (1/n) Σ δ_λi.

    Start l gives nodes θ_i^l (Ritz values) and weights τ_i^l = (s_i^l)₁² (squared first
    components of the eigenvectors of its tridiagonal T); each start's weights sum to 1, and
    μ ≈ (1/runs) Σ_l Σ_i τ_i^l δ_θi^l. Starts that reached an invariant subspace early have
    fewer nodes; their missing entries are zero weights at node 0.
    """

    nodes: Tensor
    """(runs, steps) float64 on the CPU."""
    weights: Tensor
    """(runs, steps) float64 on the CPU; each row sums to 1."""
    matvecs: int

    def measure(self) -> tuple[Tensor, Tensor]:
        """The pooled discrete measure: nodes (runs·steps,) and weights summing to 1."""
        runs = self.nodes.shape[0]
        return self.nodes.reshape(-1), self.weights.reshape(-1) / runs

    def density(self, lo: float, hi: float, points: int, width: float) -> Tensor:
        """φ(t) = Σ_j w_j N(t; θ_j, width²) on the grid linspace(lo, hi, points), float64.

        Nodes outside [lo, hi] are clipped to the nearest end before broadening, so no mass
        leaves the grid except the Gaussian tails beyond it; φ integrates to about 1 over the
        grid when the grid extends a few widths beyond the extreme nodes.
        """
        if not (hi > lo and points >= 2 and width > 0):
            raise ValueError(f"need lo < hi, points ≥ 2, width > 0; got {lo, hi, points, width}")
        grid = torch.linspace(lo, hi, points, dtype=torch.float64)
        nodes, weights = self.measure()
        nodes = nodes.clamp(lo, hi)
        gauss = torch.exp(-0.5 * ((grid[:, None] - nodes[None, :]) / width) ** 2)
        return gauss @ weights / (width * math.sqrt(2 * math.pi))


def slq(
    op: LinearOperator,
    runs: int = 3,
    steps: int = 40,
    generator: torch.Generator | None = None,
) -> SpectralQuadrature:
    """`runs` Lanczos tridiagonalisations of `steps` products each, from Rademacher starts.

    For a unit start q and T = Qᵀ A Q (Lanczos, full reorthogonalisation by classical
    Gram–Schmidt twice), qᵀ f(A) q ≈ Σ_i τ_i f(θ_i) is the m-point Gauss rule of the measure
    Σ_k (qᵀu_k)² δ_λk, which is μ in expectation over random q (Ubaru et al. 2017, Alg. 1).
    A start stops early when β ≈ 0 (its Krylov space is invariant: the rule is then exact).

    Args:
        op: symmetric operator of shape (n, n).
        runs: independent random starts; the estimate's variance falls like 1/(runs·n).
        steps: Lanczos steps per start, capped at n; m steps integrate polynomials of degree
            2m − 1 exactly, and resolve outliers and the bulk's edges first.
        generator: source of the starts (CPU generator; None uses torch's global one).
    """
    n = op.shape[0]
    if runs < 1 or steps < 1:
        raise ValueError(f"runs and steps must be at least 1, got {runs} and {steps}")
    m_max = min(steps, n)
    nodes = torch.zeros(runs, m_max, dtype=torch.float64)
    weights = torch.zeros(runs, m_max, dtype=torch.float64)
    matvecs = 0
    for run in range(runs):
        start = torch.randint(0, 2, (n,), generator=generator, dtype=torch.int8) * 2 - 1
        alpha, beta = lanczos_tridiagonal(op, start.to(op.device, op.dtype), m_max)
        matvecs += alpha.numel()
        m = alpha.numel()
        theta, s = torch.linalg.eigh(
            torch.diag(alpha) + torch.diag(beta[: m - 1], 1) + torch.diag(beta[: m - 1], -1)
        )
        nodes[run, :m] = theta
        weights[run, :m] = s[0].square()
    return SpectralQuadrature(nodes, weights, matvecs)


def lanczos_tridiagonal(op: LinearOperator, start: Tensor, steps: int) -> tuple[Tensor, Tensor]:
    """Diagonal α (m,) and off-diagonal β (m,) of T = Qᵀ A Q from the unit vector along `start`.

    Lanczos (1950) with full reorthogonalisation (Golub & Van Loan, §10.1); m ≤ steps is smaller
    when the Krylov space becomes invariant. β's last entry is the residual norm. float64, CPU.
    """
    n = op.shape[0]
    eps = torch.finfo(op.dtype).eps
    basis = torch.zeros(steps, n, dtype=op.dtype, device=op.device)
    basis[0] = start / start.norm()
    alpha = torch.zeros(steps, dtype=torch.float64)
    beta = torch.zeros(steps, dtype=torch.float64)
    scale = 0.0
    for j in range(steps):
        w = op @ basis[j]
        if not torch.isfinite(w).all():
            raise FloatingPointError("the operator returned non-finite values")
        known = basis[: j + 1]
        coeffs = known @ w
        alpha[j] = coeffs[j].item()
        w = w - known.T @ coeffs
        w = w - known.T @ (known @ w)
        b = w.norm().item()
        beta[j] = b
        scale = max(scale, abs(alpha[j].item()), b)
        if j + 1 == steps or b <= 100 * eps * max(scale, torch.finfo(op.dtype).tiny):
            return alpha[: j + 1], beta[: j + 1]
        basis[j + 1] = w / b
    return alpha, beta
