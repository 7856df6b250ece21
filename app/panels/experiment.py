"""The experiment editor: one spec's task, runs, diagnostics and general settings.

The panel edits the TOML-shaped dict of a spec file (README.md, Experiments) and leaves every
judgement to the engine's validator (`parse_spec`): it maps each problem's field path back to the
widget that holds the value and shows the message there, so the GUI and `descentlab run` accept
exactly the same specs.
Values the form cannot offer (an unknown plugin id from a file) are kept and shown rather than
replaced, so the validator names them instead of the editor silently changing the experiment.

Its parts live beside it: `run_editor` (one run), `diagnostic_row` (one diagnostic),
`plugin_params` (a plugin's form), `spec_problems` (problem paths and the summary), `spec_file`
(reading and writing TOML); the cost estimate is the engine's (`engine.cost`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QStyle,
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
from descentlab.app.panels.diagnostic_row import DiagnosticRow
from descentlab.app.panels.plugin_params import (
    PluginParams,
    discard,
    hint,
    indented,
    plugin_table,
    rich_tooltip,
)
from descentlab.app.panels.run_editor import RunEditor
from descentlab.app.panels.spec_file import default_spec, read_spec_file, spec_toml
from descentlab.app.panels.spec_problems import index_suffix, parse_path, problems_by_run, summary
from descentlab.engine import registry
from descentlab.engine.cost import COST_STEPS, describe_overhead, estimate_overhead
from descentlab.engine.plugin import DiagnosticPlugin
from descentlab.engine.spec import (
    DEFAULT_OPTIMIZER,
    PYTHON_TASK,
    TOP_PARAMS,
    ExperimentSpec,
    SpecError,
    parse_spec,
)


def device_suggestions() -> tuple[str, ...]:
    """Devices offered in the editable device combo: the generic ones and this machine's GPUs.

    cuda:0 is offered even without a GPU, since a spec is often written for another machine.
    """
    gpus = [f"cuda:{i}" for i in range(max(torch.cuda.device_count(), 1))]
    mps = ["mps"] if torch.backends.mps.is_available() else []
    return ("auto", "cpu", "cuda", *gpus, *mps)


class ExperimentPanel(QWidget):
    """Editor of one experiment spec: general settings, task, runs, diagnostics.

    `spec_dict()` is the TOML-shaped dict the form holds; `validate()` hands it to the engine's
    validator and marks each problem on its field. `changed` fires on user edits only, not on
    `set_spec`/`open_file`, so an owner can track unsaved changes with it.
    """

    changed = Signal()

    def __init__(
        self, spec: Mapping[str, Any] | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setMinimumWidth(320)
        self._loading = False
        self._editors: list[RunEditor] = []
        self._claims: list[Any] = []
        self._task_args: Any = None
        self._tasks = registry.plugins("tasks")

        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(Qt.TextFormat.PlainText)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary_label.setStyleSheet(
            f"color: {ERROR_COLOR}; border: 1px solid {ERROR_COLOR}; border-radius: 3px;"
            " padding: 4px;"
        )
        self.summary_label.hide()

        content = QWidget()
        column = QVBoxLayout(content)
        column.setContentsMargins(6, 6, 6, 6)
        column.addWidget(self._general_group())
        column.addWidget(self._task_group())
        column.addWidget(self._runs_group())
        column.addWidget(self._diagnostics_group())
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.summary_label)
        layout.addWidget(scroll, 1)
        self.set_spec(default_spec() if spec is None else spec)

    # -- building -----------------------------------------------------------------------------

    def _general_group(self) -> QGroupBox:
        group = QGroupBox("Experiment")
        top = tuple(TOP_PARAMS[key] for key in ("name", "seed", "steps", "device", "dtype"))
        self.general_form = ParamForm(top, suggestions={"device": device_suggestions()})
        self.general_form.changed.connect(self._edited)
        QVBoxLayout(group).addWidget(self.general_form)
        return group

    def _task_group(self) -> QGroupBox:
        group = QGroupBox("Task")
        self.task_combo = QComboBox()
        guard_wheel(self.task_combo, WheelGuard(self))
        for tid, plugin in self._tasks.items():
            self.task_combo.addItem(f"{plugin.title} ({tid})", tid)
            index = self.task_combo.count() - 1
            tip = rich_tooltip(plugin.summary, plugin.reference)
            self.task_combo.setItemData(index, tip, Qt.ItemDataRole.ToolTipRole)
        # sized by a short minimum, not by the longest title, so it stays beside its label
        self.task_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.task_combo.setMinimumContentsLength(16)
        self.task_combo.currentIndexChanged.connect(self._task_picked)
        self.task_field = FieldFrame(self.task_combo)
        self.task_params = PluginParams()
        self.task_params.changed.connect(self._edited)
        layout = QFormLayout(group)
        layout.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout.addRow("task", self.task_field)
        layout.addRow(indented(self.task_params))
        return group

    def _runs_group(self) -> QGroupBox:
        group = QGroupBox("Runs")
        group.setToolTip(
            "The runs of an experiment share the initial weights and the batch order, so their"
            " differences come from the optimizer alone."
        )
        self.runs_list = QListWidget()
        self.runs_list.setMaximumHeight(5 * self.runs_list.fontMetrics().lineSpacing() + 8)
        self.runs_list.currentRowChanged.connect(self._show_run)
        self.add_button = QPushButton("Add")
        self.add_button.setToolTip("Add a run with the default optimizer.")
        self.add_button.clicked.connect(self.add_run)
        self.duplicate_button = QPushButton("Duplicate")
        self.duplicate_button.setToolTip("Copy the selected run, to vary one setting.")
        self.duplicate_button.clicked.connect(self.duplicate_run)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected run (a spec keeps at least one).")
        self.remove_button.clicked.connect(self.remove_run)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.duplicate_button, self.remove_button):
            buttons.addWidget(button)
        self._editor_box = QVBoxLayout()
        self._editor_box.setContentsMargins(0, 6, 0, 0)
        layout = QVBoxLayout(group)
        layout.addWidget(self.runs_list)
        layout.addLayout(buttons)
        layout.addLayout(self._editor_box)
        return group

    def _diagnostics_group(self) -> QGroupBox:
        group = QGroupBox("Diagnostics")
        self._rows = {d.id: DiagnosticRow(d) for d in registry.plugins("diagnostics").values()}
        self._row_box = QVBoxLayout()
        self._row_box.setSpacing(6)
        for row in self._rows.values():
            row.changed.connect(self._diagnostics_edited)
            self._row_box.addWidget(row)
        self.cost_label = hint()
        self.cost_label.setToolTip(
            rich_tooltip(
                "A rough estimate from each diagnostic's declared cost class: free ≈ 0, "
                f"cheap ≈ {COST_STEPS['cheap']:g} and heavy ≈ {COST_STEPS['heavy']:g} training "
                "steps per record, divided by its `every`. Real costs depend on the model, "
                "the batch and the device."
            )
        )
        layout = QVBoxLayout(group)
        layout.addLayout(self._row_box)
        layout.addWidget(self.cost_label)
        return group

    # -- the spec -----------------------------------------------------------------------------

    def set_spec(self, data: Mapping[str, Any]) -> None:
        """Load a spec dict (parsed TOML or `ExperimentSpec.to_dict()`) into the form.

        What the validator finds wrong with `data` is shown at once, including what the form
        could not hold (unknown keys), so nothing is dropped without a word.
        """
        data = data if isinstance(data, Mapping) else {}
        self._loading = True
        try:
            self.general_form.set_values({k: data[k] for k in TOP_PARAMS if k in data})
            task_id, task_values = plugin_table(data.get("task"), None)
            # a python task's [task.args] (its factory's keywords) has no form: kept as loaded
            self._task_args = task_values.pop("args", None) if task_id == PYTHON_TASK else None
            self._set_task(task_id or next(iter(self._tasks), ""), task_values)
            self._set_runs(data.get("runs"))
            self._set_diagnostics(data.get("diagnostics"))
            # Claims (gallery presets) have no form: they are kept as loaded and checked by the
            # validator, so renaming a run they name is reported, not silently dropped.
            claims = data.get("claims")
            self._claims = list(claims) if isinstance(claims, list) else []
        finally:
            self._loading = False
        self._update_cost()
        self._report(data)

    def spec_dict(self) -> dict[str, Any]:
        """The form as a TOML-shaped spec dict, values as typed (the validator judges them).

        Unset nullable parameters are omitted; an emptied required field is None, which only
        `validate()` sees (`save_file` leaves it out, TOML having no null).
        """
        spec = {
            **self.general_form.values(),
            "task": {"id": self.task_combo.currentData(), **self.task_params.table()},
            "runs": [editor.run_dict() for editor in self._editors],
            "diagnostics": [entry for row in self._ordered_rows() if (entry := row.entry())],
        }
        if self._claims:
            spec["claims"] = self._claims
        if self._task_args is not None and spec["task"]["id"] == PYTHON_TASK:
            spec["task"]["args"] = self._task_args
        return spec

    def validate(self) -> ExperimentSpec | None:
        """The validated spec, or None after marking every problem on its field."""
        data = self.spec_dict()
        self._clear_problems()
        try:
            return parse_spec(data)
        except SpecError as exc:
            self._show_problems(exc.problems, data["diagnostics"])
            return None

    def open_file(self, path: str | Path) -> bool:
        """Load a TOML spec; False, with the reason in the summary, when it cannot be read.

        A file that is not TOML leaves the current spec untouched; one that is TOML but invalid
        is loaded, its problems marked, so it can be repaired here.
        """
        try:
            data = read_spec_file(path)
        except SpecError as exc:
            self._show_summary(f"Not opened; the current spec is unchanged.\n{exc}")
            return False
        self.set_spec(data)
        return True

    def save_file(self, path: str | Path) -> bool:
        """Write the form as TOML; True when written. A spec with problems is still written
        (a draft is never lost) and its problems are marked."""
        text = spec_toml(self.spec_dict())
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as exc:
            self._show_summary(f"Not saved: {path}: cannot write the file: {exc.strerror or exc}")
            return False
        self.validate()
        return True

    # -- accessors ----------------------------------------------------------------------------

    @property
    def task_form(self) -> ParamForm:
        return self.task_params.form

    def run_count(self) -> int:
        return len(self._editors)

    def run_editor(self, index: int) -> RunEditor:
        return self._editors[index]

    def current_run(self) -> int:
        """Index of the run whose editor is shown (-1 when there is none)."""
        return self.runs_list.currentRow()

    def diagnostic_row(self, diagnostic_id: str) -> DiagnosticRow:
        return self._rows[diagnostic_id]

    def estimated_overhead(self) -> float:
        """Estimated extra time per step of the enabled diagnostics (1.0 = twice as slow)."""
        return estimate_overhead(self._enabled_schedules())[0]

    # -- runs ---------------------------------------------------------------------------------

    def add_run(self) -> None:
        """Append a run with the default optimizer, named after it until the user renames it."""
        raw = {"name": self._unique_name(DEFAULT_OPTIMIZER), "optimizer": DEFAULT_OPTIMIZER}
        self._insert_run(len(self._editors), raw, auto_named=True)
        self._edited()

    def duplicate_run(self) -> None:
        """Insert a copy of the selected run after it, under a fresh name."""
        row = self.current_run()
        if row < 0:
            return
        raw = self._editors[row].run_dict()
        raw["name"] = self._unique_name(raw["name"])
        self._insert_run(row + 1, raw)
        self._edited()

    def remove_run(self) -> None:
        """Remove the selected run; the last one stays, since a spec needs at least one."""
        row = self.current_run()
        if row < 0 or len(self._editors) <= 1:
            return
        editor = self._editors.pop(row)
        self._editor_box.removeWidget(editor)
        discard(editor)
        self.runs_list.takeItem(row)
        self.runs_list.setCurrentRow(min(row, len(self._editors) - 1))
        self._update_run_buttons()
        self._edited()

    def _set_runs(self, raw: Any) -> None:
        for editor in self._editors:
            self._editor_box.removeWidget(editor)
            discard(editor)
        self._editors.clear()
        self.runs_list.clear()
        if raw is None:  # the validator's default: one run of the default optimizer
            raw = [{"name": DEFAULT_OPTIMIZER, "optimizer": DEFAULT_OPTIMIZER}]
        for item in raw if isinstance(raw, list) else []:
            self._insert_run(len(self._editors), item)
        self.runs_list.setCurrentRow(0 if self._editors else -1)
        self._update_run_buttons()

    def _insert_run(self, row: int, raw: Any, auto_named: bool = False) -> None:
        editor = RunEditor(raw, auto_named)
        editor.changed.connect(lambda: self._run_edited(editor))
        editor.optimizer_changed.connect(lambda _id: self._rename_if_auto(editor))
        self._editors.insert(row, editor)
        self._editor_box.insertWidget(row, editor)
        self.runs_list.insertItem(row, QListWidgetItem())
        self._label_run(row)
        self.runs_list.setCurrentRow(row)
        self._show_run(row)
        self._update_run_buttons()

    def _show_run(self, row: int) -> None:
        for i, editor in enumerate(self._editors):
            editor.setVisible(i == row)

    def _run_edited(self, editor: RunEditor) -> None:
        self._label_run(self._editors.index(editor))
        self._edited()

    def _rename_if_auto(self, editor: RunEditor) -> None:
        if editor.auto_named:
            editor.set_name(self._unique_name(editor.optimizer_id(), editor))

    def _label_run(self, row: int) -> None:
        editor = self._editors[row]
        self.runs_list.item(row).setText(
            f"{editor.name() or '(unnamed)'}  ·  {editor.optimizer_id()}"
        )

    def _unique_name(self, base: str, skip: RunEditor | None = None) -> str:
        """`base`, or `base-2`, `base-3`, … (counting on from an existing suffix), unused so far."""
        taken = {e.name() for e in self._editors if e is not skip}
        if base not in taken:
            return base
        match = re.fullmatch(r"(.*)-(\d+)", base)
        stem, n = (match.group(1), int(match.group(2)) + 1) if match else (base, 2)
        while f"{stem}-{n}" in taken:
            n += 1
        return f"{stem}-{n}"

    def _update_run_buttons(self) -> None:
        has_run = bool(self._editors)
        self.duplicate_button.setEnabled(has_run)
        self.remove_button.setEnabled(len(self._editors) > 1)

    # -- task and diagnostics -----------------------------------------------------------------

    def _set_task(self, task_id: str, values: Mapping[str, Any]) -> None:
        self.task_combo.blockSignals(True)
        select_data(self.task_combo, task_id, f"{task_id} (unknown task)")
        self.task_combo.blockSignals(False)
        plugin = self._tasks.get(task_id)
        self.task_params.rebuild(None if plugin is None else plugin.params, values)

    def _task_picked(self) -> None:
        """A new task starts from its own defaults: they are tuned per task (a batch size that
        suits digits would silently change the regime of matrix sensing)."""
        self._set_task(self.task_combo.currentData(), {})
        self._task_args = None
        self.task_field.clear_error()
        self._edited()

    def _set_diagnostics(self, raw: Any) -> None:
        """Enable the listed diagnostics and put them first, in the spec's order (which is kept
        on save); the first entry of an id wins, the validator's report names the rest."""
        entries: dict[str, Mapping[str, Any]] = {}
        for item in raw if isinstance(raw, list) else []:
            did = item.get("id") if isinstance(item, Mapping) else None
            if isinstance(did, str) and did in self._rows:
                entries.setdefault(did, item)
        for did, row in self._rows.items():
            row.set_entry(entries.get(did))
        order = [*entries, *(did for did in self._rows if did not in entries)]
        for did in order:
            self._row_box.removeWidget(self._rows[did])
            self._row_box.addWidget(self._rows[did])

    def _ordered_rows(self) -> list[DiagnosticRow]:
        rows = [self._row_box.itemAt(i).widget() for i in range(self._row_box.count())]
        return [row for row in rows if isinstance(row, DiagnosticRow)]

    def _enabled_schedules(self) -> list[tuple[DiagnosticPlugin, int]]:
        return [
            (row.plugin, every)
            for row in self._ordered_rows()
            if row.enabled_box.isChecked() and (every := row.every()) is not None
        ]

    def _diagnostics_edited(self) -> None:
        self._update_cost()
        self._edited()

    def _update_cost(self) -> None:
        self.cost_label.setText(describe_overhead(*estimate_overhead(self._enabled_schedules())))

    def _edited(self) -> None:
        if not self._loading:
            self.changed.emit()

    # -- problems -----------------------------------------------------------------------------

    def _report(self, data: Mapping[str, Any]) -> None:
        self._clear_problems()
        try:
            parse_spec(dict(data))
        except SpecError as exc:
            self._show_problems(exc.problems, data.get("diagnostics"))
        except TypeError:
            # parse_spec raises TypeError on unhashable ids (`id = [1]`) instead of a SpecError;
            # the form has made them strings, so its own validation can name them.
            self.validate()

    def _clear_problems(self) -> None:
        self.summary_label.hide()
        self.summary_label.clear()
        self.general_form.clear_errors()
        self.task_field.clear_error()
        self.task_form.clear_errors()
        for row, editor in enumerate(self._editors):
            editor.clear_errors()
            self._mark_run(row, [])
        for diagnostic in self._rows.values():
            diagnostic.clear_errors()

    def _show_problems(self, problems: list[str], diagnostics: Any) -> None:
        """Mark each problem on its field, list them all in the summary, and bring the first
        run with a problem into view. `diagnostics` is the list the paths index into."""
        entries = diagnostics if isinstance(diagnostics, list) else []
        ids = [d.get("id") if isinstance(d, Mapping) else None for d in entries]
        marked = 0
        for problem in problems:
            path, _, message = problem.partition(": ")
            marked += self._show_problem(parse_path(path), message, ids)
        run_messages = problems_by_run(problems)
        for row, messages in run_messages.items():
            if row < len(self._editors):
                self._mark_run(row, messages)
        if run_messages and self.current_run() not in run_messages:
            first = min(run_messages)
            if first < len(self._editors):
                self.runs_list.setCurrentRow(first)
        self._show_summary(summary(problems, marked))

    def _show_problem(self, tokens: list[str | int], message: str, ids: list[Any]) -> bool:
        """Show one problem next to its widget; False when its path names none."""
        match tokens:
            case [str(key)] if key in TOP_PARAMS:
                return self.general_form.show_error(key, message)
            case ["task"] | ["task", "id"]:
                self.task_field.show_error(message)
                return True
            case ["task", str(name), *more]:
                text = f"{name}{index_suffix(more)}: {message}" if more else message
                return self.task_form.show_error(name, text)
            case ["runs", int(row), *rest] if row < len(self._editors):
                return self._editors[row].show_problem(rest, message)
            case ["diagnostics", int(i), *rest] if i < len(ids) and isinstance(ids[i], str):
                if ids[i] not in self._rows:
                    return False
                return self._rows[ids[i]].show_problem(rest, message)
        return False

    def _mark_run(self, row: int, messages: list[str]) -> None:
        """Flag a run in the list (red, warning icon, problems as tooltip) or unflag it."""
        item = self.runs_list.item(row)
        if messages:
            item.setForeground(QColor(ERROR_COLOR))
            item.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning))
        else:
            item.setForeground(QBrush())
            item.setIcon(QIcon())
        item.setToolTip("\n".join(messages))

    def _show_summary(self, text: str) -> None:
        self.summary_label.setText(text)
        self.summary_label.show()
