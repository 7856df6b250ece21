"""The engine worker process: runs an experiment for the app, talking over one pipe.

The app never trains in its own process. `app.engine_client` spawns `worker_main` (a fresh
interpreter) with the spec text, the session path and one end of a duplex pipe; the worker
writes the session file like `descentlab run` does and sends the same records to the app.

Worker to app: each message is a list of tuples whose first item names what it is:

    ("add_run", RunHeader)
    ("append", run, series, step, value)
    ("event", run, step, kind, detail)
    ("end_run", run, status, step, error)
    ("checkpoint", run, step)          # the arrays stay in the file; the app learns the step
    ("progress", {run: (steps_done, loss, steps_per_second, status)}, step)
    ("done", session_path)             # the worker ended normally (claims checked, if any)
    ("failed", message)                # a spec error as it is, or an exception with traceback

Appends, events, run ends and checkpoints are queued and sent together when the Runner flushes,
at most once per `send_interval` (0.05 s) unless the flush is forced; `add_run` and `progress`
(every 0.1 s of training) send the queue at once, so a run exists in the app before its records.

App to worker: one `engine.commands.Command` per message (Pause, Resume, StepN, Stop, SetHyper,
Fork), polled by the Runner between steps; the pipe closing counts as Stop.

`fork_main` is the same for a fork from a checkpoint of a closed session: it takes a `prepare`
callable (`engine.fork.prepare_fork` with its arguments bound), appends the new run to that
session's file and sends its records exactly as a normal run's. The pipe carries only this
program's own messages between its own two processes.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch

from descentlab.engine.checkpoints import Tree
from descentlab.engine.claims import check_session
from descentlab.engine.commands import Command, Stop
from descentlab.engine.runner import Runner
from descentlab.engine.session.reader import SessionError
from descentlab.engine.session.writer import SessionWriter
from descentlab.engine.sink import RunHeader
from descentlab.engine.spec import SpecError, parse_toml


class PipeSink:
    """Forwards every sink call to a session writer and, batched, to the app."""

    def __init__(self, writer: SessionWriter, conn: Connection, send_interval: float = 0.05):
        self.writer = writer
        self.conn = conn
        self.send_interval = send_interval
        self._pending: list[tuple[Any, ...]] = []
        self._last_send = 0.0

    def add_run(self, run: RunHeader) -> None:
        self.writer.add_run(run)
        self._pending.append(("add_run", run))
        self.send()

    def start_live(self) -> None:
        self.writer.start_live()

    def append(self, run: str, name: str, step: int, value: Any) -> None:
        self.writer.append(run, name, step, value)
        self._pending.append(("append", run, name, step, value))

    def event(self, run: str, step: int, kind: str, detail: str = "") -> None:
        self.writer.event(run, step, kind, detail)
        self._pending.append(("event", run, step, kind, detail))

    def end_run(self, run: str, status: str, step: int, error: str = "") -> None:
        self.writer.end_run(run, status, step, error)
        self._pending.append(("end_run", run, status, step, error))

    def checkpoint(
        self, run: str, step: int, params: dict[str, np.ndarray], optimizer_state: Tree | None
    ) -> None:
        """Checkpoints go to the file only; the app is told the step, not sent the arrays."""
        self.writer.checkpoint(run, step, params, optimizer_state)
        self._pending.append(("checkpoint", run, step))

    def flush(self, force: bool = False) -> None:
        self.writer.flush(force)
        if force or time.monotonic() - self._last_send >= self.send_interval:
            self.send()

    def progress(self, runner: Runner) -> None:
        state = {
            r.name: (r.steps_done, r.last_loss, r.steps_per_second, r.status)
            for r in runner.runs.values()
        }
        self._pending.append(("progress", state, runner.step))
        self.send()

    def send(self) -> None:
        self._last_send = time.monotonic()
        if self._pending:
            self.conn.send(self._pending)
            self._pending = []


class PipeCommands:
    """The Runner's command source: whatever the app sent on the pipe."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def poll(self, timeout: float) -> list[Command]:
        commands: list[Command] = []
        try:
            while self.conn.poll(timeout):
                commands.append(self.conn.recv())
                timeout = 0.0
        except EOFError:  # the app is gone: stop rather than train for nobody
            commands.append(Stop())
        return commands


def worker_main(
    spec_text: str, session_path: str, conn: Connection, start_paused: bool = False
) -> None:
    """Entry point of the worker process; reports a failure on the pipe instead of raising.

    The worker yields the CPU to the window: a lower scheduling priority, and one core fewer
    than the machine has for torch's threads, so that training flat out never makes the
    window stutter (see `benchmarks/gui_latency.py`).
    """
    _yield_cpu()
    try:
        spec = parse_toml(spec_text)
        runner = Runner(spec)
    except SpecError as exc:
        conn.send([("failed", str(exc))])
        return
    try:
        with SessionWriter(session_path, spec.to_toml()) as writer:
            sink = PipeSink(writer, conn)
            runner.run(
                sink,
                commands=PipeCommands(conn),
                on_progress=sink.progress,
                progress_interval=0.1,
                start_paused=start_paused,
            )
            sink.progress(runner)
        if spec.claims and not runner.stopped:  # verdicts of a gallery preset, into the file
            check_session(session_path, spec.claims)
        conn.send([("done", session_path)])
    except Exception as exc:  # the app shows it; the session file keeps what was written
        conn.send([("failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")])


def fork_main(conn: Connection, path: str, prepare: Callable[[], Runner]) -> None:
    """Entry point of a worker that trains a fork from a checkpoint into the closed session `path`.

    `prepare` makes the fork's Runner (`engine.fork.prepare_fork` with its arguments bound, so
    they are declared once). The fork is appended to the same file, with its parent and fork
    step, while its records go to the app as `worker_main`'s do; it obeys the same commands. A
    missing run or checkpoint and bad settings are reported on the pipe, with nothing written.
    """
    _yield_cpu()
    try:
        runner = prepare()
    except (SessionError, SpecError, ValueError) as exc:
        conn.send([("failed", str(exc))])
        return
    try:
        with SessionWriter(path, "", append=True) as writer:
            sink = PipeSink(writer, conn)
            runner.run(
                sink, commands=PipeCommands(conn), on_progress=sink.progress, progress_interval=0.1
            )
            sink.progress(runner)
        conn.send([("done", path)])
    except Exception as exc:  # the app shows it; the session file keeps what was written
        conn.send([("failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")])


def _yield_cpu() -> None:
    """Lower this process's priority and leave one core to the window (see `worker_main`)."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(5)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) - 1)))
