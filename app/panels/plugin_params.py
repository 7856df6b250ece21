"""The parameter form of whichever plugin is chosen, and the small pieces the editors share.

The experiment panel (task), the run editor (optimizer, schedule) and the diagnostic rows all
show a plugin's parameters from its schema; `PluginParams` is that form, rebuilt on a new choice.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from descentlab.app.forms import ParamForm
from descentlab.engine.params import Param

HINT_STYLE = "color: #888; font-size: 11px;"


def plugin_table(raw: Any, default_id: str | None) -> tuple[str | None, dict[str, Any]]:
    """(id, params) of a plugin reference written as a table, a bare id string or nothing.

    Ids are made strings: a malformed id (a list) is shown as text and rejected by the validator
    rather than breaking the widgets that list plugins by id.
    """
    if isinstance(raw, str):
        return raw, {}
    if not isinstance(raw, Mapping):
        return default_id, {}
    params = dict(raw)
    plugin_id = params.pop("id", default_id)
    return (None if plugin_id is None else str(plugin_id)), params


def hint(text: str = "") -> QLabel:
    """A small grey explanatory label."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet(HINT_STYLE)
    return label


def discard(widget: QWidget) -> None:
    """Remove a replaced widget now: deleteLater alone leaves it painted over its successor
    until the event loop gets round to deleting it."""
    widget.hide()
    widget.setParent(None)
    widget.deleteLater()


def rich_tooltip(*paragraphs: str) -> str:
    """Paragraphs as a rich-text tooltip, which Qt word-wraps (plain tooltips run off-screen)."""
    return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs if p)


def indented(widget: QWidget) -> QWidget:
    """`widget` shifted right, so a plugin's parameters read as belonging to the row above."""
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(14, 0, 0, 4)
    layout.addWidget(widget)
    return box


class PluginParams(QWidget):
    """The parameter form of whichever plugin is selected, rebuilt when the selection changes.

    For an id the registry does not know there is no schema: the parameters are kept as they
    were written (and listed), so they survive a save and reach the validator, which names the id.
    """

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.form = ParamForm(())
        self._kept: dict[str, Any] | None = None
        self._note = hint()
        self._note.hide()
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self._note)
        self._layout.addWidget(self.form)

    def rebuild(self, schema: tuple[Param, ...] | None, values: Mapping[str, Any]) -> None:
        """Show the form of `schema` holding `values` (None: an unknown plugin, keep them)."""
        form = ParamForm(schema or (), values)
        form.changed.connect(self.changed)
        self._layout.replaceWidget(self.form, form)
        discard(self.form)
        self.form = form
        self._kept = None if schema is not None else dict(values)
        self._note.setVisible(self._kept is not None)
        kept = ", ".join(f"{k} = {v!r}" for k, v in (self._kept or {}).items())
        self._note.setText(
            "unknown id; its parameters are kept as written" + (f": {kept}" if kept else "")
        )

    def values(self) -> dict[str, Any]:
        return self.form.values() if self._kept is None else dict(self._kept)

    def table(self) -> dict[str, Any]:
        return self.form.table() if self._kept is None else dict(self._kept)
