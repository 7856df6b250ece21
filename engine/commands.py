"""Commands a caller (the CLI, the app's worker bridge, a test) sends to a live Runner.

They are plain dataclasses so that they cross a process pipe as they are. Each one the Runner
applies is logged as an event of the runs it touches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class StepN:
    """While paused: advance `n` steps, then pause again."""

    n: int = 1


@dataclass(frozen=True)
class Stop:
    """Stop one run (status `stopped`), or every run and the experiment when `run` is None."""

    run: str | None = None


@dataclass(frozen=True)
class SetHyper:
    """Set the hyperparameter that the run's optimizer schema calls `name` (`lr`, `adamw_lr`, …).

    It changes the groups and keys that name governs (`live_hyper.governed`), or only group
    `group` of them; `value` must pass the schema's own check, as in a spec. A learning rate
    sets the base rate that the run's schedule scales.
    """

    run: str
    name: str
    value: Any
    group: int | None = None


@dataclass(frozen=True)
class Fork:
    """Start run `name` from run `run`'s current state, with other settings where given.

    `optimizer` (a table with `id` and hyperparameters) and `schedule` default to the parent's;
    with the parent's optimizer id, the optimizer state is carried over, so a fork with the
    parent's settings continues exactly like the parent.
    """

    run: str
    name: str
    optimizer: dict[str, Any] | None = None
    schedule: dict[str, Any] | None = None


Command = Pause | Resume | StepN | Stop | SetHyper | Fork


class CommandSource(Protocol):
    """Where a Runner takes its commands from; `timeout` 0 must not block."""

    def poll(self, timeout: float) -> list[Command]: ...
