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
from PySide6.QtWidgets import QApplication

from descentlab.app.plots.factory import make_view
from descentlab.app.plots.layout import plot_groups
from descentlab.app.plots.line_plot import LinePlot
from descentlab.app.plots.smoothing import EmaSmoother
from descentlab.app.session_model import SessionModel
from descentlab.engine.plugin import Output

SIZE = (1280, 720)
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


def paint(app: QApplication, view: LinePlot) -> None:
    """Paint now, as the event loop would on the next frame (pyqtgraph prepares, then draws)."""
    view.plot_widget.viewport().repaint()
    app.processEvents()


def live(app: QApplication, seconds: float, beta: float, runs: int = 8, points: int = 100_000,
         per_frame: int = 300) -> tuple[float, float, float]:  # fmt: skip
    """(frames per second, median frame ms, 95th percentile frame ms) while runs grow."""
    rng = np.random.default_rng(0)
    model = SessionModel()
    for r in range(runs):
        model.add_run(f"run{r}", {}, LOSS)
        model.extend(f"run{r}", "train/loss", np.arange(points), noisy_loss(rng, 0, points))
    view = loss_view(app, model)
    view.set_smoothing(beta)
    paint(app, view)
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
        paint(app, view)
        frames.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - begin
    view.close()
    ms = np.array(frames) * 1e3
    return len(frames) / elapsed, float(np.median(ms)), float(np.percentile(ms, 95))


def interactive(app: QApplication, points: int = 1_000_000, moves: int = 40) -> dict[str, float]:
    """Latencies (ms) of zooms and pans on a one-million-point curve, and of full repaints."""
    rng = np.random.default_rng(1)
    model = SessionModel()
    model.add_run("big", {}, LOSS)
    model.extend("big", "train/loss", np.arange(points), noisy_loss(rng, 0, points))
    view = loss_view(app, model)
    paint(app, view)
    box = view.plot.getViewBox()

    def timed(action) -> float:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        action()
        paint(app, view)
        return (time.perf_counter() - t0) * 1e3

    full = [timed(lambda: box.setXRange(0, points, padding=0)) for _ in range(5)]
    zooms, pans = [], []
    for _ in range(moves):
        width = points * 10 ** rng.uniform(-3, -0.3)
        left = rng.uniform(0, points - width)
        zooms.append(timed(lambda left=left, width=width: box.setXRange(left, left + width)))
        pans.append(timed(lambda width=width: box.translateBy(x=width * 0.25)))
    view.close()
    return {
        "full view (1M points)": float(np.median(full)),
        "zoom median": float(np.median(zooms)),
        "zoom max": float(np.max(zooms)),
        "pan median": float(np.median(pans)),
        "pan max": float(np.max(pans)),
    }


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
        fps, median, p95 = live(app, args.seconds, beta)
        verdict = "ok" if fps >= 30 else "TOO SLOW"
        rows.append(
            (f"live: 8 runs × 100k points + 300/run/frame, smoothing β={beta}",
             f"{fps:.1f} fps (frame median {median:.1f} ms, p95 {p95:.1f} ms)", "≥ 30 fps", verdict)
        )  # fmt: skip
    for name, ms in interactive(app).items():
        verdict = "ok" if ms < 50 else "TOO SLOW"
        rows.append((f"1M-point curve: {name}", f"{ms:.1f} ms", "< 50 ms", verdict))
    for name, ms in smoothing().items():
        rows.append((name, f"{ms:.1f} ms", "", ""))

    print(f"Offscreen Qt ({app.platformName()}), plot {SIZE[0]}×{SIZE[1]} px\n")
    print("| measure | result | target | |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
