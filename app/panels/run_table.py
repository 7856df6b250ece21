"""The run table: one row per run with status, step, loss, speed and what sets it apart.

The last column lists each run's values of the settings that differ between runs: that is
what a race compares; a fork says there where it branched off.
Every learning rate an optimizer's schema names has a column: `lr` (the rate of the first group,
as `train/lr` records it, schedule applied) and the others (`adamw_lr`, `embedding_lr`, ...: the
base rate in force, from the spec and the session's `hyper` events). While the timeline replays a
step, the step, loss and rate cells show the values at it. A rate cell is editable while its run
is live; an edit the schema admits (`params.check_one`, the spec's own check) becomes
`hyperEdited(run, name, value)`, one it refuses becomes `message(text)` and the old value stays.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QMenu,
    QTableWidget,
    QTableWidgetItem,
)

from descentlab.app.session_model import RunModel, SessionModel
from descentlab.engine import live_hyper, registry
from descentlab.engine.params import Param

FIXED = ("run", "optimizer", "status", "step", "loss", "steps/s", "lr", "differs in")
"""The columns every table has; rates other than `lr` get theirs after `lr`."""


def hyperparameters(run: RunModel) -> dict[str, Any]:
    """A run's settings as flat `optimizer.lr`, `schedule.id`, … keys."""
    flat: dict[str, Any] = {}
    for section in ("optimizer", "schedule"):
        for key, value in run.config.get(section, {}).items():
            flat[f"{section}.{key}"] = value
    return flat


def differing(runs: list[RunModel]) -> list[str]:
    """Keys whose values are not the same in every run (missing counts as different)."""
    if len(runs) < 2:
        return []
    flats = [hyperparameters(r) for r in runs]
    keys = sorted({k for f in flats for k in f})
    return [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]


def schema(run: RunModel) -> dict[str, Param]:
    """The run's optimizer schema by name; empty when the optimizer is not installed here (a
    session recorded elsewhere), which leaves its rates read-only."""
    plugin = registry.plugins("optimizers").get(run.config.get("optimizer", {}).get("id", ""))
    return {p.name: p for p in plugin.params} if plugin is not None else {}


class RunTable(QTableWidget):
    """Live table of runs.

    Signals:
        hyperEdited(run, name, value): the user set a rate the schema admits.
        hyperRequested(run): the user asked for the live-edit dialog.
        message(text): something to tell the user (an edit the schema refuses).
    """

    hyperEdited = Signal(str, str, object)
    hyperRequested = Signal(str)
    message = Signal(str)

    def __init__(self, model: SessionModel, colors: Any) -> None:
        super().__init__(0, len(FIXED))
        self.model = model
        self.colors = colors
        self._extra: list[str] = []
        self._columns: list[str] = list(FIXED)
        self._updating = False
        self.step_limit: int | None = None
        self.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.itemChanged.connect(self._edited)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        model.runAdded.connect(lambda _: self.rebuild())
        model.cleared.connect(self.rebuild)
        model.statusChanged.connect(lambda _: self.refresh())
        self.rebuild()

    @property
    def rates(self) -> list[str]:
        """The rate columns: `lr`, then every other rate a run's schema names, first seen first."""
        names = ["lr"]
        for run in self.model.runs.values():
            names += [n for n in live_hyper.rate_names(schema(run).values()) if n not in names]
        return names

    def rebuild(self) -> None:
        runs = list(self.model.runs.values())
        self._extra = differing(runs)
        at = FIXED.index("lr")
        self._columns = [*FIXED[:at], *self.rates, *FIXED[at + 1 :]]
        self._updating = True
        self.setColumnCount(len(self._columns))
        self.setHorizontalHeaderLabels(self._columns)
        self.setRowCount(len(runs))
        self._updating = False
        self.refresh()

    def _rate_columns(self) -> list[str]:
        """The rate columns' names, as laid out by the last `rebuild`."""
        return self._columns[FIXED.index("lr") : -1]

    def set_step_limit(self, step: int | None) -> None:
        """Show the values at `step` (replay), or the latest again with None."""
        self.step_limit = step
        self.refresh()

    def refresh(self) -> None:
        """Update every cell from the model (called a few times a second, not per record)."""
        self._updating = True
        rates = self._rate_columns()
        for row, run in enumerate(self.model.runs.values()):
            names = schema(run)
            flat = hyperparameters(run)
            shown = {"optimizer.id", *(f"optimizer.{name}" for name in rates)}
            differs = [
                f"{k.split('.', 1)[1]}={_value(flat[k])}"
                for k in self._extra
                if k in flat and k not in shown
            ]
            if run.parent_run:
                differs.insert(0, f"forked from {run.parent_run} at {run.fork_step}")
            cells = [
                run.name,
                run.config.get("optimizer", {}).get("id", "?"),
                run.status + (f": {run.error}" if run.error else ""),
                str(self._step(run)),
                _num(self._last(run, "train/loss")),
                f"{run.steps_per_second:.1f}" if run.steps_per_second else "-",
                *(self._rate_text(run, name, names) for name in rates),
                "  ".join(differs),
            ]
            for col, text in enumerate(cells):
                item = self.item(row, col)
                if item is None:
                    item = QTableWidgetItem(text)
                    self.setItem(row, col, item)
                if (
                    self.state() == QAbstractItemView.State.EditingState
                    and self.currentRow() == row
                    and self.currentColumn() == col
                ):
                    continue
                if item.text() != text:
                    item.setText(text)
                name = self._columns[col]
                editable = name in rates and name in names and run.status == "running"
                flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                flags = flags | Qt.ItemFlag.ItemIsEditable if editable else flags
                if item.flags() != flags:
                    item.setFlags(flags)
            swatch = self.item(row, 0)
            swatch.setForeground(QBrush(QColor(self.colors.color(run.name))))
            swatch.setToolTip(run.error or run.status)
        self._updating = False

    def _menu(self, position: QPoint) -> None:
        row = self.rowAt(position.y())
        if row < 0:
            return
        run = list(self.model.runs.values())[row]
        menu = QMenu(self)
        action = menu.addAction("Edit hyperparameters live…")
        action.setEnabled(run.status == "running")
        action.triggered.connect(lambda: self.hyperRequested.emit(run.name))
        menu.exec(self.viewport().mapToGlobal(position))

    def _step(self, run: RunModel) -> int:
        return run.step if self.step_limit is None else min(run.step, self.step_limit)

    def _last(self, run: RunModel, series: str) -> float:
        """The series' last value, or its value at the replayed step; NaN when there is none."""
        buf = run.series.get(series)
        if buf is None:
            return float("nan")
        steps, values = buf.view(self.step_limit)
        return float(values[-1]) if len(steps) else float("nan")

    def _rate_text(self, run: RunModel, name: str, names: dict[str, Param]) -> str:
        if name == "lr":
            lr = self._last(run, "train/lr")
            return _num(lr if not math.isnan(lr) else run.config.get("optimizer", {}).get("lr"))
        return _num(self._base_rate(run, name, names)) if name in names else ""

    def _base_rate(self, run: RunModel, name: str, names: dict[str, Param]) -> Any:
        """The rate `name` in force at the shown step: the last `hyper` event that set it, else
        the spec's value, else the schema's default."""
        value = run.config.get("optimizer", {}).get(name, names[name].default)
        for step, kind, detail in run.events:
            if self.step_limit is not None and step > self.step_limit:
                break
            change = live_hyper.parse(detail) if kind == "hyper" else None
            if change is not None and change[0] == name:
                value = change[1]
        return value

    def _edited(self, item: QTableWidgetItem) -> None:
        name = self._columns[item.column()] if item.column() < len(self._columns) else ""
        if self._updating or name not in self._rate_columns():
            return
        run = list(self.model.runs.values())[item.row()]
        param = schema(run).get(name)
        if param is None:
            return
        text = item.text().strip()
        try:
            value: Any = float(text) if text else None
        except ValueError:
            value = text  # the schema's check names what was typed
        try:
            value = live_hyper.check_live(param, value)
        except ValueError as exc:
            self.refresh()  # put the value in force back
            self.message.emit(f"{run.name}: {exc}")
            return
        self.hyperEdited.emit(run.name, name, value)


def _num(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def _value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
