"""Landscape view: one run's loss plane around θ as a heatmap or contours, with its path on it.

Each run has its own plane (its own centre and directions), so the view shows the run chosen in
the toolbar: the latest `landscape/plane` record (up to the replay step), the trajectory
projected on that plane (`landscape/path`) in the run's colour with the current point marked,
and the plane's centre, whose step the title gives. The colour bar maps the loss, or
log₁₀(L − min L + δ) when "log" is ticked (a plane spans decades between its valley and its
walls). Where OpenGL works, a 3-D surface of the same grid can be shown beside it; without it
(offscreen, no PyOpenGL) the option is hidden.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QGuiApplication, QOpenGLContext, QPainter
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel

from descentlab.app.plots.colors import apply_theme
from descentlab.app.plots.export import ExportButton, series_rows, write_csv
from descentlab.app.plots.path_plot import log_surface
from descentlab.app.plots.view_base import PlotViewBase, sync_choices, toolbar

COLOR_MAP = "viridis"
CONTOURS = 12
COLOR_BAR_WIDTH = 72
"""Pixels for the colour bar with its tick labels and label."""
TITLE_SIZE = "9pt"
"""The title sets the plot's minimum width: beside a colour bar, at the default size, it pushes
the bar out of a grid slot of the window."""


class SmoothImage(pg.ImageItem):
    """An image drawn with bilinear filtering between its samples, as smooth as the contours
    drawn on it (marching squares interpolates linearly too), not as blocks."""

    def paint(self, painter: QPainter, *args: Any) -> None:
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        super().paint(painter, *args)


def opengl_available() -> bool:
    """Whether a 3-D view can work here: pyqtgraph's OpenGL module imports and a context opens."""
    if QGuiApplication.platformName() in ("offscreen", "minimal"):
        return False
    try:
        import pyqtgraph.opengl  # noqa: F401  (needs PyOpenGL, an optional extra)
    except Exception:
        return False
    return QOpenGLContext().create()


def axis_values(spec: Any, size: int) -> np.ndarray:
    """Coordinates from an axis attribute `[low, high, count]`; indices when there is none."""
    if isinstance(spec, (list, tuple)) and len(spec) == 3:
        return np.linspace(float(spec[0]), float(spec[1]), int(spec[2]))
    return np.arange(size, dtype=float)


class LandscapePlot(PlotViewBase):
    """The selected run's latest loss plane, its projected path, centre and current point."""

    def _build(self) -> tuple[QHBoxLayout, QHBoxLayout]:
        self.series = self.group.series[0]
        self._path = ""
        """The group's points2d part, the trajectory projected on the plane (found per run)."""
        self._centre = ""
        """The group's scalar part, the step whose θ is the plane's centre."""
        self._drawn: tuple[Any, ...] = ()
        self.shown_step: int | None = None
        """Step of the plane record on screen (None: none yet)."""
        self.grid: np.ndarray | None = None
        """The plane on screen, (len(ys), len(xs)): row i is b = ys[i]."""
        self.xs = np.empty(0)
        self.ys = np.empty(0)

        self.plot_widget = pg.PlotWidget()
        self.plot: pg.PlotItem = self.plot_widget.getPlotItem()
        self.plot.setTitle(self.group.title, size=TITLE_SIZE)
        self.image = SmoothImage()
        self.image.setZValue(-20)
        self.plot.addItem(self.image)
        self.color_bar = pg.ColorBarItem(
            colorMap=COLOR_MAP, label=self.group.value_label or "loss", interactive=False
        )
        self.color_bar.setImageItem(self.image, insert_in=self.plot)
        self.color_bar.setMinimumWidth(COLOR_BAR_WIDTH)  # a narrow slot squeezes it out otherwise
        self._contours: list[pg.IsocurveItem] = []
        self.path_line = pg.PlotDataItem()
        self.current = pg.PlotDataItem(symbol="o", symbolSize=11)
        self.current.setZValue(10)
        self.centre = pg.ScatterPlotItem(symbol="+", size=14)
        self.centre.setZValue(9)
        for item in (self.path_line, self.current, self.centre):
            self.plot.addItem(item)

        self.run_box = QComboBox()
        self.run_box.setToolTip("Whose plane and path to show (each run has its own plane)")
        self.mode_box = QComboBox()
        self.mode_box.addItems(["heatmap", "contour"])
        self.mode_box.setToolTip("Colours over the plane, or coloured contour lines")
        self.log_box = QCheckBox("log")
        self.log_box.setToolTip("Colours on log₁₀(L − min L + δ): valleys and walls both legible")
        self.surface_box = QCheckBox("3-D")
        self.surface_box.setToolTip("Show the plane as a 3-D surface beside the map")
        self.surface_view: Any = None
        self.surface_item: Any = None
        for widget in (self.run_box, self.mode_box):
            widget.currentTextChanged.connect(self._redraw)
        self.log_box.toggled.connect(self._redraw)
        self.surface_box.toggled.connect(self._toggle_surface)

        bar = toolbar()
        bar.addWidget(QLabel("run"))
        bar.addWidget(self.run_box)
        bar.addWidget(self.mode_box)
        bar.addWidget(self.log_box)
        bar.addWidget(self.surface_box)
        bar.addStretch(1)
        bar.addWidget(ExportButton(self))
        self.body = QHBoxLayout()
        self.body.addWidget(self.plot_widget, 3)
        self.surface_box.setVisible(opengl_available())
        return bar, self.body

    # -- protocol ------------------------------------------------------------------------------

    def set_step_limit(self, step: int | None) -> None:
        """Show the latest plane and path up to `step` (replay), or the newest with None."""
        self._step_limit = step
        self._redraw()

    def refresh(self) -> None:
        """Redraw when the selected run's plane or path gained records or the choice changed."""
        if not self.isVisible():
            return
        self._sync_runs()
        run = self.model.runs.get(self.run_box.currentText())
        if run is None:
            return
        buffers = [run.series.get(name) for name in self.group.series]
        key = (
            run.name,
            self._step_limit,
            self.mode_box.currentText(),
            self.log_box.isChecked(),
            *((id(b), b.version) if b is not None else None for b in buffers),
        )
        if key != self._drawn:
            self._draw(run.name)
            self._drawn = key

    # -- drawing -------------------------------------------------------------------------------

    def _sync_runs(self) -> None:
        sync_choices(
            self.run_box, [n for n, r in self.model.runs.items() if self.series in r.series]
        )

    def _latest(self, run: str, name: str) -> tuple[int, np.ndarray] | None:
        buffer = self.model.runs[run].series.get(name)
        if buffer is None:
            return None
        steps, values = buffer.view(self._step_limit)
        return (int(steps[-1]), values[-1]) if len(steps) else None

    def _parts(self, run: str) -> None:
        """Which of the group's other series is the path and which the centre step, by kind."""
        outputs = self.model.runs[run].outputs
        kinds = {name: outputs[name].kind for name in self.group.series[1:] if name in outputs}
        self._path = next((n for n, kind in kinds.items() if kind == "points2d"), "")
        self._centre = next((n for n, kind in kinds.items() if kind == "scalar"), "")

    def _draw(self, run: str) -> None:
        self._parts(run)
        plane = self._latest(run, self.series)
        if plane is None:
            self._clear_items()
            return
        step, grid = plane
        attrs = self.model.runs[run].outputs[self.series].attrs
        self.grid = grid
        self.shown_step = step
        self.xs = axis_values(attrs.get("x"), grid.shape[1])
        self.ys = axis_values(attrs.get("y"), grid.shape[0])
        self.plot.setLabel("bottom", attrs.get("x_label", "a"))
        self.plot.setLabel("left", attrs.get("y_label", "b"))
        centre = self._latest(run, self._centre) if self._centre else None
        at = f"centre θ at step {int(centre[1])}, " if centre is not None else ""
        # on a second, smaller line: one long line would set the plot's minimum width
        # beyond a grid slot and push the colour bar out of sight
        self.plot.setTitle(
            f"{self.group.title}<br><small>{at}computed by step {step}</small>", size=TITLE_SIZE
        )

        logs = self.log_box.isChecked()
        shown = log_surface(grid) if logs else grid
        value = self.group.value_label or "loss"
        # the label of a vertical colour bar sits on its left axis, the values on its right one
        self.color_bar.getAxis("left").setLabel(f"log₁₀({value} − min + δ)" if logs else value)
        finite = shown[np.isfinite(shown)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        high = high if high > low else low + 1.0
        self.image.setImage(shown.T, autoLevels=False)  # image[x, y]
        dx = (self.xs[-1] - self.xs[0]) / max(1, len(self.xs) - 1)
        dy = (self.ys[-1] - self.ys[0]) / max(1, len(self.ys) - 1)
        self.image.setRect(
            QRectF(self.xs[0] - dx / 2, self.ys[0] - dy / 2, dx * len(self.xs), dy * len(self.ys))
        )
        self.color_bar.setLevels((low, high))
        contour = self.mode_box.currentText() == "contour"
        self.image.setVisible(not contour)
        self._draw_contours(shown, low, high, contour)
        self.centre.setData(pos=np.zeros((1, 2)))

        path = self._latest(run, self._path) if self._path else None
        if path is None:
            self.path_line.setData([], [])
            self.current.setData([], [])
        else:
            points = path[1][np.isfinite(path[1]).all(axis=1)]
            self.path_line.setData(points[:, 0], points[:, 1])
            self.current.setData(points[-1:, 0], points[-1:, 1])
        self._style_run(run)
        self._draw_surface()

    def _draw_contours(self, shown: np.ndarray, low: float, high: float, coloured: bool) -> None:
        for item in self._contours:
            item.setParentItem(None)
            if item.scene() is not None:
                item.scene().removeItem(item)
        levels = np.linspace(low, high, CONTOURS + 2)[1:-1]
        data = np.nan_to_num(shown.T, nan=high)
        self._contours = [pg.IsocurveItem(data, float(level)) for level in levels]
        cmap = pg.colormap.get(COLOR_MAP)
        faint = pg.mkColor(self.colors.theme.foreground)
        faint.setAlphaF(0.3)
        for level, item in zip(levels, self._contours, strict=True):
            item.setParentItem(self.image)  # the image's pixel → plane transform
            item.setPos(0.5, 0.5)  # isocurve vertices are at pixel corners; samples at centres
            color = cmap.map((level - low) / (high - low), mode="qcolor") if coloured else faint
            item.setPen(pg.mkPen(color, width=1.5 if coloured else 1))

    def _draw_surface(self) -> None:
        if self.surface_item is None or self.grid is None:
            return
        shown = log_surface(self.grid) if self.log_box.isChecked() else self.grid
        self.surface_item.setData(x=self.xs, y=self.ys, z=np.nan_to_num(shown.T))

    def _toggle_surface(self, on: bool) -> None:
        if on and self.surface_view is None:
            import pyqtgraph.opengl as gl

            self.surface_view = gl.GLViewWidget()
            self.surface_item = gl.GLSurfacePlotItem(shader="heightColor", smooth=False)
            self.surface_view.addItem(self.surface_item)
            self.body.addWidget(self.surface_view, 2)
            self._draw_surface()
        if self.surface_view is not None:
            self.surface_view.setVisible(on)

    def _redraw(self) -> None:
        self._drawn = ()
        self.refresh()

    def _clear_items(self) -> None:
        self.grid, self.shown_step = None, None
        self.image.clear()
        self._draw_contours(np.zeros((2, 2)), 0.0, 1.0, False)
        for item in (self.path_line, self.current):
            item.setData([], [])
        self.centre.setData(pos=np.empty((0, 2)))

    def _clear(self) -> None:
        self._clear_items()
        self._drawn = ()
        self.run_box.clear()

    # -- style ---------------------------------------------------------------------------------

    def _style_run(self, run: str) -> None:
        color = self.colors.color(run)
        self.path_line.setPen(pg.mkPen(color, width=2))
        self.current.setSymbolBrush(color)
        self.current.setSymbolPen(pg.mkPen(self.colors.theme.background, width=1.5))

    def _restyle(self) -> None:
        theme = self.colors.theme
        self.plot_widget.setBackground(theme.background)
        apply_theme(self.plot, theme)
        self.centre.setPen(pg.mkPen(theme.foreground, width=2))
        self._redraw()

    # -- export --------------------------------------------------------------------------------

    def _picture(self) -> pg.PlotItem:
        return self.plot

    def export_csv(self, path: str | Path) -> None:
        """The shown plane as one row per point, `plane[a=…,b=…]`, then the shown path."""
        run = self.run_box.currentText()
        rows: list[tuple[str, str, int, float]] = []
        if self.grid is not None and self.shown_step is not None:
            for i, b in enumerate(self.ys):
                for j, a in enumerate(self.xs):
                    label = f"{self.series}[a={a:.6g},b={b:.6g}]"
                    rows.append((run, label, self.shown_step, float(self.grid[i, j])))
            shown_path = self._latest(run, self._path) if self._path else None
            if shown_path is not None:
                step, values = shown_path
                points = values[np.isfinite(values).all(axis=1)]
                rows.extend(series_rows(run, self._path, np.full(len(points), step), points))
        write_csv(path, rows)
