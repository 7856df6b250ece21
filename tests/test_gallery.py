"""The gallery: every preset runs headless and its claims hold; claims parse, fail and persist."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch

from descentlab.app.cli import main
from descentlab.engine.claims import (
    CHECKS,
    MemoryData,
    evaluate,
    evaluate_claims,
    outlier_count,
)
from descentlab.engine.memory import MemorySink
from descentlab.engine.plugin import Output
from descentlab.engine.runner import Runner
from descentlab.engine.session.reader import SessionReader
from descentlab.engine.sink import RunHeader
from descentlab.engine.spec import SpecError, parse_spec, parse_toml

GALLERY = Path(str(files("descentlab.assets").joinpath("presets/gallery")))
PRESETS = sorted(GALLERY.glob("*.toml"))


def _run(text: str) -> tuple[list, MemorySink]:
    spec = parse_toml(text)
    sink = MemorySink()
    Runner(spec).run(sink)
    return evaluate_claims(MemoryData(sink), spec.claims), sink


def test_gallery_has_the_presets() -> None:
    names = {p.stem for p in PRESETS}
    assert {
        "edge-of-stability",
        "hessian-outliers",
        "gradient-subspace",
        "adam-counterexample",
        "matrix-sensing",
        "diffgrad-half-lr",
        "sgd-trace-bound",
        "orthogonal-updates",
        "momentum-rosenbrock",
    } <= names


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_claims_hold(preset: Path) -> None:
    text = preset.read_text("utf-8")
    assert text.startswith("# Claim:"), "a preset opens with the claim it checks"
    assert "Source" in text.split("name =")[0]
    spec = parse_toml(text, str(preset))
    assert spec.claims and spec.name.startswith("gallery-")
    verdicts, sink = _run(text)
    assert all(run.status == "finished" for run in sink.runs.values())
    for verdict in verdicts:
        assert verdict.held, verdict.summary


def test_claims_round_trip_through_to_toml() -> None:
    spec = parse_toml((GALLERY / "adam-counterexample.toml").read_text("utf-8"))
    again = parse_toml(spec.to_toml())
    assert [(c.id, c.params) for c in again.claims] == [(c.id, c.params) for c in spec.claims]
    assert spec.claims[1].to_dict() == {
        "id": "late-band",
        "run": "amsgrad",
        "series": "online/distance",
        "component": 0,
        "window": 0.5,
        "statistic": "mean",
        "high": 0.1,
    }


def _spec_with(claims: list[dict]) -> dict:
    return {
        "task": {"id": "quadratic", "dim": 3},
        "steps": 5,
        "runs": [{"name": "a", "optimizer": {"id": "sgd"}}],
        "claims": claims,
    }


def test_claim_spec_errors_name_the_field() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(
            _spec_with(
                [
                    {"id": "nope"},
                    {"id": "late-band", "run": "b", "high": 1.0},
                    {"id": "late-band", "run": "a"},
                    {"id": "race", "run_a": "a", "run_b": "a", "target": "low"},
                    {"id": "rate-slows", "run": "a", "early_start": 0.5, "early_end": 0.2},
                    {"id": "outlier-count", "run": "a", "expectd": 3},
                ]
            )
        )
    problems = info.value.problems
    assert any(
        p.startswith("claims[0].id: unknown id 'nope'; allowed: late-band") for p in problems
    )
    assert any(p.startswith("claims[1].run: 'b' is not a run of this experiment") for p in problems)
    assert any(p.startswith("claims[2].low: set low, high or both") for p in problems)
    assert any(p.startswith("claims[3].target: 'low' is not a number") for p in problems)
    assert any(p.startswith("claims[4].early_end:") for p in problems)
    assert any(p.startswith("claims[5].expectd: unknown parameter") for p in problems)
    with pytest.raises(SpecError, match=r"claims: .* is not an array of tables"):
        parse_spec(_spec_with({"id": "race"}))  # type: ignore[arg-type]


def test_a_claim_fails_on_a_run_that_contradicts_it() -> None:
    # Adam given AMSGrad's running maximum converges, so "Adam fails" must not hold.
    text = (GALLERY / "adam-counterexample.toml").read_text("utf-8")
    wrong = text.replace(
        'name = "adam"\noptimizer = { id = "adam", lr = 0.1, betas = [0.0, 0.1] }',
        'name = "adam"\noptimizer = { id = "adam", lr = 0.1, betas = [0.0, 0.1], amsgrad = true }',
    )
    assert wrong != text
    verdicts, _ = _run(wrong)
    assert not verdicts[0].held
    assert verdicts[0].numbers["value"] < 0.1
    assert verdicts[0].summary.startswith("adam: mean of online/distance")


def test_cli_run_records_verdicts_in_the_session(tmp_path: Path, capsys) -> None:
    out = tmp_path / "s.h5"
    code = main(["run", str(GALLERY / "diffgrad-half-lr.toml"), "-o", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "✓ held: train/loss of diffgrad-published and adam-half-lr differ" in printed
    with SessionReader(out) as reader:
        (claim,) = reader.claims()
    assert claim.id == "series-match" and claim.held
    assert claim.numbers == {"max_relative_difference": 0.0, "steps": 200.0}
    assert claim.params["run_a"] == "diffgrad-published" and claim.params["rtol"] == 1e-9
    assert main(["info", str(out)]) == 0
    assert "claims:\n  ✓ held: train/loss" in capsys.readouterr().out


# -- the checks on hand-made records --------------------------------------------------------


def _sink(series: dict[str, dict[str, list[tuple[int, object]]]]) -> MemorySink:
    sink = MemorySink()
    for run, named in series.items():
        sink.add_run(RunHeader(run, {}, [Output(name, "scalar") for name in named]))
        for name, rows in named.items():
            for step, value in rows:
                sink.append(run, name, step, value)
    return sink


def _params(check: str, **values: object) -> dict:
    return {p.name: values.get(p.name, p.default) for p in CHECKS[check].params}


def test_late_band_divides_by_the_reference_step_by_step() -> None:
    sink = _sink(
        {
            "r": {
                "x": [(0, 1.0), (10, 4.0), (20, 6.0), (30, 10.0)],
                "ref": [(0, 10.0), (10, 5.0), (20, 5.0), (30, 10.0)],
            }
        }
    )
    p = _params("late-band", run="r", series="x", reference_series="ref", low=0.9, high=1.3)
    verdict = evaluate(MemoryData(sink), "late-band", p)
    assert verdict.held and verdict.numbers["value"] == pytest.approx((1.2 + 1.0) / 2)
    p["start_max"] = 0.05  # the first ratio is 0.1
    assert not evaluate(MemoryData(sink), "late-band", p).held


def test_outlier_count_cuts_at_the_largest_ratio() -> None:
    spectrum = np.array([9.0, 7.0, 5.0, 1.0, 0.9, 0.8, 0.0, -0.5])
    assert outlier_count(spectrum, 6) == (3, 5.0)
    assert outlier_count(np.array([-1.0, -2.0]), 5)[0] == 0


def test_order_of_learning_and_race() -> None:
    rows = [(0, [0.0, 0.0]), (1, [0.6, 0.01]), (2, [1.0, 0.1]), (3, [1.0, 0.7]), (4, [1.0, 1.0])]
    sink = _sink({"r": {"sv": [(s, np.array(v)) for s, v in rows]}})
    p = _params("order-of-learning", run="r", series="sv", components=2)
    verdict = evaluate(MemoryData(sink), "order-of-learning", p)
    assert verdict.held and verdict.numbers == {"step_0": 1.0, "step_1": 3.0, "lag_1": 0.01}
    p["lag"] = 0.005
    assert not evaluate(MemoryData(sink), "order-of-learning", p).held

    race = _sink({"a": {"loss": [(0, 1.0), (1, 0.1)]}, "b": {"loss": [(0, 1.0), (1, 0.5)]}})
    q = _params("race", run_a="a", run_b="b", series="loss", target=0.2)
    assert evaluate(MemoryData(race), "race", q).held
    q["expect"] = "a-does-not-win"
    assert not evaluate(MemoryData(race), "race", q).held


def test_missing_series_cannot_hold() -> None:
    sink = _sink({"r": {"x": [(0, 1.0)]}})
    verdict = evaluate(
        MemoryData(sink), "late-band", _params("late-band", run="r", series="y", low=0)
    )
    assert not verdict.held
    assert verdict.summary == "cannot be checked: run 'r' recorded no series 'y'"


# -- the online convex task ----------------------------------------------------------------


def test_online_convex_cycles_and_projects() -> None:
    from descentlab.engine import registry

    task = registry.plugins("tasks")["online-convex"].build(
        {"C": 3.0, "start": 1.0}, 0, torch.device("cpu"), torch.float64
    )
    batches = task.batches(torch.Generator())
    coefficients = [next(batches)[0].item() for _ in range(6)]
    assert coefficients == [3.0, -1.0, -1.0, 3.0, -1.0, -1.0]
    assert task.probe[0].item() == pytest.approx(1 / 3)
    with torch.no_grad():
        task.model.x.fill_(1.7)
    assert task.step_series(task.model)["online/distance"].tolist() == [2.0]
    loss = task.loss(task.model, (torch.tensor([[-1.0]], dtype=torch.float64), task.probe[1]))
    assert loss.item() == -1.0 and task.model.x.item() == 1.0
    with pytest.raises(SpecError, match="C > 2"):
        Runner(parse_spec({"task": {"id": "online-convex", "C": 2.0}}))
