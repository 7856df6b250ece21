"""Plots a person can read (issue 11): legends that hide no data, log axes with legible labels
that say what they cannot show, axes that say what they show, a landscape drawn smoothly."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from helpers import shown
from PySide6.QtCore import QEvent, QPoint, QPointF, QRect, Qt
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import QApplication, QDockWidget, QLabel, QMainWindow, QTabBar

from descentlab.app.plots.factory import make_view
from descentlab.app.plots.layout import plot_groups
from descentlab.app.plots.tab_tooltips import DockTabTooltips
from descentlab.app.session_model import SessionModel
from descentlab.engine.plugin import Output
from descentlab.engine.sink import RunHeader


def model_with(outputs: list[Output], records: dict[str, tuple]) -> SessionModel:
    model = SessionModel()
    model.add_run(RunHeader("a", {}, outputs))
    for name, (steps, values) in records.items():
        model.extend("a", name, np.asarray(steps), np.asarray(values, dtype=float))
    return model


def view_of(qtbot, model: SessionModel, key: str, size: tuple[int, int] = (800, 500)):  # type: ignore[no-untyped-def]
    outputs = [o for run in model.runs.values() for o in run.outputs.values()]
    group = next(g for g in plot_groups(outputs) if g.key == key)
    return shown(qtbot, make_view(group, model), size)


def tick_labels(axis: pg.AxisItem, low: float, high: float) -> list[str]:
    """The non-empty labels `axis` draws for the value range [low, high] in log mode."""
    labels = []
    for spacing, values in axis.tickValues(np.log10(low), np.log10(high), 300):
        labels += [s for s in axis.tickStrings(values, 1.0, spacing or 1.0) if s]
    return labels


def test_a_log_axis_labels_decades_and_a_few_minor_ticks_within_one(qtbot) -> None:
    model = model_with([Output("train/loss", "scalar")], {"train/loss": ([0, 1], [0.5, 0.1])})
    view = view_of(qtbot, model, "train/loss")
    axis = view.plot.getAxis("left")
    assert view.log_y.isChecked() and axis.logMode
    # four decades: the decades only (pyqtgraph alone adds 0.0002 … 0.9, 36 labels in a smear)
    assert sorted(set(tick_labels(axis, 1e-4, 1.0)), key=float) == [
        "0.0001",
        "0.001",
        "0.01",
        "0.1",
        "1",
    ]
    # less than a decade: no decade in sight, so a few minor ticks are labelled
    assert tick_labels(axis, 0.07, 0.1) == ["0.08", "0.09"]
    assert 2 <= len(tick_labels(axis, 0.11, 0.99)) <= 5


def test_the_legend_hides_no_data_and_can_be_hidden(qtbot) -> None:
    # Curves that end in the top-right corner, where pyqtgraph puts its legend.
    steps = np.arange(1000)
    outputs = [Output("train/loss", "scalar")]
    model = SessionModel()
    for run in ("muon", "adam", "sgd"):
        model.add_run(RunHeader(run, {}, outputs))
        model.extend(run, "train/loss", steps, 1.0 + steps / 999 * (1 + len(run) / 10))
    view = view_of(qtbot, model, "train/loss")
    view.log_y.setChecked(False)
    QApplication.processEvents()
    legend = view.plot.legend
    assert len(legend.items) == 3 and legend.isVisible()
    box = legend.sceneBoundingRect()
    for run in ("muon", "adam", "sgd"):
        x, y = view.curve_items(run, "train/loss")[0].getData()
        for xi, yi in zip(x[-150:], y[-150:], strict=True):
            assert not box.contains(view.plot.vb.mapViewToScene(QPointF(xi, yi)))
    assert not box.intersects(view.plot.vb.sceneBoundingRect())
    height = view.plot.vb.sceneBoundingRect().height()
    view.legend_action.setChecked(False)  # in the plot's context menu
    QApplication.processEvents()
    assert not legend.isVisible()
    assert view.plot.vb.sceneBoundingRect().height() > height  # its room goes to the data


def test_log_y_stays_off_for_values_it_cannot_show_and_says_how_many_it_hides(qtbot) -> None:
    values = [2.0, 0.5, -0.25, 0.0, -1.0, 0.3]  # a noisy quadratic's loss goes negative
    model = model_with([Output("train/loss", "scalar")], {"train/loss": (range(6), values)})
    view = view_of(qtbot, model, "train/loss")
    assert view.group.log_y  # losses are declared on a log scale …
    assert not view.log_y.isChecked()  # … but this one holds values ≤ 0
    assert view.hidden_note.textItem.toPlainText() == ""
    view.log_y.setChecked(True)
    assert view.hidden_count() == 3
    assert view.hidden_note.textItem.toPlainText() == "log y hides 3 values ≤ 0"
    model.extend("a", "train/loss", np.array([6]), np.array([-2.0]))
    view.refresh()
    assert view.log_y.isChecked()  # the user's choice stands
    assert view.hidden_note.textItem.toPlainText() == "log y hides 4 values ≤ 0"


def test_a_positive_loss_starts_on_a_log_axis_until_it_turns_negative_live(qtbot) -> None:
    model = model_with([Output("train/loss", "scalar")], {"train/loss": ([0, 1], [2.0, 1.0])})
    view = view_of(qtbot, model, "train/loss")
    assert view.log_y.isChecked() and view.hidden_count() == 0
    model.extend("a", "train/loss", np.array([2]), np.array([-0.5]))
    view.refresh()
    assert not view.log_y.isChecked() and not view.plot.getAxis("left").logMode


def test_heatmap_axes_name_the_quantity_they_show(qtbot) -> None:
    outputs = [
        Output("hessian/exact_spectrum", "vector", (12,)),
        Output("spectra/weights/fc.weight", "vector", (3,), layer="fc.weight"),
    ]
    spectrum = np.linspace(5.0, -1.0, 12)
    model = model_with(
        outputs,
        {
            "hessian/exact_spectrum": ([0, 5], [spectrum, spectrum]),
            "spectra/weights/fc.weight": ([0, 5], [[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]]),
        },
    )
    eigen = view_of(qtbot, model, "hessian/exact_spectrum")
    assert eigen.heatmap_plot.getAxis("left").labelText == "index i of λᵢ"
    assert eigen.latest_plot.getAxis("bottom").labelText == "index i of λᵢ"
    assert eigen.latest_plot.getAxis("left").labelText == "λ"
    assert eigen.color_bar.axis.labelText == "λ"
    singular = view_of(qtbot, model, "spectra/weights")
    assert singular.heatmap_plot.getAxis("left").labelText == "index i of σᵢ"
    assert singular.color_bar.axis.labelText == "log₁₀ σ"


def test_the_landscape_heatmap_is_as_smooth_as_its_contours(qtbot) -> None:
    grid = np.array([[0.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    axes = {"x": [-1.0, 1.0, 3], "y": [-1.0, 1.0, 3]}
    model = model_with(
        [Output("landscape/plane", "grid2d", (3, 3), attrs=axes)],
        {"landscape/plane": ([0], [grid])},
    )
    view = view_of(qtbot, model, "landscape/plane")
    QApplication.processEvents()
    picture = view.plot_widget.grab().toImage()
    rect: QRect = view.plot_widget.mapFromScene(view.image.sceneBoundingRect()).boundingRect()
    middle = rect.center().y()
    row = {
        picture.pixel(x, middle)
        for x in range(rect.left() + rect.width() // 6, rect.right() - rect.width() // 6)
    }
    assert len(row) > 20  # a gradient between samples, not three blocks of colour


def test_tabs_of_plot_docks_show_the_full_title_as_tooltip(qtbot) -> None:
    area = QMainWindow()
    qtbot.addWidget(area)
    tips = DockTabTooltips(area)
    docks = []
    for short, full in (
        ("Sharpness", "Sharpness: top Hessian eigenvalues λ vs 2/η"),
        ("λmin", "x"),
    ):
        dock = QDockWidget(short, area)
        dock.setToolTip(full)
        dock.setWidget(QLabel(short))
        area.addDockWidget(Qt.DockWidgetArea.TopDockWidgetArea, dock)
        docks.append(dock)
    area.tabifyDockWidget(docks[0], docks[1])
    area.show()
    qtbot.waitExposed(area)
    tips.install()
    (bar,) = [b for b in area.findChildren(QTabBar) if b.parent() is area and b.count() == 2]
    index = [bar.tabText(i) for i in range(2)].index("Sharpness")
    assert bar.tabToolTip(index) == "Sharpness"  # what Qt itself would show
    assert tips.tooltip(bar, index) == "Sharpness: top Hessian eigenvalues λ vs 2/η"
    event = QHelpEvent(QEvent.Type.ToolTip, bar.tabRect(index).center(), QPoint(0, 0))
    assert tips.eventFilter(bar, event)  # answered with the full title


def test_a_long_legend_wraps_to_the_plot_width_and_keys_the_components(qtbot) -> None:
    outputs = [
        Output("hessian/top_eigenvalues", "vector", (3,)),
        Output("hessian/two_over_lr", "scalar"),
    ]
    model = SessionModel()
    for run in ("sgd-momentum", "adam", "muon"):
        model.add_run(RunHeader(run, {}, outputs))
        model.extend(run, "hessian/top_eigenvalues", np.array([0, 5]), np.ones((2, 3)))
        model.extend(run, "hessian/two_over_lr", np.array([0, 5]), np.full(2, 20.0))
    view = view_of(qtbot, model, "hessian/top_eigenvalues", size=(420, 400))
    QApplication.processEvents()
    legend = view.plot.legend
    texts = [label.text for _, label in legend.items]
    assert texts[1:4] == ["λ1", "λ2", "λ3"]  # after the first run's curve
    assert "muon: 2/η" in texts
    assert view.plot.getAxis("left").labelText == "λ"  # not a list of styles, cut off
    assert legend.sceneBoundingRect().width() <= view.plot.sceneBoundingRect().width()
    assert legend.columnCount < 4
