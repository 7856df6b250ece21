"""Shared skeleton of the heatmap views: one run's records over steps beside every run's latest.

The heatmap (x = step, y = what a record holds, colour = its value) shows how a record evolves
in the run chosen in the toolbar; the plot beside it overlays every run's latest record so that
optimizers can be compared at once. Subclasses say how a record becomes a heatmap column and a
latest curve (`_draw_heatmap`, `_new_latest_item`, `_latest_data`) and label their axes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel

from descentlab.app.plots.colors import apply_theme
from descentlab.app.plots.export import ExportButton, series_rows, write_csv
from descentlab.app.plots.legend import legend_below
from descentlab.app.plots.view_base import PlotViewBase, sync_choices, toolbar
from descentlab.app.session_model import SeriesBuffer

COLOR_MAP = "viridis"


class HeatmapView(PlotViewBase):
    """Heatmap of the selected run and latest records of all runs, for the shown series."""

    color_label = ""
    latest_title = ""
    layer_tooltip = ""
    run_tooltip = ""

    def _build(self) -> tuple[QHBoxLayout, pg.GraphicsLayoutWidget]:
        self._heatmap_drawn: tuple[SeriesBuffer | None, int] = (None, -1)
        self._latest: dict[str, pg.PlotDataItem] = {}
        self._latest_drawn: dict[str, tuple[SeriesBuffer, int]] = {}

        self.graphics = pg.GraphicsLayoutWidget()
        self.heatmap_plot: pg.PlotItem = self.graphics.addPlot(row=0, col=0)
        self.heatmap_plot.setTitle(self.group.title)
        self.heatmap_plot.setLabel("bottom", "step")
        self.image = pg.ImageItem()
        self.heatmap_plot.addItem(self.image)
        self.color_bar = pg.ColorBarItem(
            colorMap=COLOR_MAP, label=self.color_label, interactive=False
        )
        self.color_bar.setImageItem(self.image, insert_in=self.heatmap_plot)

        self.latest_plot: pg.PlotItem = self.graphics.addPlot(row=0, col=1)
        self.latest_plot.setTitle(self.latest_title)
        self._label_axes()
        self.latest_plot.showGrid(x=True, y=True, alpha=0.15)
        legend_below(self.latest_plot, max_columns=2)
        self.graphics.ci.layout.setColumnStretchFactor(0, 3)
        self.graphics.ci.layout.setColumnStretchFactor(1, 2)

        self.layer_box = QComboBox()
        self.layer_box.addItems(self.group.layers)
        self.layer_box.setToolTip(self.layer_tooltip)
        self.run_box = QComboBox()
        self.run_box.setToolTip(self.run_tooltip)
        self.layer_box.currentTextChanged.connect(self._selection_changed)
        self.run_box.currentTextChanged.connect(self._selection_changed)

        bar = toolbar()
        self._add_layer_selector(bar)
        bar.addWidget(QLabel("heatmap of"))
        bar.addWidget(self.run_box)
        bar.addStretch(1)
        bar.addWidget(ExportButton(self))
        return bar, self.graphics

    # -- what differs ----------------------------------------------------------------------

    def _label_axes(self) -> None:
        """Label the axes that do not change with the data (both plots' titles are set)."""

    def _add_layer_selector(self, bar: QHBoxLayout) -> None:
        bar.addWidget(QLabel("layer"))
        bar.addWidget(self.layer_box)

    @property
    def series(self) -> str:
        """The series of the selected layer."""
        return self.group.series_for(self.layer_box.currentText())

    def _draw_heatmap(self, run: str, buffer: SeriesBuffer) -> None:
        raise NotImplementedError

    def _new_latest_item(self, run: str) -> pg.PlotDataItem:
        raise NotImplementedError

    def _latest_data(self, run: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The x and y of the run's latest curve from its records' values (at least one)."""
        raise NotImplementedError

    def _label_latest(self, run: str) -> None:
        """Label the latest plot's axes for the run about to be drawn (nothing by default)."""

    def _style_latest(self, run: str, item: pg.PlotDataItem) -> None:
        item.setPen(pg.mkPen(self.colors.color(run), width=1.5))

    # -- common ----------------------------------------------------------------------------

    def latest_item(self, run: str) -> pg.PlotDataItem:
        """The curve of the run's latest record."""
        return self._latest[run]

    def set_step_limit(self, step: int | None) -> None:
        """Show the records up to `step` only (replay), or all of them again with None."""
        self._step_limit = step
        self._selection_changed()

    # -- redraw ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Redraw what changed: the heatmap's buffer, each run's latest record."""
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

    def _draw_latest(self, run: str, buffer: SeriesBuffer) -> None:
        item = self._latest.get(run)
        if item is None:
            item = self._latest[run] = self._new_latest_item(run)
            self.latest_plot.addItem(item)
            self._style_latest(run, item)
        self._label_latest(run)
        steps, values = buffer.view(self._step_limit)
        if len(steps):
            item.setData(*self._latest_data(run, values))
        else:
            item.setData([], [])
        self._latest_drawn[run] = (buffer, buffer.version)

    def _sync_runs(self) -> None:
        """Offer every run in the heatmap's run selector (the first one is selected at first)."""
        sync_choices(self.run_box, list(self.model.runs))

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

    def _restyle(self) -> None:
        theme = self.colors.theme
        self.graphics.setBackground(theme.background)
        apply_theme(self.heatmap_plot, theme)
        apply_theme(self.latest_plot, theme)
        apply_theme(self.color_bar, theme)  # its label sits on the bar's other axis
        for run, item in self._latest.items():
            self._style_latest(run, item)

    # -- export ----------------------------------------------------------------------------

    def _picture(self) -> pg.GraphicsLayout:
        return self.graphics.ci

    def export_csv(self, path: str | Path) -> None:
        """The shown series' records of every run, as `name[i]` per entry."""
        name = self.series
        rows = [
            series_rows(run_name, name, *run.series[name].view(self._step_limit))
            for run_name, run in self.model.runs.items()
            if name in run.series
        ]
        write_csv(path, (row for part in rows for row in part))
