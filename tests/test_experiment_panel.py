"""The experiment panel and its schema forms: what the user edits is what the engine validates.

Offscreen and fast: no training runs here, only the editor and the engine's validator.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from descentlab.app.forms import ParamForm
from descentlab.app.panels.experiment import ExperimentPanel, default_spec, parse_path
from descentlab.app.panels.run_editor import needs_sentence
from descentlab.engine import registry
from descentlab.engine.cost import COST_STEPS
from descentlab.engine.params import Param
from descentlab.engine.spec import load_spec, parse_spec


def _plain(data: dict[str, Any]) -> Any:
    """The engine leaves untouched defaults as tuples and checked values as lists; compare both
    as JSON would see them."""
    return json.loads(json.dumps(data))


@pytest.fixture
def panel(qtbot: Any) -> ExperimentPanel:
    widget = ExperimentPanel(default_spec())
    qtbot.addWidget(widget)
    return widget


def test_default_preset_round_trips_through_the_validator(panel: ExperimentPanel) -> None:
    expected = parse_spec(default_spec()).to_dict()
    assert _plain(parse_spec(panel.spec_dict()).to_dict()) == _plain(expected)
    assert panel.validate() is not None
    assert panel.summary_label.isHidden()
    # the diagnostics keep the file's order, and the panel opens on this preset by default
    assert [d["id"] for d in panel.spec_dict()["diagnostics"]] == [
        "eval",
        "norms",
        "spectra",
        "hessian",
    ]
    assert ExperimentPanel().spec_dict() == panel.spec_dict()


def test_changing_the_task_rebuilds_its_form(panel: ExperimentPanel, qtbot: Any) -> None:
    quadratic = registry.plugins("tasks")["quadratic"]
    with qtbot.waitSignal(panel.changed, timeout=1000):
        panel.task_combo.setCurrentIndex(panel.task_combo.findData("quadratic"))
    assert [p.name for p in panel.task_form.params] == [p.name for p in quadratic.params]
    task = panel.spec_dict()["task"]
    assert task["id"] == "quadratic"
    assert task["dim"] == 20 and "hidden" not in task
    assert "eigenvalues" not in task  # nullable and unset: omitted, as in TOML
    assert panel.validate() is not None


def test_set_spec_does_not_count_as_an_edit(panel: ExperimentPanel, qtbot: Any) -> None:
    with qtbot.assertNotEmitted(panel.changed):
        panel.set_spec(default_spec())
    with qtbot.waitSignal(panel.changed, timeout=1000):
        panel.general_form.editor("name").setText("renamed")


def test_add_duplicate_and_remove_runs(panel: ExperimentPanel) -> None:
    names = lambda: [r["name"] for r in panel.spec_dict()["runs"]]  # noqa: E731
    assert names() == ["adam", "sgd-momentum", "muon"]

    panel.add_button.click()
    assert names() == ["adam", "sgd-momentum", "muon", "adam-2"]
    assert panel.current_run() == 3
    # a fresh run follows its optimizer's name until the user names it
    panel.run_editor(3).set_optimizer("rmsprop")
    assert names()[3] == "rmsprop"

    panel.runs_list.setCurrentRow(1)
    panel.duplicate_run()
    assert names() == ["adam", "sgd-momentum", "sgd-momentum-2", "muon", "rmsprop"]
    copy = panel.spec_dict()["runs"][2]["optimizer"]
    assert copy["id"] == "sgd" and copy["lr"] == 0.05 and copy["momentum"] == 0.9
    assert panel.runs_list.item(2).text().startswith("sgd-momentum-2")
    assert [panel.run_editor(i).isHidden() for i in range(5)] == [True, True, False, True, True]

    panel.remove_run()
    assert names() == ["adam", "sgd-momentum", "muon", "rmsprop"]
    assert panel.validate() is not None
    for _ in range(5):
        panel.remove_run()
    assert panel.run_count() == 1  # a spec keeps at least one run
    assert not panel.remove_button.isEnabled()


@pytest.mark.parametrize(
    ("query", "expected", "excluded"),
    [
        ("Kingma", {"adam", "adamax", "sparse-adam"}, {"sgd", "muon"}),
        ("nesterov", {"sgd", "nadam"}, {"adam", "rprop"}),
        ("adaptive", {"adam", "adagrad", "rmsprop"}, {"sgd", "lbfgs", "muon"}),
        ("second-order", {"lbfgs"}, {"adam"}),
        ("orthogonal jordan", {"muon"}, {"adam", "sgd"}),
    ],
)
def test_catalogue_search_by_family_and_paper(
    panel: ExperimentPanel, query: str, expected: set[str], excluded: set[str]
) -> None:
    catalogue = panel.run_editor(0).catalogue
    catalogue.search.setText(query)
    found = set(catalogue.visible_ids())
    assert expected <= found
    assert not excluded & found


def test_enter_in_the_search_picks_the_first_match(panel: ExperimentPanel) -> None:
    editor = panel.run_editor(0)
    editor.catalogue.search.setText("nocedal")
    editor.catalogue.search.returnPressed.emit()
    assert editor.optimizer_id() == "lbfgs"
    assert panel.spec_dict()["runs"][0]["optimizer"]["id"] == "lbfgs"


def test_changing_the_optimizer_keeps_same_named_params(panel: ExperimentPanel) -> None:
    editor = panel.run_editor(0)
    editor.optimizer_form.editor("lr").setText("0.003")
    editor.set_optimizer("sgd")
    values = editor.optimizer_form.values()
    assert values["lr"] == 0.003
    assert values["momentum"] == 0.0  # sgd's own default
    assert "betas" not in values
    assert [p.name for p in editor.optimizer_form.params] == [
        p.name for p in registry.plugins("optimizers")["sgd"].params
    ]
    assert panel.runs_list.item(0).text().endswith("sgd")


def test_invalid_values_are_shown_next_to_their_fields(panel: ExperimentPanel) -> None:
    data = default_spec()
    data["steps"] = 0
    data["runs"][1]["optimizer"]["lr"] = -1.0
    data["runs"][2]["name"] = "has space"
    data["runs"][2]["schedule"] = {"id": "step", "gamma": 2.0}
    data["diagnostics"][3]["every"] = 0  # hessian, listed last
    data["unknown_key"] = 1
    panel.set_spec(data)

    assert panel.validate() is None
    assert "out of range" in panel.general_form.error_text("steps")
    lr_error = panel.run_editor(1).optimizer_form.error_text("lr")
    assert "out of range" in lr_error
    assert panel.run_editor(2).name_field.error_text().startswith("'has space'")
    assert "out of range" in panel.run_editor(2).schedule_form.error_text("gamma")
    assert "out of range" in panel.diagnostic_row("hessian").every_form.error_text("every")
    assert panel.diagnostic_row("norms").every_form.error_text("every") == ""
    # the offending run is brought into view and flagged in the list
    assert panel.current_run() == 1
    assert "runs[1].optimizer.lr" in panel.runs_list.item(1).toolTip()
    assert panel.runs_list.item(0).toolTip() == ""
    summary = panel.summary_label.text()
    assert not panel.summary_label.isHidden()
    assert summary.startswith("5 problems (5 marked on their fields)")
    for path in ("steps", "runs[1].optimizer.lr", "runs[2].name", "diagnostics[3].every"):
        assert f"• {path}:" in summary
    # set_spec reported the key the form could not hold; validating the form drops it
    panel.set_spec(data)
    assert "unknown_key: unknown key" in panel.summary_label.text()
    assert panel.summary_label.text().startswith("6 problems (5 marked")

    # fixing a field clears its message; a valid spec clears everything
    panel.run_editor(1).optimizer_form.editor("lr").setText("0.05")
    assert panel.run_editor(1).optimizer_form.error_text("lr") == ""
    panel.set_spec(default_spec())
    assert panel.validate() is not None
    assert panel.general_form.error_text("steps") == ""
    assert panel.summary_label.isHidden()


def test_an_emptied_required_field_is_reported_not_defaulted(panel: ExperimentPanel) -> None:
    panel.run_editor(0).optimizer_form.editor("lr").setText("")
    panel.run_editor(0).optimizer_form.editor("betas").setText("0.9, 1e-")
    assert panel.validate() is None
    form = panel.run_editor(0).optimizer_form
    assert "a value is required" in form.error_text("lr")
    assert "'1e-'" in form.error_text("betas")


def test_save_and_open_round_trip(panel: ExperimentPanel, qtbot: Any, tmp_path: Path) -> None:
    panel.add_run()
    panel.run_editor(3).set_optimizer("adamw")
    panel.diagnostic_row("spectra").enabled_box.setChecked(False)
    path = tmp_path / "spec.toml"
    assert panel.save_file(path)
    assert load_spec(path).to_dict()["runs"][3]["optimizer"]["id"] == "adamw"

    other = ExperimentPanel()
    qtbot.addWidget(other)
    other.task_combo.setCurrentIndex(other.task_combo.findData("function2d"))
    assert other.open_file(path)
    assert other.spec_dict() == panel.spec_dict()
    assert other.summary_label.isHidden()


def test_a_malformed_file_keeps_the_current_spec(panel: ExperimentPanel, tmp_path: Path) -> None:
    panel.general_form.editor("name").setText("work-in-progress")
    before = panel.spec_dict()
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nsteps = = 3\n', encoding="utf-8")
    assert not panel.open_file(bad)
    assert "not valid TOML" in panel.summary_label.text()
    assert not panel.summary_label.isHidden()
    assert panel.spec_dict() == before
    assert not panel.open_file(tmp_path / "missing.toml")
    assert "cannot read the file" in panel.summary_label.text()
    assert panel.spec_dict() == before


def test_a_valid_toml_file_with_bad_values_is_loaded_and_marked(
    panel: ExperimentPanel, tmp_path: Path
) -> None:
    path = tmp_path / "invalid.toml"
    path.write_text(
        '[task]\nid = "no-such-task"\nfoo = 1\n\n[[runs]]\nname = "a"\n'
        'optimizer = { id = "adam", lr = 50.0 }\n',
        encoding="utf-8",
    )
    assert panel.open_file(path)
    assert "unknown id 'no-such-task'" in panel.task_field.error_text()
    assert "out of range" in panel.run_editor(0).optimizer_form.error_text("lr")
    # the unknown task and its parameters are kept, so saving loses nothing
    assert panel.spec_dict()["task"] == {"id": "no-such-task", "foo": 1}
    assert panel.validate() is None
    # loading a good spec again leaves no stale "unknown" entry behind
    count = panel.task_combo.count()
    panel.set_spec(default_spec())
    assert panel.task_combo.count() == count - 1
    assert panel.task_combo.findData("no-such-task") < 0


def test_unhashable_ids_are_reported_not_raised(panel: ExperimentPanel) -> None:
    panel.set_spec({"task": {"id": [1]}, "runs": [{"optimizer": {"id": ["x"]}}]})
    assert "unknown id" in panel.summary_label.text()


def test_log_slider_and_box_stay_in_sync(panel: ExperimentPanel) -> None:
    form = panel.run_editor(0).optimizer_form
    slider = form.slider("lr")
    assert slider is not None
    assert form.slider("betas") is None
    assert form.slider("weight_decay") is None  # log scale, but its lower bound is 0

    slider.setValue(slider.maximum())
    assert form.values()["lr"] == 10.0
    slider.setValue(slider.minimum())
    assert form.values()["lr"] == 1e-8
    # 20 positions per decade over [1e-8, 10]: 1e-2 sits 6 decades up
    slider.setValue(120)
    assert form.values()["lr"] == pytest.approx(1e-2)

    form.editor("lr").setText("1e-4")
    assert slider.value() == 80
    form.editor("lr").setText("3e-3")
    assert form.values()["lr"] == 3e-3  # the typed value is kept, not snapped to the slider
    assert slider.value() == round((math.log10(3e-3) + 8) / 9 * 180)


def test_cost_estimate_follows_the_hessian_schedule(panel: ExperimentPanel) -> None:
    hessian = panel.diagnostic_row("hessian")
    hessian.enabled_box.setChecked(False)
    without = panel.estimated_overhead()
    assert "hessian" not in panel.cost_label.text()

    hessian.enabled_box.setChecked(True)
    hessian.every_form.editor("every").setValue(1)
    every_1 = panel.estimated_overhead()
    assert "hessian every 1: +5000%" in panel.cost_label.text()
    assert panel.cost_label.text().startswith("Estimate")

    hessian.every_form.editor("every").setValue(100)
    every_100 = panel.estimated_overhead()
    assert "hessian every 100: +50%" in panel.cost_label.text()
    assert every_1 - without == pytest.approx(COST_STEPS["heavy"])
    assert every_100 - without == pytest.approx(COST_STEPS["heavy"] / 100)


def test_parse_path() -> None:
    assert parse_path("runs[1].optimizer.betas[0]") == ["runs", 1, "optimizer", "betas", 0]
    assert parse_path("diagnostics[2].every") == ["diagnostics", 2, "every"]
    assert parse_path("steps") == ["steps"]


def test_param_form_types_values_and_errors(qtbot: Any) -> None:
    schema = (
        Param("lr", "float", 0.1, "rate", 1e-6, 1.0, log=True),
        Param("n", "int", 3, "count", 1, 10),
        Param("seed", "int", 0, "seed", 0, 2**63 - 1),
        Param("flag", "bool", False, "flag"),
        Param("mode", "choice", "a", "mode", choices=("a", "b")),
        Param("label", "str", "x", "label"),
        Param("widths", "ints", [4, 4], "widths", 1, 100),
        Param("start", "floats", None, "start", length=2, nullable=True),
        Param("eps", "float", None, "eps", 0.0, 1.0, nullable=True),
    )
    form = ParamForm(schema, {"n": 5, "mode": "b"})
    qtbot.addWidget(form)
    assert form.values() == {
        "lr": 0.1,
        "n": 5,
        "seed": 0,
        "flag": False,
        "mode": "b",
        "label": "x",
        "widths": [4, 4],
        "start": None,
        "eps": None,
    }
    assert "start" not in form.table() and "eps" not in form.table()
    assert "Allowed: an integer in [1, 10]" in form.editor("n").toolTip()

    # an out-of-range value from a file is kept for the validator, not clamped
    form.set_values({"n": 50, "seed": 2**40, "mode": "zzz", "start": [0.5, -1.5]})
    values = form.values()
    assert values["n"] == 50 and values["seed"] == 2**40 and values["mode"] == "zzz"
    assert values["start"] == [0.5, -1.5]
    assert values["lr"] == 0.1  # missing keys fall back to defaults

    with qtbot.waitSignal(form.changed, timeout=1000):
        form.editor("widths").setText("[8, 16, x")
    assert form.values()["widths"] == [8, 16, "x"]

    assert form.show_error("lr", "bad rate")
    assert not form.show_error("nope", "no such field")
    assert form.error_text("lr") == "bad rate"
    assert form.editor("lr").parentWidget().parentWidget().property("error") is True
    form.clear_errors()
    assert form.error_text("lr") == ""


def test_the_catalogue_says_every_need_of_an_optimizer(panel: ExperimentPanel) -> None:
    """The panel once listed closure, create_graph and roles only, leaving out batch and
    train_eval; it now says what `descentlab list` says (engine.catalogue.needs_text)."""
    ema = registry.plugins("optimizers")["ema"]
    assert needs_sentence(ema) == "Needs: closure, roles, batch, train_eval."
    assert needs_sentence(registry.plugins("optimizers")["sgd"]) == ""
    catalogue = panel.run_editor(0).catalogue
    tips = {
        catalogue.list.item(row).data(Qt.ItemDataRole.UserRole): catalogue.list.item(row).toolTip()
        for row in range(catalogue.list.count())
    }
    assert "Needs: closure, roles, batch, train_eval." in tips["ema"]
    assert "Needs: batch." in tips["newton"]
    assert "Needs: train_eval." in tips["langevin"]
    catalogue.set_current("ema")
    assert "train_eval" in catalogue.current_label.toolTip()
