"""Edit a live run's optimizer hyperparameters; each changed value becomes a `SetHyper` command.

The form is the optimizer's own schema, and Apply checks every changed value with the schema's
own check (`live_hyper.check_live`, the spec validator's), marking a refused one under its field
and keeping the dialog open. Only values held in `param_groups` can change while a run is live;
the engine refuses the others with a `command_error` event, which the log shows, so the dialog
does not need to guess which those are.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from descentlab.app.forms import ParamForm
from descentlab.engine import live_hyper, registry


class LiveHyperDialog(QDialog):
    """A form over the run's optimizer schema, filled with the run's current values."""

    def __init__(
        self, run: str, optimizer_id: str, current: dict[str, Any], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Live hyperparameters — {run}")
        plugin = registry.plugins("optimizers")[optimizer_id]
        self.schema = {p.name: p for p in plugin.params}
        self.current = {p.name: _plain(current.get(p.name, p.default)) for p in plugin.params}
        self.form = ParamForm(plugin.params, self.current)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Apply | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        note = QLabel(
            f"{plugin.title}: changes apply from the next step and are logged as "
            "events. Settings that are not kept in the optimizer's parameter groups "
            "are refused by the engine, with a message in the event log."
        )
        note.setWordWrap(True)
        layout.addWidget(note)
        layout.addWidget(self.form)
        layout.addWidget(buttons)

    def changes(self) -> dict[str, Any]:
        """The values the user changed, as typed."""
        return {k: v for k, v in self.form.values().items() if v != self.current.get(k)}

    def refused(self) -> dict[str, str]:
        """Why the schema refuses each changed value that it refuses, by name."""
        found = {}
        for name, value in self.changes().items():
            try:
                live_hyper.check_live(self.schema[name], value)
            except ValueError as exc:
                found[name] = str(exc).removeprefix(f"{name}: ")
        return found

    def accept(self) -> None:
        """Close with Apply only when the schema admits every change; else mark each refusal."""
        self.form.clear_errors()
        refused = self.refused()
        for name, message in refused.items():
            self.form.show_error(name, message)
        if not refused:
            super().accept()


def _plain(value: Any) -> Any:
    """Tuples (schema defaults) as lists (what the form and JSON configs give back)."""
    return list(value) if isinstance(value, tuple) else value
