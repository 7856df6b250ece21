"""Zoom that survives live updates: auto-range until the user zooms or pans, then hold still.

pyqtgraph's ViewBox already turns auto-range off when the user changes the range by mouse
(its `setRange` disables it), so new data no longer moves the view. What it lacks is an obvious
way back; its own small "A" corner button is easy to miss and is hidden here in favour of a
labelled button that is enabled exactly while the user's range is held.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QPushButton, QWidget


class AutoRangeButton(QPushButton):
    """An "Auto-range" button for one plot: enabled by a manual zoom, a click resumes."""

    def __init__(self, plot: pg.PlotItem, parent: QWidget | None = None) -> None:
        super().__init__("Auto-range", parent)
        self.setToolTip("Follow the data again (after a zoom or pan held the view still)")
        self.setEnabled(False)
        self._plot = plot
        plot.hideButtons()
        plot.getViewBox().sigRangeChangedManually.connect(self._held)
        self.clicked.connect(self.resume)

    @property
    def held(self) -> bool:
        """Whether the user's range is being kept (the view ignores new data's extent)."""
        return self.isEnabled()

    def resume(self) -> None:
        self._plot.enableAutoRange()
        self.setEnabled(False)

    def _held(self) -> None:
        self.setEnabled(True)
