"""Bias-corrected exponential moving average, as TensorBoard's "debiased" smoothing.

    m_t = β m_{t−1} + (1 − β) x_t,   m_0 = 0,   ŝ_t = m_t / (1 − β^t)

where t counts the finite values seen so far. Non-finite values (NaN, ±inf from a diverged run)
leave the state alone and are passed through as they are, so a gap in the data stays a gap in
the smoothed curve instead of poisoning everything after it. Without the 1/(1 − β^t) factor the
start of the curve would be dragged towards 0.

The recurrence is linear, so a block of B values is solved in closed form with cumulative sums:
with c_j the number of finite values among the block's first j,

    m_j = β^{c_j} (m_prev + (1 − β) Σ_{i ≤ j, x_i finite} β^{−c_i} x_i).

β^{−c} grows with the block, so blocks are cut where it would reach `_GROWTH_LIMIT`: large
enough that a million points at β = 0.999 take a handful of numpy passes, small enough that
float64 neither overflows nor loses the early terms. `EmaSmoother` keeps (m, t) between calls,
so a live plot smooths only the records that arrived since its last redraw.
"""

from __future__ import annotations

import math

import numpy as np

_GROWTH_LIMIT = 1e100
"""Largest β^{−B} a block may reach: values up to ~1e200 still fit in float64."""

_MAX_BLOCK = 1 << 16
"""Bounds the temporaries of one block (a few MB) whatever β."""


def _block_size(beta: float) -> int:
    return max(1, min(_MAX_BLOCK, int(math.log(_GROWTH_LIMIT) / -math.log(beta))))


class EmaSmoother:
    """Debiased EMA of one growing series of records of any shape (the time axis is 0).

    `update(values)` takes the whole series so far (a view is fine) and returns the smoothed
    series of the same shape; only the records beyond the previous call are computed. A series
    that got shorter (a new session, a replay limit moved back) is smoothed again from the start.
    """

    def __init__(self, beta: float) -> None:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"smoothing weight must be in [0, 1), got {beta}")
        self.beta = beta
        self._out = np.empty(0)
        self._n = 0
        self._m: np.ndarray | float = 0.0
        self._t: np.ndarray | int = 0

    def update(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        n = len(values)
        if n < self._n or self._out.shape[1:] != values.shape[1:]:
            self._out = np.empty((0, *values.shape[1:]))
            self._n, self._m, self._t = 0, 0.0, 0
        if self.beta == 0.0:
            return values  # ŝ_t = x_t: nothing to compute or to keep
        if n > len(self._out):
            grown = np.empty((max(n, 2 * len(self._out)), *values.shape[1:]))
            grown[: self._n] = self._out[: self._n]
            self._out = grown
        block = _block_size(self.beta)
        for start in range(self._n, n, block):
            stop = min(start + block, n)
            self._out[start:stop] = self._smooth_block(values[start:stop])
        self._n = n
        return self._out[:n]

    def _smooth_block(self, x: np.ndarray) -> np.ndarray:
        beta = self.beta
        finite = np.isfinite(x)
        counts = np.cumsum(finite, axis=0)
        powers = beta ** np.arange(len(x) + 1, dtype=np.float64)
        inverse = 1.0 / powers
        terms = np.where(finite, x, 0.0) * (1.0 - beta) * inverse[counts]
        m = powers[counts] * (self._m + np.cumsum(terms, axis=0))
        t = self._t + counts
        with np.errstate(invalid="ignore", divide="ignore"):
            smoothed = np.where(finite, m / -np.expm1(t * math.log(beta)), x)
        self._m = m[-1].copy() if m.ndim > 1 else float(m[-1])
        self._t = t[-1].copy() if t.ndim > 1 else int(t[-1])
        return smoothed


def ema(values: np.ndarray, beta: float) -> np.ndarray:
    """The debiased EMA of a whole series (records along axis 0) in one call."""
    return EmaSmoother(beta).update(values).copy()
