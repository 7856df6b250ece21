"""The comparison window: runs of several sessions side by side, one by one or grouped.

A sweep leaves many sessions; this window puts their runs on one plot and in one table. The
table shows what sets runs apart (only the settings that differ, or all) and their final
metrics, sorts by any column, and its checkboxes hide runs. The plot overlays the chosen series
per run, with a fork starting at its branching point, or (grouped by a setting) one mean line
per group with the min–max band across its seeds. All numbers come from `engine.compare`.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from descentlab.app.plots.colors import THEMES, Theme, apply_theme
from descentlab.app.plots.export import ExportButton, save_png, save_svg, series_rows, write_csv
from descentlab.app.plots.legend import legend_below
from descentlab.app.standalone import show_until_closed
from descentlab.app.theme import apply_theme as apply_app_theme
from descentlab.engine.compare import (
    CORE_METRICS,
    MISSING,
    Aggregate,
    ComparedRun,
    Comparison,
    aggregate,
    differing,
    format_value,
    group,
    load,
    table_keys,
)

EACH_RUN = "each run"
AUTO_GROUP = "all differing settings but the seed"
BAND_ALPHA = 0.22
LINE_WIDTH = 2.0
SORT_ROLE = Qt.ItemDataRole.UserRole
"""Where a cell keeps the number it sorts by (its text is rounded)."""


class _SortItem(QTableWidgetItem):
    """A cell that sorts by its number when both cells have one, else by text.

    A cell without a number (a missing metric, NaN) sorts after every number.
    """

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if isinstance(mine, float) or isinstance(theirs, float):
            a = mine if isinstance(mine, float) and not math.isnan(mine) else math.inf
            b = theirs if isinstance(theirs, float) and not math.isnan(theirs) else math.inf
            if a != b:
                return a < b
        return self.text() < other.text()


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class CompareWindow(QMainWindow):
    """Overlay, grouped bands and a sortable table of the runs of a `Comparison`.

    Args:
        comparison: the runs (from `engine.compare.load`).
        theme: "light" or "dark".
        parent: the lab window when opened from it (this stays a window of its own).
    """

    export_name = "comparison"

    def __init__(
        self, comparison: Comparison, theme: str = "light", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.comparison = comparison
        self.theme: Theme = THEMES[theme]
        self.setWindowTitle(f"Descent Lab — comparison of {len(comparison.runs)} runs")
        self.visible = {run.label for run in comparison.runs}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.fork_markers: dict[str, pg.ScatterPlotItem] = {}
        self.means: dict[str, pg.PlotDataItem] = {}
        self.bands: dict[str, pg.FillBetweenItem] = {}
        self.aggregates: dict[str, Aggregate] = {}
        self._filling = False

        self.series_box = QComboBox()
        self.series_box.addItems(comparison.series_names())
        self.group_box = QComboBox()
        self.group_box.addItem(EACH_RUN, None)
        self.group_box.addItem(AUTO_GROUP, AUTO_GROUP)
        for key in differing(comparison.runs):
            self.group_box.addItem(key, key)
        self.only_differing = QCheckBox("only differing settings")
        self.only_differing.setChecked(True)
        self.all_metrics = QCheckBox("all final metrics")
        self.log_y = QCheckBox("log y")
        controls = QHBoxLayout()
        for label, widget in (("series", self.series_box), ("group by", self.group_box)):
            controls.addWidget(QLabel(label))
            controls.addWidget(widget)
        for widget in (self.log_y, self.only_differing, self.all_metrics):
            controls.addWidget(widget)
        controls.addStretch(1)
        controls.addWidget(ExportButton(self))

        self.plot_widget = pg.PlotWidget()
        self.plot = self.plot_widget.getPlotItem()
        legend_below(self.plot)  # under the x axis, hiding no curve
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setLabel("bottom", "step")
        self.table = QTableWidget()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setSortingEnabled(True)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.plot_widget)
        splitter.addWidget(self.table)
        splitter.setSizes([560, 300])
        centre = QWidget()
        layout = QVBoxLayout(centre)
        layout.addLayout(controls)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(centre)
        if comparison.skipped:
            self.statusBar().showMessage(
                f"skipped {len(comparison.skipped)} file(s): " + "; ".join(comparison.skipped)
            )
            self.statusBar().setToolTip("\n".join(comparison.skipped))

        if "train/loss" in comparison.series_names():
            self.series_box.setCurrentText("train/loss")
        self.series_box.currentTextChanged.connect(self._series_changed)
        self.group_box.currentIndexChanged.connect(lambda _: self.redraw())
        self.only_differing.toggled.connect(lambda _: self.fill_table())
        self.all_metrics.toggled.connect(lambda _: self.fill_table())
        self.log_y.toggled.connect(self._log_toggled)
        self.table.itemChanged.connect(self._checked)
        self.plot_widget.setBackground(self.theme.background)
        apply_theme(self.plot, self.theme)
        self.resize(1300, 900)
        self.fill_table()
        self.redraw()

    # -- state --------------------------------------------------------------------------------

    @property
    def series(self) -> str:
        return self.series_box.currentText()

    @property
    def grouping(self) -> str | None:
        """None for one line per run; a setting key, or `AUTO_GROUP`, for grouped bands."""
        return self.group_box.currentData()

    def visible_runs(self) -> list[ComparedRun]:
        return [run for run in self.comparison.runs if run.label in self.visible]

    def color(self, index: int, alpha: float = 1.0) -> QColor:
        palette = self.theme.palette
        color = QColor(palette[index % len(palette)])
        color.setAlphaF(alpha)
        return color

    def run_color(self, label: str, alpha: float = 1.0) -> QColor:
        """A run keeps its colour whatever is hidden or sorted: its place in the comparison."""
        labels = [run.label for run in self.comparison.runs]
        return self.color(labels.index(label), alpha)

    def set_group(self, key: str | None) -> None:
        """Group by setting `key`, by `AUTO_GROUP`, or show each run (None)."""
        self.group_box.setCurrentIndex(self.group_box.findData(key))

    def set_visible(self, label: str, shown: bool) -> None:
        """Show or hide a run in the plot (the table's checkbox does the same)."""
        self.comparison.run(label)
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item.text() == label:
                item.setCheckState(Qt.CheckState.Checked if shown else Qt.CheckState.Unchecked)

    # -- the table ------------------------------------------------------------------------------

    def metric_columns(self) -> list[str]:
        names = self.comparison.series_names()
        if self.all_metrics.isChecked():
            return names
        core = [m for m in CORE_METRICS if m in names]
        return core + ([self.series] if self.series and self.series not in core else [])

    def setting_columns(self) -> list[str]:
        return table_keys(self.comparison.runs, not self.only_differing.isChecked())

    def fill_table(self) -> None:
        """Rebuild the table (columns depend on the toggles); keeps the sort column and order."""
        keys, metrics = self.setting_columns(), self.metric_columns()
        header = ["run", "status", *(f"final {m}" for m in metrics), *keys]
        sort_column = self.table.horizontalHeader().sortIndicatorSection()
        order = self.table.horizontalHeader().sortIndicatorOrder()
        sorted_by = (
            self.table.horizontalHeaderItem(sort_column).text()
            if 0 <= sort_column < self.table.columnCount()
            and self.table.horizontalHeaderItem(sort_column) is not None
            else None
        )
        self._filling = True
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setColumnCount(len(header))
        self.table.setRowCount(len(self.comparison.runs))
        self.table.setHorizontalHeaderLabels(header)
        for row, run in enumerate(self.comparison.runs):
            name = _SortItem(run.label)
            name.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            name.setCheckState(
                Qt.CheckState.Checked if run.label in self.visible else Qt.CheckState.Unchecked
            )
            name.setForeground(QBrush(self.run_color(run.label)))
            name.setToolTip(
                f"{run.session}\nforked from {run.parent} at step {run.fork_step}"
                if run.parent
                else str(run.session)
            )
            self.table.setItem(row, 0, name)
            self.table.setItem(row, 1, _SortItem(run.status))
            values: list[object] = [run.final(m) if m in run.series else MISSING for m in metrics]
            values += [run.settings.get(k, MISSING) for k in keys]
            for col, value in enumerate(values, start=2):
                item = _SortItem(format_value(value))
                number = _number(value)
                if number is not None:
                    item.setData(SORT_ROLE, number)
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.table.setItem(row, col, item)
        self.table.setSortingEnabled(True)
        if sorted_by in header:
            self.table.sortItems(header.index(sorted_by), order)
        self._filling = False

    def sort_by(self, column: str, descending: bool = False) -> None:
        """Sort the table by a column's header text (`final train/loss`, `optimizer.lr`, …)."""
        headers = [
            self.table.horizontalHeaderItem(c).text() for c in range(self.table.columnCount())
        ]
        if column not in headers:
            raise ValueError(f"no column {column!r}; columns: {', '.join(headers)}")
        self.table.sortItems(
            headers.index(column),
            Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder,
        )

    def row_labels(self) -> list[str]:
        """Run labels in the table's current (sorted) order."""
        return [self.table.item(row, 0).text() for row in range(self.table.rowCount())]

    def _checked(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != 0:
            return
        if item.checkState() == Qt.CheckState.Checked:
            self.visible.add(item.text())
        else:
            self.visible.discard(item.text())
        self.redraw()

    def _log_toggled(self, on: bool) -> None:
        self.plot.setLogMode(False, on)
        if self.grouping is not None:
            self.redraw()  # the bands' drawable part depends on the axis

    def _series_changed(self) -> None:
        if not self.all_metrics.isChecked():
            self.fill_table()  # the chosen series' final value is a column
        self.redraw()

    # -- the plot -------------------------------------------------------------------------------

    def redraw(self) -> None:
        """Draw the chosen series for the visible runs: per run, or per group with bands."""
        self.plot.clear()
        self.plot.legend.clear()
        self.curves.clear()
        self.fork_markers.clear()
        self.means.clear()
        self.bands.clear()
        self.aggregates.clear()
        self.plot.setTitle(self.series, color=self.theme.foreground)
        self.plot.setLabel("left", self.series)
        if not self.series:
            return
        if self.grouping is None:
            self._draw_runs()
        else:
            self._draw_groups()

    def _draw_runs(self) -> None:
        for run in self.visible_runs():
            if self.series not in run.series:
                continue
            steps, values = self._from_branch(run)
            color = self.run_color(run.label)
            curve = pg.PlotDataItem(
                steps,
                values,
                name=run.label,
                connect="finite",
                pen=pg.mkPen(color, width=LINE_WIDTH),
            )
            self.plot.addItem(curve)
            self.curves[run.label] = curve
            if run.parent and len(steps):
                marker = pg.ScatterPlotItem(
                    [steps[0]],
                    [values[0]],
                    symbol="d",
                    size=11,
                    brush=pg.mkBrush(color),
                    pen=pg.mkPen(self.theme.foreground, width=1),
                )
                marker.setToolTip(f"{run.label} forks from {run.parent} at step {run.fork_step}")
                self.plot.addItem(marker)
                self.fork_markers[run.label] = marker

    def _from_branch(self, run: ComparedRun) -> tuple[np.ndarray, np.ndarray]:
        """A run's records; a fork's start at its branching point, on the parent's curve.

        When the fork's first record comes after `fork_step`, the parent's record at
        `fork_step` is put in front, so the fork visibly leaves the parent's line there.
        """
        steps, values = run.series[self.series]
        if not run.parent or not len(steps) or steps[0] <= run.fork_step:
            return steps, values
        parents = [r for r in self.comparison.runs if r.label == run.parent]
        if not parents or self.series not in parents[0].series:
            return steps, values
        parent_steps, parent_values = parents[0].series[self.series]
        at = np.flatnonzero(parent_steps == run.fork_step)
        if not len(at):
            return steps, values
        return (
            np.concatenate([[run.fork_step], steps]),
            np.concatenate([[parent_values[at[0]]], values]),
        )

    def _draw_groups(self) -> None:
        key = None if self.grouping == AUTO_GROUP else self.grouping
        runs = [run for run in self.visible_runs() if self.series in run.series]
        if not runs:
            return
        for index, (label, members) in enumerate(group(runs, key).items()):
            stats = aggregate(members, self.series)
            self.aggregates[label] = stats
            color = self.color(index)
            # a fill cannot pass over holes: the band covers the steps where both edges can be
            # drawn (finite, and positive on a log axis); the mean line shows every step
            drawable = np.isfinite(stats.min) & np.isfinite(stats.max)
            if self.log_y.isChecked():
                drawable &= stats.min > 0
            edge = pg.mkPen(self.color(index, 0.5))
            low = pg.PlotDataItem(stats.steps[drawable], stats.min[drawable], pen=edge)
            high = pg.PlotDataItem(stats.steps[drawable], stats.max[drawable], pen=edge)
            self.plot.addItem(low)  # on the plot first, so the fill sees their log-mode paths
            self.plot.addItem(high)
            band = pg.FillBetweenItem(low, high, brush=pg.mkBrush(self.color(index, BAND_ALPHA)))
            mean = pg.PlotDataItem(
                stats.steps,
                stats.mean,
                name=f"{label} (n={len(members)})",
                connect="finite",
                pen=pg.mkPen(color, width=LINE_WIDTH),
            )
            self.plot.addItem(band)
            self.plot.addItem(mean)
            self.bands[label] = band
            self.means[label] = mean

    # -- export ---------------------------------------------------------------------------------

    def export_png(self, path: str | Path) -> None:
        save_png(self.plot, path)

    def export_svg(self, path: str | Path) -> None:
        save_svg(self.plot, path)

    def export_csv(self, path: str | Path) -> None:
        """The plotted numbers: each visible run's raw records, or each group's statistics
        (`group, series, step, mean, min, max, count`) in the grouped view."""
        if self.grouping is None:
            rows = (
                row
                for run in self.visible_runs()
                if self.series in run.series
                for row in series_rows(run.label, self.series, *run.series[self.series])
            )
            write_csv(path, rows)
            return
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["group", "series", "step", "mean", "min", "max", "count"])
            for label, stats in self.aggregates.items():
                for i, step in enumerate(stats.steps.tolist()):
                    writer.writerow(
                        [label, self.series, step]
                        + [repr(float(a[i])) for a in (stats.mean, stats.min, stats.max)]
                        + [int(stats.count[i])]
                    )


# -- opening ----------------------------------------------------------------------------------


def choose_sessions(parent: QWidget) -> list[str]:
    """Ask for session files (several may be selected) or a folder of sessions."""
    ask = QMessageBox(parent)
    ask.setWindowTitle("Compare sessions")
    ask.setText("Compare chosen session files, or every session (*.h5) in a folder?")
    files = ask.addButton("Files…", QMessageBox.ButtonRole.AcceptRole)
    folder = ask.addButton("Folder…", QMessageBox.ButtonRole.AcceptRole)
    ask.addButton(QMessageBox.StandardButton.Cancel)
    ask.exec()
    if ask.clickedButton() is files:
        paths, _ = QFileDialog.getOpenFileNames(
            parent, "Sessions to compare", "", "Sessions (*.h5)"
        )
        return paths
    if ask.clickedButton() is folder:
        path = QFileDialog.getExistingDirectory(parent, "Folder of sessions to compare")
        return [path] if path else []
    return []


def open_comparison(
    paths: Sequence[str | Path], parent: QWidget | None = None, theme: str = "light"
) -> CompareWindow | None:
    """Load `paths` and show them in a new comparison window; None (after saying why) when no
    run could be read."""
    comparison = load(paths)
    if not comparison.runs:
        QMessageBox.warning(
            parent,
            "Compare sessions",
            "No run to compare:\n" + ("\n".join(comparison.skipped) or "no session files found"),
        )
        return None
    window = CompareWindow(comparison, theme, parent)
    window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    window.show()
    return window


def compare_dialog(parent: QWidget, theme: str = "light") -> CompareWindow | None:
    """File → Compare sessions…: choose files or a folder, then open the comparison."""
    paths = choose_sessions(parent)
    return open_comparison(paths, parent, theme) if paths else None


def run_compare_app(
    comparison: Comparison, screenshot: str | None = None, after: float = 1.0, theme: str = "light"
) -> int:
    """The comparison as an application of its own (`descentlab compare PATH...`).

    With `screenshot`, the window is saved to that file after `after` seconds and the app exits.
    """
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Descent Lab")
    apply_app_theme(app, theme == "dark")
    window = CompareWindow(comparison, theme)
    return show_until_closed(app, window, screenshot, after)
