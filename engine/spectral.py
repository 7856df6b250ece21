"""Pure spectral statistics shared by the spectra diagnostics (weights, updates, activations).

Every function takes plain tensors or arrays and returns plain numbers, so that each can be tested
against a hand computation and reused by plugins. Conventions:

- Singular values are descending and non-negative (`torch.linalg.svdvals`).
- **Marchenko–Pastur.** For a `rows × cols` matrix W with i.i.d. zero-mean entries of variance σ²,
  the eigenvalues of the covariance-type matrix C = W Wᵀ / cols, that is λ_i = s_i² / cols for
  the singular values s_i of W, fill (as rows, cols → ∞ with q = rows/cols fixed) the bulk
  [σ²(1 − √q)², σ²(1 + √q)²] (Marchenko & Pastur 1967). With this normalisation the upper edge
  λ₊ = σ²(1 + √q)² holds for q > 1 as well: the min(rows, cols) nonzero eigenvalues of W Wᵀ/cols
  are those of WᵀW/cols, whose edge is q·σ²(1 + 1/√q)² = σ²(1 + √q)². The matching estimate of
  σ² is the mean of all squared entries, ‖W‖_F² / (rows·cols) = Σλ_i / rows (not centred: a
  nonzero mean is itself a rank-one spike and should show as an outlier). Planted structure also
  enters that estimate, by its share of ‖W‖_F², which raises the edge a little: outlier counts are
  conservative. For features X (n samples × d features) the covariance XᵀX/n is the case
  W = Xᵀ, rows = d, cols = n.
- **Power-law tails** are fitted as Clauset, Shalizi & Newman (2009), "Power-law distributions in
  empirical data", SIAM Review 51(4):661–703: the continuous maximum-likelihood exponent
  α̂ = 1 + n / Σ_{x_i ≥ x_min} ln(x_i / x_min) (their eq. 3.1) for every candidate x_min among the
  data, keeping the x_min whose tail is closest to the fitted law in Kolmogorov–Smirnov distance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

MIN_TAIL = 10
"""Fewest points a power-law tail is fitted on; fewer data give α = NaN."""


def matrix_ranks(named_params: Mapping[str, Tensor]) -> dict[str, int]:
    """The parameters that are matrices (two or more dimensions, seen as out × rest), each with
    its rank bound min(out, rest): the length of its singular-value spectrum."""
    return {
        name: min(p.shape[0], p.shape[1:].numel())
        for name, p in named_params.items()
        if p.ndim >= 2
    }


def _as_numpy(values: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    return np.asarray(values, dtype=np.float64)


def stable_rank(singular_values: Tensor | np.ndarray) -> float:
    """Σσ²/σ₁² = ‖W‖_F²/‖W‖₂², in [1, rank W]; the zero matrix gets 0, its rank."""
    s = _as_numpy(singular_values)
    top = s.max(initial=0.0)
    if top == 0:
        return 0.0
    return float(np.square(s).sum() / top**2)


def effective_rank(singular_values: Tensor | np.ndarray) -> float:
    """exp(H(p)) with p = σ/Σσ and H the Shannon entropy in nats (Roy & Vetterli 2007).

    r equal nonzero singular values give exactly r; the zero matrix gets 0. Zeros contribute
    0·log 0 = 0.
    """
    s = _as_numpy(singular_values)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s[s > 0] / total
    return float(math.exp(-(p * np.log(p)).sum()))


def covariance_eigenvalues(matrix: Tensor) -> Tensor:
    """Eigenvalues s_i²/cols of W Wᵀ/cols, descending, for the min(rows, cols) singular values."""
    w = matrix.detach().to("cpu", torch.float64)
    return torch.linalg.svdvals(w).square() / w.shape[1]


def noise_variance(matrix: Tensor) -> float:
    """σ² estimate matching `marchenko_pastur_edge`: the mean of all squared entries."""
    w = matrix.detach().to("cpu", torch.float64)
    return float(w.square().mean()) if w.numel() else 0.0


def marchenko_pastur_edge(sigma2: float, rows: int, cols: int) -> float:
    """Upper bulk edge λ₊ = σ²(1 + √q)², q = rows/cols, of the eigenvalues of W Wᵀ/cols."""
    return float(sigma2 * (1.0 + math.sqrt(rows / cols)) ** 2)


@dataclass(frozen=True)
class MarchenkoPastur:
    """The bulk edge of a matrix and the eigenvalues of W Wᵀ/cols that lie above it."""

    edge: float
    outliers: int
    sigma2: float


def marchenko_pastur_outliers(
    eigenvalues: Tensor | np.ndarray, sigma2: float, rows: int, cols: int
) -> MarchenkoPastur:
    """Count the eigenvalues (of W Wᵀ/cols, or of a covariance) strictly above the MP edge."""
    edge = marchenko_pastur_edge(sigma2, rows, cols)
    count = int((_as_numpy(eigenvalues) > edge).sum())
    return MarchenkoPastur(edge=edge, outliers=count, sigma2=sigma2)


def matrix_marchenko_pastur(matrix: Tensor) -> MarchenkoPastur:
    """MP edge and outliers of a `rows × cols` matrix, σ² from its mean squared entry."""
    rows, cols = matrix.shape
    return marchenko_pastur_outliers(
        covariance_eigenvalues(matrix), noise_variance(matrix), rows, cols
    )


@dataclass(frozen=True)
class PowerLawFit:
    """Clauset–Shalizi–Newman fit of p(x) ∝ x^(−α) for x ≥ x_min.

    `ks` is the Kolmogorov–Smirnov distance of the tail from the fitted law, `n_tail` the number
    of points at or above x_min, `sigma` the MLE's standard error (α − 1)/√n_tail (CSN eq. 3.2).
    A failed fit (too few positive points) has α = NaN and n_tail = 0.
    """

    alpha: float
    x_min: float
    n_tail: int
    ks: float

    @property
    def sigma(self) -> float:
        return (self.alpha - 1.0) / math.sqrt(self.n_tail) if self.n_tail else math.nan


_FAILED = PowerLawFit(alpha=math.nan, x_min=math.nan, n_tail=0, ks=math.nan)


def _ks_distance(tail: np.ndarray, alpha: float) -> float:
    """sup |S − P| between the empirical CDF of the sorted `tail` and the fitted power law."""
    n = tail.size
    fitted = 1.0 - (tail / tail[0]) ** (1.0 - alpha)
    above = np.arange(1, n + 1) / n - fitted
    below = fitted - np.arange(n) / n
    return float(max(above.max(), below.max()))


def power_law_fit(
    data: Tensor | np.ndarray, x_min: float | None = None, min_tail: int = MIN_TAIL
) -> PowerLawFit:
    """Continuous power-law fit of the upper tail of `data` (Clauset, Shalizi & Newman 2009).

    With `x_min` given, α̂ = 1 + n / Σ ln(x_i/x_min) over the n points x_i ≥ x_min. Otherwise every
    distinct data value that leaves at least `min_tail` points in the tail is tried as x_min and
    the one minimising the KS distance is kept. Non-positive values are dropped (eigenvalues of
    rank-deficient matrices are 0 up to rounding).
    """
    x = np.sort(_as_numpy(data).ravel())
    x = x[x > 0]
    if x_min is not None:
        tail = x[x >= x_min]
        logs = np.log(tail / x_min).sum()
        if tail.size < 2 or logs <= 0:
            return _FAILED
        alpha = float(1.0 + tail.size / logs)
        return PowerLawFit(alpha, float(x_min), int(tail.size), _ks_distance(tail, alpha))
    n_total = x.size
    if n_total < max(min_tail, 2):
        return _FAILED
    log_x = np.log(x)
    # Σ_{j ≥ i} ln x_j for every start i, so each candidate's MLE costs O(1).
    suffix = np.cumsum(log_x[::-1])[::-1]
    best = _FAILED
    candidates = np.flatnonzero(np.r_[True, x[1:] != x[:-1]])  # first index of each value
    for i in candidates[candidates <= n_total - min_tail]:
        n = n_total - i
        logs = suffix[i] - n * log_x[i]
        if logs <= 0:
            continue
        alpha = 1.0 + n / logs
        ks = _ks_distance(x[i:], alpha)
        if not ks >= best.ks:  # also true while best.ks is NaN
            best = PowerLawFit(float(alpha), float(x[i]), int(n), ks)
    return best
