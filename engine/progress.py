"""A one-line progress bar for headless runs: steps, steps/s, ETA and each run's current loss."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from descentlab.engine.runner import Runner


class ProgressBar:
    """Redraws one line in place on a terminal; on a pipe or log file, prints every 10%.

    The bar spans the steps this runner will train, `first` to `last`: 0 to the spec's steps for
    a new experiment, the fork step to the stop step for a fork (`Runner.start_from` sets the
    runner's step). The line shows the runner's own step against `last`, the fraction of the
    span done, and a rate and ETA from the steps trained since the bar started.

    Args:
        first: the runner's step when training starts (`runner.step` before `run`).
        last: the step training stops at (`runner.spec.steps`).
        stream: where to draw (stderr, so stdout stays clean for the session path).
        width: characters of the bar itself.
    """

    def __init__(self, first: int, last: int, stream: TextIO, width: int = 24) -> None:
        self.first = first
        self.last = last
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self._last_decile = -1

    @classmethod
    def for_runner(cls, runner: Runner, stream: TextIO) -> ProgressBar:
        """A bar over the steps `runner` has still to train, from its current step on."""
        return cls(runner.step, runner.spec.steps, stream)

    def fraction(self, step: int) -> float:
        """Share of the span `first`..`last` done at `step`, in [0, 1]."""
        span = self.last - self.first
        return min(1.0, max(0.0, (step - self.first) / span)) if span > 0 else 1.0

    def line(self, runner: Runner) -> str:
        done = runner.step - self.first
        frac = self.fraction(runner.step)
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = max(0, self.last - runner.step) / rate if rate > 0 else float("inf")
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        losses = "  ".join(
            f"{r.name} {r.last_loss:.4g}" + ("" if r.status == "running" else f" [{r.status}]")
            for r in runner.runs.values()
        )
        eta_text = f"{eta:5.0f}s" if eta != float("inf") else "    ?"
        return (
            f"[{bar}] {runner.step}/{self.last} {frac:4.0%} {rate:7.1f} steps/s "
            f"ETA {eta_text} | {losses}"
        )

    def update(self, runner: Runner) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line(runner))
            self.stream.flush()
            return
        decile = int(10 * self.fraction(runner.step))
        if decile > self._last_decile:
            self._last_decile = decile
            self.stream.write(self.line(runner) + "\n")
            self.stream.flush()

    def close(self, runner: Runner) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line(runner) + "\n")
            self.stream.flush()
