"""Extreme eigenpairs of a symmetric operator by Lanczos iteration.

Lanczos (1950); full reorthogonalisation as in Golub & Van Loan, Matrix Computations, §10.1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from descentlab.engine.curvature.operators import LinearOperator


@dataclass(frozen=True)
class LanczosResult:
    """Ritz approximations to the k largest and the smallest eigenpairs.

    `residuals` are ‖A y − θ y‖ for the top pairs then the smallest one, from the Lanczos
    identity |β_m s_m| (exact in exact arithmetic, and kept so by the reorthogonalisation).
    An eigenvalue's error is at most its residual, and about residual²/gap once it has converged.
    """

    eigenvalues: Tensor
    """(k,) float64 on the CPU, descending."""
    eigenvectors: Tensor
    """(n, k) orthonormal columns, in the operator's dtype and device."""
    min_eigenvalue: float
    min_eigenvector: Tensor
    """(n,) in the operator's dtype and device."""
    residuals: Tensor
    """(k + 1,) float64: the top pairs', then the smallest pair's."""
    iterations: int
    """Products with the operator spent."""
    converged: bool


def lanczos(
    op: LinearOperator,
    k: int = 1,
    *,
    start: Tensor | None = None,
    iterations: int = 40,
    tol: float = 1e-5,
    smallest: bool = True,
    perturbation: float = 0.1,
    generator: torch.Generator | None = None,
) -> LanczosResult:
    """The k largest eigenpairs (largest algebraic) and the smallest eigenpair of symmetric `op`.

    Builds an orthonormal Krylov basis Q_m of span{q, Aq, …, A^{m−1}q}, with T_m = Q_mᵀ A Q_m
    tridiagonal; the eigenpairs (θ_i, s_i) of T_m give Ritz pairs (θ_i, Q_m s_i). Each new vector
    is orthogonalised against the whole basis, twice (classical Gram–Schmidt, "twice is enough"),
    which prevents the ghost copies of converged eigenvalues that plain Lanczos produces. If the
    Krylov space becomes invariant (β ≈ 0), the iteration restarts from a random vector orthogonal
    to the basis, so repeated eigenvalues are found with their multiplicity.

    Args:
        op: symmetric operator of shape (n, n).
        k: number of largest eigenpairs wanted, 1 ≤ k ≤ n.
        start: warm start, a vector (n,) or a block (n, j) such as the previous call's
            eigenvectors; the first Lanczos vector is the normalised sum of its normalised
            columns plus `perturbation` times a random unit vector. None starts at random.
        iterations: budget of products with `op`, capped at n (where T_n is exact) and raised
            to k; more iterations resolve eigenvalues deeper in a dense spectrum.
        tol: stop early once every wanted pair has residual ≤ tol · max|θ|; smaller is more
            accurate but needs more products (below ~1e-6 in float32, the budget always runs out).
        smallest: whether the smallest pair must converge too before stopping early.
        perturbation: weight of the random part of a warm start. Smaller reconverges the known
            pairs sooner (0.01 saves about a third of the products on a converged MLP, 1 almost
            nothing), but an eigenvalue that has newly moved into the top k starts with a
            component ~perturbation/√n and is found later, or missed if the iteration stops early.
        generator: source of the random vectors (CPU generator; None uses torch's global one).

    Returns:
        The Ritz pairs, their residuals, the products spent and whether `tol` was met.
    """
    n = op.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    steps = min(n, max(iterations, k))
    needed = min(n, k + 1) if smallest else k
    dtype, device = op.dtype, op.device
    eps = torch.finfo(dtype).eps

    basis = torch.zeros(steps + 1, n, dtype=dtype, device=device)
    basis[0] = _first_vector(n, start, perturbation, generator, dtype, device)
    alpha = torch.zeros(steps, dtype=torch.float64)
    beta = torch.zeros(steps, dtype=torch.float64)
    scale = 0.0  # running estimate of ‖A‖₂, the yardstick for tol and for breakdown
    converged = False
    m = 0
    for j in range(steps):
        m = j + 1
        w = op @ basis[j]
        if not torch.isfinite(w).all():
            raise FloatingPointError("the operator returned non-finite values")
        known = basis[:m]
        coeffs = known @ w
        alpha[j] = coeffs[j].item()
        w = w - known.T @ coeffs
        w = w - known.T @ (known @ w)
        b = w.norm().item()
        theta, s = torch.linalg.eigh(_tridiagonal(alpha[:m], beta[: m - 1]))
        scale = max(scale, theta.abs().max().item())
        if m == n:
            converged = True
            break
        if b <= max(tol, 100 * eps) * scale:
            # The Krylov space is invariant (to within tol): every Ritz pair is exact, but a
            # repeated or unreached eigenvalue may still be missing, so continue in a fresh
            # direction; T gets a zero off-diagonal, which moves no eigenvalue by more than b.
            basis[m] = _orthogonal_random(known, generator, dtype, device)
            continue
        beta[j] = b
        basis[m] = w / b
        if m >= needed:
            wanted = torch.cat([s[-1, -k:], s[-1, :1]]) if smallest else s[-1, -k:]
            if (b * wanted.abs()).max().item() <= tol * scale:
                converged = True
                break

    theta, s = torch.linalg.eigh(_tridiagonal(alpha[:m], beta[: m - 1]))
    ritz = basis[:m].T @ s.to(dtype=dtype, device=device)
    residuals = beta[m - 1] * s[-1].abs() if m < n else torch.zeros(m, dtype=torch.float64)
    top = torch.arange(m - 1, m - 1 - k, -1)
    return LanczosResult(
        eigenvalues=theta[top],
        eigenvectors=ritz[:, top],
        min_eigenvalue=theta[0].item(),
        min_eigenvector=ritz[:, 0],
        residuals=torch.cat([residuals[top], residuals[:1]]),
        iterations=m,
        converged=converged,
    )


def _tridiagonal(alpha: Tensor, beta: Tensor) -> Tensor:
    return torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)


def _first_vector(
    n: int,
    start: Tensor | None,
    perturbation: float,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device,
) -> Tensor:
    noise = _unit(torch.randn(n, generator=generator, dtype=torch.float64).to(device, dtype))
    if start is None:
        return noise
    block = start.detach().reshape(n, -1).to(device, dtype)
    tiny = torch.finfo(dtype).tiny
    warm = (block / block.norm(dim=0).clamp_min(tiny)).sum(dim=1)
    return _unit(warm / warm.norm().clamp_min(tiny) + perturbation * noise)


def _orthogonal_random(
    known: Tensor, generator: torch.Generator | None, dtype: torch.dtype, device: torch.device
) -> Tensor:
    r = torch.randn(known.shape[1], generator=generator, dtype=torch.float64).to(device, dtype)
    r = r - known.T @ (known @ r)
    return _unit(r - known.T @ (known @ r))


def _unit(v: Tensor) -> Tensor:
    return v / v.norm()
