"""The lab window: experiment panel, plot docks filled from the diagnostics, run table, events.

Training happens in the engine worker (see `engine_client.py`); this window only edits specs,
sends commands, and redraws what changed on one timer (≈30 Hz for plots, 4 Hz for the table).
Under the plots, the timeline replays the session: it sets every view to the state at one step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from datetime import datetime
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
from descentlab.app.plots.colors import run_colors
from descentlab.app.plots.factory import make_view
from descentlab.app.plots.layout import plot_groups
from descentlab.app.plots.tab_tooltips import DockTabTooltips
from descentlab.app.presentation import presentation, set_presentation
from descentlab.app.session_model import SessionModel
from descentlab.app.theme import apply_theme
from descentlab.engine.claims import CHECKS as CLAIM_CHECKS
from descentlab.engine.commands import Fork, Pause, Resume, SetHyper, StepN
from descentlab.engine.session.reader import SessionError, SessionReader
from descentlab.engine.spec import PluginRef, RunSpec, SpecError, parse_toml

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
        self.client = EngineClient(self.model, self)
        # Any finished experiment with [[claims]] (a gallery preset, or a spec opened from a
        # file) gets its verdicts in the event log.
        self.verdicts = watch_verdicts(self)
        self.colors = run_colors(self.model)
        self.colors.set_theme("dark" if self.dark else "light")
        self.paused = False
        self.views: dict[str, QWidget] = {}
        self.docks: dict[str, QDockWidget] = {}
        self._follow: Path | None = None
        self._follow_idle = 0
        self._live: dict[str, dict[str, object]] = {}  # values changed live, per run
        self._session_path: Path | None = None  # the session shown (started here or opened)

        self.plot_area = QMainWindow()
        self.tab_tooltips = DockTabTooltips(self.plot_area)  # full plot titles over short tabs
        self.plot_area.setDockOptions(
            QMainWindow.DockOption.AllowNestedDocks
            | QMainWindow.DockOption.AllowTabbedDocks
            | QMainWindow.DockOption.AnimatedDocks
        )
        self.placeholder = QLabel(
            "Press Space (or Start) to run the experiment;\n"
            "plots appear here as the diagnostics report."
        )
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.plot_area.setCentralWidget(self.placeholder)
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
        self.model.cleared.connect(self._clear_plots)
        self.model.cleared.connect(self.timeline.reset)
        self.timeline.limitChanged.connect(self.set_step_limit)
        self.run_table.lrEdited.connect(self.set_lr)
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

    def load_spec_text(self, text: str, source: str = "spec") -> bool:
        """Put a spec into the experiment panel; an invalid one is shown, not raised."""
        try:
            spec = parse_toml(text, source)
        except SpecError as exc:
            self._message(str(exc), alarming=True)
            return False
        self.experiment.set_spec(spec.to_dict())
        return True

    def start_or_pause(self) -> None:
        if self.client.running:
            self.client.send(Resume() if self.paused else Pause())
            self.paused = not self.paused
        else:
            self.start()
        self._update_controls()

    def start(self, start_paused: bool = False) -> bool:
        """Validate the panel's spec and start a worker on it; False if the spec is invalid."""
        if self._follow is not None:
            self._follow = None
        spec = self.experiment.validate()
        if spec is None:
            self._message(
                "the experiment has errors: they are marked in the Experiment panel", alarming=True
            )
            return False
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        path = self.sessions_dir / f"{spec.name}-{stamp}.h5"
        self._live.clear()
        self.client.start(spec.to_toml(), str(path), start_paused=start_paused)
        self._session_path = path
        self.paused = start_paused
        self.setWindowTitle(f"Descent Lab — {spec.name}")
        self._message(f"started {spec.name}; session: {path}")
        self._update_controls()
        return True

    def step_once(self) -> None:
        if self.client.running and self.paused:
            self.client.send(StepN(1))

    def stop(self) -> None:
        if self.client.running:
            self.client.stop()
            self.paused = False
        self._update_controls()

    def set_lr(self, run: str, value: float) -> None:
        """A live learning-rate edit from the run table, sent to the worker."""
        self.send_hyperparameters(run, {"lr": value})

    def edit_hyperparameters(self, run: str) -> None:
        """The live-edit dialog for one run; every changed value is sent as a command."""
        model = self.model.runs[run]
        optimizer = dict(model.config.get("optimizer", {}))
        optimizer.update(self._live.get(run, {}))
        dialog = LiveHyperDialog(run, optimizer.pop("id"), optimizer, self)
        if dialog.exec() != LiveHyperDialog.DialogCode.Accepted:
            return
        self.send_hyperparameters(run, dialog.changes())

    def send_hyperparameters(self, run: str, changes: dict[str, object]) -> None:
        for name, value in changes.items():
            self.client.send(SetHyper(run, name, value))
            self._live.setdefault(run, {})[name] = value
        if changes:
            self._message(f"{run}: sent " + ", ".join(f"{k}={v}" for k, v in changes.items()))

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
        return self.load_spec_text(text, str(path))

    def load_session(self, path: Path) -> bool:
        """Show a session file; one still being written is followed live."""
        if self.client.running:
            self._message("stop the running experiment before opening a session", alarming=True)
            return False
        try:
            with SessionReader(path) as reader:
                self.model.load(reader)
        except SessionError as exc:
            self._message(str(exc), alarming=True)
            return False
        if self.model.spec_text:
            # a spec this lab cannot validate (a newer lab's): the plots still show
            with contextlib.suppress(SpecError):
                self.experiment.set_spec(parse_toml(self.model.spec_text).to_dict())
        live = any(r.status == "running" for r in self.model.runs.values())
        self._follow = path if live else None
        self._session_path = path
        self._follow_idle = 0
        self.setWindowTitle(f"Descent Lab — {path.name}")
        self._message(f"opened {path}" + (" (following it live)" if live else ""))
        if not live:
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
        source = self.client.session_path or (str(self._follow) if self._follow else "")
        if not source:
            self._message("no session yet: start an experiment or open a session", alarming=True)
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save session", Path(source).name, "*.h5")
        if path:
            self.save_session(path)

    def save_session(self, target: str | Path) -> bool:
        """Copy the session file (it is on disk already); refused mid-write, allowed paused."""
        source = self.client.session_path
        if not source:
            self._message("no session to save yet", alarming=True)
            return False
        if self.client.running and not self.paused:
            self._message(
                "pause or stop the experiment before saving a copy of its session", alarming=True
            )
            return False
        shutil.copy2(source, target)
        self._message(f"session saved to {target}")
        return True

    # -- views ----------------------------------------------------------------------------

    def _sync_plots(self) -> None:
        outputs = {o.name: o for run in self.model.runs.values() for o in run.outputs.values()}
        for group in plot_groups(list(outputs.values())):
            if group.key in self.docks:
                continue
            view = make_view(group, self.model, self.colors)
            if self.timeline.limit is not None:
                view.set_step_limit(self.timeline.limit)
            dock = QDockWidget(group.tab_title, self.plot_area)
            dock.setToolTip(group.title)  # the plot's own title says it in full too
            dock.setObjectName(f"plot:{group.key}")
            dock.setWidget(view)
            self._place(dock)
            self.views[group.key] = view
            self.docks[group.key] = dock
        self.tab_tooltips.install()
        if self.docks:
            self.placeholder.hide()
            state = self.settings.value("plot_state") if self.remember_layout else None
            if isinstance(state, QByteArray):
                self.plot_area.restoreState(state)

    def _place(self, dock: QDockWidget) -> None:
        """A 2×2 grid of plots (the first four, in order of importance); later ones become tabs
        of the four slots in turn, so the window stays readable however many diagnostics run."""
        slots = list(self.docks.values())
        n = len(slots)
        self.plot_area.addDockWidget(Qt.DockWidgetArea.TopDockWidgetArea, dock)
        if n == 1:
            self.plot_area.splitDockWidget(slots[0], dock, Qt.Orientation.Horizontal)
        elif n in (2, 3):
            self.plot_area.splitDockWidget(slots[n - 2], dock, Qt.Orientation.Vertical)
        elif n >= 4:
            self.plot_area.tabifyDockWidget(slots[(n - 4) % 4], dock)
            slots[(n - 4) % 4].raise_()

    def _clear_plots(self) -> None:
        for dock in self.docks.values():
            self.plot_area.removeDockWidget(dock)
            dock.deleteLater()
        self.docks.clear()
        self.views.clear()
        self.placeholder.show()

    def _redraw(self) -> None:
        for view in self.views.values():
            if view.isVisible():
                view.refresh()

    def _tick(self) -> None:
        self.run_table.refresh()
        if self._follow is not None:
            self._catch_up()
        self.timeline.set_last_step(self.last_step())
        self.timeline.set_replayable(self.replayable())
        running = [r for r in self.model.runs.values() if r.status == "running"]
        rate = sum(r.steps_per_second for r in running)
        self.throughput_label.setText(f"{rate:.0f} steps/s" if running else "")
        device = next((r.config.get("device") for r in self.model.runs.values()), None)
        self.device_label.setText(f"device: {device}" if device else "")
        self._update_controls()

    def _catch_up(self) -> None:
        assert self._follow is not None
        try:
            with SessionReader(self._follow) as reader:
                grew = self.model.catch_up(reader)
        except SessionError as exc:
            self._message(str(exc), alarming=True)
            self._follow = None
            return
        self._follow_idle = 0 if grew else self._follow_idle + 1
        if not any(r.status == "running" for r in self.model.runs.values()):
            self._message(f"{self._follow.name}: finished")
            self._follow = None
        elif self._follow_idle == 40:  # ten seconds without a record
            self._message(
                f"{self._follow.name} has not grown for 10 s: its writer may have "
                "stopped; still watching"
            )

    # -- replay ---------------------------------------------------------------------------

    def last_step(self) -> int:
        """The last step any series of the session has a record at (the timeline's end)."""
        last = 0
        for run in self.model.runs.values():
            for buffer in run.series.values():
                if buffer.n:
                    last = max(last, int(buffer.steps[buffer.n - 1]))
        return last

    def replayable(self) -> bool:
        """Whether nothing changes under the timeline: a closed session, or a paused one."""
        if self._follow is not None:
            return False
        return not self.client.running or self.paused

    def set_step_limit(self, step: int | None) -> None:
        """Every view (and the run table) shows the state at `step`; None: all the data."""
        for view in self.views.values():
            view.set_step_limit(step)
        self.run_table.set_step_limit(step)

    # -- fork -----------------------------------------------------------------------------

    def fork_dialog(self, run: str | None = None) -> None:
        """Ask for a fork of a run of the paused or closed session, and start it."""
        if not self.model.runs:
            self._message("nothing to fork: start an experiment or open a session", alarming=True)
            return
        if self.client.running and not self.paused:
            self._message("pause the experiment to fork one of its runs", alarming=True)
            return
        if self._follow is not None:
            self._message(
                "this session is being written by another program: fork it once it has ended",
                alarming=True,
            )
            return
        dialog = ForkDialog(self.model, self.client.running, self._spec_steps(), run, self)
        if dialog.exec() == ForkDialog.DialogCode.Accepted:
            self.fork(dialog.request())

    def fork(self, request: ForkRequest) -> bool:
        """Start a fork: a `Fork` command to the paused worker, or a fork worker on the closed
        session's file from a checkpoint. The new run appears in the window as it trains."""
        if request.step is None:
            if not (self.client.running and self.paused):
                self._message("a fork of the current state needs a paused experiment", True)
                return False
            self.client.send(
                Fork(request.parent, request.name, request.optimizer, request.schedule)
            )
            self._message(f"forked {request.parent} as {request.name}; resume to train it")
            return True
        if self.client.running or self._session_path is None:
            self._message("a fork from a checkpoint needs a closed session", alarming=True)
            return False
        self.client.start_fork(
            str(self._session_path),
            request.parent,
            request.step,
            request.name,
            request.optimizer,
            request.schedule,
            request.until,
        )
        self.paused = False
        self._message(
            f"forking {request.parent} at step {request.step} as {request.name} "
            f"into {self._session_path}"
        )
        self._update_controls()
        return True

    def _spec_steps(self) -> int:
        with contextlib.suppress(SpecError):
            return parse_toml(self.model.spec_text).steps
        return self.last_step() + 1

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
        """A spec that re-runs `run` alone from step 0: the session's spec with that run only,
        its optimizer and schedule from the run's config (a fork's own settings included), the
        diagnostics that applied to it and the claims about it alone.

        Raises SpecError when the session's spec cannot be read by this lab.
        """
        model = self.model.runs[run]
        spec = parse_toml(self.model.spec_text, "the session's spec")
        owner = model.parent_run or run  # diagnostics limited to a parent apply to its forks
        diagnostics = [
            dataclasses.replace(d, runs=None)
            for d in spec.diagnostics
            if d.runs is None or owner in d.runs or run in d.runs
        ]
        claims = [
            c
            for c in spec.claims
            if all(c.params.get(k) == run for k in CLAIM_CHECKS[c.id].run_params)
        ]
        settings = {k: dict(model.config[k]) for k in ("optimizer", "schedule")}
        optimizer, schedule = (PluginRef(str(t.pop("id")), t) for t in settings.values())
        alone = dataclasses.replace(
            spec,
            runs=[RunSpec(run, optimizer, schedule)],
            diagnostics=diagnostics,
            claims=claims,
        )
        source = f"the spec of run {run}"
        return parse_toml(alone.to_toml(), source).to_toml()  # validated as it will be read

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
        self.paused = False
        self._message(f"finished; session: {path}")
        self._update_controls()

    def _failed(self, message: str) -> None:
        self.paused = False
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
            bool(self.model.runs) and self._follow is None and (not running or self.paused)
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
