"""`engine.spec.run_spec_text`: the spec that re-runs one run of a session alone, without Qt."""

from __future__ import annotations

import pytest

from descentlab.engine.spec import SpecError, parse_toml, run_spec_text

SESSION_SPEC = """
name = "two"
seed = 3
steps = 10

[task]
id = "quadratic"
dim = 4

[[runs]]
name = "a"
optimizer = { id = "sgd", lr = 0.01 }

[[runs]]
name = "b"
optimizer = { id = "adam", lr = 0.001 }

[[diagnostics]]
id = "norms"
every = 5
runs = ["a"]

[[diagnostics]]
id = "hessian"
every = 10
"""


def test_a_run_alone_with_its_recorded_settings_and_its_diagnostics() -> None:
    config = {"optimizer": {"id": "adam", "lr": 0.002}, "schedule": {"id": "constant"}}
    spec = parse_toml(run_spec_text(SESSION_SPEC, "b", config))
    assert [run.name for run in spec.runs] == ["b"]
    assert spec.runs[0].optimizer.id == "adam" and spec.runs[0].optimizer.params["lr"] == 0.002
    assert [(d.id, d.runs) for d in spec.diagnostics] == [("hessian", None)]
    assert (spec.name, spec.seed, spec.steps) == ("two", 3, 10)


def test_a_fork_keeps_the_diagnostics_of_its_parent() -> None:
    config = {"optimizer": {"id": "sgd", "lr": 0.05}, "schedule": {"id": "constant"}}
    spec = parse_toml(run_spec_text(SESSION_SPEC, "a-hot", config, parent_run="a"))
    assert [run.name for run in spec.runs] == ["a-hot"]
    assert spec.runs[0].optimizer.params["lr"] == 0.05
    assert [(d.id, d.runs) for d in spec.diagnostics] == [("norms", None), ("hessian", None)]


def test_a_spec_this_lab_cannot_read_is_a_spec_error() -> None:
    config = {"optimizer": {"id": "sgd"}, "schedule": {"id": "constant"}}
    with pytest.raises(SpecError, match="the session's spec"):
        run_spec_text("steps = -1", "a", config)
