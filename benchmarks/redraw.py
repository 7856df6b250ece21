"""Redraw benchmark of the line view, offscreen: is live plotting fast enough? (not a test)

1. Live: 8 runs of 100 000 points each in one `LinePlot`; every frame appends a few hundred
   points to every run, calls `refresh()` and paints the plot synchronously, as fast as it can
   for a few seconds. The window's timer asks for 30 frames per second, so the achieved rate
   must be at least 30.
2. Interactive: one curve of 1 000 000 points; each zoom or pan sets a new range and paints.
   Latency is from the range change to the end of the paint; under 50 ms feels immediate.
3. Smoothing of that curve: the whole series when the slider moves, and one frame's new points.

Usage: `python benchmarks/redraw.py [--seconds 4]`; prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QWidget

from descentlab.app.plots.factory import make_view
from descentlab.app.plots.layout import plot_groups
from descentlab.app.plots.line_plot import LinePlot
from descentlab.app.plots.smoothing import EmaSmoother
from descentlab.app.session_model import SessionModel
from descentlab.engine.plugin import Output

SIZE = (800, 450)
LOSS = [Output("train/loss", "scalar")]


def noisy_loss(rng: np.random.Generator, start: int, n: int) -> np.ndarray:
    steps = np.arange(start, start + n)
    return np.exp(-steps / 40_000) * (1 + 0.3 * rng.standard_normal(n)) ** 2 + 1e-3


def loss_view(app: QApplication, model: SessionModel) -> LinePlot:
    view = make_view(plot_groups(LOSS)[0], model)
    assert isinstance(view, LinePlot)
    view.resize(*SIZE)
    view.show()
    app.processEvents()
    return view


class PaintCounter(QObject):
    """Counts the paints of a widget, to check that every timed frame was really drawn."""

    def __init__(self, widget: QWidget) -> None:
        super().__init__()
        self.count = 0
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.count += 1
        return False


def paint(app: QApplication) -> None:
    """Run the event loop once, as after the window's timer: the items that changed asked for
    an update, and Qt paints the view once for all of them (pyqtgraph prepares, then draws)."""
    app.processEvents()


def live(
    app: QApplication,
    seconds: float,
    beta: float,
    runs: int = 8,
    points: int = 100_000,
    per_frame: int = 300,
) -> dict[str, float]:
    """Frame rate and frame times (ms) while every run grows by `per_frame` points a frame."""
    rng = np.random.default_rng(0)
    model = SessionModel()
    for r in range(runs):
        model.add_run(f"run{r}", {}, LOSS)
        model.extend(f"run{r}", "train/loss", np.arange(points), noisy_loss(rng, 0, points))
    view = loss_view(app, model)
    view.set_smoothing(beta)
    paint(app)
    paints = PaintCounter(view.plot_widget.viewport())
    chunk = {r: noisy_loss(rng, points, per_frame) for r in range(runs)}
    frames: list[float] = []
    step = points
    begin = time.perf_counter()
    while time.perf_counter() - begin < seconds:
        t0 = time.perf_counter()
        for r in range(runs):
            model.extend(f"run{r}", "train/loss", np.arange(step, step + per_frame), chunk[r])
        step += per_frame
        view.refresh()
        paint(app)
        frames.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - begin
    view.close()
    ms = np.array(frames) * 1e3
    return {
        "fps": len(frames) / elapsed,
        "median": float(np.median(ms)),
        "p95": float(np.percentile(ms, 95)),
        "paints per frame": paints.count / len(frames),
    }


def interactive(app: QApplication, points: int = 1_000_000, moves: int = 40) -> dict[str, float]:
    """Latencies (ms) of zooms, pans and zooms back out on a one-million-point curve."""
    rng = np.random.default_rng(1)
    model = SessionModel()
    model.add_run("big", {}, LOSS)
    model.extend("big", "train/loss", np.arange(points), noisy_loss(rng, 0, points))
    view = loss_view(app, model)
    paint(app)
    box = view.plot.getViewBox()
    paints = PaintCounter(view.plot_widget.viewport())
    times: dict[str, list[float]] = {"zoom in": [], "pan": [], "zoom out to all 1M": []}

    def timed(kind: str, left: float, right: float) -> None:
        t0 = time.perf_counter()
        box.setXRange(left, right, padding=0)
        paint(app)
        times[kind].append((time.perf_counter() - t0) * 1e3)

    for _ in range(moves):
        width = points * 10 ** rng.uniform(-3, -0.3)
        left = rng.uniform(0, points - width)
        timed("zoom in", left, left + width)
        timed("pan", left + width / 4, left + width * 5 / 4)
        timed("zoom out to all 1M", 0, points)
    view.close()
    assert paints.count == 3 * moves, "every timed move must have been painted once"
    result = {}
    for kind, ms in times.items():
        result[f"{kind} median"] = float(np.median(ms))
        result[f"{kind} max"] = float(np.max(ms))
    return result


def smoothing(points: int = 1_000_000, beta: float = 0.99) -> dict[str, float]:
    """EMA cost (ms): a whole 1M series (the slider moved) and one live frame's new points."""
    rng = np.random.default_rng(2)
    values = noisy_loss(rng, 0, points)
    t0 = time.perf_counter()
    EmaSmoother(beta).update(values)
    whole = (time.perf_counter() - t0) * 1e3

    runs = [noisy_loss(rng, 0, 100_300) for _ in range(8)]
    smoothers = [EmaSmoother(beta) for _ in runs]
    for smoother, run in zip(smoothers, runs, strict=True):
        smoother.update(run[:100_000])
    t0 = time.perf_counter()
    for smoother, run in zip(smoothers, runs, strict=True):
        smoother.update(run)
    frame = (time.perf_counter() - t0) * 1e3
    return {"EMA of 1M points (slider moved)": whole, "EMA of 8 runs × 300 new points": frame}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each live run")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])

    rows = []
    for beta in (0.0, 0.9):
        r = live(app, args.seconds, beta)
        rows.append(
            (
                f"live: 8 runs × 100k points, +300 points/run/frame, smoothing β = {beta}",
                f"{r['fps']:.1f} fps (frame median {r['median']:.1f} ms, p95 {r['p95']:.1f} ms, "
                f"{r['paints per frame']:.2f} paints/frame)",
                "≥ 30 fps",
                "ok" if r["fps"] >= 30 else "TOO SLOW",
            )
        )
    for name, ms in interactive(app).items():
        verdict = "ok" if ms < 50 else "TOO SLOW"
        rows.append((f"1M-point curve: {name} (range change + paint)", f"{ms:.1f} ms", "< 50 ms",
                     verdict))  # fmt: skip
    for name, ms in smoothing().items():
        rows.append((name, f"{ms:.1f} ms", "", ""))

    print(f"Offscreen Qt ({app.platformName()}), plot {SIZE[0]}×{SIZE[1]} px\n")
    print("| measure | result | target | |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
