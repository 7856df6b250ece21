"""Replay, fork and export in the lab window: the timeline, the fork dialog, the exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from descentlab.app.main_window import MainWindow
from descentlab.app.panels.fork_dialog import ForkDialog, fork_name
from descentlab.app.plots.histogram_plot import HistogramPlot
from descentlab.engine.compat import tomllib
from descentlab.engine.runner import Runner
from descentlab.engine.session.reader import SessionReader
from descentlab.engine.session.writer import SessionWriter
from descentlab.engine.spec import parse_toml

SESSION = """
name = "replay"
seed = 0
steps = 30
device = "cpu"
checkpoint_every = 10
[task]
id = "gaussian-mixture"
[[runs]]
name = "sgd"
optimizer = { id = "sgd", lr = 0.1, momentum = 0.9 }
[[runs]]
name = "adam"
optimizer = { id = "adam", lr = 0.01 }
[[diagnostics]]
id = "spectra"
every = 5
[[diagnostics]]
id = "optimizer-state"
every = 5
bins = 8
"""

PATHS = """
name = "paths"
seed = 0
steps = 20
device = "cpu"
dtype = "float64"
[task]
id = "function2d"
function = "rosenbrock"
[[runs]]
name = "gd"
optimizer = { id = "sgd", lr = 1e-3 }
"""

LIVE = """
name = "live"
steps = 1000000
device = "cpu"
[task]
id = "quadratic"
dim = 4
[[runs]]
name = "sgd"
optimizer = { id = "sgd", lr = 0.01 }
"""


def write_session(path: Path, text: str) -> Path:
    spec = parse_toml(text)
    with SessionWriter(path, spec.to_toml()) as writer:
        Runner(spec).run(writer)
    return path


@pytest.fixture(scope="module")
def session_file(tmp_path_factory) -> Path:
    return write_session(tmp_path_factory.mktemp("replay") / "replay.h5", SESSION)


def open_copy(window: MainWindow, source: Path, tmp_path: Path) -> Path:
    """Open a copy of a session (forks write into the file they fork)."""
    path = tmp_path / source.name
    path.write_bytes(source.read_bytes())
    assert window.load_session(path)
    window._tick()
    return path


def show(window: MainWindow, key: str, qtbot):
    """The view of `key`, brought to the front of its tab group and redrawn."""
    window.docks[key].raise_()
    view = window.views[key]
    qtbot.waitUntil(view.isVisible, timeout=5000)
    view.refresh()
    return view


def test_scrubbing_sets_every_view_to_the_step(
    window: MainWindow, session_file, tmp_path, qtbot
) -> None:
    open_copy(window, session_file, tmp_path)
    timeline = window.timeline
    assert timeline.slider.isEnabled() and timeline.last_step == 29  # the last record
    timeline.set_step(12)
    assert timeline.limit == 12

    loss = show(window, "train/loss", qtbot)
    xs, ys = loss.curve_items("sgd", "train/loss")[0].getOriginalDataset()
    steps, values = window.model.runs["sgd"].series["train/loss"].view()
    np.testing.assert_array_equal(xs, np.arange(13))  # records at steps 0 … 12, none later
    np.testing.assert_array_equal(ys, values[steps <= 12])

    spectra = show(window, "spectra/weights", qtbot)
    name = spectra.series
    steps, values = window.model.runs["adam"].series[name].view()
    _, latest = spectra.latest_item("adam").getOriginalDataset()
    np.testing.assert_array_equal(latest, values[steps == 10][0])  # the record at or before 12
    assert spectra.image.image.shape[0] == int(np.sum(steps <= 12))  # heatmap columns up to it

    key = next(k for k, v in window.views.items() if isinstance(v, HistogramPlot))
    histogram = show(window, key, qtbot)
    steps, values = window.model.runs["adam"].series[histogram.series].view()  # Adam's steps
    _, fractions = histogram.latest_item("adam").getOriginalDataset()
    np.testing.assert_array_equal(fractions, values[steps <= 12][-1])

    assert window.run_table.item(0, 3).text() == "12"  # the table shows the replayed step
    timeline.release()  # Live: everything again
    xs, _ = (
        show(window, "train/loss", qtbot).curve_items("sgd", "train/loss")[0].getOriginalDataset()
    )
    assert xs[-1] == window.model.runs["sgd"].series["train/loss"].last()[0]


def test_paths_are_drawn_up_to_the_step(window: MainWindow, tmp_path: Path, qtbot) -> None:
    assert window.load_session(write_session(tmp_path / "paths.h5", PATHS))
    window._tick()
    window.timeline.set_step(7)
    view = show(window, "trajectory/params", qtbot)
    line, marker = view.path_items("gd")
    steps, points = window.model.runs["gd"].series["trajectory/params"].view()
    np.testing.assert_array_equal(line.getOriginalDataset()[0], points[steps <= 7, 0])
    np.testing.assert_array_equal(marker.getOriginalDataset()[1], points[steps == 7, 1])


def test_play_advances_the_step(window: MainWindow, session_file, tmp_path, qtbot) -> None:
    open_copy(window, session_file, tmp_path)
    timeline = window.timeline
    timeline.set_step(0)
    timeline.speed_box.setCurrentIndex(timeline.speed_box.findData(10))
    timeline.play_button.setChecked(True)
    qtbot.waitUntil(lambda: (timeline.limit or 0) >= 2, timeout=3000)
    assert timeline.play_button.isChecked()
    timeline.speed_box.setCurrentIndex(timeline.speed_box.findData(5000))
    qtbot.waitUntil(lambda: not timeline.play_button.isChecked(), timeout=3000)
    assert timeline.limit == 29  # stopped at the end
    xs, _ = (
        show(window, "train/loss", qtbot).curve_items("adam", "train/loss")[0].getOriginalDataset()
    )
    assert xs[-1] == 29


def test_fork_from_a_checkpoint_continues_bit_identically(
    window: MainWindow, session_file, tmp_path, qtbot
) -> None:
    path = open_copy(window, session_file, tmp_path)
    dialog = ForkDialog(window.model, live=False, steps=30, run="sgd")
    assert dialog.step_choices() == [30, 20, 10]
    dialog.set_step(10)
    request = dialog.request()
    assert request.name == "sgd-fork1" and request.until == 30
    assert request.optimizer == window.model.runs["sgd"].config["optimizer"]
    assert window.fork(request)
    qtbot.waitUntil(
        lambda: "sgd-fork1" in window.model.runs and not window.client.running, timeout=60000
    )
    assert window.model.runs["sgd-fork1"].status == "finished"
    fork = window.model.runs["sgd-fork1"]
    assert (fork.parent_run, fork.fork_step) == ("sgd", 10)
    steps, losses = fork.series["train/loss"].view()
    parent_steps, parent_losses = window.model.runs["sgd"].series["train/loss"].view()
    np.testing.assert_array_equal(steps, np.arange(10, 30))
    np.testing.assert_array_equal(losses, parent_losses[parent_steps >= 10])  # bit for bit
    with SessionReader(path) as reader:
        assert reader.run("sgd-fork1").fork_step == 10
        np.testing.assert_array_equal(reader.read("sgd-fork1", "train/loss")[1], losses)
    window.run_table.refresh()
    assert "forked from sgd at 10" in window.run_table.item(2, 7).text()


def test_fork_dialog_explains_a_run_without_checkpoints(window: MainWindow, tmp_path) -> None:
    source = write_session(tmp_path / "paths.h5", PATHS)
    window.load_session(source)
    window.model.runs["gd"].checkpoint_steps = []
    dialog = ForkDialog(window.model, live=False, steps=20, run="gd")
    assert dialog.step_choices() == []
    assert "checkpoint_every" in dialog.note.text()
    assert fork_name("gd", {"gd", "gd-fork1"}) == "gd-fork2"


def test_a_paused_run_forks_over_the_pipe(window: MainWindow, qtbot) -> None:
    assert window.load_spec_text(LIVE)
    assert window.start(start_paused=True)
    qtbot.waitUntil(lambda: "sgd" in window.model.runs, timeout=60000)
    window.step_once()
    qtbot.waitUntil(lambda: window.model.runs["sgd"].step == 1, timeout=10000)
    assert window.replayable()
    dialog = ForkDialog(window.model, live=True, steps=10**6, run="sgd")
    assert dialog.step_choices() == [None]
    form = dialog.editor.optimizer_form
    form.set_values({**form.values(), "lr": 0.05})
    request = dialog.request()
    assert request.optimizer["lr"] == 0.05
    assert window.fork(request)
    qtbot.waitUntil(lambda: "sgd-fork1" in window.model.runs, timeout=10000)
    fork = window.model.runs["sgd-fork1"]
    assert (fork.parent_run, fork.fork_step) == ("sgd", 1)
    window.step_once()
    qtbot.waitUntil(lambda: fork.step == 2, timeout=10000)
    assert fork.series["train/lr"].last() == (1, 0.05)


def test_exports_dashboard_and_run_spec(window: MainWindow, session_file, tmp_path) -> None:
    open_copy(window, session_file, tmp_path)
    picture = tmp_path / "dashboard.png"
    assert window.export_dashboard(picture)
    image = QImage(str(picture))
    ratio = window.plot_area.devicePixelRatio()
    assert (image.width(), image.height()) == (
        round(window.plot_area.width() * ratio),
        round(window.plot_area.height() * ratio),
    )
    target = tmp_path / "adam.toml"
    assert window.export_run_spec("adam", target)
    spec = parse_toml(target.read_text())
    assert [r.name for r in spec.runs] == ["adam"]
    assert spec.runs[0].optimizer.to_dict() == window.model.runs["adam"].config["optimizer"]
    assert spec.checkpoint_every == 10 and len(spec.diagnostics) == 2
    assert tomllib.loads(target.read_text())["runs"][0]["optimizer"]["id"] == "adam"
