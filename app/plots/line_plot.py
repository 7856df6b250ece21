"""Line view: one plot group over every run of the session, redrawn from the model's buffers.

Each (run, series) gets one line per component in the run's colour; components, layers shown
together and paired series (held-out vs train) differ by line style. With smoothing on, the
line is the debiased EMA and the raw records stay behind it, faint, so spikes remain visible.

Redraws are driven from outside (the window's ~30 Hz timer calls `refresh()`): a series is
handed to pyqtgraph again only when its buffer's version moved, as array views, and pyqtgraph's
peak downsampling and clip-to-view keep what is actually drawn to about two points per pixel.
A group's reference series (2/η on the sharpness plot, the Adam threshold the sharpness
diagnostic recorded on the preconditioned one) are drawn per run as step lines over their record
steps, exactly as recorded: the view computes no reference of its own.

The legend sits under the plot (it hides no data) and can be hidden; a log axis labels decades,
and when it hides values ≤ 0 the plot says how many. A group declared on a log scale starts on a
linear one when its data hold such values (a loss that goes negative).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSlider,
)

from descentlab.app.plots.colors import apply_theme
from descentlab.app.plots.export import ExportButton, series_rows, write_csv
from descentlab.app.plots.layout import TOTAL_LAYER
from descentlab.app.plots.legend import legend_below, set_legend_visible
from descentlab.app.plots.log_axis import LogAxis, hidden_by_log
from descentlab.app.plots.smoothing import EmaSmoother
from descentlab.app.plots.view_base import PlotViewBase, toolbar
from descentlab.app.plots.zoom import AutoRangeButton
from descentlab.app.session_model import SeriesBuffer

ALL_LAYERS = "all layers"
SMOOTHING_STEPS = 1000
"""The slider's resolution: β = position / 1000, from 0 to 0.999 as in TensorBoard."""

DOWNSAMPLE_FACTOR = 1.0
"""Peak-downsampling bins per pixel column. One (min, max) pair per column already draws every
pixel a curve touches; pyqtgraph's default of 5 draws five times the segments for no visible
gain, and segments are what a redraw costs (a noisy 100k-point loss 1280 px wide: ~6 ms to
draw at 5, ~1.7 ms at 1)."""

LINE_WIDTH = 1.0
"""Qt's raster engine draws 1-pixel lines on a fast path; wider ones cost ~3× per segment."""

FAINT = 0.3
"""How strongly the raw records behind a smoothed line show (1: as strong as the line)."""

FAINT_DOWNSAMPLE_FACTOR = 0.5
"""The faint raw band behind a smoothed line is texture, not something read point by point:
one (min, max) pair per two pixel columns halves its drawing cost."""

STYLES = (
    (Qt.PenStyle.SolidLine, "solid"),
    (Qt.PenStyle.DashLine, "dashed"),
    (Qt.PenStyle.DotLine, "dotted"),
    (Qt.PenStyle.DashDotLine, "dash-dot"),
    (Qt.PenStyle.DashDotDotLine, "dash-dot-dot"),
)
STYLE_NAMES = {style: name.capitalize() for style, name in STYLES}

REFERENCE_STYLES = (Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine)
"""Pens of a group's reference lines, in the order the group lists them."""

LEGEND_COLUMNS = 4
"""At most this many legend entries per row under the plot (fewer when the plot is narrow)."""


def step_line(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points of a staircase: `values[i]` holds from `steps[i]` until `steps[i + 1]`."""
    if len(steps) == 0:
        return steps.astype(np.float64), values
    return np.repeat(steps, 2)[1:].astype(np.float64), np.repeat(values, 2)[:-1]


@dataclass
class _Curve:
    """The items of one (run, series): per component a line and, behind it, its faint raw copy.

    `lines` carry what the user reads (smoothed when smoothing is on, raw otherwise) and are
    the legend's entries; `faint` show the raw records behind a smoothed line.
    """

    run: str
    series: str
    buffer: SeriesBuffer
    lines: list[pg.PlotDataItem]
    faint: list[pg.PlotDataItem]
    style: int
    drawn: int = -1
    """Buffer version on screen; -1 forces the next refresh to redraw."""
    smoother: EmaSmoother | None = None


@dataclass
class _Reference:
    """A run's reference series (2/η, a stability threshold) drawn as a staircase."""

    run: str
    series: str
    buffer: SeriesBuffer
    item: pg.PlotDataItem
    style: Qt.PenStyle
    drawn: int = -1


class LinePlot(PlotViewBase):
    """Lines of one `PlotGroup` for all runs of `model`, with the controls a reader needs."""

    def _build(self) -> tuple[QHBoxLayout, pg.PlotWidget]:
        group = self.group
        self._curves: dict[tuple[str, str], _Curve] = {}
        self._references: dict[tuple[str, str], _Reference] = {}
        self._runs: tuple[str, ...] = ()
        self._beta = 0.0
        self._hidden: dict[tuple[str, str], int] = {}
        """Per drawn (run, series): how many of its records are ≤ 0 (a log axis hides them)."""
        self._log_chosen = False
        """Whether the user set the y scale (then the view no longer switches it itself)."""

        self.plot_widget = pg.PlotWidget(
            axisItems={"left": LogAxis("left"), "bottom": LogAxis("bottom")}
        )
        self.plot: pg.PlotItem = self.plot_widget.getPlotItem()
        self.plot.setTitle(group.title)
        self.plot.setLabel("bottom", "step")
        if group.value_label:
            self.plot.setLabel("left", group.value_label)
        self.plot.setDownsampling(auto=True, mode="peak")
        self.plot.setClipToView(True)
        self.legend = legend_below(self.plot, LEGEND_COLUMNS)
        self.plot.setLogMode(False, group.log_y)
        self.hidden_note = pg.TextItem(anchor=(0, 0))
        self.hidden_note.setParentItem(self.plot.vb)  # in pixels, at the view's top left
        self.hidden_note.setPos(4, 2)

        self.layer_box = QComboBox()
        self.layer_box.setToolTip("Which layer to show (or all of them together)")
        layers = list(group.layers)
        if len([layer for layer in layers if layer != TOTAL_LAYER]) > 1:
            layers.append(ALL_LAYERS)
        self.layer_box.addItems(layers)
        self.layer_box.setVisible(bool(layers))
        self.layer_box.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.layer_box.setMinimumContentsLength(8)
        self.layer_box.currentTextChanged.connect(self._rebuild)

        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, SMOOTHING_STEPS - 1)
        self.smoothing.setToolTip("EMA weight β of the debiased smoothing (0: raw records)")
        self.smoothing.setMinimumWidth(40)
        self.smoothing.setMaximumWidth(120)
        self._smoothing_label = QLabel()
        self.smoothing.valueChanged.connect(self._smoothing_moved)

        self.grid = QCheckBox("grid")
        self.grid.setToolTip("Grid lines (they cost a full-plot redraw whenever the range moves)")
        self.grid.toggled.connect(lambda on: self.plot.showGrid(x=on, y=on, alpha=0.15))
        self.log_x = QCheckBox("log x")
        self.log_y = QCheckBox("log y")
        self.log_y.setChecked(group.log_y)
        self.log_x.toggled.connect(self._log_toggled)
        self.log_y.toggled.connect(self._log_toggled)
        # in the plot's context menu: the toolbar has no room to spare in a 2×2 grid
        self.legend_action = self.plot.vb.menu.addAction("Show legend")
        self.legend_action.setCheckable(True)
        self.legend_action.setChecked(True)
        self.legend_action.toggled.connect(lambda on: set_legend_visible(self.plot, on))
        self._component_key: list[pg.PlotDataItem] = []
        """Legend entries saying which line style is which component of a vector series."""

        self.auto_range = AutoRangeButton(self.plot)
        self.export_button = ExportButton(self)

        bar = toolbar(spacing=6)
        bar.addWidget(self.layer_box)
        bar.addWidget(QLabel("EMA"))
        bar.addWidget(self.smoothing)
        bar.addWidget(self._smoothing_label)
        bar.addWidget(self.grid)
        bar.addWidget(self.log_x)
        bar.addWidget(self.log_y)
        bar.addStretch(1)
        bar.addWidget(self.auto_range)
        bar.addWidget(self.export_button)
        if group.references:
            self.plot_widget.setToolTip(
                "\n".join(
                    f"{STYLE_NAMES[style]} step line: {label}, as the diagnostic recorded it"
                    for style, label in zip(REFERENCE_STYLES, group.reference_labels, strict=False)
                )
            )
        self._smoothing_moved(0)
        return bar, self.plot_widget

    # -- what is shown ---------------------------------------------------------------------

    def visible_series(self) -> tuple[str, ...]:
        """The series drawn now: all of the group's, or those of the selected layer(s)."""
        if not self.group.layers:
            return self.group.series
        layer = self.layer_box.currentText()
        if layer == ALL_LAYERS:
            return tuple(
                s
                for s, name in zip(self.group.series, self.group.layers, strict=True)
                if name != TOTAL_LAYER
            )
        return (self.group.series_for(layer),)

    def curve_items(self, run: str, series: str) -> list[pg.PlotDataItem]:
        """The lines of (run, series), one per component: smoothed if smoothing is on."""
        return self._curves[run, series].lines

    def raw_items(self, run: str, series: str) -> list[pg.PlotDataItem]:
        """The faint raw lines behind smoothed ones (hidden while smoothing is off)."""
        return self._curves[run, series].faint

    def reference_items(self, run: str) -> dict[str, pg.PlotDataItem]:
        """The run's reference lines by series name (those the run recorded)."""
        return {series: ref.item for (name, series), ref in self._references.items() if name == run}

    def hidden_count(self) -> int:
        """How many drawn records a log y axis cannot show (≤ 0); 0 on a linear axis."""
        return sum(self._hidden.values()) if self.log_y.isChecked() else 0

    def set_smoothing(self, beta: float) -> None:
        self.smoothing.setValue(round(beta * SMOOTHING_STEPS))

    def set_step_limit(self, step: int | None) -> None:
        """Draw records up to `step` only (replay), or everything again with None."""
        self._step_limit = step
        self._invalidate()
        self.refresh()

    # -- redraw ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Hand pyqtgraph the series whose buffers changed since the last call.

        Views the user cannot see (a tabbed-away dock) skip the work and catch up when shown.
        """
        if not self.isVisible():
            return
        if tuple(self.model.runs) != self._runs:
            self._add_new_runs()
        changed = False
        for curve in self._curves.values():
            if curve.buffer.version != curve.drawn:
                self._draw(curve)
                changed = True
        for ref in self._references.values():
            if ref.buffer.version != ref.drawn:
                self._draw_reference(ref)
                changed = True
        if changed:
            self._check_log_scale()

    def _check_log_scale(self) -> None:
        """Leave a log y the user did not choose when values ≤ 0 appear; say what log y hides."""
        if self.log_y.isChecked() and not self._log_chosen and any(self._hidden.values()):
            self.log_y.blockSignals(True)  # the view's own choice, not the user's
            self.log_y.setChecked(False)
            self.log_y.blockSignals(False)
            self.plot.setLogMode(self.log_x.isChecked(), False)
        hidden = self.hidden_count()
        self.hidden_note.setText(
            f"log y hides {hidden:,} value{'s' if hidden != 1 else ''} ≤ 0" if hidden else ""
        )
        self.hidden_note.setColor(self.colors.theme.foreground)

    def _draw(self, curve: _Curve) -> None:
        steps, values = curve.buffer.view(self._step_limit)
        self._hidden[curve.run, curve.series] = hidden_by_log(values)
        smoothed = curve.smoother.update(values) if curve.smoother is not None else None
        for j, (line, faint) in enumerate(zip(curve.lines, curve.faint, strict=True)):
            raw = values if values.ndim == 1 else values[:, j]
            if smoothed is None:
                line.setData(steps, raw)
            else:
                line.setData(steps, smoothed if smoothed.ndim == 1 else smoothed[:, j])
                faint.setData(steps, raw)
        curve.drawn = curve.buffer.version

    def _draw_reference(self, ref: _Reference) -> None:
        steps, values = ref.buffer.view(self._step_limit)
        self._hidden[ref.run, ref.series] = hidden_by_log(values)
        ref.item.setData(*step_line(steps, values))
        ref.drawn = ref.buffer.version

    def _invalidate(self) -> None:
        for item in (*self._curves.values(), *self._references.values()):
            item.drawn = -1

    # -- building items --------------------------------------------------------------------

    def _clear(self) -> None:
        for curve in self._curves.values():
            for item in (*curve.lines, *curve.faint):
                self.plot.removeItem(item)
        for ref in self._references.values():
            self.plot.removeItem(ref.item)
        for item in self._component_key:
            self.legend.removeItem(item)
        self._component_key.clear()
        self._curves.clear()
        self._references.clear()
        self._hidden.clear()
        self._runs = ()

    def _rebuild(self) -> None:
        """Start over with the current selection (layer change); pens and legend included."""
        self._clear()
        self.refresh()

    def _add_new_runs(self) -> None:
        series = self.visible_series()
        for run_name, run in self.model.runs.items():
            if run_name in self._runs:
                continue
            for index, name in enumerate(series):
                if name in run.series:
                    self._add_curve(run_name, name, run.series[name], index, len(series) > 1)
            for index, (name, label) in enumerate(
                zip(self.group.references, self.group.reference_labels, strict=True)
            ):
                if name in run.series:
                    style = REFERENCE_STYLES[index % len(REFERENCE_STYLES)]
                    self._add_reference(run_name, name, label, run.series[name], style)
        self._runs = tuple(self.model.runs)

    def _add_curve(
        self, run: str, series: str, buffer: SeriesBuffer, style: int, several: bool
    ) -> None:
        components = int(np.prod(buffer.shape)) if buffer.shape else 1
        label = run
        if several:
            label += " · " + (self._layer_of(series) or series.rsplit("/", 1)[-1])
        lines, faint = [], []
        for j in range(components):
            faint_item = pg.PlotDataItem(autoDownsampleFactor=FAINT_DOWNSAMPLE_FACTOR)
            faint_item.setVisible(self._beta > 0)
            line = pg.PlotDataItem(
                name=label if j == 0 else None, autoDownsampleFactor=DOWNSAMPLE_FACTOR
            )
            self.plot.addItem(faint_item)
            self.plot.addItem(line)
            lines.append(line)
            faint.append(faint_item)
        curve = _Curve(run, series, buffer, lines, faint, style)
        if self._beta > 0:
            curve.smoother = EmaSmoother(self._beta)
        self._curves[run, series] = curve
        self._style_curve(curve)
        if components > 1:
            self._label_components(components)

    def _add_reference(
        self, run: str, series: str, label: str, buffer: SeriesBuffer, style: Qt.PenStyle
    ) -> None:
        item = pg.PlotDataItem(name=f"{run}: {label}")
        self.plot.addItem(item)
        ref = _Reference(run, series, buffer, item, style)
        self._references[run, series] = ref
        self._style_reference(ref)

    def _layer_of(self, series: str) -> str:
        if series in self.group.series and self.group.layers:
            return self.group.layers[self.group.series.index(series)]
        return ""

    def _label_components(self, k: int) -> None:
        """Say in the legend which line style is which component (λ1 solid, λ2 dashed …)."""
        if len(self._component_key) >= k:
            return
        symbol = self.group.symbol or "#"
        for j in range(len(self._component_key), k):
            item = pg.PlotDataItem()  # a legend sample only, never drawn on the plot
            self.legend.addItem(item, f"{symbol}{j + 1}")
            self._component_key.append(item)
        self._style_component_key()

    def _style_component_key(self) -> None:
        for j, item in enumerate(self._component_key):
            style = STYLES[j % len(STYLES)][0]
            item.setPen(pg.mkPen(self.colors.theme.foreground, width=LINE_WIDTH, style=style))

    # -- style -----------------------------------------------------------------------------

    def _style_curve(self, curve: _Curve) -> None:
        for j, (line, faint) in enumerate(zip(curve.lines, curve.faint, strict=True)):
            style = STYLES[(curve.style + j) % len(STYLES)][0]
            line.setPen(pg.mkPen(self.colors.color(curve.run), width=LINE_WIDTH, style=style))
            faint.setPen(pg.mkPen(self.colors.faded(curve.run, FAINT), width=1, style=style))

    def _style_reference(self, ref: _Reference) -> None:
        ref.item.setPen(pg.mkPen(self.colors.color(ref.run, 0.8), width=1.5, style=ref.style))

    def _restyle(self) -> None:
        theme = self.colors.theme
        self.plot_widget.setBackground(theme.background)
        apply_theme(self.plot, theme)
        for curve in self._curves.values():
            self._style_curve(curve)
        for ref in self._references.values():
            self._style_reference(ref)
        self._style_component_key()

    # -- controls --------------------------------------------------------------------------

    def _smoothing_moved(self, position: int) -> None:
        self._beta = position / SMOOTHING_STEPS
        self._smoothing_label.setText(f"{self._beta:.3f}")
        for curve in self._curves.values():
            curve.smoother = EmaSmoother(self._beta) if self._beta > 0 else None
            for faint in curve.faint:
                faint.setVisible(self._beta > 0)
            curve.drawn = -1
        self.refresh()

    def _log_toggled(self) -> None:
        """The user chose the scales: from now on the view leaves log y as the user set it."""
        self._log_chosen = True
        self.plot.setLogMode(self.log_x.isChecked(), self.log_y.isChecked())
        self._check_log_scale()

    # -- export ----------------------------------------------------------------------------

    def _picture(self) -> pg.PlotItem:
        return self.plot

    def export_csv(self, path: str | Path) -> None:
        """Every drawn series' raw records (and the reference series'), up to the step limit."""
        rows = []
        for curve in self._curves.values():
            rows.append(series_rows(curve.run, curve.series, *curve.buffer.view(self._step_limit)))
        for ref in self._references.values():
            rows.append(series_rows(ref.run, ref.series, *ref.buffer.view(self._step_limit)))
        write_csv(path, (row for part in rows for row in part))
