"""Export of a plot: PNG and SVG pictures of it, CSV of the raw records behind it.

The CSV is long format, one row per record and component: `run, series, step, value`, where a
vector series' component i is written as `name[i]`. It holds the stored values (not smoothed,
not downsampled), so a figure can be redrawn elsewhere from exactly what the lab recorded.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol
from xml.dom import minidom

import numpy as np
import pyqtgraph as pg
from pyqtgraph.exporters import ImageExporter, SVGExporter
from PySide6.QtWidgets import QFileDialog, QMenu, QToolButton, QWidget

Row = tuple[str, str, int, float]
CSV_HEADER = ("run", "series", "step", "value")


class Exportable(Protocol):
    """A view that can write itself out; `export_name` is the suggested file stem."""

    export_name: str

    def export_png(self, path: str | Path) -> None: ...
    def export_svg(self, path: str | Path) -> None: ...
    def export_csv(self, path: str | Path) -> None: ...


def series_rows(run: str, name: str, steps: np.ndarray, values: np.ndarray) -> Iterator[Row]:
    """CSV rows of one series: one per record, or one per record and component for vectors."""
    steps_list = steps.tolist()
    if values.ndim == 1:
        for step, value in zip(steps_list, values.tolist(), strict=True):
            yield run, name, step, value
        return
    flat = values.reshape(len(values), -1)
    for i in range(flat.shape[1]):
        label = f"{name}[{i}]"
        for step, value in zip(steps_list, flat[:, i].tolist(), strict=True):
            yield run, label, step, value


def write_csv(path: str | Path, rows: Iterable[Row]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_HEADER)
        writer.writerows(rows)


def save_png(item: pg.GraphicsObject | pg.GraphicsScene, path: str | Path, width: int = 0) -> None:
    """Raster picture of `item`; `width` in pixels (0: its size on screen)."""
    exporter = ImageExporter(item)
    if width:
        exporter.parameters()["width"] = width
    exporter.export(str(path))


def save_svg(item: pg.GraphicsObject | pg.GraphicsScene, path: str | Path) -> None:
    """Vector picture of `item`, with axes and text as SVG elements."""
    with _svg_closed_paths_tolerated():
        SVGExporter(item).export(str(path))


@contextlib.contextmanager
def _svg_closed_paths_tolerated() -> Iterator[None]:
    """Let pyqtgraph 0.14.0's SVG exporter read the closed paths recent Qt writes.

    The Qt in use ends closed paths (every ViewBox outline) with " Z", which the exporter's
    coordinate parser cannot split, so every plot export raised ValueError (pyqtgraph issue
    #3495, fixed upstream by PR #3458, after 0.14.0). The close command is dropped before
    parsing: the paths in question are rectangles whose last point already equals their first.
    """
    module: Any = importlib.import_module("pyqtgraph.exporters.SVGExporter")
    original = module.correctCoordinates

    def tolerant(node: minidom.Element, defs: Any, item: Any, options: Any) -> None:
        for path in node.getElementsByTagName("path"):
            tokens = path.getAttribute("d").split()
            path.setAttribute("d", " ".join(t for t in tokens if t not in ("Z", "z")))
        original(node, defs, item, options)

    module.correctCoordinates = tolerant
    try:
        yield
    finally:
        module.correctCoordinates = original


class ExportButton(QToolButton):
    """An "Export" button whose menu saves the view as PNG, SVG or CSV through a file dialog."""

    def __init__(self, view: Exportable, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setText("Export")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self)
        for label, suffix, save in (
            ("Picture (PNG)…", "png", view.export_png),
            ("Vector picture (SVG)…", "svg", view.export_svg),
            ("Data (CSV)…", "csv", view.export_csv),
        ):
            action = menu.addAction(label)
            action.triggered.connect(
                lambda _=False, s=suffix, f=save: self._ask(view.export_name, s, f)
            )
        self.setMenu(menu)

    def _ask(self, stem: str, suffix: str, save: Any) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export plot", f"{stem}.{suffix}", f"{suffix.upper()} (*.{suffix})"
        )
        if path:
            save(path)
