"""Histogram view: a histogram series as a heatmap over steps beside every run's latest histogram.

The heatmap (x = step, y = bin, colour = the fraction in the bin) shows how a distribution
drifts in one run, e.g. Adam's effective step sizes spreading over decades; the plot beside it
overlays every run's latest histogram as a step curve so that optimizers can be compared at once.
The bins' edges come from the output's attrs (`edges`, and `log10` when they are even in log₁₀:
the y axis then shows log₁₀ of the edge values); without edges the y axis is the bin index.
Records are spaced evenly by their schedule, so each record is one image column of equal width.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QHBoxLayout

from descentlab.app.plots.heatmap_view import HeatmapView
from descentlab.app.session_model import SeriesBuffer

__all__ = ["HistogramPlot", "bin_edges"]


def bin_edges(attrs: dict, bins: int, value: str = "value") -> tuple[np.ndarray, str]:
    """The y coordinates of the `bins + 1` bin edges, and the y axis label.

    log₁₀ of the stored edges when attrs say `log10`, the edges themselves otherwise; edges
    halfway between the points of a `grid` [low, high, points] of bin centres (a density); and
    the bin index 0 … bins when the attrs hold neither. `value` names what is binned.
    """
    index = np.arange(bins + 1, dtype=np.float64), "bin"
    grid = attrs.get("grid")
    if "edges" not in attrs and isinstance(grid, (list, tuple)) and len(grid) == 3:
        low, high, points = float(grid[0]), float(grid[1]), int(grid[2])
        if points != bins or points < 2:
            return index
        half = (high - low) / (points - 1) / 2
        return np.linspace(low - half, high + half, points + 1), value
    edges = np.asarray(attrs.get("edges", []), dtype=np.float64)
    if edges.shape != (bins + 1,):
        return index
    if attrs.get("log10"):
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log10(edges)
        if np.all(np.isfinite(logs)):
            return logs, f"log₁₀ {value}"
        return index
    return edges, value


class HistogramPlot(HeatmapView):
    """Heatmap of the selected run and latest histograms of all runs (per layer if layered)."""

    color_label = "fraction"
    latest_title = "Latest histogram"
    layer_tooltip = "Which layer"
    run_tooltip = "Whose histograms the heatmap shows"

    def _label_axes(self) -> None:
        self.latest_plot.setLabel("left", "fraction")

    def _add_layer_selector(self, bar: QHBoxLayout) -> None:
        if self.group.layers:
            super()._add_layer_selector(bar)

    @property
    def series(self) -> str:
        """The series shown: the selected layer's, or the group's only one."""
        if self.group.layers:
            return self.group.series_for(self.layer_box.currentText())
        return self.group.series[0]

    def latest_item(self, run: str) -> pg.PlotDataItem:
        """The step curve of the run's latest histogram (fraction against the bin edges)."""
        return super().latest_item(run)

    def edges(self, run: str) -> tuple[np.ndarray, str]:
        """Bin edges on the y axis of the heatmap (x axis of the latest plot) and their label."""
        run_model = self.model.runs[run]
        output = run_model.outputs.get(self.series)
        buffer = run_model.series[self.series]
        bins = buffer.shape[0] if buffer.shape else 0
        attrs = output.attrs if output is not None else {}
        return bin_edges(attrs, bins, self.group.symbol or self.group.value_label or "value")

    def _draw_heatmap(self, run: str, buffer: SeriesBuffer) -> None:
        steps, values = buffer.view(self._step_limit)
        self._heatmap_drawn = (buffer, buffer.version)
        edges, label = self.edges(run)
        self.heatmap_plot.setLabel("left", label)
        if len(steps) == 0:
            self.image.clear()
            return
        self.image.setImage(values, autoLevels=False)  # (records, bins): axis 0 is x
        spacing = float(steps[-1] - steps[0]) / (len(steps) - 1) if len(steps) > 1 else 1.0
        height = float(edges[-1] - edges[0]) or 1.0
        self.image.setRect(QRectF(steps[0] - spacing / 2, edges[0], spacing * len(steps), height))
        finite = values[np.isfinite(values)]
        high = float(finite.max()) if finite.size else 0.0
        self.color_bar.setLevels((0.0, high if high > 0 else 1.0))

    def _new_latest_item(self, run: str) -> pg.PlotDataItem:
        return pg.PlotDataItem(name=run, stepMode="center")

    def _label_latest(self, run: str) -> None:
        self.latest_plot.setLabel("bottom", self.edges(run)[1])

    def _latest_data(self, run: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.edges(run)[0], values[-1]
