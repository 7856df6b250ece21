"""The lab window: experiment panel, plot docks filled from the diagnostics, run table, events.

Training happens in the engine worker (see `engine_client.py`); this window only edits specs,
sends commands, and redraws what changed on one timer (≈30 Hz for plots, 4 Hz for the table).
Under the plots, the timeline replays the session: it sets every view to the state at one step.
The plots live in `plot_area.PlotArea`; what runs and what is shown (the worker, pausing,
following a session, forks) in `session_controller.SessionController`; this module is the
window's chrome: docks, actions, dialogs and messages.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from descentlab.app.compare_window import CompareWindow, compare_dialog
from descentlab.app.engine_client import EngineClient
from descentlab.app.panels.event_log import EventLog
from descentlab.app.panels.experiment import ExperimentPanel
from descentlab.app.panels.fork_dialog import ForkDialog, ForkRequest
from descentlab.app.panels.gallery import GalleryDialog, watch_verdicts
from descentlab.app.panels.live_hyper import LiveHyperDialog
from descentlab.app.panels.run_table import RunTable
from descentlab.app.panels.timeline import Timeline
from descentlab.app.playground import Playground
from descentlab.app.plot_area import PlotArea
from descentlab.app.plots.colors import run_colors
from descentlab.app.presentation import presentation, set_presentation
from descentlab.app.python_task_dialog import confirm_python_file, python_file
from descentlab.app.session_controller import SessionController
from descentlab.app.session_model import SessionModel
from descentlab.app.theme import apply_theme
from descentlab.engine.spec import SpecError, parse_toml, run_spec_text

SHORTCUTS = (
    ("Space", "start the experiment, or pause / resume it"),
    ("Right", "single step (while paused)"),
    ("Esc", "stop the experiment"),
    ("Ctrl+O", "open a spec (.toml) or a session (.h5)"),
    ("Ctrl+S", "save the experiment spec as TOML"),
    ("Ctrl+Shift+S", "save the session file under another name"),
    ("Ctrl+F", "fork a run (paused or finished session)"),
    ("Ctrl+E", "export the whole dashboard as one PNG"),
    ("Ctrl+T", "switch between light and dark theme"),
    ("F1", "this help"),
    ("F11", "presentation mode: large fonts, high contrast, full screen"),
)


class MainWindow(QMainWindow):
    """The Descent Lab main window.

    Args:
        sessions_dir: where the sessions of experiments started here are written.
        confirm_close: ask before closing while training (off in tests and screenshots).
        remember_layout: restore and save the arrangement of docks (off for screenshots, so
            that pictures show the default layout whatever the user arranged).
        theme: "light" or "dark"; None takes the one remembered from the last session.
    """

    def __init__(
        self,
        sessions_dir: Path | None = None,
        confirm_close: bool = True,
        remember_layout: bool = True,
        theme: str | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("Descent Lab")
        self.sessions_dir = sessions_dir or Path.cwd() / "sessions"
        self.confirm_close = confirm_close
        self.remember_layout = remember_layout
        self.settings = QSettings("descentlab", "Descent Lab")
        self.dark = (theme or self.settings.value("theme", "light")) == "dark"
        if theme is not None and remember_layout:
            self.settings.setValue("theme", theme)
        apply_theme(QApplication.instance(), self.dark)

        self.model = SessionModel(self)
        self.session = SessionController(self.model, self)
        self.session.message.connect(self._message)
        self.client: EngineClient = self.session.client
        # Any finished experiment with [[claims]] (a gallery preset, or a spec opened from a
        # file) gets its verdicts in the event log.
        self.verdicts = watch_verdicts(self)
        self.colors = run_colors(self.model)
        self.colors.set_theme("dark" if self.dark else "light")

        self.plot_area = PlotArea(self.model, self.colors)
        self.timeline = Timeline()
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.setSpacing(0)
        centre_layout.addWidget(self.plot_area, 1)
        centre_layout.addWidget(self.timeline)
        self.setCentralWidget(centre)

        self.experiment = ExperimentPanel()
        self.run_table = RunTable(self.model, self.colors)
        self.event_log = EventLog(self.model)
        self._dock("Experiment", self.experiment, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock("Runs", self.run_table, Qt.DockWidgetArea.BottomDockWidgetArea)
        events = self._dock("Events", self.event_log, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tabifyDockWidget(self.findChild(QDockWidget, "Runs"), events)
        self.findChild(QDockWidget, "Runs").raise_()

        self.device_label = QLabel()
        self.throughput_label = QLabel()
        self.statusBar().addPermanentWidget(self.throughput_label)
        self.statusBar().addPermanentWidget(self.device_label)
        self._build_actions()

        self.model.runAdded.connect(lambda _: self._sync_plots())
        self.model.cleared.connect(self.plot_area.clear)
        self.model.cleared.connect(self.timeline.reset)
        self.timeline.limitChanged.connect(self.set_step_limit)
        self.run_table.hyperEdited.connect(lambda r, n, v: self.send_hyperparameters(r, {n: v}))
        self.run_table.message.connect(self._message)
        self.run_table.hyperRequested.connect(self.edit_hyperparameters)
        self.client.progress.connect(self._progress)
        self.client.finished.connect(self._finished)
        self.client.failed.connect(self._failed)

        self.redraw = QTimer(self)
        self.redraw.setInterval(33)
        self.redraw.timeout.connect(self._redraw)
        self.redraw.start()
        self.slow = QTimer(self)
        self.slow.setInterval(250)
        self.slow.timeout.connect(self._tick)
        self.slow.start()

        self.resize(1500, 950)
        state = self.settings.value("window_state") if remember_layout else None
        if isinstance(state, QByteArray):
            self.restoreState(state)
        self._update_controls()

    @property
    def paused(self) -> bool:
        """Whether the running experiment is paused (the session controller's state)."""
        return self.session.paused

    @property
    def views(self) -> dict[str, QWidget]:
        """The plot views by group key (see `PlotArea`)."""
        return self.plot_area.views

    @property
    def docks(self) -> dict[str, QDockWidget]:
        return self.plot_area.docks

    # -- building -------------------------------------------------------------------------

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, shortcut: str, slot: object, tip: str) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setToolTip(f"{tip} ({shortcut})")
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.act_start = self._action(
            "Start", "Space", self.start_or_pause, "start, pause or resume"
        )
        self.act_step = self._action("Step", "Right", self.step_once, "single step while paused")
        self.act_stop = self._action("Stop", "Esc", self.stop, "stop the experiment")
        self.act_open = self._action(
            "Open…", "Ctrl+O", self.open_dialog, "open a spec or a session"
        )
        self.act_save_spec = self._action(
            "Save spec…", "Ctrl+S", self.save_spec_dialog, "save the experiment as TOML"
        )
        self.act_save_session = self._action(
            "Save session…", "Ctrl+Shift+S", self.save_session_dialog, "copy the session file"
        )
        self.act_fork = self._action(
            "Fork…", "Ctrl+F", self.fork_dialog, "fork a run of a paused or finished session"
        )
        self.act_export_png = self._action(
            "Export dashboard as PNG…",
            "Ctrl+E",
            self.export_dashboard_dialog,
            "all plots as one picture",
        )
        self.act_theme = self._action(
            "Light theme" if self.dark else "Dark theme",
            "Ctrl+T",
            self.toggle_theme,
            "light / dark theme",
        )
        self.act_help = self._action("Help", "F1", self.show_help, "keyboard shortcuts")
        self.act_presentation = self._action(
            "Presentation mode", "F11", self.toggle_presentation, "large fonts, full screen"
        )
        self.act_playground = self._action(
            "2-D playground…", "Ctrl+Shift+P", self.show_playground, "race optimizers in 2-D"
        )
        self.act_gallery = self._action(
            "Gallery…", "Ctrl+G", self.show_gallery, "presets that test claims from papers"
        )
        toolbar = self.addToolBar("Controls")
        toolbar.setObjectName("Controls")
        for action in (
            self.act_start,
            self.act_step,
            self.act_stop,
            None,
            self.act_open,
            self.act_save_spec,
            self.act_save_session,
            self.act_fork,
            None,
            self.act_theme,
            self.act_help,
        ):
            if action is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(action)
        view_menu = self.menuBar().addMenu("&View")
        for dock in self.findChildren(QDockWidget):
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        view_menu.addAction(self.act_presentation)
        view_menu.addAction(self.act_playground)
        file_menu = self.menuBar().addMenu("&File")
        for action in (self.act_open, self.act_save_spec, self.act_save_session):
            file_menu.addAction(action)
        self.act_compare = file_menu.addAction("Compare sessions…")
        self.act_compare.setToolTip("runs of several sessions, or a folder of them, side by side")
        self.act_compare.triggered.connect(self.compare_sessions_dialog)
        file_menu.addAction(self.act_gallery)
        file_menu.addSeparator()
        file_menu.addAction(self.act_export_png)
        self.run_spec_menu = file_menu.addMenu("Export run spec as TOML")
        self.run_spec_menu.setToolTipsVisible(True)
        self.run_spec_menu.aboutToShow.connect(self._fill_run_spec_menu)
        file_menu.addAction(self.act_fork)

    # -- experiment control ---------------------------------------------------------------

    def load_spec_text(self, text: str, source: str = "spec", base_dir: Path | None = None) -> bool:
        """Put a spec into the experiment panel; an invalid one is shown, not raised.
        `base_dir`: the spec file's folder, which a python task's `file` is relative to."""
        try:
            spec = parse_toml(text, source, base_dir)
        except SpecError as exc:
            self._message(str(exc), alarming=True)
            return False
        self.experiment.set_spec(spec.to_dict())
        return True

    def start_or_pause(self) -> None:
        if self.client.running:
            self.session.pause_or_resume()
        else:
            self.start()
        self._update_controls()

    def start(self, start_paused: bool = False) -> bool:
        """Validate the panel's spec and start a worker on it; False if the spec is invalid."""
        spec = self.experiment.validate()
        if spec is None:
            self._message(
                "the experiment has errors: they are marked in the Experiment panel", alarming=True
            )
            return False
        if not confirm_python_file(spec, self.settings, self):
            self._message(f"not started: {python_file(spec)} was not allowed to run")
            return False
        self.session.start(spec, self.sessions_dir, start_paused)
        self.setWindowTitle(f"Descent Lab — {spec.name}")
        self._update_controls()
        return True

    def step_once(self) -> None:
        self.session.step_once()

    def stop(self) -> None:
        self.session.stop()
        self._update_controls()

    def set_lr(self, run: str, value: float) -> None:
        """A live learning-rate edit from the run table, sent to the worker."""
        self.send_hyperparameters(run, {"lr": value})

    def edit_hyperparameters(self, run: str) -> None:
        """The live-edit dialog for one run; every changed value is sent as a command."""
        model = self.model.runs[run]
        optimizer = dict(model.config.get("optimizer", {}))
        optimizer.update(self.session.live.get(run, {}))
        dialog = LiveHyperDialog(run, optimizer.pop("id"), optimizer, self)
        if dialog.exec() != LiveHyperDialog.DialogCode.Accepted:
            return
        self.send_hyperparameters(run, dialog.changes())

    def send_hyperparameters(self, run: str, changes: dict[str, object]) -> None:
        self.session.send_hyperparameters(run, changes)

    # -- files ----------------------------------------------------------------------------

    def open_path(self, path: str | Path) -> bool:
        """Open a spec (.toml) in the panel or a session (.h5) in the plots."""
        path = Path(path)
        if path.suffix == ".h5":
            return self.load_session(path)
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self._message(f"{path}: cannot read the file ({exc})", alarming=True)
            return False
        return self.load_spec_text(text, str(path), path.parent)

    def load_session(self, path: Path) -> bool:
        """Show a session file; one still being written is followed live."""
        if not self.session.load_session(path):
            return False
        if self.model.spec_text:
            # a spec this lab cannot validate (a newer lab's): the plots still show
            with contextlib.suppress(SpecError):
                self.experiment.set_spec(parse_toml(self.model.spec_text).to_dict())
        self.setWindowTitle(f"Descent Lab — {path.name}")
        if self.session.follow is None:
            self.verdicts.report(str(path))  # the verdicts it recorded, if it checked claims
        self._sync_plots()
        return True

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open", "", "Specs and sessions (*.toml *.h5)")
        if path:
            self.open_path(path)

    def compare_sessions_dialog(self) -> CompareWindow | None:
        """File → Compare sessions…: pick session files or a folder; opens a comparison window."""
        return compare_dialog(self, "dark" if self.dark else "light")

    def save_spec_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save spec", "experiment.toml", "*.toml")
        if path:
            self.experiment.save_file(path)

    def save_session_dialog(self) -> None:
        follow = self.session.follow
        source = self.client.session_path or (str(follow) if follow else "")
        if not source:
            self._message("no session yet: start an experiment or open a session", alarming=True)
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save session", Path(source).name, "*.h5")
        if path:
            self.save_session(path)

    def save_session(self, target: str | Path) -> bool:
        """Copy the session file (it is on disk already); refused mid-write, allowed paused."""
        return self.session.save_session(target)

    # -- views ----------------------------------------------------------------------------

    def _sync_plots(self) -> None:
        state = self.settings.value("plot_state") if self.remember_layout else None
        self.plot_area.sync(state if isinstance(state, QByteArray) else None)

    def _redraw(self) -> None:
        self.plot_area.redraw()

    def _tick(self) -> None:
        self.run_table.refresh()
        self.session.catch_up()
        self.timeline.set_last_step(self.last_step())
        self.timeline.set_replayable(self.replayable())
        running = [r for r in self.model.runs.values() if r.status == "running"]
        rate = sum(r.steps_per_second for r in running)
        self.throughput_label.setText(f"{rate:.0f} steps/s" if running else "")
        device = next((r.config.get("device") for r in self.model.runs.values()), None)
        self.device_label.setText(f"device: {device}" if device else "")
        self._update_controls()

    # -- replay ---------------------------------------------------------------------------

    def last_step(self) -> int:
        """The last step any series of the session has a record at (the timeline's end)."""
        return self.session.last_step()

    def replayable(self) -> bool:
        """Whether nothing changes under the timeline: a closed session, or a paused one."""
        return self.session.replayable()

    def set_step_limit(self, step: int | None) -> None:
        """Every view (and the run table) shows the state at `step`; None: all the data."""
        self.plot_area.set_step_limit(step)
        self.run_table.set_step_limit(step)

    # -- fork -----------------------------------------------------------------------------

    def fork_dialog(self, run: str | None = None) -> None:
        """Ask for a fork of a run of the paused or closed session, and start it."""
        refusal = self.session.fork_refusal()
        if refusal:
            self._message(refusal, alarming=True)
            return
        steps = self.session.spec_steps()
        dialog = ForkDialog(self.model, self.client.running, steps, run, self)
        if dialog.exec() == ForkDialog.DialogCode.Accepted:
            self.fork(dialog.request())

    def fork(self, request: ForkRequest) -> bool:
        """Start a fork (see `SessionController.fork`); the new run appears as it trains."""
        if request.step is not None and self.model.spec_text:  # a new worker builds the task
            with contextlib.suppress(SpecError):  # an unreadable spec: the fork reports it
                spec = parse_toml(self.model.spec_text)
                if not confirm_python_file(spec, self.settings, self):
                    self._message(f"not forked: {python_file(spec)} was not allowed to run")
                    return False
        started = self.session.fork(request)
        self._update_controls()
        return started

    # -- export ---------------------------------------------------------------------------

    def export_dashboard(self, path: str | Path) -> bool:
        """Every visible plot dock, as arranged, in one PNG."""
        if not self.plot_area.grab().save(str(path)):
            self._message(f"{path}: the picture could not be written", alarming=True)
            return False
        self._message(f"dashboard saved to {path}")
        return True

    def export_dashboard_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export dashboard", "dashboard.png", "*.png")
        if path:
            self.export_dashboard(path)

    def run_spec_text(self, run: str) -> str:
        """A spec that re-runs `run` alone from step 0 (see `engine.spec.run_spec_text`).

        Raises SpecError when the session's spec cannot be read by this lab.
        """
        model = self.model.runs[run]
        return run_spec_text(self.model.spec_text, run, model.config, model.parent_run)

    def export_run_spec(self, run: str, path: str | Path) -> bool:
        try:
            text = self.run_spec_text(run)
        except SpecError as exc:
            self._message(str(exc), alarming=True)
            return False
        Path(path).write_text(text, "utf-8")
        self._message(f"spec of run {run} saved to {path}")
        return True

    def _fill_run_spec_menu(self) -> None:
        self.run_spec_menu.clear()
        for name, model in self.model.runs.items():
            action = self.run_spec_menu.addAction(name)
            if model.parent_run:
                action.setToolTip(
                    f"forked from {model.parent_run} at {model.fork_step}: the spec re-runs "
                    "its settings from step 0"
                )
            action.triggered.connect(lambda _=False, n=name: self._export_run_spec_dialog(n))
        if not self.model.runs:
            self.run_spec_menu.addAction("no runs yet").setEnabled(False)

    def _export_run_spec_dialog(self, run: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export run spec", f"{run}.toml", "*.toml")
        if path:
            self.export_run_spec(run, path)

    # -- worker signals -------------------------------------------------------------------

    def _progress(self, state: dict, step: int) -> None:
        self.statusBar().showMessage(f"step {step}", 2000)

    def _finished(self, path: str) -> None:
        self.session.ended()
        self._message(f"finished; session: {path}")
        self._update_controls()

    def _failed(self, message: str) -> None:
        self.session.ended()
        self._message(message.splitlines()[0], alarming=True)
        self._update_controls()

    # -- chrome ---------------------------------------------------------------------------

    def _message(self, text: str, alarming: bool = False) -> None:
        self.statusBar().showMessage(text.splitlines()[0], 10000)
        self.event_log.add_line(text, alarming)

    def _update_controls(self) -> None:
        running = self.client.running
        self.act_start.setText(
            "Resume" if running and self.paused else "Pause" if running else "Start"
        )
        self.act_step.setEnabled(running and self.paused)
        self.act_stop.setEnabled(running)
        self.act_save_session.setEnabled(bool(self.client.session_path))
        self.act_fork.setEnabled(
            bool(self.model.runs) and self.session.follow is None and (not running or self.paused)
        )

    def toggle_theme(self) -> None:
        self.dark = not self.dark
        self.settings.setValue("theme", "dark" if self.dark else "light")
        apply_theme(QApplication.instance(), self.dark, root=self)
        self.colors.set_theme("dark" if self.dark else "light")
        self.act_theme.setText("Light theme" if self.dark else "Dark theme")

    def toggle_presentation(self) -> None:
        """Presentation mode on or off (F11): see `app/presentation.py`."""
        set_presentation(self, presentation(self) is None)

    def show_playground(self) -> Playground:
        """The 2-D playground in its own window, in this window's plot theme."""
        self.playground = Playground(self.colors.theme)
        self.playground.show()
        return self.playground

    def show_gallery(self) -> None:
        """The gallery of claims; Open loads a preset into the experiment panel."""
        GalleryDialog(self).exec()

    def show_help(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in SHORTCUTS)
        QMessageBox.information(
            self, "Descent Lab — keyboard shortcuts", f"<table cellpadding=4>{rows}</table>"
        )

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.client.running and self.confirm_close:
            answer = QMessageBox.question(
                self,
                "Training is running",
                "Stop the experiment and quit? Everything recorded so far is already in\n"
                f"{self.client.session_path}",
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.client.stop()
        if self.remember_layout:
            self.settings.setValue("window_state", self.saveState())
            if self.docks:
                self.settings.setValue("plot_state", self.plot_area.saveState())
        event.accept()


pg.setConfigOptions(antialias=False)
