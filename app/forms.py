"""Forms built from plugin parameter schemas (the spec validator checks the same schema).

Each `Param` gets the editor its type calls for, a tooltip saying what it accepts, and room for
a validation message right under it. Fields hand back what the user typed, converted to Python
types where the text allows, and never correct it: the spec validator is the single judge of
admissibility, so the GUI rejects exactly what `descentlab run` rejects, with the same words.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QEvent, QObject, QRegularExpression, Qt, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from descentlab.engine.params import Param

ERROR_COLOR = "#d32f2f"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
SLIDER_STEPS_PER_DECADE = 20
"""Resolution of log sliders: 20 positions per decade, shown with 2 significant digits, gives
the familiar 1, 1.1, 1.3, … 5, 5.6, 6.3 … ladder; finer values are typed into the box."""

_FLOAT_TEXT = QRegularExpression(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INT_TEXT = QRegularExpression(r"[+-]?\d+")
_FLOATS_TEXT = QRegularExpression(r"[\d\s,.eE+\-\[\]]*")
_INTS_TEXT = QRegularExpression(r"[\d\s,+\-\[\]]*")


def tooltip(param: Param) -> str:
    """Help text plus the admissible values, in the validator's own words.

    Rich text on purpose: Qt word-wraps rich tooltips only, and help texts run to a paragraph.
    """
    unset = " Leave empty for unset." if param.nullable else ""
    return (
        f"<p><b>{html.escape(param.name)}</b>: {html.escape(param.help)}</p>"
        f"<p>Allowed: {html.escape(param.allowed())}.{unset}</p>"
    )


def format_value(value: Any) -> str:
    """Text for a value in a line edit; `repr` keeps floats exact (1e-08, 0.001) for round trips."""
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return "" if value is None else str(value)


def parse_number(text: str, integer: bool) -> Any:
    """The number in `text`, or `text` itself when it is none, so the validator can name it."""
    try:
        return int(text) if integer else float(text)
    except ValueError:
        return text


def parse_list(text: str, integer: bool) -> list[Any] | None:
    """Comma-separated numbers (brackets optional); empty text is None, i.e. unset."""
    items = [t.strip() for t in text.strip().strip("[]").split(",")]
    values = [parse_number(t, integer) for t in items if t]
    return values if values or text.strip() else None


class WheelGuard(QObject):
    """Lets the wheel scroll the panel instead of changing a value the pointer merely crosses.

    Spin boxes, combo boxes and sliders take wheel events only once the user has focused them,
    which is what makes long forms inside a scroll area safe to scroll through.
    """

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            event.type() == QEvent.Type.Wheel
            and isinstance(watched, QWidget)
            and not watched.hasFocus()
        ):
            event.ignore()
            return True
        return super().eventFilter(watched, event)


def guard_wheel(widget: QWidget, guard: WheelGuard) -> None:
    """Apply `guard` to `widget` (and make it focusable by click, so a click arms the wheel)."""
    widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    widget.installEventFilter(guard)


class FieldFrame(QFrame):
    """An editor with a red frame and a small red message under it while it holds an error."""

    def __init__(self, editor: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("fieldFrame")
        self.setProperty("error", False)
        self.setStyleSheet(
            f'QFrame#fieldFrame[error="true"] {{ border: 1px solid {ERROR_COLOR};'
            " border-radius: 3px; }"
        )
        self._message = QLabel()
        self._message.setWordWrap(True)
        self._message.setTextFormat(Qt.TextFormat.PlainText)
        self._message.setStyleSheet(f"color: {ERROR_COLOR}; font-size: 11px;")
        self._message.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)  # the frame's room, so showing it shifts nothing
        layout.setSpacing(1)
        layout.addWidget(editor)
        layout.addWidget(self._message)

    def show_error(self, message: str) -> None:
        """Show `message`; further messages for the same field (betas[0], betas[1]) add lines."""
        current = self._message.text()
        self._message.setText(f"{current}\n{message}" if current else message)
        self._message.show()
        self._set_flag(True)

    def clear_error(self) -> None:
        self._message.clear()
        self._message.hide()
        self._set_flag(False)

    def error_text(self) -> str:
        return self._message.text()

    def _set_flag(self, on: bool) -> None:
        if self.property("error") != on:
            self.setProperty("error", on)
            self.style().unpolish(self)
            self.style().polish(self)


@dataclass
class _Field:
    """One parameter's editor and the two conversions between it and Python values."""

    param: Param
    frame: FieldFrame
    editor: QWidget
    read: Callable[[], Any]
    write: Callable[[Any], None]
    slider: QSlider | None = None


class ParamForm(QWidget):
    """Editors for a plugin's parameter schema, in schema order.

    float → line edit accepting 1e-3 (plus a log slider for log-scale parameters with positive
    finite bounds), int → spin box (a line edit when the range exceeds 32 bits or the value may
    be unset), bool → check box (three-state when nullable), choice → combo box, str → line edit
    (an editable combo when `suggestions` names values for it), floats/ints → comma-separated
    numbers. An empty field of a nullable parameter means None (unset).

    `changed` fires on every edit, user or slider, but not during `set_values`, so a form that
    is being loaded does not look edited.
    """

    changed = Signal()

    def __init__(
        self,
        params: Sequence[Param],
        values: Mapping[str, Any] | None = None,
        parent: QWidget | None = None,
        *,
        suggestions: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__(parent)
        self._params = tuple(params)
        self._fields: dict[str, _Field] = {}
        self._loading = False
        self._wheel_guard = WheelGuard(self)
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        for p in self._params:
            field = self._build(p, (suggestions or {}).get(p.name))
            field.editor.setToolTip(tooltip(p))
            label = QLabel(p.name)
            label.setToolTip(tooltip(p))
            label.setContentsMargins(0, 5, 0, 0)  # level with the editor inside its frame
            layout.addRow(label, field.frame)
            self._fields[p.name] = field
        self.set_values(values or {})

    @property
    def params(self) -> tuple[Param, ...]:
        return self._params

    def values(self) -> dict[str, Any]:
        """Every parameter's current value as typed: numbers where the text is one, else the
        text itself, None for an empty field; out-of-range values are kept for the validator."""
        return {name: field.read() for name, field in self._fields.items()}

    def table(self) -> dict[str, Any]:
        """`values()` as a TOML table: unset nullable parameters are left out (TOML has no null,
        an omitted key is how a spec says "unset"). An empty required field stays None, so the
        validator reports it instead of quietly using the default."""
        return {
            name: value
            for name, value in self.values().items()
            if value is not None or not self._fields[name].param.nullable
        }

    def set_values(self, values: Mapping[str, Any]) -> None:
        """Show `values`; parameters missing from it get their defaults. Clears the errors."""
        self._loading = True
        try:
            for p in self._params:
                self._fields[p.name].write(values.get(p.name, p.default))
        finally:
            self._loading = False
        self.clear_errors()

    def show_error(self, name: str, message: str) -> bool:
        """Mark the field `name` with `message`; False when there is no such field."""
        if name not in self._fields:
            return False
        self._fields[name].frame.show_error(message)
        return True

    def clear_errors(self) -> None:
        for field in self._fields.values():
            field.frame.clear_error()

    def error_text(self, name: str) -> str:
        """The message shown under the field `name` ('' when none)."""
        return self._fields[name].frame.error_text()

    def editor(self, name: str) -> QWidget:
        """The input widget of `name` (for focusing it, and for tests)."""
        return self._fields[name].editor

    def slider(self, name: str) -> QSlider | None:
        """The log slider of `name`, if it has one."""
        return self._fields[name].slider

    # -- building -----------------------------------------------------------------------------

    def _edited(self, name: str) -> None:
        """An edit makes the field's old error stale: hide it, and tell the owner."""
        if self._loading:
            return
        self._fields[name].frame.clear_error()
        self.changed.emit()

    def _guarded(self, widget: QWidget) -> QWidget:
        guard_wheel(widget, self._wheel_guard)
        return widget

    def _build(self, p: Param, suggestions: Sequence[str] | None) -> _Field:
        if p.type == "float":
            return self._float_field(p)
        if p.type == "int":
            low = INT32_MIN if p.low is None else p.low
            high = INT32_MAX if p.high is None else p.high
            if p.nullable or low < INT32_MIN or high > INT32_MAX:
                return self._text_field(p, _INT_TEXT, lambda t: parse_number(t, True))
            return self._int_field(p, int(low), int(high))
        if p.type == "bool":
            return self._bool_field(p)
        if p.type == "choice":
            return self._choice_field(p)
        if p.type in ("floats", "ints"):
            integer = p.type == "ints"
            pattern = _INTS_TEXT if integer else _FLOATS_TEXT
            return self._text_field(p, pattern, lambda t: parse_list(t, integer))
        if suggestions:
            return self._suggestion_field(p, suggestions)
        return self._text_field(p, None, lambda t: t)

    def _line_edit(
        self, p: Param, pattern: QRegularExpression | None, parse: Callable[[str], Any]
    ) -> tuple[QLineEdit, Callable[[], Any]]:
        edit = QLineEdit()
        if pattern is not None:
            edit.setValidator(QRegularExpressionValidator(pattern, edit))
            # room for a typical number, so a narrow panel wraps the row instead of hiding digits
            edit.setMinimumWidth(edit.fontMetrics().horizontalAdvance("0.000000") + 12)
        if p.nullable:
            edit.setPlaceholderText("unset")
        edit.textChanged.connect(lambda _text: self._edited(p.name))

        def read() -> Any:
            text = edit.text().strip()
            if not text and (p.nullable or p.type != "str"):
                return None
            return parse(text)

        return edit, read

    def _text_field(
        self, p: Param, pattern: QRegularExpression | None, parse: Callable[[str], Any]
    ) -> _Field:
        edit, read = self._line_edit(p, pattern, parse)
        return _Field(p, FieldFrame(edit), edit, read, lambda v: edit.setText(format_value(v)))

    def _float_field(self, p: Param) -> _Field:
        edit, read = self._line_edit(p, _FLOAT_TEXT, lambda t: parse_number(t, False))

        def write(value: Any) -> None:
            edit.setText(format_value(value))

        if not (p.log and p.low is not None and p.high is not None and 0 < p.low < p.high):
            return _Field(p, FieldFrame(edit), edit, read, write)
        lo, hi = math.log10(p.low), math.log10(p.high)
        positions = max(1, round((hi - lo) * SLIDER_STEPS_PER_DECADE))
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(0, positions)
        slider.setPageStep(SLIDER_STEPS_PER_DECADE)
        slider.setMinimumWidth(60)
        slider.setToolTip(f"log scale, {p.low:g} … {p.high:g}")
        self._guarded(slider)

        def from_slider(position: int) -> None:
            value = 10 ** (lo + (hi - lo) * position / positions)
            edit.setText(format_value(min(max(float(f"{value:.2g}"), p.low), p.high)))

        def to_slider(text: str) -> None:
            value = parse_number(text.strip(), integer=False)
            if isinstance(value, float) and value > 0 and math.isfinite(value):
                position = round((math.log10(value) - lo) / (hi - lo) * positions)
                slider.blockSignals(True)
                slider.setValue(min(max(position, 0), positions))
                slider.blockSignals(False)

        slider.valueChanged.connect(from_slider)
        edit.textChanged.connect(to_slider)
        row = QWidget()
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(edit, 2)
        box.addWidget(slider, 3)
        return _Field(p, FieldFrame(row), edit, read, write, slider)

    def _int_field(self, p: Param, low: int, high: int) -> _Field:
        spin = self._guarded(QSpinBox())
        assert isinstance(spin, QSpinBox)
        spin.setRange(low, high)
        spin.valueChanged.connect(lambda _value: self._edited(p.name))

        def write(value: Any) -> None:
            # A loaded value outside the schema's bounds widens the range rather than being
            # clamped: the validator then names it, instead of the form silently changing it.
            if isinstance(value, int) and not isinstance(value, bool):
                value = min(max(value, INT32_MIN), INT32_MAX)
                spin.setRange(min(low, value), max(high, value))
                spin.setValue(value)
            else:
                spin.setRange(low, high)
                spin.setValue(p.default)

        return _Field(p, FieldFrame(spin), spin, spin.value, write)

    def _bool_field(self, p: Param) -> _Field:
        box = QCheckBox()
        box.setTristate(p.nullable)
        box.stateChanged.connect(lambda _state: self._edited(p.name))
        states = {True: Qt.CheckState.Checked, False: Qt.CheckState.Unchecked}

        def read() -> bool | None:
            state = box.checkState()
            return None if state == Qt.CheckState.PartiallyChecked else state == states[True]

        def write(value: Any) -> None:
            if value is None and p.nullable:
                box.setCheckState(Qt.CheckState.PartiallyChecked)
            else:
                box.setCheckState(states[value if isinstance(value, bool) else bool(p.default)])

        return _Field(p, FieldFrame(box), box, read, write)

    def _choice_field(self, p: Param) -> _Field:
        combo = self._guarded(QComboBox())
        assert isinstance(combo, QComboBox)
        if p.nullable:
            combo.addItem("(unset)", None)
        for choice in p.choices:
            combo.addItem(choice, choice)
        combo.currentIndexChanged.connect(lambda _index: self._edited(p.name))

        def write(value: Any) -> None:
            select_data(combo, value, str(value))

        return _Field(p, FieldFrame(combo), combo, combo.currentData, write)

    def _suggestion_field(self, p: Param, suggestions: Sequence[str]) -> _Field:
        combo = self._guarded(QComboBox())
        assert isinstance(combo, QComboBox)
        combo.setEditable(True)
        combo.addItems(list(suggestions))
        combo.currentTextChanged.connect(lambda _text: self._edited(p.name))
        return _Field(
            p,
            FieldFrame(combo),
            combo,
            combo.currentText,
            lambda v: combo.setCurrentText(format_value(v)),
        )


_ADDED_ROLE = Qt.ItemDataRole.UserRole + 1


def select_data(combo: QComboBox, data: Any, text: str) -> None:
    """Select the item holding `data`, adding it (as `text`) when the combo has none.

    A value the combo does not offer (an unknown id from a file) is kept and shown rather than
    replaced by the first item, so the validator reports it instead of the form hiding it.
    Items added this way for an earlier value are dropped, so they do not pile up.
    """
    for index in reversed(range(combo.count())):
        if combo.itemData(index, _ADDED_ROLE) and combo.itemData(index) != data:
            combo.removeItem(index)
    index = combo.findData(data)
    if index < 0:
        combo.addItem(text, data)
        index = combo.count() - 1
        combo.setItemData(index, True, _ADDED_ROLE)
    combo.setCurrentIndex(index)
