"""An in-memory sink: run an experiment from Python (a notebook, a test) and get arrays back."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from descentlab.engine.checkpoints import Checkpoint, Tree, decode
from descentlab.engine.plugin import Output
from descentlab.engine.sink import RunHeader


@dataclass
class MemoryRun:
    config: dict[str, Any]
    outputs: dict[str, Output]
    parent_run: str = ""
    fork_step: int = -1
    status: str = "running"
    error: str = ""
    records: dict[str, list[tuple[int, Any]]] = field(default_factory=lambda: defaultdict(list))
    events: list[tuple[int, str, str]] = field(default_factory=list)
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Steps and stacked values of one series."""
        rows = self.records.get(name, [])
        steps = np.array([s for s, _ in rows], dtype=np.int64)
        return steps, np.array([v for _, v in rows], dtype=np.float64)


class MemorySink:
    """Keeps every record of every run; implements the Runner's `Sink` protocol."""

    def __init__(self) -> None:
        self.runs: dict[str, MemoryRun] = {}

    def add_run(self, run: RunHeader) -> None:
        outputs = {o.name: o for o in run.outputs}
        self.runs[run.name] = MemoryRun(run.config, outputs, run.parent_run, run.fork_step)

    def start_live(self) -> None:
        """Nothing to do: memory is always readable."""

    def append(self, run: str, name: str, step: int, value: Any) -> None:
        self.runs[run].records[name].append((step, value))

    def event(self, run: str, step: int, kind: str, detail: str = "") -> None:
        self.runs[run].events.append((step, kind, detail))

    def checkpoint(
        self, run: str, step: int, params: dict[str, np.ndarray], optimizer_state: Tree | None
    ) -> None:
        state = decode(optimizer_state) if optimizer_state is not None else None
        self.runs[run].checkpoints[step] = Checkpoint(step, params, state)

    def end_run(self, run: str, status: str, step: int, error: str = "") -> None:
        self.runs[run].status, self.runs[run].error = status, error
        self.event(run, step, "end", status + (f": {error}" if error else ""))

    def flush(self, force: bool = False) -> None:
        """Nothing to do: records are stored as they come."""
