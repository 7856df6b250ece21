"""The lab window's session controller: the experiment it runs or the session it shows.

It owns what is not a widget: the engine client and the session model, whether the worker is
paused, the session file shown (started here or opened), a session followed while another
program writes it, and the hyperparameters changed live. The window turns user actions into
calls here and shows what it reports through `message`.
"""

from __future__ import annotations

import contextlib
import shutil
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from descentlab.app.engine_client import EngineClient
from descentlab.app.panels.fork_dialog import ForkRequest
from descentlab.app.session_model import SessionModel
from descentlab.engine.commands import Fork, Pause, Resume, SetHyper, StepN
from descentlab.engine.session.reader import SessionError, SessionReader
from descentlab.engine.spec import ExperimentSpec, SpecError, parse_toml

FOLLOW_QUIET_TICKS = 40
"""Ticks (of 250 ms) without a record before a followed session is said to have stalled."""


class SessionController(QObject):
    """Start, pause, step, stop, fork and follow the session shown in one window.

    Signals:
        message(str, bool): a line for the status bar and event log; True when alarming.
    """

    message = Signal(str, bool)

    def __init__(self, model: SessionModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.client = EngineClient(model, self)
        self.paused = False
        self.session_path: Path | None = None
        """The session shown: started here, opened, or forked into."""
        self.follow: Path | None = None
        """A session another program is writing, read as it grows; None when not following."""
        self._follow_idle = 0
        self.live: dict[str, dict[str, object]] = {}
        """Values changed while the run trained, per run (the live-edit dialog starts there)."""

    @property
    def running(self) -> bool:
        return self.client.running

    # -- the experiment -------------------------------------------------------------------

    def start(self, spec: ExperimentSpec, sessions_dir: Path, start_paused: bool = False) -> Path:
        """Start a worker on a validated spec; its session file (returned) in `sessions_dir`."""
        self.follow = None
        sessions_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        path = sessions_dir / f"{spec.name}-{stamp}.h5"
        self.live.clear()
        self.client.start(spec.to_toml(), str(path), start_paused=start_paused)
        self.session_path = path
        self.paused = start_paused
        self.message.emit(f"started {spec.name}; session: {path}", False)
        return path

    def pause_or_resume(self) -> None:
        if self.client.running:
            self.client.send(Resume() if self.paused else Pause())
            self.paused = not self.paused

    def step_once(self) -> None:
        if self.client.running and self.paused:
            self.client.send(StepN(1))

    def stop(self) -> None:
        if self.client.running:
            self.client.stop()
            self.paused = False

    def send_hyperparameters(self, run: str, changes: dict[str, object]) -> None:
        """Set hyperparameters of a live run; they are remembered as the run's live values."""
        for name, value in changes.items():
            self.client.send(SetHyper(run, name, value))
            self.live.setdefault(run, {})[name] = value
        if changes:
            text = ", ".join(f"{k}={v}" for k, v in changes.items())
            self.message.emit(f"{run}: sent {text}", False)

    def ended(self) -> None:
        """The worker finished or failed: nothing is paused any more."""
        self.paused = False

    # -- sessions -------------------------------------------------------------------------

    def load_session(self, path: Path) -> bool:
        """Show a session file in the model; one still being written is followed live."""
        if self.client.running:
            self.message.emit("stop the running experiment before opening a session", True)
            return False
        try:
            with SessionReader(path) as reader:
                self.model.load(reader)
        except SessionError as exc:
            self.message.emit(str(exc), True)
            return False
        live = any(r.status == "running" for r in self.model.runs.values())
        self.follow = path if live else None
        self.session_path = path
        self._follow_idle = 0
        self.message.emit(f"opened {path}" + (" (following it live)" if live else ""), False)
        return True

    def catch_up(self) -> None:
        """Read what a followed session's writer added since the last tick."""
        if self.follow is None:
            return
        try:
            with SessionReader(self.follow) as reader:
                grew = self.model.catch_up(reader)
        except SessionError as exc:
            self.message.emit(str(exc), True)
            self.follow = None
            return
        self._follow_idle = 0 if grew else self._follow_idle + 1
        if not any(r.status == "running" for r in self.model.runs.values()):
            self.message.emit(f"{self.follow.name}: finished", False)
            self.follow = None
        elif self._follow_idle == FOLLOW_QUIET_TICKS:  # ten seconds without a record
            self.message.emit(
                f"{self.follow.name} has not grown for 10 s: its writer may have "
                "stopped; still watching",
                False,
            )

    def save_session(self, target: str | Path) -> bool:
        """Copy the session file (it is on disk already); refused mid-write, allowed paused."""
        source = self.client.session_path
        if not source:
            self.message.emit("no session to save yet", True)
            return False
        if self.client.running and not self.paused:
            self.message.emit(
                "pause or stop the experiment before saving a copy of its session", True
            )
            return False
        shutil.copy2(source, target)
        self.message.emit(f"session saved to {target}", False)
        return True

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
        if self.follow is not None:
            return False
        return not self.client.running or self.paused

    # -- fork -----------------------------------------------------------------------------

    def fork_refusal(self) -> str:
        """Why no run can be forked now; "" when one can."""
        if not self.model.runs:
            return "nothing to fork: start an experiment or open a session"
        if self.client.running and not self.paused:
            return "pause the experiment to fork one of its runs"
        if self.follow is not None:
            return "this session is being written by another program: fork it once it has ended"
        return ""

    def fork(self, request: ForkRequest) -> bool:
        """Start a fork: a `Fork` command to the paused worker, or a fork worker on the closed
        session's file from a checkpoint. The new run appears in the model as it trains."""
        if request.step is None:
            if not (self.client.running and self.paused):
                self.message.emit("a fork of the current state needs a paused experiment", True)
                return False
            self.client.send(
                Fork(request.parent, request.name, request.optimizer, request.schedule)
            )
            self.message.emit(
                f"forked {request.parent} as {request.name}; resume to train it", False
            )
            return True
        if self.client.running or self.session_path is None:
            self.message.emit("a fork from a checkpoint needs a closed session", True)
            return False
        self.client.start_fork(
            str(self.session_path),
            request.parent,
            request.step,
            request.name,
            request.optimizer,
            request.schedule,
            request.until,
        )
        self.paused = False
        self.message.emit(
            f"forking {request.parent} at step {request.step} as {request.name} "
            f"into {self.session_path}",
            False,
        )
        return True

    def spec_steps(self) -> int:
        """The steps of the session's spec (a fork's default end), or one past its last record."""
        with contextlib.suppress(SpecError):
            return parse_toml(self.model.spec_text).steps
        return self.last_step() + 1
