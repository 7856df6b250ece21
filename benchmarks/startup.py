"""Start-up cost: `descentlab list optimizers` and the lab window, each in a fresh interpreter.

Listing the catalogue and opening the window read plugin descriptors only; neither should import
the optimizer libraries (pytorch-optimizer, geoopt) behind them. Each measurement is a fresh
process, timed from its start; `--python` adds another installation (an older checkout's venv)
measured alternately with this one, so the two see the same machine load.

    python benchmarks/startup.py --reps 5 [--python ../old/.venv/bin/python]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

WINDOW = """
import sys, time
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv)
from descentlab.app.main_window import MainWindow
window = MainWindow(confirm_close=False, remember_layout=False)
window.show()
app.processEvents()
print("pytorch_optimizer" in sys.modules or "geoopt" in sys.modules)
"""

LIST = """
import contextlib, io, sys
from descentlab.app.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    main(["list", "optimizers"])
print("pytorch_optimizer" in sys.modules or "geoopt" in sys.modules)
"""
LEGACY_LIST = LIST.replace("descentlab.app.cli", "descentlab.engine.cli")
"""Before the command line moved out of the engine, `main` lived in `descentlab.engine.cli`."""


def timed(python: str, code: str) -> tuple[float, bool]:
    """Wall seconds of `python -c code` and whether it imported an optimizer library."""
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    start = time.perf_counter()
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{python} failed:\n{done.stderr}")
    return elapsed, done.stdout.strip().splitlines()[-1] == "True"


def list_code(python: str) -> str:
    probe = subprocess.run([python, "-c", "import descentlab.app.cli"], capture_output=True)
    return LIST if probe.returncode == 0 else LEGACY_LIST


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--python", action="append", default=[], help="another installation")
    args = parser.parse_args()
    pythons = [sys.executable, *args.python]
    rows: dict[tuple[str, str], list[float]] = {}
    loaded: dict[tuple[str, str], bool] = {}
    for _ in range(args.reps):
        for python in pythons:
            for what, code in (("list optimizers", list_code(python)), ("window", WINDOW)):
                seconds, libraries = timed(python, code)
                rows.setdefault((python, what), []).append(seconds)
                loaded[python, what] = libraries
    print(f"median of {args.reps}, load average {os.getloadavg()[0]:.1f}")
    print("| installation | what | wall | imports pytorch-optimizer or geoopt |")
    print("|---|---|---|---|")
    for (python, what), times in rows.items():
        label = "this checkout" if python == sys.executable else python
        print(f"| {label} | {what} | {statistics.median(times):.2f} s | {loaded[python, what]} |")


if __name__ == "__main__":
    main()
