"""The app's side of the engine worker: start it, send commands, feed its records to the model.

Training runs in a spawned process (`descentlab.engine.worker.worker_main`, or `fork_main` for a
fork from a checkpoint of a closed session); this object reads
its pipe through the qasync event loop (`add_reader`, a socket notifier under the hood), so
records arrive between two frames without a thread and without blocking the window. Records are
replayed into the `SessionModel` through the same Sink calls the Runner made.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from descentlab.app.session_model import SessionModel
from descentlab.engine.commands import Command, Stop
from descentlab.engine.fork import prepare_fork
from descentlab.engine.worker import fork_main, worker_main


class EngineClient(QObject):
    """One worker process at a time, and the bridge from its pipe to a SessionModel.

    Signals:
        progress(dict, int): {run: (steps_done, loss, steps_per_second, status)}, global step.
        finished(str): the session path, after the worker ended normally.
        failed(str): why the worker could not run or died; running runs are marked failed.
    """

    progress = Signal(dict, int)
    finished = Signal(str)
    failed = Signal(str)

    def __init__(self, model: SessionModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.session_path = ""
        self._done = False
        self._watchdog = QTimer(self)
        self._watchdog.setInterval(250)
        self._watchdog.timeout.connect(self._check_alive)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.is_alive() and not self._done

    def start(self, spec_text: str, session_path: str, start_paused: bool = False) -> None:
        """Start a worker on a validated spec; records flow into the model from now on."""
        if self.running:
            raise RuntimeError("an experiment is already running; stop it first")
        self.model.clear()
        self.model.spec_text = spec_text
        self._spawn(
            session_path,
            worker_main,
            lambda conn: (spec_text, session_path, conn, start_paused),
        )

    def start_fork(
        self,
        session_path: str,
        parent: str,
        step: int,
        name: str,
        optimizer: dict[str, Any] | None = None,
        schedule: dict[str, Any] | None = None,
        steps: int | None = None,
    ) -> None:
        """Fork `parent` of the closed session shown in the model from its checkpoint at `step`.

        The model keeps the session's runs; the fork is added to it, live, as the worker writes it
        into the same file (see `engine.worker.fork_main`).
        """
        if self.running:
            raise RuntimeError("an experiment is already running; stop it first")
        prepare = partial(
            prepare_fork, session_path, parent, step, name, optimizer, schedule, steps
        )
        self._spawn(session_path, fork_main, lambda conn: (conn, session_path, prepare))

    def _spawn(
        self,
        session_path: str,
        target: Callable[..., None],
        arguments: Callable[[Connection], tuple[Any, ...]],
    ) -> None:
        """Run `target(*arguments(its pipe end))` in a worker process; read its pipe from now on."""
        ctx = mp.get_context("spawn")  # a fresh interpreter: no Qt state, no inherited threads
        parent_conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(
            target=target, args=arguments(child_conn), name="descentlab-worker", daemon=True
        )
        self.process.start()
        child_conn.close()
        self.conn = parent_conn
        self.session_path = session_path
        self._done = False
        asyncio.get_event_loop().add_reader(parent_conn.fileno(), self._drain)
        self._watchdog.start()

    def send(self, command: Command) -> None:
        """Send a command to the live worker; ignored when none runs."""
        if self.conn is not None and self.running:
            try:
                self.conn.send(command)
            except (BrokenPipeError, OSError):
                self._check_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to stop (the session is closed properly), kill it if it won't."""
        if self.process is None:
            return
        if self.running:
            self.send(Stop())
            self.process.join(timeout)
            self._drain()
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2.0)
        self._check_alive()

    # -- pipe -----------------------------------------------------------------------------

    def _drain(self) -> None:
        """Apply every message waiting on the pipe; appends are grouped per series."""
        conn = self.conn
        if conn is None:
            return
        try:
            while conn.poll():
                self._apply(conn.recv())
        except (EOFError, OSError):
            self._close_pipe()
            self._check_alive()

    def _apply(self, messages: list[tuple[Any, ...]]) -> None:
        appends: dict[tuple[str, str], tuple[list[int], list[Any]]] = defaultdict(lambda: ([], []))
        model = self.model

        def flush_appends() -> None:
            for (run, name), (steps, values) in appends.items():
                model.extend(run, name, np.asarray(steps), np.asarray(values, dtype=np.float64))
            appends.clear()

        for message in messages:
            kind = message[0]
            if kind == "append":
                _, run, name, step, value = message
                steps, values = appends[(run, name)]
                steps.append(step)
                values.append(value)
                continue
            flush_appends()  # keep order: a run must exist before its records
            if kind == "add_run":
                model.add_run(message[1])
            elif kind == "event":
                model.add_event(*message[1:])
            elif kind == "end_run":
                model.end_run(*message[1:])
            elif kind == "checkpoint":
                model.add_checkpoint(*message[1:])
            elif kind == "progress":
                for run, (_, _, rate, _) in message[1].items():
                    if run in model.runs:
                        model.runs[run].steps_per_second = rate
                self.progress.emit(message[1], message[2])
            elif kind == "done":
                self._done = True
                self.finished.emit(self.session_path)
            elif kind == "failed":
                self._done = True
                self._fail(message[1])
        flush_appends()

    def _close_pipe(self) -> None:
        if self.conn is not None:
            asyncio.get_event_loop().remove_reader(self.conn.fileno())
            self.conn.close()
            self.conn = None

    def _check_alive(self) -> None:
        """A worker that died without saying so (killed, crashed): its runs are failed."""
        if self.process is None or self.process.is_alive():
            return
        if self.conn is not None:
            self._drain()
        self._watchdog.stop()
        self._close_pipe()
        if not self._done:
            self._done = True
            code = self.process.exitcode
            self._fail(
                f"the engine worker ended unexpectedly (exit code {code}); the session "
                f"file keeps everything recorded until then: {self.session_path}"
            )

    def _fail(self, message: str) -> None:
        for run in self.model.runs.values():
            if run.status == "running":
                self.model.set_status(run.name, "failed", message.splitlines()[0])
        self.failed.emit(message)
