"""Path view: each run's trajectory in the plane, over the objective's landscape on 2-D tasks.

Every run's path (x, y over steps) is drawn in its colour with its current point marked. On a
`function2d` task the objective itself is drawn underneath, from the task plugin's `surface`
(the training loss's own code, so contours and losses agree), with colours and contours on
log₁₀(f − min f + δ): these functions span many decades (Rosenbrock's valley floor vs its
walls), and a linear scale would show one flat colour around the interesting part. The
landscape is quiet grey so the coloured paths stand out; it covers the function's usual view
and the paths with a margin, and is recomputed only when a path leaves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QHBoxLayout

from descentlab.app.plots.colors import LIGHT, Theme, apply_theme
from descentlab.app.plots.export import ExportButton, series_rows, write_csv
from descentlab.app.plots.legend import legend_below
from descentlab.app.plots.view_base import PlotViewBase, toolbar
from descentlab.app.plots.zoom import AutoRangeButton
from descentlab.app.session_model import SeriesBuffer, SessionModel
from descentlab.plugins.tasks.function2d import FUNCTIONS, surface

GRID = 200
"""Grid points per side of the landscape: 40 000 evaluations, a few milliseconds."""

CONTOURS = 12
MARGIN = 0.1
"""Extra room around the paths, as a fraction of their extent."""

MAX_ZOOM_OUT = 10.0
"""A diverging path widens the landscape to at most this many times the function's view."""

Extent = tuple[float, float, float, float]
"""(x_min, x_max, y_min, y_max)."""


def function2d_task(model: SessionModel) -> dict[str, Any] | None:
    """The session's `function2d` task config (id, function, its parameters), if that is it."""
    for run in model.runs.values():
        task = run.config.get("task") or {}
        if task.get("id") == "function2d" and task.get("function") in FUNCTIONS:
            return task
    return None


def landscape_extent(view: Extent, points: np.ndarray) -> Extent:
    """The function's view grown to hold `points` (n, 2) with a margin, capped for divergence."""
    x0, x1, y0, y1 = view
    finite = points[np.isfinite(points).all(axis=1)]
    if len(finite):
        x0, x1 = min(x0, finite[:, 0].min()), max(x1, finite[:, 0].max())
        y0, y1 = min(y0, finite[:, 1].min()), max(y1, finite[:, 1].max())
    dx, dy = (x1 - x0) * MARGIN, (y1 - y0) * MARGIN
    cx, cy = (view[0] + view[1]) / 2, (view[2] + view[3]) / 2
    rx, ry = (view[1] - view[0]) * MAX_ZOOM_OUT / 2, (view[3] - view[2]) * MAX_ZOOM_OUT / 2
    return (
        max(x0 - dx, cx - rx),
        min(x1 + dx, cx + rx),
        max(y0 - dy, cy - ry),
        min(y1 + dy, cy + ry),
    )


def log_surface(values: np.ndarray) -> np.ndarray:
    """log₁₀(f − min f + δ), δ a millionth of the range: the minimum is finite, not −∞."""
    low, high = np.nanmin(values), np.nanmax(values)
    delta = (high - low) * 1e-6 or 1e-12
    return np.log10(values - low + delta)


class FunctionSurface:
    """The objective of a `function2d` task drawn under paths in `plot`: a quiet heatmap of
    log₁₀(f − min f + δ), contours of it, and stars at the known minima.

    Shared by the path view and the playground, so both draw the same picture of a function.
    `cover` redraws only when the points left the area drawn, since a redraw costs a grid of
    evaluations and a dozen isocurves.
    """

    def __init__(self, plot: pg.PlotItem, theme: Theme = LIGHT) -> None:
        self.plot = plot
        self.theme = theme
        self.image = pg.ImageItem()
        self.image.setZValue(-20)
        plot.addItem(self.image)
        self.contours: list[pg.IsocurveItem] = []
        self.minima = pg.ScatterPlotItem(symbol="star", size=14)
        self.minima.setZValue(5)
        plot.addItem(self.minima)
        self.extent: Extent | None = None
        """Where the landscape is drawn now; None while there is none."""
        self._drawn_for: tuple[str, tuple[Any, ...]] | None = None

    def cover(self, function: str, params: dict[str, Any], points: np.ndarray) -> None:
        """Make sure the landscape of `function` shows its usual view and `points` (n, 2).

        Args:
            function: a key of `FUNCTIONS`.
            params: the task's parameters (quadratic2d reads `condition`).
            points: every point drawn over it; non-finite rows are ignored.
        """
        needed = landscape_extent(FUNCTIONS[function].view, points)
        which = (function, tuple(sorted((k, repr(v)) for k, v in params.items())))
        if (
            self._drawn_for == which
            and self.extent is not None
            and self.extent[0] <= needed[0]
            and self.extent[1] >= needed[1]
            and self.extent[2] <= needed[2]
            and self.extent[3] >= needed[3]
        ):
            return
        self._draw(function, params, needed)
        self._drawn_for = which

    def _draw(self, function: str, params: dict[str, Any], extent: Extent) -> None:
        self.extent = extent
        x0, x1, y0, y1 = extent
        xs, ys = np.linspace(x0, x1, GRID), np.linspace(y0, y1, GRID)
        logs = log_surface(surface(function, params, xs, ys)).T  # image[x, y]
        self.image.setImage(logs, autoLevels=True)
        self.image.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        for contour in self.contours:
            contour.setParentItem(None)
            self.plot.scene().removeItem(contour)
        levels = np.linspace(np.nanmin(logs), np.nanmax(logs), CONTOURS + 2)[1:-1]
        self.contours = [pg.IsocurveItem(logs, float(level)) for level in levels]
        for contour in self.contours:
            contour.setParentItem(self.image)  # shares the image's pixel→plane transform
        self.minima.setData(pos=np.array(FUNCTIONS[function].minima).reshape(-1, 2))
        self.set_theme(self.theme)

    def forget(self) -> None:
        """The next `cover` redraws whatever it is asked for (a new session)."""
        self.extent = None
        self._drawn_for = None

    def set_theme(self, theme: Theme) -> None:
        """Heatmap, contours and stars in the quiet colours of `theme`."""
        self.theme = theme
        low, high = theme.surface
        self.image.setColorMap(pg.ColorMap(pos=[0.0, 1.0], color=[low, high]))
        contour_color = pg.mkColor(theme.foreground)
        contour_color.setAlphaF(theme.contour_alpha)
        for contour in self.contours:
            contour.setPen(pg.mkPen(contour_color, width=theme.line_scale))
        self.minima.setBrush(pg.mkBrush(theme.foreground))
        self.minima.setPen(pg.mkPen(theme.background))


class PathPlot(PlotViewBase):
    """Trajectories of one points2d series for all runs, over the landscape when known."""

    def _build(self) -> tuple[QHBoxLayout, pg.PlotWidget]:
        self.series = self.group.series[0]
        self._paths: dict[str, tuple[SeriesBuffer, pg.PlotDataItem, pg.PlotDataItem]] = {}
        self._drawn: dict[str, int] = {}

        self.plot_widget = pg.PlotWidget()
        self.plot: pg.PlotItem = self.plot_widget.getPlotItem()
        self.plot.setTitle(self.group.title)
        self.plot.setLabel("bottom", "x")
        self.plot.setLabel("left", "y")
        self.plot.setAspectLocked(True)
        legend_below(self.plot)
        self.surface = FunctionSurface(self.plot)
        self.landscape = self.surface.image

        self.auto_range = AutoRangeButton(self.plot)
        bar = toolbar()
        bar.addStretch(1)
        bar.addWidget(self.auto_range)
        bar.addWidget(ExportButton(self))
        return bar, self.plot_widget

    @property
    def extent(self) -> Extent | None:
        """Where the landscape is drawn now; None while there is none."""
        return self.surface.extent

    def path_items(self, run: str) -> tuple[pg.PlotDataItem, pg.PlotDataItem]:
        """The run's path line and its current-point marker."""
        _, line, marker = self._paths[run]
        return line, marker

    def set_step_limit(self, step: int | None) -> None:
        """Draw the paths up to `step` only (replay), or whole again with None."""
        self._step_limit = step
        self._drawn.clear()
        self.refresh()

    # -- redraw ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Redraw paths whose buffers changed; widen the landscape if a path left it."""
        if not self.isVisible():
            return
        for run_name, run in self.model.runs.items():
            if run_name not in self._paths and self.series in run.series:
                self._add_path(run_name, run.series[self.series])
        changed = False
        for run_name, (buffer, line, marker) in self._paths.items():
            if self._drawn.get(run_name) != buffer.version:
                points = self._limited(buffer)
                line.setData(points[:, 0], points[:, 1])
                marker.setData(points[-1:, 0], points[-1:, 1])
                self._drawn[run_name] = buffer.version
                changed = True
        if changed or self.extent is None:
            self._update_landscape()

    def _limited(self, buffer: SeriesBuffer) -> np.ndarray:
        return buffer.view(self._step_limit)[1]

    def _add_path(self, run: str, buffer: SeriesBuffer) -> None:
        line = pg.PlotDataItem(name=run)
        marker = pg.PlotDataItem(symbol="o", symbolSize=10)
        marker.setZValue(10)
        self.plot.addItem(line)
        self.plot.addItem(marker)
        self._paths[run] = (buffer, line, marker)
        self._style_path(run)

    def _update_landscape(self) -> None:
        task = function2d_task(self.model)
        if task is None:
            return
        drawn = [self._limited(buffer) for buffer, _, _ in self._paths.values()]
        self.surface.cover(task["function"], task, np.concatenate([np.empty((0, 2)), *drawn]))

    def _clear(self) -> None:
        for _, line, marker in self._paths.values():
            self.plot.removeItem(line)
            self.plot.removeItem(marker)
        self._paths.clear()
        self._drawn.clear()
        self.surface.forget()

    # -- style -----------------------------------------------------------------------------

    def _style_path(self, run: str) -> None:
        _, line, marker = self._paths[run]
        color = self.colors.color(run)
        line.setPen(pg.mkPen(color, width=2 * self.colors.theme.line_scale))
        marker.setSymbolBrush(color)
        marker.setSymbolPen(pg.mkPen(self.colors.theme.background, width=1.5))

    def _restyle(self) -> None:
        theme = self.colors.theme
        self.plot_widget.setBackground(theme.background)
        apply_theme(self.plot, theme)
        for run in self._paths:
            self._style_path(run)
        self.surface.set_theme(theme)

    # -- export ----------------------------------------------------------------------------

    def _picture(self) -> pg.PlotItem:
        return self.plot

    def export_csv(self, path: str | Path) -> None:
        """Every run's points as `name[0]` (x) and `name[1]` (y) rows per step."""
        rows = []
        for run, (buffer, _, _) in self._paths.items():
            steps, _ = buffer.view()
            values = self._limited(buffer)
            rows.append(series_rows(run, self.series, steps[: len(values)], values))
        write_csv(path, (row for part in rows for row in part))
