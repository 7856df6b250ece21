"""One registered diagnostic in the experiment panel: enabled or not, `every`, its options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QToolButton, QVBoxLayout, QWidget

from descentlab.app.forms import ParamForm
from descentlab.app.panels.plugin_params import hint, indented, rich_tooltip
from descentlab.app.panels.spec_problems import index_suffix
from descentlab.engine.plugin import DiagnosticPlugin
from descentlab.engine.spec import every_param


class DiagnosticRow(QWidget):
    """A registered diagnostic: enabled or not, its schedule (`every`) and collapsible options."""

    changed = Signal()

    def __init__(self, plugin: DiagnosticPlugin, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plugin = plugin
        self._runs: list[Any] | None = None
        self.enabled_box = QCheckBox(f"{plugin.title} ({plugin.id})")
        self.enabled_box.setToolTip(
            rich_tooltip(plugin.summary, plugin.reference, f"Cost class: {plugin.cost}.")
        )
        self.enabled_box.toggled.connect(self._toggled)
        self.every_form = ParamForm((every_param(plugin.every),))
        self.every_form.changed.connect(self.changed)
        self.options_button = QToolButton()
        self.options_button.setText("options")
        self.options_button.setCheckable(True)
        self.options_button.setArrowType(Qt.ArrowType.RightArrow)
        self.options_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.options_button.setAutoRaise(True)
        self.options_button.toggled.connect(self.set_expanded)
        self.options_button.setVisible(bool(plugin.params))
        self.form = ParamForm(plugin.params)
        self.form.changed.connect(self.changed)
        self.form.hide()
        self.runs_note = hint()
        self.runs_note.hide()

        schedule = QHBoxLayout()
        schedule.setContentsMargins(22, 0, 0, 0)  # under the check box's text
        schedule.addWidget(self.every_form, 1)
        schedule.addWidget(self.options_button, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.enabled_box)
        layout.addLayout(schedule)
        layout.addWidget(self.runs_note)
        layout.addWidget(indented(self.form))
        self.set_entry(None)

    def set_entry(self, raw: Mapping[str, Any] | None) -> None:
        """Load a `[[diagnostics]]` table, or None for disabled with the descriptor's defaults.

        A `runs` filter (the runs it applies to) has no editor here; it is kept and shown.
        """
        values = dict(raw or {})
        values.pop("id", None)
        self._runs = values.pop("runs", None)
        self.every_form.set_values({"every": values.pop("every", self.plugin.every)})
        self.form.set_values(values)
        self.runs_note.setText(f"only for runs: {self._runs}" if self._runs is not None else "")
        self.runs_note.setVisible(self._runs is not None)
        self.enabled_box.setChecked(raw is not None)
        self._toggled(raw is not None)

    def entry(self) -> dict[str, Any] | None:
        """The `[[diagnostics]]` table, or None when disabled."""
        if not self.enabled_box.isChecked():
            return None
        out = {"id": self.plugin.id, **self.every_form.values(), **self.form.table()}
        if self._runs is not None:
            out["runs"] = self._runs
        return out

    def every(self) -> int | None:
        """The schedule if it is a usable number (for the cost estimate), else None."""
        every = self.every_form.values()["every"]
        return every if isinstance(every, int) and every >= 1 else None

    def set_expanded(self, expanded: bool) -> None:
        self.options_button.setChecked(expanded)
        self.options_button.setArrowType(
            Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow
        )
        self.form.setVisible(expanded)

    def show_problem(self, rest: list[str | int], message: str) -> bool:
        """Show a problem whose path below `diagnostics[i]` is `rest`."""
        match rest:
            case ["every"]:
                return self.every_form.show_error("every", message)
            case [str(name), *more] if name in {p.name for p in self.plugin.params}:
                self.set_expanded(True)
                return self.form.show_error(
                    name, f"{name}{index_suffix(more)}: {message}" if more else message
                )
        return False

    def clear_errors(self) -> None:
        self.every_form.clear_errors()
        self.form.clear_errors()

    def _toggled(self, on: bool) -> None:
        self.every_form.setEnabled(on)
        self.options_button.setEnabled(on)
        self.form.setEnabled(on)
        self.changed.emit()
