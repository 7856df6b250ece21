"""The lab window against a real engine worker, offscreen."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings

from descentlab.app.main_window import MainWindow
from descentlab.app.panels.live_hyper import LiveHyperDialog
from descentlab.engine.headless import default_spec_text
from descentlab.engine.runner import Runner
from descentlab.engine.session.reader import SessionReader
from descentlab.engine.session.writer import SessionWriter
from descentlab.engine.sink import RunHeader
from descentlab.engine.spec import parse_toml

LONG = """
name = "long"
steps = 1000000
device = "cpu"
[task]
id = "quadratic"
dim = 8
[[runs]]
name = "sgd"
optimizer = { id = "sgd", lr = 0.001 }
[[runs]]
name = "adam"
optimizer = { id = "adam", lr = 0.001 }
[[diagnostics]]
id = "hessian"
every = 50
top_k = 2
"""


def _start(window: MainWindow, qtbot, spec: str = LONG) -> None:
    assert window.load_spec_text(spec)
    assert window.start()
    qtbot.waitUntil(
        lambda: len(window.model.runs) == 2 and all(r.step > 5 for r in window.model.runs.values()),
        timeout=60000,
    )


def test_window_builds_from_the_default_spec(window: MainWindow) -> None:
    assert window.load_spec_text(default_spec_text())
    spec = window.experiment.validate()
    assert spec is not None
    assert [r.name for r in spec.runs] == ["adam", "sgd-momentum", "muon"]
    assert spec.task.id == "digits-mlp"


def _settled_step(window: MainWindow, qtbot, tries: int = 20) -> int:
    """The run's step once two looks half a second apart agree (a loaded machine delivers the
    last records sent before a pause late)."""
    step = window.model.runs["sgd"].step
    for _ in range(tries):
        qtbot.wait(500)
        step, previous = window.model.runs["sgd"].step, step
        if step == previous:
            return step
    raise AssertionError(f"the run kept moving for {tries * 0.5:.0f} s after the pause")


def test_start_pause_step_stop_against_a_real_worker(window: MainWindow, qtbot) -> None:
    _start(window, qtbot)
    window.start_or_pause()  # pause
    assert window.paused
    before = _settled_step(window, qtbot)  # records sent before the pause may still arrive
    qtbot.wait(500)
    assert window.model.runs["sgd"].step == before  # paused: nothing moves
    window.step_once()
    qtbot.waitUntil(lambda: window.model.runs["sgd"].step == before + 1, timeout=10000)
    window.stop()
    qtbot.waitUntil(
        lambda: all(r.status == "stopped" for r in window.model.runs.values()), timeout=10000
    )
    with SessionReader(window.client.session_path) as reader:
        assert {r.status for r in reader.runs()} == {"stopped"}
        kinds = {e.kind for e in reader.events("sgd")}
        assert {"pause", "stop", "end"} <= kinds


def test_records_reach_the_plots(window: MainWindow, qtbot) -> None:
    _start(window, qtbot)
    qtbot.waitUntil(lambda: "train/loss" in window.views, timeout=10000)
    qtbot.waitUntil(
        lambda: window.model.runs["sgd"].series["hessian/top_eigenvalues"].n > 0, timeout=30000
    )
    view = window.views["train/loss"]
    qtbot.waitUntil(view.isVisible, timeout=10000)  # a dock shows after its layout settles
    view.refresh()
    steps, values = window.model.runs["sgd"].series["train/loss"].view()
    xs, ys = view.curve_items("sgd", "train/loss")[0].getOriginalDataset()
    assert len(xs) > 0 and len(xs) <= len(steps)
    np.testing.assert_array_equal(ys, values[: len(ys)])


def test_live_lr_change_reaches_the_engine_and_the_session(window: MainWindow, qtbot) -> None:
    _start(window, qtbot)
    window.set_lr("sgd", 0.0005)
    qtbot.waitUntil(
        lambda: any(k == "hyper" for _, k, _ in window.model.runs["sgd"].events), timeout=10000
    )
    qtbot.waitUntil(
        lambda: window.model.runs["sgd"].series["train/lr"].last()[1] == 0.0005, timeout=10000
    )
    window.start_or_pause()
    qtbot.wait(300)
    with SessionReader(window.client.session_path) as reader:
        events = [e for e in reader.events("sgd") if e.kind == "hyper"]
        assert events and events[0].detail == "lr: 0.001 -> 0.0005"
        steps, lrs = reader.read("sgd", "train/lr")
        assert set(lrs[steps < events[0].step]) == {0.001}
        assert set(lrs[steps >= events[0].step]) == {0.0005}


def test_other_hyperparameters_change_live(window: MainWindow, qtbot) -> None:
    _start(window, qtbot)
    dialog = LiveHyperDialog("sgd", "sgd", window.model.runs["sgd"].config["optimizer"])
    dialog.form.set_values({**dialog.current, "momentum": 0.5})
    assert dialog.changes() == {"momentum": 0.5}
    window.send_hyperparameters("sgd", dialog.changes())
    qtbot.waitUntil(
        lambda: (
            ("hyper", "momentum: 0.0 -> 0.5")
            in [(k, d) for _, k, d in window.model.runs["sgd"].events]
        ),
        timeout=10000,
    )


def test_an_invalid_spec_shows_its_message(window: MainWindow) -> None:
    assert not window.load_spec_text('steps = -1\n[task]\nid = "quadratic"\n')
    assert "steps: -1 is out of range" in window.event_log.item(window.event_log.count() - 1).text()
    assert not window.client.running


def test_killing_the_worker_marks_runs_failed_and_the_window_answers(
    window: MainWindow, qtbot
) -> None:
    _start(window, qtbot)
    qtbot.wait(1200)  # a killed writer loses at most the last flush interval (0.5 s)
    os.kill(window.client.process.pid, signal.SIGKILL)
    qtbot.waitUntil(
        lambda: all(r.status == "failed" for r in window.model.runs.values()), timeout=10000
    )
    assert "ended unexpectedly" in window.model.runs["sgd"].error
    assert not window.client.running
    with SessionReader(window.client.session_path) as reader:  # still readable
        assert len(reader.read("sgd", "train/loss")[0]) > 0
    assert window.load_spec_text(default_spec_text())  # and the window still works


def test_opening_a_session_shows_its_series(window: MainWindow, tmp_path: Path) -> None:
    spec = parse_toml(LONG.replace("steps = 1000000", "steps = 120"))
    path = tmp_path / "done.h5"
    with SessionWriter(path, spec.to_toml()) as writer:
        Runner(spec).run(writer)
    assert window.open_path(path)
    assert set(window.model.runs) == {"sgd", "adam"}
    assert window.model.runs["adam"].series["train/loss"].n == 120
    assert window.model.runs["adam"].status == "finished"
    assert "train/loss" in window.views and "hessian/top_eigenvalues" in window.views


def test_a_broken_session_file_is_a_message_not_a_crash(window: MainWindow, tmp_path: Path) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    assert not window.open_path(bad)
    assert "not an HDF5 file" in window.event_log.item(window.event_log.count() - 1).text()


def test_a_live_file_is_followed(window: MainWindow, qtbot, tmp_path: Path) -> None:
    spec = parse_toml(LONG.replace("steps = 1000000", "steps = 200"))
    path = tmp_path / "live.h5"
    writer = SessionWriter(path, spec.to_toml(), flush_interval=0.0)
    runner = Runner(spec)
    for run in runner.runs.values():
        writer.add_run(RunHeader(run.name, {}, run.outputs))
    writer.start_live()
    for step in range(10):
        writer.append("sgd", "train/loss", step, float(step))
    writer.flush(force=True)
    assert window.open_path(path)
    assert window.model.runs["sgd"].series["train/loss"].n == 10
    for step in range(10, 30):
        writer.append("sgd", "train/loss", step, float(step))
    writer.flush(force=True)
    qtbot.waitUntil(lambda: window.model.runs["sgd"].series["train/loss"].n == 30, timeout=5000)
    writer.end_run("sgd", "finished", 30)
    writer.end_run("adam", "finished", 30)
    writer.close()
    qtbot.waitUntil(lambda: window.session.follow is None, timeout=5000)
    assert window.model.runs["sgd"].status == "finished"


def test_run_table_lists_what_differs(qtbot) -> None:
    from descentlab.app.panels.run_table import RunTable
    from descentlab.app.plots.colors import run_colors
    from descentlab.app.session_model import SessionModel
    from descentlab.engine.plugin import Output

    model = SessionModel()
    table = RunTable(model, run_colors(model))
    qtbot.addWidget(table)
    loss = [Output("train/loss", "scalar")]
    model.add_run(RunHeader("a", {"optimizer": {"id": "sgd", "lr": 0.1, "momentum": 0.9}}, loss))
    model.add_run(RunHeader("b", {"optimizer": {"id": "sgd", "lr": 0.1, "momentum": 0.0}}, loss))
    model.extend("a", "train/loss", np.arange(3), np.array([3.0, 2.0, 1.5]))
    table.refresh()
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers[-1] == "differs in"
    assert [table.item(r, headers.index("differs in")).text() for r in range(2)] == [
        "momentum=0.9",
        "momentum=0",
    ]
    assert table.item(0, headers.index("step")).text() == "3"
    assert table.item(0, headers.index("loss")).text() == "1.5"


def test_closing_while_training_asks_first(window: MainWindow, qtbot, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    _start(window, qtbot)
    window.confirm_close = True
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: answers.pop(0))
    window.close()
    assert window.isVisible() and window.client.running  # "No": nothing stops
    process = window.client.process
    window.close()
    assert not window.isVisible()
    assert not process.is_alive()  # "Yes": the engine is gone with the window
    with SessionReader(window.client.session_path) as reader:
        assert {r.status for r in reader.runs()} == {"stopped"}


def test_the_arrangement_of_docks_is_remembered(event_loop, qtbot, tmp_path: Path) -> None:
    from PySide6.QtWidgets import QDockWidget

    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path))
    windows = []

    def experiment_dock(remember: bool) -> QDockWidget:
        win = MainWindow(sessions_dir=tmp_path, confirm_close=False, remember_layout=remember)
        qtbot.addWidget(win)
        win.show()
        windows.append(win)
        return win.findChild(QDockWidget, "Experiment")

    experiment_dock(True).hide()
    windows[-1].close()
    assert experiment_dock(True).isHidden()  # restored as the user left it
    assert not experiment_dock(False).isHidden()  # the default layout shows it
    for win in windows:
        win.close()
