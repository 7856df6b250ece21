"""The event log: pauses, hyperparameter changes, forks, diagnostic errors, divergence, ends."""

from __future__ import annotations

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from descentlab.app.session_model import SessionModel

ALARMING = {"diagnostic_error", "command_error", "diverged", "failed", "error"}


class EventLog(QListWidget):
    """Appends one line per event, newest at the bottom; errors in red."""

    def __init__(self, model: SessionModel) -> None:
        super().__init__()
        self.setUniformItemSizes(True)
        model.eventAdded.connect(self.add_event)
        model.cleared.connect(self.clear)

    def add_event(self, run: str, step: int, kind: str, detail: str) -> None:
        self.add_line(
            f"step {step:>6}  {run}: {kind}" + (f" — {detail}" if detail else ""),
            alarming=kind in ALARMING or detail.startswith(("failed", "diverged")),
        )

    def add_line(self, text: str, alarming: bool = False) -> None:
        """A line from the app itself (a worker that died, a file that cannot be read)."""
        item = QListWidgetItem(text)
        if alarming:
            item.setForeground(QColor("#d62728"))
        at_bottom = self.verticalScrollBar().value() >= self.verticalScrollBar().maximum() - 2
        self.addItem(item)
        if at_bottom:
            self.scrollToBottom()
