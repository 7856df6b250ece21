"""A one-line progress bar for headless runs: steps, steps/s, ETA and each run's current loss."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from descentlab.engine.runner import Runner


class ProgressBar:
    """Redraws one line in place on a terminal; on a pipe or log file, prints every 10%.

    Args:
        total: steps of the experiment.
        stream: where to draw (stderr, so stdout stays clean for the session path).
        width: characters of the bar itself.
    """

    def __init__(self, total: int, stream: TextIO, width: int = 24) -> None:
        self.total = total
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self._last_decile = -1

    def line(self, runner: Runner) -> str:
        done = runner.step
        frac = done / self.total if self.total else 1.0
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        losses = "  ".join(
            f"{r.name} {r.last_loss:.4g}" + ("" if r.status == "running" else f" [{r.status}]")
            for r in runner.runs.values()
        )
        eta_text = f"{eta:5.0f}s" if eta != float("inf") else "    ?"
        return (
            f"[{bar}] {done}/{self.total} {frac:4.0%} {rate:7.1f} steps/s ETA {eta_text} | {losses}"
        )

    def update(self, runner: Runner) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line(runner))
            self.stream.flush()
            return
        decile = int(10 * runner.step / self.total) if self.total else 10
        if decile > self._last_decile:
            self._last_decile = decile
            self.stream.write(self.line(runner) + "\n")
            self.stream.flush()

    def close(self, runner: Runner) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line(runner) + "\n")
            self.stream.flush()
