"""Spectrum view: singular values of one layer as a heatmap over steps beside the latest spectrum.

The heatmap (x = step, y = singular value index σ₁ … σ_k, colour = log₁₀ σ) shows how a
spectrum evolves in one run, e.g. outliers growing out of a random bulk; the line plot beside it
overlays every run's latest spectrum on a log axis so that optimizers can be compared at once
(an orthogonalising optimizer's flatter spectrum is visible as a flatter line). Records are
spaced evenly by their schedule, so each record is one image column of equal width.
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


def log_spectrum(values: np.ndarray) -> np.ndarray:
    """log₁₀ σ, with NaN (drawn transparent) where σ ≤ 0 or not finite: no colour for no value."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(values)
    logs[~np.isfinite(logs)] = np.nan
    return logs


class SpectrumPlot(QWidget):
    """Heatmap of the selected run and latest spectra of all runs, for one selected layer."""

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
        self.heatmap_plot.setLabel("left", "index i of σᵢ")
        self.image = pg.ImageItem()
        self.heatmap_plot.addItem(self.image)
        self.color_bar = pg.ColorBarItem(colorMap=COLOR_MAP, label="log₁₀ σ", interactive=False)
        self.color_bar.setImageItem(self.image, insert_in=self.heatmap_plot)

        self.latest_plot: pg.PlotItem = self.graphics.addPlot(row=0, col=1)
        self.latest_plot.setTitle("Latest spectrum")
        self.latest_plot.setLabel("bottom", "index i")
        self.latest_plot.setLabel("left", "σᵢ")
        self.latest_plot.setLogMode(False, group.log_y)
        self.latest_plot.showGrid(x=True, y=True, alpha=0.15)
        self.latest_plot.addLegend(offset=(-10, 10))
        self.graphics.ci.layout.setColumnStretchFactor(0, 3)
        self.graphics.ci.layout.setColumnStretchFactor(1, 2)

        self.layer_box = QComboBox()
        self.layer_box.addItems(group.layers)
        self.layer_box.setVisible(bool(group.layers))
        self.layer_box.setToolTip("Which weight matrix")
        self.run_box = QComboBox()
        self.run_box.setToolTip("Whose spectrum the heatmap shows")
        self.layer_box.currentTextChanged.connect(self._selection_changed)
        self.run_box.currentTextChanged.connect(self._selection_changed)

        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 0)
        bar.setSpacing(8)
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
        """The series of the selected layer."""
        return self.group.series_for(self.layer_box.currentText())

    def latest_item(self, run: str) -> pg.PlotDataItem:
        """The line of the run's latest spectrum (σᵢ against i)."""
        return self._latest[run]

    def set_step_limit(self, step: int | None) -> None:
        """Show the spectra up to `step` only (replay), or all of them again with None."""
        self._step_limit = step
        self._selection_changed()

    # -- redraw ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Redraw what changed: the heatmap's buffer, each run's latest spectrum."""
        if not self.isVisible():
            return
        self._sync_runs()
        name = self.series
        for run_name, run in self.model.runs.items():
            buffer = run.series.get(name)
            if buffer is not None and self._latest_drawn.get(run_name) != (buffer, buffer.version):
                self._draw_latest(run_name, buffer)
        run = self.model.runs.get(self.run_box.currentText())
        buffer = run.series.get(name) if run is not None else None
        if buffer is not None and self._heatmap_drawn != (buffer, buffer.version):
            self._draw_heatmap(buffer)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()

    def _draw_heatmap(self, buffer: SeriesBuffer) -> None:
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

    def _draw_latest(self, run: str, buffer: SeriesBuffer) -> None:
        item = self._latest.get(run)
        if item is None:
            item = self._latest[run] = pg.PlotDataItem(name=run, symbol="o", symbolSize=4)
            self.latest_plot.addItem(item)
            self._style_latest(run, item)
        steps, values = buffer.view(self._step_limit)
        if len(steps):
            item.setData(np.arange(1, values.shape[1] + 1), values[-1])
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
        color = self.colors.color(run)
        item.setPen(pg.mkPen(color, width=1.5))
        item.setSymbolBrush(color)
        item.setSymbolPen(color)

    def _restyle(self) -> None:
        theme = self.colors.theme
        self.graphics.setBackground(theme.background)
        apply_theme(self.heatmap_plot, theme)
        apply_theme(self.latest_plot, theme)
        apply_theme(self.color_bar, theme)  # its label sits on the bar's other axis
        for run, item in self._latest.items():
            self._style_latest(run, item)

    # -- export ----------------------------------------------------------------------------

    def export_png(self, path: str | Path) -> None:
        save_png(self.graphics.ci, path)

    def export_svg(self, path: str | Path) -> None:
        save_svg(self.graphics.ci, path)

    def export_csv(self, path: str | Path) -> None:
        """The selected layer's singular values of every run, as `name[i]` per index."""
        name = self.series
        rows = [
            series_rows(run_name, name, *run.series[name].view(self._step_limit))
            for run_name, run in self.model.runs.items()
            if name in run.series
        ]
        write_csv(path, (row for part in rows for row in part))
