"""The landscape view over a session model: grouping, the plane on screen, the path in the run's
colour, replay by step, modes and exports (offscreen Qt, pytest-qt)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from helpers import shown

from descentlab.app.plots.factory import make_view
from descentlab.app.plots.landscape_plot import LandscapePlot, axis_values, opengl_available
from descentlab.app.plots.layout import PlotGroup, plot_groups
from descentlab.app.session_model import SessionModel
from descentlab.engine.memory import MemorySink
from descentlab.engine.plugin import Output
from descentlab.engine.runner import Runner
from descentlab.engine.sink import RunHeader
from descentlab.engine.spec import parse_toml

RES = 5
HISTORY = 3
OUTPUTS = [
    Output("train/loss", "scalar"),
    Output("landscape/center_step", "scalar"),
    Output(
        "landscape/plane",
        "grid2d",
        (RES, RES),
        attrs={"x": [-1.0, 1.0, RES], "y": [-2.0, 2.0, RES], "x_label": "a", "y_label": "b"},
    ),
    Output("landscape/path", "points2d", (HISTORY + 1, 2)),
    Output("landscape/barrier", "scalar"),
]


def _model() -> SessionModel:
    model = SessionModel()
    for run in ("sgd", "adam"):
        model.add_run(RunHeader(run, {}, OUTPUTS))
    for step, scale in ((10, 1.0), (20, 3.0)):
        grid = scale * np.arange(RES * RES, dtype=float).reshape(RES, RES)
        model.append("sgd", "landscape/plane", step, grid)
        model.append("sgd", "landscape/center_step", step, step - 5)
        path = np.array([[-0.5, -1.0], [-0.2, -0.4], [0.0, 0.0], [np.nan, np.nan]])
        model.append("sgd", "landscape/path", step, path * scale)
    return model


def _group(model: SessionModel) -> PlotGroup:
    outputs = [o for run in model.runs.values() for o in run.outputs.values()]
    return next(g for g in plot_groups(outputs) if g.view == "landscape")


def _shown(qtbot, model: SessionModel) -> LandscapePlot:  # type: ignore[no-untyped-def]
    view = make_view(_group(model), model)
    assert isinstance(view, LandscapePlot)
    return shown(qtbot, view, (700, 500))


def test_the_plane_path_and_centre_step_form_one_landscape_group() -> None:
    groups = plot_groups(OUTPUTS)
    keys = [g.key for g in groups]
    assert "landscape/path" not in keys and "landscape/center_step" not in keys
    (landscape,) = [g for g in groups if g.view == "landscape"]
    assert landscape.series == ("landscape/plane", "landscape/path", "landscape/center_step")
    assert "landscape/barrier" in keys  # a scalar of its own


def test_the_view_draws_the_latest_plane_and_the_path_in_the_runs_colour(qtbot) -> None:  # type: ignore[no-untyped-def]
    model = _model()
    view = _shown(qtbot, model)
    assert view.run_box.currentText() == "sgd"  # adam has no plane records: still offered
    assert view.shown_step == 20
    assert view.grid is not None and view.grid[RES - 1, RES - 1] == 3.0 * (RES * RES - 1)
    np.testing.assert_allclose(view.xs, np.linspace(-1, 1, RES))
    np.testing.assert_allclose(view.ys, np.linspace(-2, 2, RES))
    image = view.image.image
    assert image.shape == (RES, RES) and image[RES - 1, 0] == view.grid[0, RES - 1]  # [x, y]
    rect = view.image.mapRectToParent(view.image.boundingRect())
    assert rect.left() == pytest.approx(-1.25) and rect.bottom() == pytest.approx(2.5)
    x, y = view.path_line.xData, view.path_line.yData
    np.testing.assert_allclose(x, [-1.5, -0.6, 0.0])
    np.testing.assert_allclose(y, [-3.0, -1.2, 0.0])
    np.testing.assert_allclose(view.current.xData, [0.0])
    assert view.path_line.opts["pen"].color() == view.colors.color("sgd")
    assert "centre θ at step 15" in view.plot.titleLabel.text
    assert view.color_bar.levels() == pytest.approx((0.0, 72.0))


def test_the_step_limit_changes_the_shown_grid_and_path(qtbot) -> None:  # type: ignore[no-untyped-def]
    model = _model()
    view = _shown(qtbot, model)
    view.set_step_limit(15)
    assert view.shown_step == 10 and view.grid is not None and view.grid.max() == RES * RES - 1
    np.testing.assert_allclose(view.path_line.xData, [-0.5, -0.2, 0.0])
    view.set_step_limit(5)
    assert view.shown_step is None and view.image.image is None
    assert len(view.path_line.xData or []) == 0
    view.set_step_limit(None)
    assert view.shown_step == 20
    # a live record arrives: the next refresh shows it
    model.append("sgd", "landscape/plane", 30, np.ones((RES, RES)))
    view.refresh()
    assert view.shown_step == 30


def test_contour_mode_and_log_colours(qtbot) -> None:  # type: ignore[no-untyped-def]
    view = _shown(qtbot, _model())
    view.mode_box.setCurrentText("contour")
    assert not view.image.isVisible() and len(view._contours) > 0
    view.log_box.setChecked(True)
    low, high = view.color_bar.levels()
    assert low == pytest.approx(np.log10(72.0 * 1e-6)) and high == pytest.approx(np.log10(72.0))


def test_no_3d_option_offscreen(qtbot) -> None:  # type: ignore[no-untyped-def]
    view = _shown(qtbot, _model())
    assert not opengl_available()
    assert not view.surface_box.isVisible()


def test_exports(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    view = _shown(qtbot, _model())
    view.export_png(tmp_path / "plane.png")
    view.export_svg(tmp_path / "plane.svg")
    assert (tmp_path / "plane.png").stat().st_size > 0
    assert (tmp_path / "plane.svg").stat().st_size > 0
    view.export_csv(tmp_path / "plane.csv")
    with open(tmp_path / "plane.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["run", "series", "step", "value"]
    plane = [r for r in rows[1:] if r[1].startswith("landscape/plane")]
    assert len(plane) == RES * RES
    assert plane[-1] == ["sgd", "landscape/plane[a=1,b=2]", "20", str(3.0 * (RES * RES - 1))]
    assert len([r for r in rows if r[1].startswith("landscape/path")]) == 6  # 3 points × (x, y)


def test_axis_values_fall_back_to_indices() -> None:
    np.testing.assert_allclose(axis_values([0, 1, 3], 3), [0, 0.5, 1])
    np.testing.assert_allclose(axis_values(None, 3), [0, 1, 2])


def test_a_real_run_fills_the_view(qtbot) -> None:  # type: ignore[no-untyped-def]
    text = """
seed = 0
steps = 12
device = "cpu"
[task]
id = "function2d"
function = "himmelblau"
[[runs]]
name = "adam"
optimizer = { id = "adam", lr = 0.05 }
[[diagnostics]]
id = "landscape"
refresh = 5
resolution = 7
rows_per_step = 7
trajectory_every = 2
history = 4
"""
    sink = MemorySink()
    Runner(parse_toml(text), poll_interval=0.0).run(sink)
    model = SessionModel()
    for name, run in sink.runs.items():
        model.add_run(RunHeader(name, run.config, list(run.outputs.values())))
        for series in run.records:
            model.extend(name, series, *run.series(series))
    view = _shown(qtbot, model)
    assert view.grid is not None and view.grid.shape == (7, 7)
    assert np.isfinite(view.grid).all()
    assert len(view.path_line.xData) >= 2
