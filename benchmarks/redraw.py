"""Redraw benchmark of the line view, offscreen: is live plotting fast enough? (not a test)

1. Live: 8 runs of 100 000 points each in one `LinePlot` (log y, as the loss plot opens); each
   frame appends 300 points to every run, calls `refresh()` and lets the event loop paint, as
   fast as it can for a few seconds. The window's timer asks for 30 frames per second, so the
   achieved rate must be at least 30. With smoothing on, each run draws a second (faint) curve.
2. Interactive: one curve of 1 000 000 points; each zoom, pan or zoom back out sets a range and
   paints. Latency is from the range change to the end of the paint; under 50 ms feels immediate.
3. Smoothing of that curve: the whole series when the slider moves, and one live frame's points.

Both plot sizes are measured: a maximised plot and a dock among several. Every timed frame is
checked to have been painted exactly once. Usage: `python benchmarks/redraw.py [--seconds 4]`;
prints a markdown table.
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
from descentlab.engine.sink import RunHeader

SIZES = ((1280, 720), (800, 450))
"""A maximised plot, and a dock among several in the window."""

LOSS = [Output("train/loss", "scalar")]
Size = tuple[int, int]


def noisy_loss(rng: np.random.Generator, start: int, n: int) -> np.ndarray:
    """A mini-batch loss: decaying, with 30 % multiplicative noise (the costliest to draw)."""
    steps = np.arange(start, start + n)
    return np.exp(-steps / 40_000) * (1 + 0.3 * rng.standard_normal(n)) ** 2 + 1e-3


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


def loss_view(app: QApplication, model: SessionModel, size: Size) -> LinePlot:
    view = make_view(plot_groups(LOSS)[0], model)
    assert isinstance(view, LinePlot)
    view.resize(*size)
    view.show()
    app.processEvents()
    return view


def live(app: QApplication, size: Size, seconds: float, beta: float) -> dict[str, float]:
    """Frame rate, frame times (ms) and paints per frame while 8 runs grow."""
    runs, points, per_frame = 8, 100_000, 300
    rng = np.random.default_rng(0)
    model = SessionModel()
    for r in range(runs):
        model.add_run(RunHeader(f"run{r}", {}, LOSS))
        model.extend(f"run{r}", "train/loss", np.arange(points), noisy_loss(rng, 0, points))
    view = loss_view(app, model, size)
    view.set_smoothing(beta)
    app.processEvents()
    paints = PaintCounter(view.plot_widget.viewport())
    chunk = noisy_loss(rng, points, per_frame)
    frames: list[float] = []
    step = points
    begin = time.perf_counter()
    while time.perf_counter() - begin < seconds:
        t0 = time.perf_counter()
        for r in range(runs):
            model.extend(f"run{r}", "train/loss", np.arange(step, step + per_frame), chunk)
        step += per_frame
        view.refresh()
        app.processEvents()  # as after the window's timer: one paint for all changed items
        frames.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - begin
    view.close()
    ms = np.array(frames) * 1e3
    return {
        "fps": len(frames) / elapsed,
        "median": float(np.median(ms)),
        "p95": float(np.percentile(ms, 95)),
        "paints": paints.count / len(frames),
    }


def interactive(app: QApplication, size: Size, moves: int = 40) -> dict[str, tuple[float, float]]:
    """Median and worst latency (ms) of zooms, pans and zooms out on a 1M-point curve."""
    points = 1_000_000
    rng = np.random.default_rng(1)
    model = SessionModel()
    model.add_run(RunHeader("big", {}, LOSS))
    model.extend("big", "train/loss", np.arange(points), noisy_loss(rng, 0, points))
    view = loss_view(app, model, size)
    box = view.plot.getViewBox()
    paints = PaintCounter(view.plot_widget.viewport())
    times: dict[str, list[float]] = {"zoom in": [], "pan": [], "zoom out to all": []}

    def timed(kind: str, left: float, right: float) -> None:
        t0 = time.perf_counter()
        box.setXRange(left, right, padding=0)
        app.processEvents()
        times[kind].append((time.perf_counter() - t0) * 1e3)

    for _ in range(moves):
        width = points * 10 ** rng.uniform(-3, -0.3)
        left = rng.uniform(0, points - width)
        timed("zoom in", left, left + width)
        timed("pan", left + width / 4, left + width * 5 / 4)
        timed("zoom out to all", 0, points)
    view.close()
    assert paints.count == 3 * moves, "every timed move must have been painted once"
    return {kind: (float(np.median(ms)), float(np.max(ms))) for kind, ms in times.items()}


def smoothing(beta: float = 0.99) -> dict[str, float]:
    """EMA cost (ms): a whole 1M series (the slider moved) and one live frame's new points."""
    rng = np.random.default_rng(2)
    values = noisy_loss(rng, 0, 1_000_000)
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
    return {"1M points (slider moved)": whole, "8 runs × 300 new points (one frame)": frame}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each live run")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])

    rows = []
    for size in SIZES:
        where = f"{size[0]}×{size[1]}"
        for beta in (0.0, 0.9):
            r = live(app, size, args.seconds, beta)
            rows.append(
                (
                    f"{where}: 8 runs × 100k points, +300/run/frame, smoothing β = {beta}",
                    f"**{r['fps']:.1f} fps** (frame median {r['median']:.1f} ms, "
                    f"p95 {r['p95']:.1f} ms, {r['paints']:.2f} paints/frame)",
                    "≥ 30 fps",
                    "ok" if r["fps"] >= 30 else "too slow",
                )
            )
        for kind, (median, worst) in interactive(app, size).items():
            rows.append(
                (
                    f"{where}: 1M-point curve, {kind} (range change + paint)",
                    f"median **{median:.1f} ms**, worst {worst:.1f} ms",
                    "< 50 ms",
                    "ok" if worst < 50 else "too slow",
                )
            )
    for name, ms in smoothing().items():
        rows.append((f"debiased EMA, {name}", f"{ms:.1f} ms", "", ""))

    print(f"Offscreen Qt ({app.platformName()} platform, raster painting)\n")
    print("| measure | result | target | |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
