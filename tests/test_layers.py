"""The layers, kept by lint: engine/ and plugins/ never import Qt or the app (issue 12).

The rule is ruff's TID251 (banned-api) in pyproject.toml, ignored outside engine/ and plugins/.
These tests lint source given on stdin under a chosen file name, so nothing is written.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BANNED = (
    "import PySide6.QtCore",
    "from pyqtgraph import PlotWidget",
    "import qasync",
    "from descentlab.app.theme import apply_theme",
)


def _lint(source: str, filename: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "TID251", "--stdin-filename", filename],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


@pytest.mark.parametrize("folder", ["engine", "plugins/tasks"])
@pytest.mark.parametrize("line", BANNED)
def test_engine_and_plugins_may_not_import_qt_or_the_app(folder: str, line: str) -> None:
    lazy = "def later() -> None:\n    " + line + "  # noqa: F401\n"  # inside a function too
    done = _lint(lazy, f"{folder}/not_a_module.py")
    assert done.returncode == 1 and "TID251" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("line", BANNED)
def test_the_app_and_the_tests_may(line: str) -> None:
    for filename in ("app/not_a_module.py", "tests/not_a_test.py"):
        done = _lint(line + "  # noqa: F401\n", filename)
        assert done.returncode == 0, done.stdout + done.stderr
