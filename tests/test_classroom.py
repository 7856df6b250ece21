"""The classroom: the 2-D playground's race, presentation mode and the gallery of claims."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication, QDockWidget, QToolBar
from torch import nn

from descentlab.app.main_window import MainWindow
from descentlab.app.panels.gallery import GalleryDialog, gallery_presets, watch_verdicts
from descentlab.app.playground import Playground
from descentlab.app.plots.colors import CONTRAST, LIGHT
from descentlab.app.presentation import FONT_SCALE, presentation, set_presentation
from descentlab.app.race import (
    DEFAULT_RACERS,
    Racer,
    RaceSettings,
    hyperparameters,
    race_optimizers,
    run_race,
    tune_learning_rates,
)
from descentlab.engine import registry
from descentlab.engine.session.writer import SessionWriter, write_claims
from descentlab.engine.spec import parse_toml
from descentlab.plugins.tasks.function2d import FUNCTIONS

# -- the race ---------------------------------------------------------------------------------


def _reference_path(
    make: type[torch.optim.Optimizer], kwargs: dict, function: str, start, steps: int
) -> np.ndarray:
    """The plain torch loop: one point, backward on its loss, step; the points visited."""
    objective = FUNCTIONS[function].objective
    point = nn.Parameter(torch.tensor(start, dtype=torch.float64))
    optimizer = make([point], **kwargs)
    path = [point.detach().clone().numpy()]
    for _ in range(steps):
        optimizer.zero_grad()
        objective(point[0], point[1], {"condition": 100.0}).backward()
        optimizer.step()
        path.append(point.detach().clone().numpy())
    return np.array(path)


def test_race_of_four_optimizers_matches_plain_torch_loops_exactly() -> None:
    settings = RaceSettings(function="rosenbrock", lr=1e-3, momentum=0.8, beta2=0.99, steps=500)
    race = run_race(settings, DEFAULT_RACERS)
    start = FUNCTIONS["rosenbrock"].start
    references = [
        (torch.optim.SGD, {"lr": 1e-3}),
        (torch.optim.SGD, {"lr": 1e-3, "momentum": 0.8}),
        (torch.optim.Adam, {"lr": 1e-3, "betas": (0.8, 0.99)}),
        (torch.optim.RMSprop, {"lr": 1e-3, "alpha": 0.99}),
    ]
    for lane, (make, kwargs) in zip(race.lanes, references, strict=True):
        expected = _reference_path(make, kwargs, "rosenbrock", start, 500)
        assert lane.error == ""
        np.testing.assert_array_equal(lane.path, expected)
        objective = FUNCTIONS["rosenbrock"].objective
        final = objective(torch.tensor(expected[-1, 0]), torch.tensor(expected[-1, 1]), {})
        assert lane.final_loss == float(final)
    assert race.seconds > 0


def test_a_diverging_lane_stops_with_its_finite_path_and_the_others_run_on() -> None:
    race = run_race(
        RaceSettings(function="rosenbrock", lr=0.05, steps=100), (Racer("sgd"), Racer("adam"))
    )
    sgd, adam = race.lanes
    assert sgd.error.startswith("diverged at step")
    assert np.isfinite(sgd.path).all() and len(sgd.path) < 101
    assert adam.error == "" and len(adam.path) == 101


def test_sliders_map_onto_each_optimizers_own_parameters() -> None:
    catalogue = registry.plugins("optimizers")
    settings = RaceSettings(lr=0.01, momentum=0.7, beta2=0.95)
    adam = hyperparameters(catalogue["adam"], settings, Racer("adam", momentum=True))
    assert adam["lr"] == 0.01 and adam["betas"] == [0.7, 0.95]
    assert hyperparameters(catalogue["adam"], settings, Racer("adam"))["betas"] == [0.0, 0.95]
    rmsprop = hyperparameters(catalogue["rmsprop"], settings, Racer("rmsprop", momentum=True))
    assert rmsprop["alpha"] == 0.95 and rmsprop["momentum"] == 0.7
    with pytest.raises(ValueError, match=r"sgd\.momentum"):
        hyperparameters(catalogue["sgd"], RaceSettings(momentum=1.5), Racer("sgd", True))
    assert {"sgd", "adam", "rmsprop", "lbfgs"} <= set(race_optimizers())
    assert "adahessian" not in race_optimizers()  # needs Hessian-vector products via the graph


def test_a_closure_optimizer_races_too() -> None:
    (lane,) = run_race(
        RaceSettings(function="quadratic2d", lr=1.0, steps=20), (Racer("lbfgs"),)
    ).lanes
    assert lane.error == "" and lane.final_loss < 1e-12


def test_tuning_gives_each_racer_its_best_rate_on_rosenbrock() -> None:
    """Issue 11: at one shared rate of 0.002, Adam and RMSprop barely leave the start."""
    settings = RaceSettings(function="rosenbrock", lr=2e-3)
    untuned = run_race(settings, DEFAULT_RACERS)
    assert untuned.lanes[2].final_loss > 4  # adam + momentum: the unfair race
    tuned_racers = tune_learning_rates(settings, DEFAULT_RACERS)
    assert [(r.optimizer, r.momentum) for r in tuned_racers] == [
        (r.optimizer, r.momentum) for r in DEFAULT_RACERS
    ]
    tuned = run_race(settings, tuned_racers)
    for before, after in zip(untuned.lanes, tuned.lanes, strict=True):
        assert after.error == ""
        assert after.final_loss <= before.final_loss
    assert tuned.lanes[2].final_loss < 1e-2  # Adam, at its own rate
    assert tuned.lanes[3].final_loss < 1e-1  # RMSprop too
    grid = {float(f"{lr:.3g}") for lr in np.geomspace(1e-5, 1.0, 20)} | {2e-3}
    assert all(r.lr in grid for r in tuned_racers)


def test_tuning_leaves_a_racer_without_a_learning_rate_as_it_is() -> None:
    settings = RaceSettings(function="quadratic2d", steps=20)
    no_lr = next(
        p.id
        for p in registry.plugins("optimizers").values()
        if p.id in race_optimizers() and all(q.name != "lr" for q in p.params)
    )
    (racer,) = tune_learning_rates(settings, (Racer(no_lr),))
    assert racer == Racer(no_lr)
    with pytest.raises(ValueError, match="points >= 2"):
        tune_learning_rates(settings, (Racer("sgd"),), points=1)


def test_a_racers_own_rate_replaces_the_shared_one() -> None:
    catalogue = registry.plugins("optimizers")
    settings = RaceSettings(lr=0.01)
    assert hyperparameters(catalogue["sgd"], settings, Racer("sgd"))["lr"] == 0.01
    assert hyperparameters(catalogue["sgd"], settings, Racer("sgd", lr=0.3))["lr"] == 0.3


# -- the playground window ---------------------------------------------------------------------


@pytest.fixture
def playground(qtbot) -> Playground:
    widget = Playground()
    qtbot.addWidget(widget)
    widget.resize(1000, 700)
    widget.show()
    return widget


def test_a_click_on_the_contour_sets_the_start_of_every_racer(
    playground: Playground, qtbot
) -> None:
    playground.set_settings(steps=50)
    view_box = playground.plot.getViewBox()
    scene_point = view_box.mapViewToScene(QPointF(0.5, 1.5))
    widget_point = playground.plot_widget.mapFromScene(scene_point)
    qtbot.mouseClick(playground.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=widget_point)
    x, y = playground.settings.start_point
    assert abs(x - 0.5) < 0.05 and abs(y - 1.5) < 0.05  # within a pixel or two
    playground.set_start((0.25, -0.5))  # what the click handler calls
    for lane in playground.race.lanes:
        np.testing.assert_array_equal(lane.path[0], [0.25, -0.5])
    np.testing.assert_array_equal(playground.start_marker.data["x"], [0.25])


def test_paths_unroll_and_the_animation_can_be_skipped(playground: Playground) -> None:
    playground.set_settings(steps=200)
    assert playground.animating()
    shown, _ = playground.lines[0].getData()
    assert len(shown) < 201
    playground.skip()
    assert not playground.animating()
    for lane, line in zip(playground.race.lanes, playground.lines, strict=True):
        xs, ys = line.getData()
        np.testing.assert_array_equal(np.column_stack([xs, ys]), lane.path)
    legend = [label.text for _, label in playground.legend.items]
    assert legend[0].startswith("sgd: final loss")
    assert legend[0].endswith("at lr 0.002")


def test_every_function_and_a_new_racer_redraw(playground: Playground) -> None:
    playground.set_settings(steps=20)
    for name in FUNCTIONS:
        playground.set_function(name)
        assert playground.race.settings.function == name
        assert playground.surface.extent is not None
    playground.set_racer(3, Racer("lion", momentum=True))
    assert playground.slot_boxes[3].currentText() == "lion"
    assert playground.race.lanes[3].racer == Racer("lion", momentum=True)


def test_tune_each_sets_every_slots_field_and_the_slider_resets_them(
    playground: Playground,
) -> None:
    playground.set_settings(steps=100)
    before = [lane.final_loss for lane in playground.race.lanes]
    race = playground.tune()
    tuned = [racer.lr for racer in playground.racers]
    assert [edit.text() for edit in playground.lr_edits] == [f"{lr:.3g}" for lr in tuned]
    after = [lane.final_loss for lane in race.lanes]
    assert all(a <= b for a, b in zip(after, before, strict=True))
    assert "tuned in" in playground.timing_label.text()
    playground.lr_edits[1].setText("0.0005")
    playground.lr_edits[1].editingFinished.emit()
    assert playground.racers[1].lr == 5e-4 and playground.race.lanes[1].racer.lr == 5e-4
    playground.lr_edits[0].setText("fast")
    playground.lr_edits[0].editingFinished.emit()
    assert "'fast' is not a number from 1e-05 to 1" in playground.error_label.text()
    assert playground.lr_edits[0].text() == f"{tuned[0]:.3g}"  # the old rate, shown again
    playground.momentum_boxes[1].setChecked(False)  # the slot keeps its own rate
    assert playground.racers[1] == Racer("sgd", momentum=False, lr=5e-4)
    playground.slot_boxes[1].setCurrentText("adam")  # another optimizer: the shared rate
    assert playground.racers[1] == Racer("adam", momentum=False, lr=None)
    assert playground.lr_edits[1].text() == "0.002"
    playground.set_settings(lr=0.01)  # what the learning-rate slider does: every slot's rate
    assert all(racer.lr is None for racer in playground.racers)
    assert [edit.text() for edit in playground.lr_edits] == ["0.01"] * 4


# -- presentation mode and the gallery (main window) ------------------------------------------


def test_presentation_mode_toggles_fonts_docks_theme_and_back(window: MainWindow) -> None:
    app = QApplication.instance()
    size = app.font().pointSizeF()
    experiment = window.findChild(QDockWidget, "Experiment")
    assert experiment.isVisible()
    window.toggle_presentation()
    state = presentation(window)
    assert state is not None and state.strip.isVisible()
    assert app.font().pointSizeF() == pytest.approx(size * FONT_SCALE)
    assert not experiment.isVisible() and not window.menuBar().isVisible()
    assert not window.findChild(QToolBar, "Controls").isVisible()
    assert window.colors.theme is CONTRAST and window.isFullScreen()
    assert {a.text() for a in state.strip.actions() if a.text()} >= {"Start", "Step", "Reset"}
    window.toggle_presentation()
    assert presentation(window) is None
    assert app.font().pointSizeF() == pytest.approx(size)
    assert experiment.isVisible() and window.menuBar().isVisible()
    assert window.findChild(QToolBar, "Controls").isVisible()
    assert window.colors.theme is LIGHT and not window.isFullScreen()
    set_presentation(window, False)  # already off: nothing to undo
    assert presentation(window) is None


def test_the_gallery_lists_every_preset_and_opens_one(window: MainWindow) -> None:
    folder = files("descentlab.assets").joinpath("presets/gallery")
    names = sorted(e.name[:-5] for e in folder.iterdir() if e.name.endswith(".toml"))
    presets, problems = gallery_presets()
    assert problems == [] and [p.name for p in presets] == names
    assert all(p.title and p.explanation and p.checks for p in presets)
    dialog = GalleryDialog(window)
    assert dialog.list.count() == len(names)
    dialog.list.setCurrentRow(len(names) - 1)
    assert presets[-1].title in dialog.details.toPlainText()
    assert dialog.open_selected()
    spec = window.experiment.validate()
    assert spec is not None and spec.name == parse_toml(presets[-1].text).name
    assert spec.claims == parse_toml(presets[-1].text).claims  # the panel keeps them
    assert watch_verdicts(window) is watch_verdicts(window)


def test_verdicts_of_a_finished_session_reach_the_event_log(window: MainWindow, tmp_path) -> None:
    path = tmp_path / "claims.h5"
    with SessionWriter(path, "name = 'x'"):
        pass
    write_claims(
        path,
        [
            {"id": "race", "held": True, "summary": "adam reached 0.01 at step 120, sgd never",
             "numbers": {"step": 120.0}, "params": {"id": "race"}},
            {"id": "late-band", "held": False, "summary": "mean 2.5 outside [0, 1]",
             "numbers": {"mean": 2.5}, "params": {"id": "late-band"}},
        ],
    )  # fmt: skip
    reporter = watch_verdicts(window)
    assert watch_verdicts(window) is reporter  # one per window
    window.client.finished.emit(str(path))
    lines = [window.event_log.item(i).text() for i in range(window.event_log.count())]
    assert "claim [race] ✓ held: adam reached 0.01 at step 120, sgd never" in lines
    assert "claim [late-band] ✗ did not hold: mean 2.5 outside [0, 1]" in lines
    assert [v.held for v in reporter.last] == [True, False]
    assert reporter.last[1].numbers == {"mean": 2.5}
    assert window.verdicts is reporter  # every window reports verdicts, gallery or not

    window.event_log.clear()
    assert window.load_session(path)  # opening a session shows the verdicts it recorded
    lines = [window.event_log.item(i).text() for i in range(window.event_log.count())]
    assert "claim [race] ✓ held: adam reached 0.01 at step 120, sgd never" in lines


CLAIMED = """
name = "claimed"
steps = 30
device = "cpu"
[task]
id = "quadratic"
dim = 4
[[runs]]
name = "gd"
optimizer = { id = "sgd", lr = 0.001 }
[[claims]]
id = "late-band"
run = "gd"
series = "train/loss"
window = 0.5
high = 1e9
"""
