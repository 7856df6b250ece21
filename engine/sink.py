"""What the Runner tells whatever records a session: the `Sink` contract and a run's header.

The session writer, the in-memory sink of tests and notebooks, the worker's pipe to the window
and the window's own session model all take the same calls in the same order: `add_run` once
per run (forks included), `start_live`, then records, events and checkpoints, `end_run`, and
`flush` now and then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from descentlab.engine.checkpoints import Tree
from descentlab.engine.plugin import Output


@dataclass(frozen=True)
class RunHeader:
    """A run as a sink first hears of it: its settings, every series it will write, and where
    it comes from (`parent_run` and `fork_step` for a fork; "" and -1 for a run of its own)."""

    name: str
    config: dict[str, Any]
    outputs: list[Output] = field(default_factory=list)
    parent_run: str = ""
    fork_step: int = -1


class Sink(Protocol):
    """Receives what the Runner produces; `SessionWriter` is one, the app's pipe another."""

    def add_run(self, run: RunHeader) -> None: ...
    def start_live(self) -> None: ...
    def append(self, run: str, name: str, step: int, value: Any) -> None: ...
    def event(self, run: str, step: int, kind: str, detail: str = "") -> None: ...
    def end_run(self, run: str, status: str, step: int, error: str = "") -> None: ...
    def checkpoint(
        self, run: str, step: int, params: dict[str, np.ndarray], optimizer_state: Tree | None
    ) -> None: ...
    def flush(self, force: bool = False) -> None: ...
