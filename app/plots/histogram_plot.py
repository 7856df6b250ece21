"""Histogram view: a histogram series as a heatmap over steps beside every run's latest histogram.

The heatmap (x = step, y = bin, colour = the fraction in the bin) shows how a distribution
drifts in one run, e.g. Adam's effective step sizes spreading over decades; the plot beside it
overlays every run's latest histogram as a step curve so that optimizers can be compared at once.
The bins' edges come from the output's attrs (`edges`, and `log10` when they are even in log₁₀:
the y axis then shows log₁₀ of the edge values); without edges the y axis is the bin index.
Records are spaced evenly by their schedule, so each record is one image column of equal width.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from descentlab.app.plots.colors import RunColors, apply_theme, run_colors
from descentlab.app.plots.export import ExportButton, save_png, save_svg, series_rows, write_csv
from descentlab.app.plots.layout import PlotGroup
from descentlab.app.session_model import SeriesBuffer, SessionModel

COLOR_MAP = "viridis"


def bin_edges(attrs: dict, bins: int) -> tuple[np.ndarray, str]:
    """The y coordinates of the `bins + 1` bin edges, and the y axis label.

    log₁₀ of the stored edges when attrs say `log10`, the edges themselves otherwise, and the bin
    index 0 … bins when the attrs hold no usable edges.
    """
    edges = np.asarray(attrs.get("edges", []), dtype=np.float64)
    if edges.shape != (bins + 1,):
        return np.arange(bins + 1, dtype=np.float64), "bin"
    if attrs.get("log10"):
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log10(edges)
        if np.all(np.isfinite(logs)):
            return logs, "log₁₀ value"
        return np.arange(bins + 1, dtype=np.float64), "bin"
    return edges, "value"


class HistogramPlot(QWidget):
    """Heatmap of the selected run and latest histograms of all runs (per layer if layered)."""

    def __init__(
        self,
        group: PlotGroup,
        model: SessionModel,
        colors: RunColors | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.group = group
        self.model = model
        self.colors = colors or run_colors(model)
        self.export_name = group.key.replace("/", "_")
        self._step_limit: int | None = None
        self._heatmap_drawn: tuple[SeriesBuffer | None, int] = (None, -1)
        self._latest: dict[str, pg.PlotDataItem] = {}
        self._latest_drawn: dict[str, tuple[SeriesBuffer, int]] = {}

        self.graphics = pg.GraphicsLayoutWidget()
        self.heatmap_plot: pg.PlotItem = self.graphics.addPlot(row=0, col=0)
        self.heatmap_plot.setTitle(group.title)
        self.heatmap_plot.setLabel("bottom", "step")
        self.image = pg.ImageItem()
        self.heatmap_plot.addItem(self.image)
        self.color_bar = pg.ColorBarItem(colorMap=COLOR_MAP, label="fraction", interactive=False)
        self.color_bar.setImageItem(self.image, insert_in=self.heatmap_plot)

        self.latest_plot: pg.PlotItem = self.graphics.addPlot(row=0, col=1)
        self.latest_plot.setTitle("Latest histogram")
        self.latest_plot.setLabel("left", "fraction")
        self.latest_plot.showGrid(x=True, y=True, alpha=0.15)
        self.latest_plot.addLegend(offset=(-10, 10))
        self.graphics.ci.layout.setColumnStretchFactor(0, 3)
        self.graphics.ci.layout.setColumnStretchFactor(1, 2)

        self.layer_box = QComboBox()
        self.layer_box.addItems(group.layers)
        self.layer_box.setToolTip("Which layer")
        self.run_box = QComboBox()
        self.run_box.setToolTip("Whose histograms the heatmap shows")
        self.layer_box.currentTextChanged.connect(self._selection_changed)
        self.run_box.currentTextChanged.connect(self._selection_changed)

        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 0)
        bar.setSpacing(8)
        if group.layers:
            bar.addWidget(QLabel("layer"))
            bar.addWidget(self.layer_box)
        bar.addWidget(QLabel("heatmap of"))
        bar.addWidget(self.run_box)
        bar.addStretch(1)
        bar.addWidget(ExportButton(self))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(self.graphics)

        self.colors.themeChanged.connect(self._restyle)
        model.cleared.connect(self._clear)
        self._restyle()
        self.refresh()

    @property
    def series(self) -> str:
        """The series shown: the selected layer's, or the group's only one."""
        if self.group.layers:
            return self.group.series_for(self.layer_box.currentText())
        return self.group.series[0]

    def latest_item(self, run: str) -> pg.PlotDataItem:
        """The step curve of the run's latest histogram (fraction against the bin edges)."""
        return self._latest[run]

    def edges(self, run: str) -> tuple[np.ndarray, str]:
        """Bin edges on the y axis of the heatmap (x axis of the latest plot) and their label."""
        run_model = self.model.runs[run]
        output = run_model.outputs.get(self.series)
        buffer = run_model.series[self.series]
        bins = buffer.shape[0] if buffer.shape else 0
        return bin_edges(output.attrs if output is not None else {}, bins)

    def set_step_limit(self, step: int | None) -> None:
        """Show the histograms up to `step` only (replay), or all of them again with None."""
        self._step_limit = step
        self._selection_changed()

    # -- redraw ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Redraw what changed: the heatmap's buffer, each run's latest histogram."""
        if not self.isVisible():
            return
        self._sync_runs()
        name = self.series
        for run_name, run in self.model.runs.items():
            buffer = run.series.get(name)
            if buffer is not None and self._latest_drawn.get(run_name) != (buffer, buffer.version):
                self._draw_latest(run_name, buffer)
        run_name = self.run_box.currentText()
        run = self.model.runs.get(run_name)
        buffer = run.series.get(name) if run is not None else None
        if buffer is not None and self._heatmap_drawn != (buffer, buffer.version):
            self._draw_heatmap(run_name, buffer)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()

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

    def _draw_latest(self, run: str, buffer: SeriesBuffer) -> None:
        item = self._latest.get(run)
        if item is None:
            item = self._latest[run] = pg.PlotDataItem(name=run, stepMode="center")
            self.latest_plot.addItem(item)
            self._style_latest(run, item)
        steps, values = buffer.view(self._step_limit)
        edges, label = self.edges(run)
        self.latest_plot.setLabel("bottom", label)
        if len(steps):
            item.setData(edges, values[-1])
        else:
            item.setData([], [])
        self._latest_drawn[run] = (buffer, buffer.version)

    def _sync_runs(self) -> None:
        """Offer every run in the heatmap's run selector (the first one is selected at first)."""
        names = list(self.model.runs)
        if names != [self.run_box.itemText(i) for i in range(self.run_box.count())]:
            current = self.run_box.currentText()
            self.run_box.blockSignals(True)
            self.run_box.clear()
            self.run_box.addItems(names)
            if names:
                self.run_box.setCurrentText(current if current in names else names[0])
            self.run_box.blockSignals(False)

    def _selection_changed(self) -> None:
        self._heatmap_drawn = (None, -1)
        self._latest_drawn.clear()
        self.refresh()

    def _clear(self) -> None:
        for item in self._latest.values():
            self.latest_plot.removeItem(item)
        self._latest.clear()
        self._selection_changed()
        self.image.clear()

    # -- style -----------------------------------------------------------------------------

    def _style_latest(self, run: str, item: pg.PlotDataItem) -> None:
        item.setPen(pg.mkPen(self.colors.color(run), width=1.5))

    def _restyle(self) -> None:
        theme = self.colors.theme
        self.graphics.setBackground(theme.background)
        apply_theme(self.heatmap_plot, theme)
        apply_theme(self.latest_plot, theme)
        apply_theme(self.color_bar, theme)
        for run, item in self._latest.items():
            self._style_latest(run, item)

    # -- export ----------------------------------------------------------------------------

    def export_png(self, path: str | Path) -> None:
        save_png(self.graphics.ci, path)

    def export_svg(self, path: str | Path) -> None:
        save_svg(self.graphics.ci, path)

    def export_csv(self, path: str | Path) -> None:
        """The shown series' histograms of every run, as `name[i]` per bin (edges in attrs)."""
        name = self.series
        rows = [
            series_rows(run_name, name, *run.series[name].view(self._step_limit))
            for run_name, run in self.model.runs.items()
            if name in run.series
        ]
        write_csv(path, (row for part in rows for row in part))
