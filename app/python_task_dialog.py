"""The question the window asks before it first runs a spec's Python file (`[task] id = "python"`).

A spec that names a Python file is code. The window says which file it will run and asks once;
the answer "run" is remembered in QSettings per file path together with the SHA-256 of the file's
content, so an edited (or replaced) file asks again. Opening or replaying a session never gets
here: only starting a run or a fork from a checkpoint does. The CLI does not ask (it runs the
file as `python my_task.py` would).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from descentlab.engine.spec import PYTHON_TASK, ExperimentSpec

SETTINGS_GROUP = "python_task_files"


def python_file(spec: ExperimentSpec) -> Path | None:
    """The Python file the spec's task runs, or None for a built-in task."""
    if spec.task.id != PYTHON_TASK:
        return None
    return Path(str(spec.task.params["file"])).expanduser().absolute()


def file_digest(path: Path) -> str | None:
    """SHA-256 of the file's bytes; None when it cannot be read (the run then reports why)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _key(path: Path) -> str:
    """A settings key per path (a path's slashes would nest QSettings groups)."""
    return f"{SETTINGS_GROUP}/{hashlib.sha256(str(path).encode()).hexdigest()}"


class RunPythonFileDialog(QDialog):
    """Names the file and its folder and asks whether to run it; Run is not the default button,
    so an Enter pressed by habit does not run unknown code."""

    def __init__(self, path: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Run a Python file?")
        text = QLabel(
            f"<p>This experiment's task is Python code from your own file:</p>"
            f"<p><b>{path.name}</b><br>in {path.parent}</p>"
            "<p>Running the experiment runs this file with your permissions, as "
            "<code>python</code> would. Run it only if you wrote it or trust where it came "
            "from.</p><p>Descent Lab remembers your answer for this file until its content "
            "changes.</p>"
        )
        text.setWordWrap(True)
        text.setMinimumWidth(420)
        buttons = QDialogButtonBox()
        self.run_button = buttons.addButton("Run this file", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.run_button.setAutoDefault(False)
        self.cancel_button.setDefault(True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(buttons)


def confirm_python_file(
    spec: ExperimentSpec, settings: QSettings, parent: QWidget | None = None
) -> bool:
    """True when the spec may run: a built-in task, a file already allowed with this content,
    or a file the user allows now (remembered). An unreadable file passes: the run refuses it
    with the reason, and nothing of it runs."""
    path = python_file(spec)
    if path is None:
        return True
    digest = file_digest(path)
    if digest is None or settings.value(_key(path)) == digest:
        return True
    if RunPythonFileDialog(path, parent).exec() != QDialog.DialogCode.Accepted:
        return False
    settings.setValue(_key(path), digest)
    return True
