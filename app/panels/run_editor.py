"""One run of an experiment: its name, optimizer (a searchable catalogue and its form) and
learning-rate schedule. The experiment panel holds one editor per run; the fork dialog one."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from descentlab.app.forms import (
    ERROR_COLOR,
    FieldFrame,
    ParamForm,
    WheelGuard,
    guard_wheel,
    select_data,
)
from descentlab.app.panels.plugin_params import PluginParams, indented, plugin_table, rich_tooltip
from descentlab.app.panels.spec_problems import index_suffix
from descentlab.engine import registry
from descentlab.engine.catalogue import needs_text
from descentlab.engine.plugin import OptimizerPlugin
from descentlab.engine.schedules import SCHEDULES
from descentlab.engine.spec import DEFAULT_OPTIMIZER

DEFAULT_SCHEDULE = "constant"


def optimizer_matches(plugin: OptimizerPlugin, query: str) -> bool:
    """Whether every word of `query` occurs in the optimizer's id, title, family or reference.

    Searching the reference lets a user find methods by paper or author ("Kingma", "Nesterov"),
    and the family by kind ("adaptive"); words narrow the result, as in a search box.
    """
    haystack = " ".join((plugin.id, plugin.title, plugin.family, plugin.reference)).casefold()
    return all(word in haystack for word in query.casefold().split())


def needs_sentence(plugin: OptimizerPlugin) -> str:
    """What the training loop does for this optimizer, as a tooltip sentence ("" for nothing);
    the list is the catalogue's (`engine.catalogue.needs_text`), as `descentlab list` prints it."""
    needs = needs_text(plugin)
    return f"Needs: {needs}." if needs else ""


class OptimizerCatalogue(QWidget):
    """The optimizer in use, and a searchable list of every registered one to pick another.

    The search matches id, title, family and paper (see `optimizer_matches`); Enter in the search
    box picks the first match. `selected` fires only on the user's pick.
    """

    selected = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._plugins = registry.plugins("optimizers")
        self._current = ""
        self.current_label = QLabel()
        self.current_label.setWordWrap(True)
        self.current_label.setTextFormat(Qt.TextFormat.RichText)
        self.search = QLineEdit()
        self.search.setPlaceholderText("search: name, family, paper, author…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._filter)
        self.search.returnPressed.connect(self._pick_first_match)
        self.list = QListWidget()
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        for pid, plugin in self._plugins.items():
            item = QListWidgetItem(f"{pid} — {plugin.title} · {plugin.family}")
            item.setData(Qt.ItemDataRole.UserRole, pid)
            item.setToolTip(rich_tooltip(plugin.summary, plugin.reference, needs_sentence(plugin)))
            self.list.addItem(item)
        rows = min(6, max(self.list.count(), 1))
        self.list.setFixedHeight(self.list.sizeHintForRow(0) * rows + 2 * self.list.frameWidth())
        self.list.itemClicked.connect(self._pick)
        self.list.itemActivated.connect(self._pick)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addWidget(self.current_label)
        layout.addWidget(self.search)
        layout.addWidget(self.list)

    def current_id(self) -> str:
        return self._current

    def set_current(self, plugin_id: str) -> None:
        """Show `plugin_id` as the optimizer in use (without emitting `selected`)."""
        self._current = plugin_id
        plugin = self._plugins.get(plugin_id)
        if plugin is None:
            self.current_label.setText(
                f"<b>{html.escape(plugin_id)}</b> — "
                f"<span style='color:{ERROR_COLOR}'>unknown optimizer</span>"
            )
            self.current_label.setToolTip("")
            self.list.clearSelection()
            return
        self.current_label.setText(
            f"<b>{html.escape(plugin.title)}</b> · {html.escape(plugin.family)}"
            f"<br><small>{html.escape(plugin.reference)}</small>"
        )
        self.current_label.setToolTip(rich_tooltip(plugin.summary, needs_sentence(plugin)))
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == plugin_id:
                self.list.setCurrentItem(item)

    def visible_ids(self) -> list[str]:
        """Ids the search currently lets through, in list order."""
        return [
            self.list.item(row).data(Qt.ItemDataRole.UserRole)
            for row in range(self.list.count())
            if not self.list.item(row).isHidden()
        ]

    def _filter(self, text: str) -> None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            plugin = self._plugins[item.data(Qt.ItemDataRole.UserRole)]
            item.setHidden(not optimizer_matches(plugin, text))

    def _pick_first_match(self) -> None:
        matches = self.visible_ids()
        if matches:
            self._choose(matches[0])

    def _pick(self, item: QListWidgetItem) -> None:
        self._choose(item.data(Qt.ItemDataRole.UserRole))

    def _choose(self, plugin_id: str) -> None:
        if plugin_id != self._current:
            self.set_current(plugin_id)
            self.selected.emit(plugin_id)


class RunEditor(QWidget):
    """One run: its name, optimizer (catalogue + form) and learning-rate schedule (combo + form).

    A run added with the Add button is auto-named after its optimizer until the user types a
    name, so picking "sgd" for a fresh run does not leave it called "adam".
    """

    changed = Signal()
    optimizer_changed = Signal(str)

    def __init__(self, raw: Any, auto_named: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.auto_named = auto_named
        self._loading = True
        self.name_edit = QLineEdit()
        self.name_edit.setToolTip(
            "Run name: letters, digits and _ . + - (no spaces or slashes); unique in the spec."
        )
        self.name_edit.textEdited.connect(self._name_typed)
        self.name_field = FieldFrame(self.name_edit)
        self.catalogue = OptimizerCatalogue()
        self.catalogue.selected.connect(self._optimizer_picked)
        self.optimizer_field = FieldFrame(self.catalogue)
        self.optimizer_params = PluginParams()
        self.optimizer_params.changed.connect(self.changed)
        self.schedule_combo = QComboBox()
        guard_wheel(self.schedule_combo, WheelGuard(self))
        for sid in SCHEDULES:
            self.schedule_combo.addItem(sid, sid)
        self.schedule_combo.setToolTip("Learning-rate schedule: a multiplier of the base rate.")
        self.schedule_combo.currentIndexChanged.connect(self._schedule_picked)
        self.schedule_field = FieldFrame(self.schedule_combo)
        self.schedule_params = PluginParams()
        self.schedule_params.changed.connect(self.changed)

        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout.addRow("name", self.name_field)
        layout.addRow("optimizer", self.optimizer_field)
        layout.addRow(indented(self.optimizer_params))
        layout.addRow("schedule", self.schedule_field)
        layout.addRow(indented(self.schedule_params))
        self.set_run(raw)

    def set_run(self, raw: Any) -> None:
        """Load a `[[runs]]` table; missing parts get the validator's defaults."""
        raw = raw if isinstance(raw, Mapping) else {}
        opt_id, opt_params = plugin_table(raw.get("optimizer"), DEFAULT_OPTIMIZER)
        sched_id, sched_params = plugin_table(raw.get("schedule"), DEFAULT_SCHEDULE)
        self._loading = True
        try:
            self.name_edit.setText(str(raw.get("name", opt_id)))
            self._set_optimizer(opt_id or "", opt_params)
            select_data(self.schedule_combo, sched_id, f"{sched_id} (unknown)")
            self.schedule_params.rebuild(SCHEDULES.get(sched_id or ""), sched_params)
        finally:
            self._loading = False

    def run_dict(self) -> dict[str, Any]:
        """The run as a `[[runs]]` table."""
        return {
            "name": self.name(),
            "optimizer": {"id": self.optimizer_id(), **self.optimizer_params.table()},
            "schedule": {"id": self.schedule_combo.currentData(), **self.schedule_params.table()},
        }

    def name(self) -> str:
        return self.name_edit.text().strip()

    def set_name(self, name: str) -> None:
        self.name_edit.setText(name)
        self.changed.emit()

    def optimizer_id(self) -> str:
        return self.catalogue.current_id()

    def set_optimizer(self, plugin_id: str) -> None:
        """Switch optimizer as a user pick does, keeping the values of same-named parameters."""
        self._optimizer_picked(plugin_id)

    @property
    def optimizer_form(self) -> ParamForm:
        return self.optimizer_params.form

    @property
    def schedule_form(self) -> ParamForm:
        return self.schedule_params.form

    def show_problem(self, rest: list[str | int], message: str) -> bool:
        """Show a problem whose path below `runs[i]` is `rest`; False when no widget holds it."""
        match rest:
            case ["name"]:
                self.name_field.show_error(message)
            case ["optimizer"] | ["optimizer", "id"]:
                self.optimizer_field.show_error(message)
            case ["schedule"] | ["schedule", "id"]:
                self.schedule_field.show_error(message)
            case ["optimizer" | "schedule" as part, str(name), *more]:
                form = self.optimizer_form if part == "optimizer" else self.schedule_form
                return form.show_error(
                    name, f"{name}{index_suffix(more)}: {message}" if more else message
                )
            case _:
                return False
        return True

    def clear_errors(self) -> None:
        for frame in (self.name_field, self.optimizer_field, self.schedule_field):
            frame.clear_error()
        self.optimizer_form.clear_errors()
        self.schedule_form.clear_errors()

    def _set_optimizer(self, plugin_id: str, values: Mapping[str, Any]) -> None:
        self.catalogue.set_current(plugin_id)
        plugin = registry.plugins("optimizers").get(plugin_id)
        self.optimizer_params.rebuild(None if plugin is None else plugin.params, values)

    def _optimizer_picked(self, plugin_id: str) -> None:
        plugin = registry.plugins("optimizers").get(plugin_id)
        names = {p.name for p in plugin.params} if plugin else set()
        kept = {k: v for k, v in self.optimizer_params.values().items() if k in names}
        self._set_optimizer(plugin_id, kept)
        self.optimizer_field.clear_error()
        self.optimizer_changed.emit(plugin_id)
        self.changed.emit()

    def _schedule_picked(self) -> None:
        if self._loading:
            return
        sid = self.schedule_combo.currentData()
        names = {p.name for p in SCHEDULES.get(sid, ())}
        kept = {k: v for k, v in self.schedule_params.values().items() if k in names}
        self.schedule_params.rebuild(SCHEDULES.get(sid), kept)
        self.schedule_field.clear_error()
        self.changed.emit()

    def _name_typed(self) -> None:
        self.auto_named = False
        self.name_field.clear_error()
        self.changed.emit()
