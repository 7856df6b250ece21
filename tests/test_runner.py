"""The Runner against ground truth: plain PyTorch loops, closed-form iterates, live commands."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from engine_helpers import run

from descentlab.engine import registry
from descentlab.engine.commands import Fork, Pause, Resume, SetHyper, StepN, Stop
from descentlab.engine.memory import MemorySink
from descentlab.engine.plugin import Diagnostic, DiagnosticPlugin, Output
from descentlab.engine.runner import Runner
from descentlab.engine.spec import SpecError, parse_toml
from descentlab.plugins.optimizers import torch_optim


def losses(sink: MemorySink, name: str) -> np.ndarray:
    return sink.runs[name].series("train/loss")[1]


# SparseAdam is left out: it refuses dense gradients (tested with the optimizers).
TORCH_OPTIMIZERS = sorted(p.id for p in torch_optim.PLUGINS if p.id != "sparse-adam")


@pytest.mark.parametrize("optimizer_id", TORCH_OPTIMIZERS)
def test_runner_matches_a_plain_loop_step_for_step(optimizer_id: str) -> None:
    """Every torch.optim optimizer, run by the Runner, reproduces a hand-written loop in float64."""
    text = f"""
seed = 1
steps = 12
dtype = "float64"
device = "cpu"
[task]
id = "gaussian-mixture"
samples = 256
hidden = [8]
batch_size = 32
[[runs]]
optimizer = {{ id = "{optimizer_id}" }}
"""
    runner, sink = run(text)
    recorded = losses(sink, optimizer_id)

    spec = parse_toml(text)
    plugin = registry.plugins("tasks")["gaussian-mixture"]
    task = plugin.build(spec.task.params, 1, torch.device("cpu"), torch.float64)
    model = copy.deepcopy(task.model)
    opt_plugin = registry.plugins("optimizers")[optimizer_id]
    opt = opt_plugin.build(
        list(model.named_parameters()), task.roles, dict(spec.runs[0].optimizer.params)
    )
    batches: Iterator = task.batches(torch.Generator().manual_seed(1))
    expected = []
    for _ in range(12):
        inputs, targets = next(batches)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = task.criterion(model(inputs), targets)  # noqa: B023
            loss.backward()
            return loss

        if opt_plugin.needs.closure:
            expected.append(opt.step(closure).item())
        else:
            expected.append(closure().item())
            opt.step()
    np.testing.assert_array_equal(recorded, np.array(expected))
    for (name, p), q in zip(
        runner.runs[optimizer_id].named.items(), model.parameters(), strict=True
    ):
        assert torch.equal(p, q), name


def test_gradient_descent_on_a_quadratic_follows_the_closed_form() -> None:
    """x_t − x* = (I − ηA)^t (x_0 − x*), so f_t = ½ e_tᵀ A e_t exactly."""
    text = """
steps = 40
dtype = "float64"
device = "cpu"
[task]
id = "quadratic"
eigenvalues = [4.0, 2.0, 1.0, 0.5, -0.1]
[[runs]]
name = "gd"
optimizer = { id = "sgd", lr = 0.2, momentum = 0.0 }
"""
    runner, sink = run(text)
    model = runner.task.model
    a, x_star = model.hessian.double(), model.minimizer.double()
    e = runner.runs["gd"].init["x"].double() - x_star
    step = torch.eye(5, dtype=torch.float64) - 0.2 * a
    expected = []
    for _ in range(40):
        expected.append(float(0.5 * e @ a @ e))
        e = step @ e
    np.testing.assert_allclose(losses(sink, "gd"), expected, rtol=1e-12, atol=1e-14)


def test_runs_share_initial_weights_and_batches() -> None:
    text = """
steps = 3
device = "cpu"
[task]
id = "digits-mlp"
hidden = [16]
[[runs]]
name = "a"
optimizer = { id = "sgd", lr = 0.1 }
[[runs]]
name = "b"
optimizer = { id = "adam", lr = 0.001 }
"""
    runner, sink = run(text)
    assert losses(sink, "a")[0] == losses(sink, "b")[0]
    for a, b in zip(runner.runs["a"].init.values(), runner.runs["b"].init.values(), strict=True):
        assert torch.equal(a, b)
    assert sink.runs["a"].status == sink.runs["b"].status == "finished"


QUAD = """
steps = 30
dtype = "float64"
device = "cpu"
[task]
id = "quadratic"
dim = 6
[[runs]]
name = "a"
optimizer = { id = "sgd", lr = 0.005, momentum = 0.9 }
"""


def test_pause_step_resume_and_stop_are_events() -> None:
    runner, sink = run(QUAD, [(5, Pause()), (5, StepN(3)), (8, Resume()), (20, Stop())])
    kinds = [(s, k) for s, k, _ in sink.runs["a"].events]
    assert (5, "pause") in kinds
    assert (8, "resume") in kinds
    assert sink.runs["a"].status == "stopped"
    assert runner.step == 20
    assert len(losses(sink, "a")) == 20


def test_stopping_one_run_lets_the_others_finish() -> None:
    text = QUAD + '[[runs]]\nname = "b"\noptimizer = { id = "adam" }\n'
    _, sink = run(text, [(10, Stop("b"))])
    assert sink.runs["b"].status == "stopped"
    assert len(losses(sink, "b")) == 10
    assert sink.runs["a"].status == "finished"
    assert len(losses(sink, "a")) == 30


def test_live_learning_rate_change_reaches_the_optimizer_and_the_record() -> None:
    _, sink = run(QUAD, [(10, SetHyper("a", "lr", 0.001))])
    steps, lrs = sink.runs["a"].series("train/lr")
    assert set(lrs[steps < 10]) == {0.005} and set(lrs[steps >= 10]) == {0.001}
    assert (10, "hyper", "lr: 0.005 -> 0.001") in sink.runs["a"].events

    # the same change in a plain loop gives the same losses
    _plain, plain_sink = run(QUAD.replace("steps = 30", "steps = 10"))
    assert np.array_equal(losses(sink, "a")[:10], losses(plain_sink, "a"))


def test_bad_commands_are_logged_not_raised() -> None:
    _, sink = run(
        QUAD,
        [
            (2, SetHyper("a", "lr", "fast")),
            (3, SetHyper("a", "nope", 1.0)),
            (4, SetHyper("ghost", "lr", 1.0)),
            (5, Fork("a", "a")),
        ],
    )
    errors = [d for _, k, d in sink.runs["a"].events if k == "command_error"]
    assert len(errors) == 4
    assert "lr: 'fast' is not a number in [1e-08, 10]" in errors[0]
    assert "'nope' is not a live hyperparameter" in errors[1]
    assert "no run named 'ghost'" in errors[2]
    assert "exists already" in errors[3]
    assert sink.runs["a"].status == "finished"


def test_fork_with_the_parents_settings_continues_identically() -> None:
    _, sink = run(QUAD, [(12, Fork("a", "twin"))])
    twin = sink.runs["twin"]
    assert (twin.parent_run, twin.fork_step) == ("a", 12)
    steps, values = twin.series("train/loss")
    assert steps[0] == 12 and len(steps) == 18
    np.testing.assert_array_equal(values, losses(sink, "a")[12:])


def test_fork_with_another_optimizer_diverges_from_the_parent() -> None:
    _, sink = run(QUAD, [(12, Fork("a", "alt", optimizer={"id": "adam", "lr": 0.1}))])
    assert sink.runs["alt"].config["optimizer"]["id"] == "adam"
    assert not np.array_equal(losses(sink, "alt"), losses(sink, "a")[12:])
    assert losses(sink, "alt")[0] == losses(sink, "a")[12]


def test_divergence_ends_only_that_run() -> None:
    text = QUAD.replace("steps = 30", "steps = 200")
    text += '[[runs]]\nname = "wild"\noptimizer = { id = "sgd", lr = 10.0 }\n'
    _, sink = run(text)
    assert sink.runs["wild"].status == "diverged"
    assert any(k == "diverged" for _, k, _ in sink.runs["wild"].events)
    assert sink.runs["a"].status == "finished"
    assert len(losses(sink, "a")) == 200
    assert len(losses(sink, "wild")) < 200


class _Exploding(Diagnostic):
    def outputs(self, ctx):
        return [Output("boom/value", "scalar")]

    def compute(self, ctx):
        if ctx.step >= 4:
            raise RuntimeError("kaboom")
        return {"boom/value": 1.0}


@pytest.fixture
def exploding_diagnostic() -> Iterator[None]:
    with registry.registered(
        DiagnosticPlugin("boom", "Boom", "raises at step 4", (), _Exploding, every=2)
    ):
        yield


def test_a_diagnostic_that_raises_is_switched_off_and_the_run_goes_on(
    exploding_diagnostic: None,
) -> None:
    _, sink = run(QUAD + '[[diagnostics]]\nid = "boom"\nevery = 2\n')
    run_a = sink.runs["a"]
    assert run_a.status == "finished"
    assert list(run_a.series("boom/value")[0]) == [0, 2]
    errors = [(s, d) for s, k, d in run_a.events if k == "diagnostic_error"]
    assert errors == [(4, "boom switched off: RuntimeError: kaboom")]


def test_learning_rate_schedule_with_warmup() -> None:
    text = QUAD.replace(
        "momentum = 0.9 }", 'momentum = 0.9 }\nschedule = { id = "cosine", warmup_steps = 10 }'
    )
    _, sink = run(text)
    lrs = sink.runs["a"].series("train/lr")[1]
    np.testing.assert_allclose(lrs[:10], 0.005 * np.arange(1, 11) / 10)
    np.testing.assert_allclose(lrs[10], 0.005)
    assert lrs[-1] < lrs[11] < lrs[10]


def test_missing_cuda_is_a_spec_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error path is for machines without it")
    with pytest.raises(SpecError, match="no CUDA device"):
        Runner(parse_toml('device = "cuda"\n[task]\nid = "quadratic"\n'))


def test_function2d_records_its_trajectory() -> None:
    text = """
steps = 25
device = "cpu"
dtype = "float64"
[task]
id = "function2d"
function = "rosenbrock"
start = [-1.5, 2.0]
[[runs]]
name = "gd"
optimizer = { id = "sgd", lr = 1e-4 }
"""
    runner, sink = run(text)
    steps, points = sink.runs["gd"].series("trajectory/params")
    assert list(steps) == list(range(26))
    np.testing.assert_array_equal(points[0], [-1.5, 2.0])
    np.testing.assert_array_equal(points[-1], runner.runs["gd"].named["point"].detach().numpy())
    assert sink.runs["gd"].outputs["trajectory/params"].kind == "points2d"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hessian_diagnostic_recovers_a_known_spectrum_through_the_runner(seed: int) -> None:
    """Top-k and minimum eigenvalues to 1e-4 relative, Hutch++ trace to 1%, on a 50-dimensional
    quadratic whose Hessian spectrum is known (49 log-spaced eigenvalues and a negative one)."""
    eigenvalues = [float(v) for v in np.round(np.geomspace(100, 0.1, 49), 6)] + [-2.0]
    text = f"""
seed = {seed}
steps = 3
dtype = "float64"
device = "cpu"
[task]
id = "quadratic"
eigenvalues = {eigenvalues}
[[runs]]
name = "gd"
optimizer = {{ id = "sgd", lr = 0.001 }}
[[diagnostics]]
id = "hessian"
every = 1
top_k = 3
trace_samples = 90
seed = {seed}
"""
    _, sink = run(text)
    gd = sink.runs["gd"]
    top = gd.series("hessian/top_eigenvalues")[1]
    np.testing.assert_allclose(top, np.tile(eigenvalues[:3], (3, 1)), rtol=1e-4)
    np.testing.assert_allclose(gd.series("hessian/min_eigenvalue")[1], -2.0, rtol=1e-4)
    np.testing.assert_allclose(gd.series("hessian/trace")[1], sum(eigenvalues), rtol=0.01)
    np.testing.assert_allclose(gd.series("hessian/two_over_lr")[1], 2 / 0.001)
