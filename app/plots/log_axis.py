"""A log axis with labels that do not overlap, and the count of what a log axis cannot show.

pyqtgraph's log mode labels every minor tick, and on an axis spanning a decade or two the labels
"0.1 0.09 0.08 0.07 …" overlap into a smear. `LogAxis` labels decades only when the axis spans a
decade or more, and a few minor ticks when it spans less (no decade may be in sight then).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg

MINOR_LABELS = 4
"""At most this many minor ticks are labelled on a log axis spanning less than a decade."""


def _is_decade(value: float) -> bool:
    return abs(value - round(value)) < 1e-9


class LogAxis(pg.AxisItem):
    """An axis whose log mode labels decades (and, within one decade, a few minor ticks)."""

    def __init__(self, orientation: str, **kwargs: object) -> None:
        super().__init__(orientation, **kwargs)
        self._span = math.inf

    def logTickValues(self, minVal, maxVal, size, stdTicks):  # type: ignore[no-untyped-def]
        self._span = maxVal - minVal
        return super().logTickValues(minVal, maxVal, size, stdTicks)

    def logTickStrings(self, values, scale, spacing):  # type: ignore[no-untyped-def]
        strings = super().logTickStrings(values, scale, spacing)
        return [s if keep else "" for s, keep in zip(strings, self._labelled(values), strict=True)]

    def _labelled(self, values: list[float]) -> list[bool]:
        """Decades always; minor ticks only within less than a decade, at most a few of them."""
        if self._span >= 1:
            return [_is_decade(v) for v in values]
        minors = [i for i, v in enumerate(values) if not _is_decade(v)]
        every = max(1, math.ceil(len(minors) / MINOR_LABELS))
        keep = set(minors[::every])
        return [_is_decade(v) or i in keep for i, v in enumerate(values)]


def hidden_by_log(values: np.ndarray) -> int:
    """How many values a log axis cannot show: those ≤ 0 (NaN are gaps, not hidden values)."""
    return int(np.count_nonzero(values <= 0))
