"""Spectrum view: singular values of one layer as a heatmap over steps beside the latest spectrum.

The heatmap (x = step, y = index i of the values, colour = the value, log₁₀ of it for spectra
declared on a log scale) shows how a spectrum evolves in one run, e.g. outliers growing out of
a random bulk; the line plot beside it overlays every run's latest spectrum so that optimizers
can be compared at once
(an orthogonalising optimizer's flatter spectrum is visible as a flatter line). Records are
spaced evenly by their schedule, so each record is one image column of equal width.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QHBoxLayout

from descentlab.app.plots.heatmap_view import HeatmapView
from descentlab.app.session_model import SeriesBuffer

__all__ = ["SpectrumPlot", "log_spectrum"]


def log_spectrum(values: np.ndarray) -> np.ndarray:
    """log₁₀ σ, with NaN (drawn transparent) where σ ≤ 0 or not finite: no colour for no value."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(values)
    logs[~np.isfinite(logs)] = np.nan
    return logs


class SpectrumPlot(HeatmapView):
    """Heatmap of the selected run and latest spectra of all runs, for one selected layer."""

    latest_title = "Latest spectrum"
    layer_tooltip = "Which weight matrix"
    run_tooltip = "Whose spectrum the heatmap shows"

    def _label_axes(self) -> None:
        """Name what each axis shows after the quantity's own symbol (σ, λ …) and unit."""
        symbol = self.group.symbol or "value"
        value = self.group.value_label or symbol
        self.heatmap_plot.setLabel("left", f"index i of {symbol}ᵢ")
        self.latest_plot.setLabel("bottom", f"index i of {symbol}ᵢ")
        self.latest_plot.setLabel("left", value)
        self.latest_plot.setLogMode(False, self.group.log_y)
        self.color_bar.axis.setLabel(f"log₁₀ {value}" if self.group.log_y else value)

    def _add_layer_selector(self, bar: QHBoxLayout) -> None:
        self.layer_box.setVisible(bool(self.group.layers))
        super()._add_layer_selector(bar)

    def latest_item(self, run: str) -> pg.PlotDataItem:
        """The line of the run's latest spectrum (its values against their index i)."""
        return super().latest_item(run)

    def _draw_heatmap(self, run: str, buffer: SeriesBuffer) -> None:
        steps, values = buffer.view(self._step_limit)
        self._heatmap_drawn = (buffer, buffer.version)
        if len(steps) == 0:
            self.image.clear()
            return
        # (records, k): image axis 0 is x, as pyqtgraph expects; signed spectra (Hessian
        # eigenvalues) are drawn as they are, positive ones (singular values) on a log scale
        logs = log_spectrum(values) if self.group.log_y else values.astype(float)
        self.image.setImage(logs, autoLevels=False)
        spacing = float(steps[-1] - steps[0]) / (len(steps) - 1) if len(steps) > 1 else 1.0
        k = logs.shape[1]
        self.image.setRect(QRectF(steps[0] - spacing / 2, 0.5, spacing * len(steps), k))
        finite = logs[np.isfinite(logs)]
        if finite.size:
            low, high = float(finite.min()), float(finite.max())
            self.color_bar.setLevels((low, high if high > low else low + 1.0))

    def _new_latest_item(self, run: str) -> pg.PlotDataItem:
        return pg.PlotDataItem(name=run, symbol="o", symbolSize=4)

    def _latest_data(self, run: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.arange(1, values.shape[1] + 1), values[-1]

    def _style_latest(self, run: str, item: pg.PlotDataItem) -> None:
        super()._style_latest(run, item)
        color = self.colors.color(run)
        item.setSymbolBrush(color)
        item.setSymbolPen(color)
