"""Legends that hide no data: under the plot's x axis, small, and hidden at the user's wish.

pyqtgraph anchors its legend inside the data area, where it hides whatever curve runs there
(the end of a loss curve, in the top-right corner, most of all). `legend_below` puts the legend
in the plot's own layout under the x axis instead, several entries per row, so it never covers
a point and still goes into PNG and SVG exports.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QSizeF, Qt

LEGEND_ROW = 4
"""The row of a `PlotItem`'s grid layout under its bottom axis (title 0, top axis 1, view 2,
bottom axis 3)."""

PADDING = 6.0
"""Extra height of the legend row: its labels' text sits a few pixels below their boxes."""


class BelowLegend(pg.LegendItem):
    """A legend that lives in a layout: it asks for its size instead of setting its geometry,
    and puts as many entries in a row as the plot's width takes (at most `max_columns`)."""

    def __init__(self, plot: pg.PlotItem, max_columns: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.plot = plot
        self.max_columns = max_columns
        plot.geometryChanged.connect(self.fit)

    def addItem(self, item, name) -> None:  # type: ignore[no-untyped-def]
        super().addItem(item, name)
        self.fit()

    def removeItem(self, item) -> None:  # type: ignore[no-untyped-def]
        super().removeItem(item)
        self.fit()

    def fit(self) -> None:
        """Entries per row: as many as fit the width of the plot's data area, at least one."""
        if not self.items:
            return
        widest = max(
            sample.boundingRect().width() + label.boundingRect().width()
            for sample, label in self.items
        )
        room = self.plot.vb.width() or self.plot.width()
        fits = int(room // (widest + self.layout.horizontalSpacing() + 3))
        columns = max(1, min(self.max_columns, len(self.items), fits))
        if columns != self.columnCount:
            self.setColumnCount(columns)

    def updateSize(self) -> None:
        width = height = 0.0
        for row in range(self.layout.rowCount()):
            row_height, row_width = 0.0, 0.0
            for col in range(self.layout.columnCount()):
                item = self.layout.itemAt(row, col)
                if item:
                    row_width += item.geometry().width() + 3
                    row_height = max(row_height, item.geometry().height())
            width, height = max(width, row_width), height + row_height
        height += PADDING
        self.setPreferredSize(QSizeF(width, height))
        self.setMaximumSize(QSizeF(width, height))
        self.setMinimumHeight(height)
        self.updateGeometry()

    def paint(self, p, *args) -> None:  # type: ignore[no-untyped-def]
        """No frame or fill: outside the data it needs none."""


def legend_below(plot: pg.PlotItem, max_columns: int = 4) -> BelowLegend:
    """A small legend under `plot`'s x axis that named items added to `plot` join."""
    legend = BelowLegend(plot, max_columns, labelTextSize="8pt", verSpacing=-5, horSpacing=12)
    plot.layout.addItem(legend, LEGEND_ROW, 1, alignment=Qt.AlignmentFlag.AlignHCenter)
    plot.legend = legend  # `PlotItem.addItem` adds every named item to `plot.legend`
    return legend


def set_legend_visible(plot: pg.PlotItem, visible: bool) -> None:
    """Show or hide the legend under `plot`, giving its room back to the data when hidden."""
    legend = plot.legend
    legend.setVisible(visible)
    if visible:
        legend.updateSize()
    else:
        legend.setMaximumHeight(0)
        legend.setMinimumHeight(0)
        legend.updateGeometry()
