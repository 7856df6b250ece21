"""What the window knows of a session: runs, their series in growable buffers, events, status.

The model is fed the calls the Runner makes on any sink (`add_run`, `append`, `event` as
`add_event`, `end_run`), whether they come from a live worker, a live file being followed, or
a finished file. Views never get one signal per record: each series carries a version number
that a view compares on its redraw timer, so a redraw touches only what changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from descentlab.engine.plugin import Output
from descentlab.engine.session.reader import SessionReader
from descentlab.engine.sink import RunHeader


class SeriesBuffer:
    """Steps and values of one series in preallocated arrays that double when full.

    Appends are amortised O(1) and `view()` returns array views without copying, so a plot can
    hand 1 000 000 points to pyqtgraph at redraw cost only.
    """

    def __init__(self, shape: tuple[int, ...] = (), capacity: int = 1024) -> None:
        self.shape = shape
        self.steps = np.empty(capacity, dtype=np.int64)
        self.values = np.empty((capacity, *shape), dtype=np.float64)
        self.n = 0
        self.version = 0

    def extend(self, steps: np.ndarray, values: np.ndarray) -> None:
        k = len(steps)
        if k == 0:
            return
        if self.n + k > len(self.steps):
            capacity = max(2 * len(self.steps), self.n + k)
            self.steps = np.resize(self.steps, capacity)
            grown = np.empty((capacity, *self.shape), dtype=np.float64)
            grown[: self.n] = self.values[: self.n]
            self.values = grown
        self.steps[self.n : self.n + k] = steps
        self.values[self.n : self.n + k] = values
        self.n += k
        self.version += 1

    def view(self, until: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Steps and values, all of them or those at steps ≤ `until` (replay up to a step)."""
        n = self.n
        if until is not None:
            n = int(np.searchsorted(self.steps[:n], until, side="right"))
        return self.steps[:n], self.values[:n]

    def last(self) -> tuple[int, Any] | None:
        return (int(self.steps[self.n - 1]), self.values[self.n - 1]) if self.n else None


@dataclass
class RunModel:
    """One run as the window shows it."""

    name: str
    config: dict[str, Any]
    outputs: dict[str, Output]
    parent_run: str = ""
    fork_step: int = -1
    status: str = "running"
    error: str = ""
    series: dict[str, SeriesBuffer] = field(default_factory=dict)
    events: list[tuple[int, str, str]] = field(default_factory=list)
    checkpoint_steps: list[int] = field(default_factory=list)
    """Steps whose parameters and optimizer state the session file holds (forks start there)."""
    steps_per_second: float = 0.0

    @property
    def step(self) -> int:
        buf = self.series.get("train/loss")
        last = buf.last() if buf else None
        return last[0] + 1 if last else 0

    @property
    def last_loss(self) -> float:
        buf = self.series.get("train/loss")
        last = buf.last() if buf else None
        return float(last[1]) if last else float("nan")


class SessionModel(QObject):
    """All runs of the session shown in the window.

    It takes the Runner's Sink calls (`add_run`, `append`, `end_run`, …), with `event` named
    `add_event`, since overriding `QObject.event` would intercept Qt's own events.
    """

    runAdded = Signal(str)
    eventAdded = Signal(str, int, str, str)
    statusChanged = Signal(str)
    cleared = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runs: dict[str, RunModel] = {}
        self.spec_text = ""

    def clear(self) -> None:
        self.runs.clear()
        self.spec_text = ""
        self.cleared.emit()

    # -- the Sink protocol --------------------------------------------------------------

    def add_run(self, header: RunHeader) -> None:
        outputs = {o.name: o for o in header.outputs}
        run = RunModel(header.name, header.config, outputs, header.parent_run, header.fork_step)
        run.series = {o.name: SeriesBuffer(tuple(o.shape)) for o in header.outputs}
        self.runs[header.name] = run
        self.runAdded.emit(header.name)

    def start_live(self) -> None:
        """Nothing to do: the model is always readable."""

    def append(self, run: str, name: str, step: int, value: Any) -> None:
        self.extend(run, name, np.array([step]), np.asarray(value, dtype=np.float64)[None])

    def extend(self, run: str, name: str, steps: np.ndarray, values: np.ndarray) -> None:
        """Append many records of one series at once (the fast path for batches and files)."""
        self.runs[run].series[name].extend(steps, values)

    def add_event(self, run: str, step: int, kind: str, detail: str = "") -> None:
        """The Sink's `event`, under another name: `QObject.event` is Qt's event handler."""
        self.runs[run].events.append((step, kind, detail))
        self.eventAdded.emit(run, step, kind, detail)

    def end_run(self, run: str, status: str, step: int, error: str = "") -> None:
        model = self.runs[run]
        model.status, model.error = status, error
        self.add_event(run, step, "end", status + (f": {error}" if error else ""))
        self.statusChanged.emit(run)

    def flush(self, force: bool = False) -> None:
        """Nothing to do: records are stored as they come."""

    def checkpoint(
        self, run: str, step: int, params: dict[str, np.ndarray], optimizer_state: Any
    ) -> None:
        """The Sink's checkpoint: the window keeps only the step (the arrays go to files)."""
        self.add_checkpoint(run, step)

    def add_checkpoint(self, run: str, step: int) -> None:
        """The worker stored a checkpoint (the arrays stay in the file)."""
        steps = self.runs[run].checkpoint_steps
        if step not in steps:
            steps.append(step)
            steps.sort()

    def set_status(self, run: str, status: str, error: str = "") -> None:
        """Status from outside the records (a worker that died, a file that stopped growing)."""
        model = self.runs[run]
        model.status, model.error = status, error
        self.statusChanged.emit(run)

    # -- files ----------------------------------------------------------------------------

    def load(self, reader: SessionReader) -> None:
        """Replace the model's content with a session file's (finished or live)."""
        self.clear()
        self.spec_text = reader.spec_text
        for info in reader.runs():
            outputs = []
            for name in reader.series_names(info.name):
                s = reader.series_info(info.name, name)
                outputs.append(Output(name, s.kind, s.shape, s.unit, s.layer, s.axes))  # type: ignore[arg-type]
            self.add_run(
                RunHeader(info.name, info.config, outputs, info.parent_run, info.fork_step)
            )
            for name in reader.series_names(info.name):
                steps, values = reader.read(info.name, name)
                self.extend(info.name, name, steps, values)
            for e in reader.events(info.name):
                self.add_event(info.name, e.step, e.kind, e.detail)
            self.runs[info.name].checkpoint_steps = reader.checkpoint_steps(info.name)
            self.set_status(info.name, info.status, info.error)

    def catch_up(self, reader: SessionReader) -> bool:
        """Append what a live file gained since the last call; True if anything was new.

        Runs that appeared (forks) are added; statuses follow the file's `end` events.
        """
        changed = False
        for name in reader.run_names():
            if name not in self.runs:
                info = reader.run(name)
                outputs = [
                    Output(
                        s,
                        (si := reader.series_info(name, s)).kind,
                        si.shape,
                        si.unit,  # type: ignore[arg-type]
                        si.layer,
                        si.axes,
                    )
                    for s in reader.series_names(name)
                ]
                self.add_run(RunHeader(name, info.config, outputs, info.parent_run, info.fork_step))
                changed = True
            run = self.runs[name]
            for series, buf in run.series.items():
                steps, values = reader.read(name, series)
                if len(steps) > buf.n:
                    self.extend(name, series, steps[buf.n :], values[buf.n :])
                    changed = True
            events = reader.events(name)
            for e in events[len(run.events) :]:
                self.add_event(name, e.step, e.kind, e.detail)
                changed = True
            info = reader.run(name)
            if info.status != run.status:
                self.set_status(name, info.status, info.error)
                changed = True
        return changed
