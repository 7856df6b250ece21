"""The plot views against the model's buffers: data on screen, smoothing, zoom, reference lines,
selectors, exports, and the grouping of a real run's outputs (offscreen Qt, pytest-qt)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from xml.dom import minidom

import numpy as np
import pyqtgraph as pg
import pytest
from helpers import shown
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QWheelEvent
from PySide6.QtWidgets import QApplication

from descentlab.app.plots.colors import DARK, LIGHT, run_colors
from descentlab.app.plots.factory import make_view
from descentlab.app.plots.layout import TOTAL_LAYER, PlotGroup, plot_groups
from descentlab.app.plots.line_plot import ALL_LAYERS, FAINT, LinePlot, step_line
from descentlab.app.plots.path_plot import GRID, PathPlot, log_surface
from descentlab.app.plots.smoothing import EmaSmoother, ema
from descentlab.app.plots.spectrum_plot import SpectrumPlot, log_spectrum
from descentlab.app.session_model import SessionModel
from descentlab.engine.plugin import Output
from descentlab.engine.runner import Runner
from descentlab.engine.sink import RunHeader
from descentlab.engine.spec import parse_toml
from descentlab.plugins.tasks.function2d import surface

SHARPNESS = "hessian/top_eigenvalues"
TWO_OVER_LR = "hessian/two_over_lr"

# A real experiment whose outputs are those of the built-in diagnostics: two runs, one Adam-type
# with a non-default β₁ so that the preconditioned threshold is checked against it.
REAL = """
seed = 0
steps = 20
device = "cpu"
[task]
id = "gaussian-mixture"
[[runs]]
name = "sgd"
optimizer = { id = "sgd", lr = 0.1 }
[[runs]]
name = "adam"
optimizer = { id = "adam", lr = 0.01, betas = [0.8, 0.999] }
[[diagnostics]]
id = "eval"
every = 5
[[diagnostics]]
id = "norms"
every = 1
[[diagnostics]]
id = "spectra"
every = 5
[[diagnostics]]
id = "hessian"
every = 5
top_k = 2
iterations = 8
trace = false
frobenius = false
"""

PATHS = """
seed = 0
steps = 40
device = "cpu"
dtype = "float64"
[task]
id = "function2d"
function = "rosenbrock"
[[runs]]
name = "gd"
optimizer = { id = "sgd", lr = 1e-3 }
[[runs]]
name = "adam"
optimizer = { id = "adam", lr = 0.05 }
"""


def train(text: str) -> SessionModel:
    model = SessionModel()
    Runner(parse_toml(text), poll_interval=0.0).run(model)
    return model


@pytest.fixture(scope="module")
def trained() -> SessionModel:
    return train(REAL)


@pytest.fixture(scope="module")
def raced() -> SessionModel:
    return train(PATHS)


def group(model: SessionModel, key: str) -> PlotGroup:
    outputs = [o for run in model.runs.values() for o in run.outputs.values()]
    return next(g for g in plot_groups(outputs) if g.key == key)


def hand_made(runs: dict[str, dict], outputs: list[Output]) -> SessionModel:
    model = SessionModel()
    for name, config in runs.items():
        model.add_run(RunHeader(name, config, outputs))
    return model


def data(item: pg.PlotDataItem) -> tuple[np.ndarray, np.ndarray]:
    """What the item holds: the arrays it was given (before log mapping and downsampling)."""
    return item.xData, item.yData


# -- smoothing --------------------------------------------------------------------------------


def reference_ema(values: list[float], beta: float) -> list[float]:
    """TensorBoard's debiased smoothing, written as the plain loop it is."""
    out, last, count = [], 0.0, 0
    for x in values:
        if not math.isfinite(x):
            out.append(x)
            continue
        last = last * beta + (1 - beta) * x
        count += 1
        out.append(last / (1 - beta**count))
    return out


@pytest.mark.parametrize("beta", [0.0, 0.3, 0.9, 0.99, 0.999])
def test_ema_matches_the_reference_loop_with_gaps(beta: float) -> None:
    rng = np.random.default_rng(1)
    x = np.exp(rng.standard_normal(5000)) * np.linspace(100, 0.01, 5000)
    x[[0, 7, 8, 1000, 4999]] = [np.nan, np.inf, np.nan, -np.inf, np.nan]
    np.testing.assert_allclose(ema(x, beta), reference_ema(x.tolist(), beta), rtol=1e-10)


def test_ema_spans_many_blocks_and_columns_and_goes_incrementally() -> None:
    """β = 0.5 cuts blocks of ~330 records: the state must carry across them, per column."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3000, 3))
    x[rng.random((3000, 3)) < 0.05] = np.nan  # gaps differ between columns
    for beta in (0.5, 0.95):
        expected = np.stack([reference_ema(x[:, j].tolist(), beta) for j in range(3)], axis=1)
        np.testing.assert_allclose(ema(x, beta), expected, rtol=1e-10, atol=1e-12)
        smoother = EmaSmoother(beta)
        for stop in (1, 2, 500, 501, 2999, 3000):
            got = smoother.update(x[:stop])
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(smoother.update(x[:10]), expected[:10], rtol=1e-12)


# -- layout -----------------------------------------------------------------------------------


def test_layout_groups_the_outputs_of_a_real_run(trained: SessionModel) -> None:
    outputs = list(trained.runs["sgd"].outputs.values())
    groups = plot_groups(outputs + list(trained.runs["adam"].outputs.values()))
    keys = [g.key for g in groups]
    by_key = {g.key: g for g in groups}

    assert keys[0] == "train/loss"
    assert keys.index("eval/loss") < keys.index(SHARPNESS) < keys.index("norms/grad")
    assert keys.index("norms/grad") < keys.index("spectra/weights") < keys.index("train/lr")
    assert len(keys) == len(set(keys))
    assert TWO_OVER_LR not in keys and "norms/grad_total" not in keys
    assert "eval/train_loss" not in keys

    assert by_key[SHARPNESS].references == (TWO_OVER_LR,)
    assert by_key["eval/loss"].series == ("eval/loss", "eval/train_loss")
    assert by_key["eval/accuracy"].series == ("eval/accuracy", "eval/train_accuracy")
    layers = ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    grad = by_key["norms/grad"]
    assert grad.view == "lines"
    assert grad.layers == (TOTAL_LAYER, *layers)
    assert grad.series == ("norms/grad_total", *(f"norms/grad/{layer}" for layer in layers))
    spectra = by_key["spectra/weights"]
    assert spectra.view == "spectrum"
    assert spectra.layers == ("0.weight", "2.weight", "4.weight")
    assert by_key["spectra/stable_rank"].view == "lines"
    assert by_key["spectra/stable_rank"].layers == ("0.weight", "2.weight", "4.weight")


def test_layout_of_a_2d_task_and_of_odd_sets(raced: SessionModel) -> None:
    groups = plot_groups(raced.runs["gd"].outputs.values())
    assert [(g.key, g.view) for g in groups] == [
        ("train/loss", "lines"),
        ("trajectory/params", "path"),  # the picture of a 2-D race: in the grid, second
        ("train/lr", "lines"),
    ]
    # Without a held-out set the train figures still get their plot; without the top
    # eigenvalues 2/η is a plot of its own.
    odd = plot_groups([Output("eval/train_loss", "scalar"), Output(TWO_OVER_LR, "scalar")])
    assert [(g.key, g.series) for g in odd] == [
        ("eval/train_loss", ("eval/train_loss",)),
        (TWO_OVER_LR, (TWO_OVER_LR,)),
    ]


# -- colours ----------------------------------------------------------------------------------


def test_run_colours_follow_first_appearance_and_survive_themes() -> None:
    model = hand_made({"b": {}, "a": {}}, [Output("train/loss", "scalar")])
    colors = run_colors(model)
    assert run_colors(model) is colors
    model.add_run(RunHeader("c", {}, []))
    assert [colors.index(r) for r in ("b", "a", "c")] == [0, 1, 2]
    light = colors.color("a").name()
    colors.set_theme("dark")
    assert colors.color("a").name() == DARK.palette[1].lower() != light == LIGHT.palette[1].lower()
    model.clear()
    model.add_run(RunHeader("c", {}, []))
    assert colors.index("c") == 0


# -- line plot --------------------------------------------------------------------------------


def test_line_plot_shows_the_buffers_and_redraws_only_what_changed(
    qtbot, trained: SessionModel
) -> None:
    view = shown(qtbot, make_view(group(trained, "train/loss"), trained))
    assert isinstance(view, LinePlot)
    for name, run in trained.runs.items():
        (line,) = view.curve_items(name, "train/loss")
        assert line.opts["autoDownsample"] and line.opts["downsampleMethod"] == "peak"
        assert line.opts["clipToView"]
        steps, values = run.series["train/loss"].view()
        np.testing.assert_array_equal(data(line)[0], steps)
        np.testing.assert_array_equal(data(line)[1], values)
        _, y = line.getData()  # what is displayed: log10 of the loss, all points at this size
        np.testing.assert_allclose(y, np.log10(values))

    model = hand_made({"a": {}, "b": {}}, [Output("train/loss", "scalar")])
    view = shown(qtbot, make_view(group(model, "train/loss"), model))
    model.extend("a", "train/loss", np.arange(5), np.arange(1.0, 6.0))
    model.extend("b", "train/loss", np.arange(5), np.arange(1.0, 6.0))
    view.refresh()
    calls: list[str] = []
    for run in ("a", "b"):
        item = view.curve_items(run, "train/loss")[0]
        item.setData = lambda *args, run=run, **kw: calls.append(run)  # type: ignore[method-assign]
    model.extend("b", "train/loss", np.arange(5, 8), np.ones(3))
    view.refresh()
    view.refresh()
    assert calls == ["b"]


def test_a_run_that_appears_later_gets_its_curve_and_the_step_limit_cuts(qtbot) -> None:
    model = hand_made({"a": {}}, [Output("train/loss", "scalar")])
    model.extend("a", "train/loss", np.arange(100), np.linspace(1, 2, 100))
    view = shown(qtbot, make_view(group(model, "train/loss"), model))
    model.add_run(
        RunHeader("fork", {}, [Output("train/loss", "scalar")], parent_run="a", fork_step=50)
    )
    model.extend("fork", "train/loss", np.arange(50, 80), np.full(30, 3.0))
    view.refresh()
    np.testing.assert_array_equal(
        data(view.curve_items("fork", "train/loss")[0])[0], np.arange(50, 80)
    )
    view.set_step_limit(60)
    assert data(view.curve_items("a", "train/loss")[0])[0][-1] == 60
    assert len(data(view.curve_items("fork", "train/loss")[0])[0]) == 11
    view.set_step_limit(None)
    assert data(view.curve_items("a", "train/loss")[0])[0][-1] == 99


def test_smoothing_draws_the_ema_over_the_faint_raw_curve(qtbot, trained: SessionModel) -> None:
    view = shown(qtbot, make_view(group(trained, "train/loss"), trained))
    view.set_smoothing(0.9)
    values = trained.runs["adam"].series["train/loss"].view()[1]
    (line,) = view.curve_items("adam", "train/loss")
    (faint,) = view.raw_items("adam", "train/loss")
    np.testing.assert_allclose(data(line)[1], reference_ema(values.tolist(), 0.9), rtol=1e-12)
    np.testing.assert_array_equal(data(faint)[1], values)
    assert faint.isVisible()
    assert faint.opts["pen"].color() == view.colors.faded("adam", FAINT) != line.opts["pen"].color()
    view.set_smoothing(0.0)
    assert not faint.isVisible()
    np.testing.assert_array_equal(data(line)[1], values)


def test_log_axes_take_zeros_negatives_and_nans(qtbot) -> None:
    model = hand_made({"a": {}}, [Output("train/loss", "scalar")])
    values = [0.0, -1.0, 1e-3, np.nan, 10.0, 0.5]
    model.extend("a", "train/loss", np.arange(6), np.array(values))
    view = shown(qtbot, make_view(group(model, "train/loss"), model))
    view.set_smoothing(0.5)
    view.log_x.setChecked(True)
    view.log_y.setChecked(True)
    view.refresh()
    assert not view.grab().isNull()  # painted without raising
    x, y = view.raw_items("a", "train/loss")[0].getData()
    assert np.isnan(x[0]) and np.isnan(y[0]) and np.isnan(y[1])  # log of 0, −1: gaps
    assert y[4] == pytest.approx(1.0)  # log10 10
    _, smoothed = view.curve_items("a", "train/loss")[0].getData()
    assert smoothed[4] == pytest.approx(math.log10(reference_ema(values, 0.5)[4]))
    (x_range, y_range) = view.plot.getViewBox().viewRange()
    assert all(map(math.isfinite, (*x_range, *y_range)))


def wheel(view: LinePlot, clicks: int) -> None:
    """One real wheel event at the middle of the plot, as the user's zoom."""
    viewport = view.plot_widget.viewport()
    centre = QPointF(viewport.width() / 2, viewport.height() / 2)
    event = QWheelEvent(
        centre, viewport.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 120 * clicks),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
        False,
    )  # fmt: skip
    QApplication.sendEvent(viewport, event)


def test_a_manual_zoom_survives_new_data_until_auto_range_resumes(qtbot) -> None:
    model = hand_made({"a": {}}, [Output("train/loss", "scalar")])
    model.extend("a", "train/loss", np.arange(100), np.linspace(1.0, 2.0, 100))
    view = shown(qtbot, make_view(group(model, "train/loss"), model))
    view.log_y.setChecked(False)
    box = view.plot.getViewBox()
    QApplication.processEvents()
    assert not view.auto_range.isEnabled()

    wheel(view, 2)
    QApplication.processEvents()
    zoomed = box.viewRange()
    assert zoomed[0][1] - zoomed[0][0] < 90 and view.auto_range.isEnabled()

    model.extend("a", "train/loss", np.arange(100, 1000), np.linspace(2.0, 50.0, 900))
    view.refresh()
    QApplication.processEvents()
    assert box.viewRange() == zoomed

    qtbot.mouseClick(view.auto_range, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: box.viewRange()[0][1] >= 999 and box.viewRange()[1][1] >= 50)
    assert not view.auto_range.isEnabled()


def test_sharpness_plot_draws_two_over_lr_as_recorded(qtbot, trained: SessionModel) -> None:
    view = shown(qtbot, make_view(group(trained, SHARPNESS), trained))
    steps, top = trained.runs["adam"].series[SHARPNESS].view()
    assert len(steps) == 4 and top.shape == (4, 2)
    lines = view.curve_items("adam", SHARPNESS)
    for j, line in enumerate(lines):  # one curve per eigenvalue, told apart by style
        np.testing.assert_array_equal(data(line)[1], top[:, j])
    assert lines[0].opts["pen"].style() != lines[1].opts["pen"].style()

    (eta,) = view.reference_items("sgd").values()
    np.testing.assert_allclose(data(eta)[1], np.full(7, 2 / 0.1))
    np.testing.assert_array_equal(data(eta)[0], [0, 5, 5, 10, 10, 15, 15])
    # λmax(H) gets 2/η only: the Adam threshold bounds λmax(P⁻¹H), drawn on its own plot.
    assert list(view.reference_items("adam")) == [TWO_OVER_LR]
    np.testing.assert_allclose(data(view.reference_items("adam")[TWO_OVER_LR])[1], 2 / 0.01)
    labels = [label.text for _, label in view.plot.legend.items]
    assert "sgd: 2/η" in labels and not any("β₁" in text for text in labels)


def test_step_line_holds_each_value_until_the_next_record() -> None:
    x, y = step_line(np.array([0, 10, 30]), np.array([1.0, 2.0, 3.0]))
    assert x.tolist() == [0, 10, 10, 30, 30] and y.tolist() == [1, 1, 2, 2, 3]


def test_the_layer_selector_switches_curves(qtbot, trained: SessionModel) -> None:
    view = shown(qtbot, make_view(group(trained, "norms/grad"), trained))
    assert view.visible_series() == ("norms/grad_total",)
    view.layer_box.setCurrentText("2.weight")
    view.refresh()
    assert view.visible_series() == ("norms/grad/2.weight",)
    values = trained.runs["sgd"].series["norms/grad/2.weight"].view()[1]
    np.testing.assert_array_equal(
        data(view.curve_items("sgd", "norms/grad/2.weight")[0])[1], values
    )
    with pytest.raises(KeyError):
        view.curve_items("sgd", "norms/grad_total")
    view.layer_box.setCurrentText(ALL_LAYERS)
    view.refresh()
    assert len(view.visible_series()) == 6
    drawn = [i for i in view.plot.listDataItems() if i.xData is not None and i.isVisible()]
    assert len(drawn) == 6 * 2  # six layers, two runs
    assert len(view.plot.legend.items) == 12


def test_csv_export_writes_every_curve_raw(qtbot, tmp_path: Path) -> None:
    outputs = [Output(SHARPNESS, "vector", (2,)), Output(TWO_OVER_LR, "scalar")]
    model = hand_made({"a": {"optimizer": {"id": "sgd"}}}, outputs)
    model.extend("a", SHARPNESS, np.array([0, 5]), np.array([[3.0, 1.0], [4.0, 2.5]]))
    model.extend("a", TWO_OVER_LR, np.array([0, 5]), np.array([20.0, 20.0]))
    view = shown(qtbot, make_view(group(model, SHARPNESS), model))
    view.set_smoothing(0.9)  # the export is of the records, not of what smoothing made of them
    view.export_csv(tmp_path / "sharpness.csv")
    with open(tmp_path / "sharpness.csv") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["run", "series", "step", "value"],
        ["a", f"{SHARPNESS}[0]", "0", "3.0"],
        ["a", f"{SHARPNESS}[0]", "5", "4.0"],
        ["a", f"{SHARPNESS}[1]", "0", "1.0"],
        ["a", f"{SHARPNESS}[1]", "5", "2.5"],
        ["a", TWO_OVER_LR, "0", "20.0"],
        ["a", TWO_OVER_LR, "5", "20.0"],
    ]


def test_png_and_svg_exports_are_pictures(qtbot, trained: SessionModel, tmp_path: Path) -> None:
    for key in ("train/loss", "spectra/weights"):
        view = shown(qtbot, make_view(group(trained, key), trained))
        view.export_png(tmp_path / "plot.png")
        view.export_svg(tmp_path / "plot.svg")
        image = QImage(str(tmp_path / "plot.png"))
        assert image.width() > 100 and image.height() > 100
        svg = minidom.parse(str(tmp_path / "plot.svg"))
        assert svg.documentElement.tagName == "svg"
        assert svg.getElementsByTagName("path") and svg.getElementsByTagName("text")


# -- spectrum and path ------------------------------------------------------------------------


def test_spectrum_heatmap_is_records_by_singular_values(qtbot, trained: SessionModel) -> None:
    view = shown(qtbot, make_view(group(trained, "spectra/weights"), trained))
    assert isinstance(view, SpectrumPlot)
    view.layer_box.setCurrentText("2.weight")
    _, values = trained.runs["sgd"].series["spectra/weights/2.weight"].view()
    assert view.image.image.shape == (4, 32)
    np.testing.assert_allclose(view.image.image, log_spectrum(values))
    x, y = data(view.latest_item("sgd"))
    assert x.tolist() == list(range(1, 33))
    np.testing.assert_array_equal(y, values[-1])

    view.run_box.setCurrentText("adam")
    _, adam = trained.runs["adam"].series["spectra/weights/2.weight"].view()
    np.testing.assert_allclose(view.image.image, np.log10(adam))
    view.set_step_limit(5)
    assert view.image.image.shape == (2, 32)


def test_path_plot_draws_each_trajectory_over_the_landscape(qtbot, raced: SessionModel) -> None:
    view = shown(qtbot, make_view(group(raced, "trajectory/params"), raced))
    assert isinstance(view, PathPlot)
    every_point = []
    for name, run in raced.runs.items():
        _, points = run.series["trajectory/params"].view()
        line, marker = view.path_items(name)
        np.testing.assert_array_equal(data(line)[0], points[:, 0])
        np.testing.assert_array_equal(data(line)[1], points[:, 1])
        np.testing.assert_array_equal(np.stack(data(marker), axis=1), points[-1:])
        every_point.append(points)
    points = np.concatenate(every_point)
    x0, x1, y0, y1 = view.extent
    assert x0 <= points[:, 0].min() and points[:, 0].max() <= x1
    assert y0 <= points[:, 1].min() and points[:, 1].max() <= y1
    assert view.landscape.image.shape == (GRID, GRID)
    task = raced.runs["gd"].config["task"]
    xs, ys = np.linspace(x0, x1, GRID), np.linspace(y0, y1, GRID)
    expected = log_surface(surface("rosenbrock", task, xs, ys)).T  # image axis 0 is x
    np.testing.assert_allclose(view.landscape.image, expected)


def test_layout_picks_views_for_spectra_heads_and_exact_spectra() -> None:
    outputs = [
        Output("spectra/weights/fc.weight", "vector", (5,), layer="fc.weight"),
        Output("attention/entropy/block0", "vector", (4,), layer="block0"),
        Output("hessian/exact_spectrum", "vector", (50,)),
        Output("hessian/top_eigenvalues", "vector", (3,)),
    ]
    views = {g.key: (g.view, g.log_y) for g in plot_groups(outputs)}
    assert views["spectra/weights"] == ("spectrum", True)  # singular values: log scale
    assert views["attention/entropy"] == ("lines", False)  # one line per head
    assert views["hessian/exact_spectrum"] == ("spectrum", False)  # signed: linear
    assert views["hessian/top_eigenvalues"][0] == "lines"
