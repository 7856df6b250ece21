"""The run table and the live-edit dialog: every named rate shown and editable, each edit judged
by the optimizer's schema (issues 11 and 12), refusals told through a signal."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import muon_spec

from descentlab.app.panels.live_hyper import LiveHyperDialog
from descentlab.app.panels.run_table import RunTable
from descentlab.app.plots.colors import run_colors
from descentlab.app.session_model import SessionModel
from descentlab.engine.plugin import Output
from descentlab.engine.sink import RunHeader

LOSS = [Output("train/loss", "scalar"), Output("train/lr", "scalar")]


@pytest.fixture
def table(qtbot) -> RunTable:
    model = SessionModel()
    table = RunTable(model, run_colors(model))
    qtbot.addWidget(table)
    model.add_run(RunHeader("m", {"optimizer": {"id": "muon", "lr": 0.02}}, LOSS))
    model.add_run(RunHeader("s", {"optimizer": {"id": "sgd", "lr": 0.1, "momentum": 0.0}}, LOSS))
    model.add_run(RunHeader("d", {"optimizer": {"id": "dog", "lr": 1.0}}, LOSS))
    model.extend("m", "train/loss", np.arange(8), np.linspace(2.0, 1.0, 8))
    model.extend("m", "train/lr", np.arange(8), np.full(8, 0.02))
    table.refresh()
    return table


def headers(table: RunTable) -> list[str]:
    return [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]


def cell(table: RunTable, row: int, column: str) -> str:
    return table.item(row, headers(table).index(column)).text()


def test_each_named_rate_has_a_column(table: RunTable) -> None:
    assert headers(table) == [
        "run",
        "optimizer",
        "status",
        "step",
        "loss",
        "steps/s",
        "lr",
        "adamw_lr",
        "differs in",
    ]
    assert [cell(table, r, "lr") for r in range(3)] == ["0.02", "0.1", "1"]
    assert [cell(table, r, "adamw_lr") for r in range(3)] == ["0.001", "", ""]
    assert "adamw_lr" not in cell(table, 0, "differs in")


def test_a_rate_shows_the_value_in_force_at_the_shown_step(table: RunTable) -> None:
    table.model.add_event("m", 5, "hyper", "adamw_lr: 0.001 -> 0.0005 (group 1 of 2)")
    table.refresh()
    assert cell(table, 0, "adamw_lr") == "0.0005"
    table.set_step_limit(3)  # replaying a step before the edit
    assert cell(table, 0, "adamw_lr") == "0.001"
    table.set_step_limit(None)
    assert cell(table, 0, "adamw_lr") == "0.0005"


def test_only_a_live_runs_own_rates_are_editable(table: RunTable) -> None:
    from PySide6.QtCore import Qt

    def editable(row: int, column: str) -> bool:
        item = table.item(row, headers(table).index(column))
        return bool(item.flags() & Qt.ItemFlag.ItemIsEditable)

    assert editable(0, "lr") and editable(0, "adamw_lr")
    assert editable(1, "lr") and not editable(1, "adamw_lr")
    assert not editable(0, "loss")
    table.model.end_run("m", "finished", 8)
    assert not editable(0, "adamw_lr")


def test_an_edit_the_schema_admits_is_sent_by_name(table: RunTable, qtbot) -> None:
    column = headers(table).index("adamw_lr")
    with qtbot.waitSignal(table.hyperEdited) as sent:
        table.item(0, column).setText("4e-4")
    assert sent.args == ["m", "adamw_lr", 0.0004]
    with qtbot.waitSignal(table.hyperEdited) as sent:  # DoG's schema admits lr = 0
        table.item(2, headers(table).index("lr")).setText("0")
    assert sent.args == ["d", "lr", 0.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "s: lr: 0.0 is out of range; allowed: a number in [1e-08, 10]"),
        ("-1", "s: lr: -1.0 is out of range; allowed: a number in [1e-08, 10]"),
        ("fast", "s: lr: 'fast' is not a number in [1e-08, 10]"),
        ("", "s: lr: a value is required for a live change; allowed: a number in [1e-08, 10]"),
    ],
)
def test_an_edit_the_schema_refuses_is_a_message_and_the_value_stays(
    table: RunTable, qtbot, text: str, message: str
) -> None:
    sent: list[tuple] = []
    table.hyperEdited.connect(lambda *args: sent.append(args))
    with qtbot.waitSignal(table.message) as told:
        table.item(1, headers(table).index("lr")).setText(text)
    assert told.args == [message]
    assert sent == []
    assert cell(table, 1, "lr") == "0.1"


def test_the_dialog_refuses_what_the_spec_refuses(qtbot) -> None:
    dialog = LiveHyperDialog("s", "sgd", {"lr": 0.1, "momentum": 0.0})
    qtbot.addWidget(dialog)
    dialog.form.set_values({**dialog.current, "momentum": 5.0})
    dialog.accept()
    assert dialog.result() != LiveHyperDialog.DialogCode.Accepted
    assert dialog.form.error_text("momentum") == (
        "5.0 is out of range; allowed: a number in [0, 0.9999]"
    )
    dialog.form.set_values({**dialog.current, "momentum": 0.5})
    dialog.accept()
    assert dialog.result() == LiveHyperDialog.DialogCode.Accepted
    assert dialog.changes() == {"momentum": 0.5}


def test_the_dialog_admits_lr_zero_where_the_schema_does(qtbot) -> None:
    dialog = LiveHyperDialog("d", "dog", {"lr": 1.0})
    qtbot.addWidget(dialog)
    dialog.form.set_values({**dialog.current, "lr": 0.0})
    dialog.accept()
    assert dialog.result() == LiveHyperDialog.DialogCode.Accepted
    assert dialog.changes() == {"lr": 0.0}


MUON_LIVE = muon_spec(1_000_000)


def test_a_table_edit_reaches_the_engine_by_name_and_a_refusal_reaches_the_log(
    window, qtbot
) -> None:
    """Through a real worker: `adamw_lr` edited in the table sets the AdamW group alone, and a
    value the engine refuses comes back as a `command_error` line in the event log."""
    from descentlab.engine.commands import SetHyper

    assert window.load_spec_text(MUON_LIVE)
    assert window.start()
    qtbot.waitUntil(
        lambda: "m" in window.model.runs and window.model.runs["m"].step > 3, timeout=60000
    )
    table = window.run_table
    table.item(0, headers(table).index("adamw_lr")).setText("0.0005")
    qtbot.waitUntil(
        lambda: any(
            k == "hyper" and d == "adamw_lr: 0.001 -> 0.0005 (group 1 of 2)"
            for _, k, d in window.model.runs["m"].events
        ),
        timeout=10000,
    )
    table.refresh()
    assert cell(table, 0, "adamw_lr") == "0.0005"
    assert cell(table, 0, "lr") == "0.02"
    window.client.send(SetHyper("m", "momentum", 5.0))  # past the window's own check
    qtbot.waitUntil(
        lambda: any(
            "momentum: 5.0 is out of range; allowed: a number in [0, 0.9999]" in log.text()
            for log in (window.event_log.item(i) for i in range(window.event_log.count()))
        ),
        timeout=10000,
    )
    assert window.model.runs["m"].status == "running"
