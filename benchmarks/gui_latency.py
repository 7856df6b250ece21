"""Event-loop latency of the window while three runs train flat out with diagnostics on.

A 10 ms timer fires in the GUI thread; its lateness (actual − scheduled interval) is what a user
feels as stutter. Measured offscreen for `--seconds` after the runs have started, with the plots
redrawing live.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_latency.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import qasync
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from descentlab.app.main_window import MainWindow

SPEC = """
name = "latency"
steps = 1000000
device = "cpu"
[task]
id = "digits-mlp"
[[runs]]
name = "adam"
optimizer = { id = "adam", lr = 1e-3 }
[[runs]]
name = "sgd"
optimizer = { id = "sgd", lr = 0.05, momentum = 0.9 }
[[runs]]
name = "muon"
optimizer = { id = "muon" }
[[diagnostics]]
id = "norms"
every = 1
[[diagnostics]]
id = "spectra"
every = 20
[[diagnostics]]
id = "hessian"
every = 50
[[diagnostics]]
id = "eval"
every = 20
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    app = QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(sessions_dir=Path(tmp), confirm_close=False)
        window.resize(1600, 1000)
        window.show()
        window.load_spec_text(SPEC)
        window.start()
        deadline = time.monotonic() + 120
        while not (window.model.runs and all(r.step > 20 for r in window.model.runs.values())):
            app.processEvents()
            if time.monotonic() > deadline:
                raise SystemExit("the worker did not start within 2 minutes")
        lateness: list[float] = []
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            lateness.append(now - last[0] - 0.010)
            last[0] = now

        timer = QTimer()
        timer.setInterval(10)
        timer.timeout.connect(tick)
        timer.start()
        start_steps = {r.name: r.step for r in window.model.runs.values()}
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.001)
        timer.stop()
        rates = {
            r.name: (r.step - start_steps[r.name]) / args.seconds
            for r in window.model.runs.values()
        }
        points = sum(b.n for r in window.model.runs.values() for b in r.series.values())
        window.client.stop()
        window.close()
    late = np.array(lateness) * 1000
    print(
        f"{args.seconds:.0f} s, 3 runs of digits-mlp with norms every step, spectra and eval "
        f"every 20, hessian every 50; {len(window.views)} plots; {points} points held"
    )
    print("| timer lateness p50 | p99 | max | steps/s per run |")
    print("|---|---|---|---|")
    per_run = ", ".join(f"{k} {v:.0f}" for k, v in rates.items())
    print(
        f"| {np.percentile(late, 50):.1f} ms | {np.percentile(late, 99):.1f} ms | "
        f"{late.max():.1f} ms | {per_run} |"
    )


if __name__ == "__main__":
    main()
