"""The experiment spec: defaults, round trips, and one clear message per invalid field."""

from __future__ import annotations

import pytest

from descentlab.engine.spec import SpecError, load_spec, parse_toml

MINIMAL = '[task]\nid = "quadratic"\n'


def test_three_line_spec_gets_defaults() -> None:
    spec = parse_toml(MINIMAL)
    assert (spec.name, spec.seed, spec.steps, spec.device, spec.dtype) == (
        "experiment",
        0,
        500,
        "auto",
        "float32",
    )
    assert [r.name for r in spec.runs] == ["adam"]
    assert spec.runs[0].optimizer.id == "adam"
    assert spec.runs[0].schedule.id == "constant"
    assert spec.task.params["spectrum"] == "log"  # the task's own defaults are filled in
    assert spec.diagnostics == []


def test_full_spec_and_toml_round_trip() -> None:
    text = """
name = "race"
seed = 3
steps = 20
dtype = "float64"
[task]
id = "digits-mlp"
hidden = [16]
[[runs]]
name = "a"
optimizer = { id = "adam", lr = 1e-3, betas = [0.8, 0.99] }
schedule = { id = "cosine", warmup_steps = 5 }
[[runs]]
name = "s"
optimizer = "sgd"
[[diagnostics]]
id = "hessian"
every = 7
top_k = 2
runs = ["a"]
"""
    spec = parse_toml(text)
    assert spec.runs[0].optimizer.params["betas"] == [0.8, 0.99]
    assert spec.runs[0].schedule.params == {"warmup_steps": 5, "min_factor": 0.0}
    assert spec.runs[1].optimizer.id == "sgd"
    diag = spec.diagnostics[0]
    assert (diag.id, diag.every, diag.params["top_k"], diag.runs) == ("hessian", 7, 2, ["a"])
    again = parse_toml(spec.to_toml())
    assert again.to_dict() == spec.to_dict()


INVALID = [
    ("", "task: missing"),
    ('[task]\nid = "nope"', "task.id: unknown id 'nope'; allowed:"),
    ("[task]\n", "task.id: missing; allowed:"),
    ("steps = 0\n" + MINIMAL, "steps: 0 is out of range; allowed: an integer in [1, 1e+09]"),
    ('steps = "many"\n' + MINIMAL, "steps: 'many' is not an integer"),
    ("seed = -1\n" + MINIMAL, "seed: -1 is out of range"),
    ('device = "gpu"\n' + MINIMAL, "device: 'gpu' is not a device; allowed: auto, cpu, cuda"),
    (
        'dtype = "float16"\n' + MINIMAL,
        "dtype: 'float16' is not allowed; allowed: one of 'float32', 'float64'",
    ),
    ('colour = "red"\n' + MINIMAL, "colour: unknown key; allowed: name, seed"),
    (MINIMAL + "dim = 0", "task.dim: 0 is out of range"),
    (MINIMAL + "wobble = 1", "task.wobble: unknown parameter; known parameters:"),
    (
        MINIMAL + '[[runs]]\noptimizer = { id = "adamm" }',
        "runs[0].optimizer.id: unknown id 'adamm'; allowed:",
    ),
    (
        MINIMAL + '[[runs]]\noptimizer = { id = "adam", lr = -1.0 }',
        "runs[0].optimizer.lr: -1.0 is out of range",
    ),
    (
        MINIMAL + '[[runs]]\noptimizer = { id = "adam", betas = [0.9] }',
        "runs[0].optimizer.betas: [0.9] has 1 items; allowed: a list of 2 numbers",
    ),
    (
        MINIMAL + '[[runs]]\noptimizer = { id = "adam", lr = "fast" }',
        "runs[0].optimizer.lr: 'fast' is not a number",
    ),
    (
        MINIMAL + '[[runs]]\nname = "a"\n[[runs]]\nname = "a"',
        "runs[1].name: 'a' is used by another run",
    ),
    (MINIMAL + '[[runs]]\nname = "a/b"', "runs[0].name: 'a/b' is not a valid run name"),
    (
        MINIMAL + '[[runs]]\nschedule = { id = "exponential" }',
        "runs[0].schedule.id: unknown schedule 'exponential'; allowed: constant, cosine",
    ),
    (
        MINIMAL + '[[runs]]\nschedule = { id = "step", gamma = 2.0 }',
        "runs[0].schedule.gamma: 2.0 is out of range; allowed: a number in [0, 1]",
    ),
    (MINIMAL + "[[runs]]\nspeed = 3", "runs[0].speed: unknown key; allowed: name, optimizer"),
    ("runs = []\n" + MINIMAL, "runs: [] is not a non-empty array of tables"),
    (MINIMAL + '[[diagnostics]]\nid = "xray"', "diagnostics[0].id: unknown id 'xray'"),
    (
        MINIMAL + '[[diagnostics]]\nid = "hessian"\nevery = 0',
        "diagnostics[0].every: 0 is out of range",
    ),
    (
        MINIMAL + '[[diagnostics]]\nid = "hessian"\ntop_k = 100',
        "diagnostics[0].top_k: 100 is out of range",
    ),
    (
        MINIMAL + '[[diagnostics]]\nid = "hessian"\nruns = ["ghost"]',
        "diagnostics[0].runs: ['ghost'] is not a list of run names; allowed: adam",
    ),
    ("[task]\nid = [1]", "task.id: unknown id [1]; allowed:"),
    (MINIMAL + '[[runs]]\noptimizer = { id = ["x"] }', "runs[0].optimizer.id: unknown id ['x']"),
    (MINIMAL + "[[diagnostics]]\nid = {}", "diagnostics[0].id: unknown id {}"),
    ("runs = [[1]]\n" + MINIMAL, "runs[0]: [1] is not a table"),
    ("name = \n", "not valid TOML"),
    (MINIMAL + '[task]\nid = "quadratic"', "not valid TOML"),
]


@pytest.mark.parametrize(("text", "expected"), INVALID)
def test_invalid_spec_names_the_problem(text: str, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_toml(text, "my.toml")
    assert any(expected in p for p in info.value.problems), info.value.problems
    assert str(info.value).startswith("my.toml is invalid")


def test_all_errors_are_reported_at_once() -> None:
    text = (
        'steps = -5\ndtype = "half"\n[task]\nid = "quadratic"\ndim = -1\n'
        '[[runs]]\noptimizer = { id = "adam", lr = 0 }\n[[runs]]\noptimizer = { id = "zzz" }'
    )
    with pytest.raises(SpecError) as info:
        parse_toml(text)
    fields = sorted(p.split(":")[0] for p in info.value.problems)
    assert fields == ["dtype", "runs[0].optimizer.lr", "runs[1].optimizer.id", "steps", "task.dim"]


def test_unreadable_spec_file(tmp_path) -> None:
    with pytest.raises(SpecError, match="cannot read the file"):
        load_spec(tmp_path / "absent.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SpecError, match="cannot read the file"):
        load_spec(binary)
