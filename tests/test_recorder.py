"""The Recorder: a user's own loop written as a session, with the Runner's diagnostics."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from descentlab import Recorder
from descentlab.app.cli import main as cli_main
from descentlab.engine import compare
from descentlab.engine.session.reader import SessionReader
from descentlab.engine.spec import SpecError

DOCS = Path(__file__).resolve().parent.parent / "docs" / "recorder.md"


def _problem(seed: int = 0, dtype: torch.dtype = torch.float64):
    """A small classifier, its data and loss, in float64 so norms match at 1e-12."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).to(dtype)
    x = torch.randn(32, 5, dtype=dtype)
    y = torch.randint(0, 3, (32,))
    return model, nn.CrossEntropyLoss(), x, y


def _recording_sgd(path: Path):
    """`_problem()`'s model under SGD (lr 0.05), recorded with norms to `path`, flushed at once."""
    problem = model, loss_fn, x, y = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    rec = Recorder(
        path, model, loss_fn=loss_fn, probe=(x, y), optimizer=opt, diagnostics={"norms": {}},
        flush_interval=0.0,
    )  # fmt: skip
    return rec, problem, opt


def _train(rec: Recorder, model, loss_fn, opt, x, y, steps: int, keep: list | None = None):
    """The user's loop; `keep` collects (loss, grads, θ before, θ after) of every step."""
    for _ in range(steps):
        before = {k: p.detach().clone() for k, p in model.named_parameters()}
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
        opt.step()
        after = {k: p.detach().clone() for k, p in model.named_parameters()}
        rec.step(loss)
        if keep is not None:
            keep.append((loss.item(), grads, before, after))


def test_from_descentlab_import_recorder_in_a_fresh_interpreter() -> None:
    """The top-level package is `engine/public`; the app, engine and plugins still resolve, and
    importing them does not import the recorder (it loads on first use)."""
    code = (
        "import sys, descentlab.app, descentlab.engine.runner, descentlab.plugins.diagnostics\n"
        "assert 'descentlab.engine.recorder' not in sys.modules\n"
        "from descentlab import Recorder\n"
        "from descentlab.engine.recorder import Recorder as R\n"
        "assert Recorder is R\n"
        "import descentlab\n"
        "print(descentlab.__all__, descentlab.app.__name__, descentlab.plugins.__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['Recorder'] descentlab.app descentlab.plugins"


def test_loss_lr_grads_and_updates_are_those_of_the_step_just_taken(tmp_path: Path) -> None:
    model, loss_fn, x, y = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    kept: list = []
    with Recorder(
        tmp_path / "run.h5", model, loss_fn=loss_fn, probe=(x, y), optimizer=opt,
        diagnostics={"norms": {}}, flush_interval=0.0,
    ) as rec:  # fmt: skip
        _train(rec, model, loss_fn, opt, x, y, 6, kept)
        assert rec.steps == 6
    with SessionReader(tmp_path / "run.h5") as reader:
        assert reader.run("run").status == "finished"
        steps, losses = reader.read("run", "train/loss")
        assert steps.tolist() == list(range(6))
        assert losses.tolist() == [k[0] for k in kept]
        assert reader.read("run", "train/lr")[1].tolist() == [0.1] * 6
        for t, (_, grads, before, after) in enumerate(kept):
            for name in grads:
                g = reader.read("run", f"norms/grad/{name}")[1][t]
                u = reader.read("run", f"norms/update/{name}")[1][t]
                w = reader.read("run", f"norms/weight/{name}")[1][t]
                assert g == pytest.approx(grads[name].norm().item(), rel=1e-12)
                assert u == pytest.approx((after[name] - before[name]).norm().item(), rel=1e-12)
                assert w == pytest.approx(after[name].norm().item(), rel=1e-12)
        first = kept[0][2]
        distance = torch.cat([(kept[-1][3][k] - first[k]).reshape(-1) for k in first]).norm()
        last = reader.read("run", "norms/distance_from_init")[1][-1]
        assert last == pytest.approx(distance.item(), rel=1e-12)


def test_the_hessian_is_taken_at_the_parameters_after_the_step(tmp_path: Path) -> None:
    model, loss_fn, x, y = _problem(seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    kept: list = []
    with Recorder(
        tmp_path / "run.h5", model, loss_fn=loss_fn, probe=(x[:16], y[:16]), optimizer=opt,
        diagnostics={"hessian": {"every": 2, "exact": True, "trace": False, "frobenius": False}},
    ) as rec:  # fmt: skip
        _train(rec, model, loss_fn, opt, x, y, 5, kept)
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    with SessionReader(tmp_path / "run.h5") as reader:
        steps, spectra = reader.read("run", "hessian/exact_spectrum")
        assert steps.tolist() == [0, 2, 4]
        for t, spectrum in zip(steps.tolist(), spectra, strict=True):
            theta = kept[t][3]  # θ_{t+1}

            def loss_of(flat: torch.Tensor, theta=theta) -> torch.Tensor:
                params, offset = {}, 0
                for name, shape in zip(names, shapes, strict=True):
                    n = int(np.prod(shape))
                    params[name] = flat[offset : offset + n].reshape(shape)
                    offset += n
                out = torch.func.functional_call(model, params, (x[:16],))
                return loss_fn(out, y[:16])

            flat = torch.cat([theta[k].reshape(-1) for k in names])
            dense = torch.autograd.functional.hessian(loss_of, flat)
            exact = torch.linalg.eigvalsh(dense).flip(0).numpy()
            np.testing.assert_allclose(spectrum, exact, atol=1e-10)


def test_without_an_optimizer_what_needs_it_is_skipped_with_one_event(tmp_path: Path) -> None:
    model, loss_fn, x, y = _problem()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)  # the loop's, not given to the Recorder
    diagnostics = {"norms": {}, "optimizer-state": {"every": 1}, "sharpness": {"every": 2}}
    with Recorder(
        tmp_path / "run.h5", model, loss_fn=loss_fn, probe=(x, y), diagnostics=diagnostics
    ) as rec:
        _train(rec, model, loss_fn, opt, x, y, 4)
    with SessionReader(tmp_path / "run.h5") as reader:
        events = [e for e in reader.events("run") if e.kind != "end"]
        assert [(e.step, e.kind) for e in events] == [(0, "diagnostics_skipped")]
        assert events[0].detail == (
            "no optimizer given: skipped optimizer-state (it reads the optimizer's state), "
            "sharpness.preconditioned, sharpness.stability"
        )
        names = reader.series_names("run")
        assert "train/lr" not in names
        assert not any(n.startswith("optimizer_state/") for n in names)
        assert "sharpness/preconditioned" not in names
        assert "sharpness/gradient_overlap" in names
        assert len(reader.read("run", "norms/update_total")[0]) == 4  # Δθ needs no optimizer
        assert '[[diagnostics]]\nid = "sharpness"' in reader.spec_text
        assert "preconditioned = false" in reader.spec_text


def test_with_the_optimizer_adam_state_and_preconditioned_sharpness_are_recorded(
    tmp_path: Path,
) -> None:
    model, loss_fn, x, y = _problem()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    diagnostics = {"optimizer-state": {"every": 2}, "sharpness": {"every": 2, "batch": False}}
    with Recorder(
        tmp_path / "run.h5", model, loss_fn=loss_fn, probe=(x, y), optimizer=opt,
        diagnostics=diagnostics,
    ) as rec:  # fmt: skip
        _train(rec, model, loss_fn, opt, x, y, 5)
    with SessionReader(tmp_path / "run.h5") as reader:
        assert [e.kind for e in reader.events("run")] == ["end"]
        steps, histograms = reader.read("run", "optimizer_state/effective_step_histogram")
        assert steps.tolist() == [0, 2, 4]
        np.testing.assert_allclose(histograms.sum(axis=1), 1.0, rtol=1e-12)
        steps, threshold = reader.read("run", "sharpness/adam_threshold")
        assert steps.tolist() == [0, 2, 4]
        np.testing.assert_allclose(threshold, (2 + 2 * 0.9) / (0.1 * 0.01), rtol=1e-12)
        assert len(reader.read("run", "optimizer_state/sign_disagreement")[0]) == 2


def test_invalid_diagnostics_are_refused_with_the_specs_messages(tmp_path: Path) -> None:
    model, loss_fn, x, y = _problem()
    with pytest.raises(SpecError) as raised:
        Recorder(
            tmp_path / "run.h5", model, loss_fn=loss_fn, probe=(x, y),
            diagnostics={"norms": {}, "hesian": {}, "hessian": {"every": 0, "top_kk": 3}},
        )  # fmt: skip
    assert raised.value.problems[0].startswith("diagnostics['hesian'].id: unknown id 'hesian'; ")
    assert raised.value.problems[1:] == [
        "diagnostics['hessian'].every: 0 is out of range; allowed: an integer in [1, 1e+09]",
        "diagnostics['hessian'].top_kk: unknown parameter; known parameters: density, "
        "density_points, density_runs, density_steps, density_width, exact, frobenius, "
        "iterations, min_eigenvalue, per_layer, seed, top_k, trace, trace_method, trace_samples",
    ]
    with pytest.raises(SpecError, match=r"diagnostics\['norms'\]: 1 is not a dict"):
        Recorder(
            tmp_path / "run.h5", model, loss_fn=loss_fn, probe=(x, y), diagnostics={"norms": 1}
        )
    assert not (tmp_path / "run.h5").exists()


def test_bad_arguments_are_refused_naming_the_argument(tmp_path: Path) -> None:
    model, loss_fn, x, y = _problem()
    path = tmp_path / "run.h5"
    with pytest.raises(ValueError, match=r"^probe: expected a pair of tensors"):
        Recorder(path, model, loss_fn=loss_fn, probe=x)
    with pytest.raises(ValueError, match=r"^probe: loss_fn\(model\(x\), y\) fails on it: Runtime"):
        Recorder(path, model, loss_fn=loss_fn, probe=(x[:, :4], y))
    with pytest.raises(ValueError, match=r"^probe: loss_fn\(model\(x\), y\) must return a scalar"):
        Recorder(path, model, loss_fn=nn.CrossEntropyLoss(reduction="none"), probe=(x, y))
    with pytest.raises(ValueError, match=r"^held_out: expected a pair"):
        Recorder(path, model, loss_fn=loss_fn, probe=(x, y), held_out=(x,))
    with pytest.raises(ValueError, match=r"^optimizer: expected a torch.optim.Optimizer"):
        Recorder(path, model, loss_fn=loss_fn, probe=(x, y), optimizer="adam")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^model: it has no parameters"):
        Recorder(path, nn.Identity(), loss_fn=loss_fn, probe=(x, y))
    with pytest.raises(ValueError, match=r"^run: 'a/b' is not a valid run name"):
        Recorder(path, model, loss_fn=loss_fn, probe=(x, y), run="a/b")
    with pytest.raises(FileNotFoundError, match=r"run.h5: the folder .*/missing does not exist"):
        Recorder(tmp_path / "missing" / "run.h5", model, loss_fn=loss_fn, probe=(x, y))
    assert not path.exists()
    path.write_bytes(b"")
    with pytest.raises(FileExistsError, match="exists already; a session is never overwritten"):
        Recorder(path, model, loss_fn=loss_fn, probe=(x, y))


def test_a_failing_loop_a_diverged_loss_and_steps_after_close(tmp_path: Path) -> None:
    model, loss_fn, x, y = _problem()
    with (
        pytest.raises(KeyError),
        Recorder(tmp_path / "a.h5", model, loss_fn=loss_fn, probe=(x, y)) as rec,
    ):
        rec.step(1.5)
        raise KeyError("batch")
    with SessionReader(tmp_path / "a.h5") as reader:
        run = reader.run("run")
        assert (run.status, run.error) == ("failed", "KeyError: 'batch'")
    rec = Recorder(
        tmp_path / "b.h5", model, loss_fn=loss_fn, probe=(x, y), diagnostics={"norms": {}}
    )
    for value in (1.0, float("nan"), float("inf"), 2.0):
        rec.step(torch.tensor(value))
    rec.close()
    rec.close()  # harmless
    with pytest.raises(RuntimeError, match="the Recorder is closed"):
        rec.step(1.0)
    with (
        pytest.raises(ValueError, match="loss: expected a scalar"),
        Recorder(tmp_path / "c.h5", model, loss_fn=loss_fn, probe=(x, y)) as rec,
    ):
        rec.step(torch.ones(2))
    with SessionReader(tmp_path / "b.h5") as reader:
        assert reader.run("run").status == "diverged"
        events = [(e.step, e.kind, e.detail) for e in reader.events("run")]
        assert events == [(1, "diverged", "loss is nan"), (4, "end", "diverged")]
        assert reader.read("run", "train/loss")[0].tolist() == [0, 1, 2, 3]
        assert reader.read("run", "norms/weight_total")[0].tolist() == [0]  # none after that


def test_a_session_being_recorded_is_readable_and_info_export_compare_work(
    tmp_path: Path, capsys
) -> None:
    path = tmp_path / "run.h5"
    rec, (model, loss_fn, x, y), opt = _recording_sgd(path)
    kept: list = []
    _train(rec, model, loss_fn, opt, x, y, 3, kept)
    with SessionReader(path) as reader:  # part-way: the script is still training
        assert reader.run("run").status == "running"
        assert reader.read("run", "train/loss")[1].tolist() == [k[0] for k in kept]
    _train(rec, model, loss_fn, opt, x, y, 2, kept)
    rec.close()

    assert cli_main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "run run: optimizer torch.optim.sgd.SGD, status finished, 5 steps" in out
    assert re.search(r"train/loss\s+\[scalar, scalar\]\s+5 records", out)
    assert cli_main(["export", str(path), "--csv", str(tmp_path / "csv")]) == 0
    with open(tmp_path / "csv" / "run" / "train__loss.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["step", "value"]
    assert [(int(s), float(v)) for s, v in rows[1:]] == [(t, k[0]) for t, k in enumerate(kept)]

    comparison = compare.load([path])
    (run,) = comparison.runs
    assert run.label == "run/run"
    assert run.settings["optimizer.id"] == "torch.optim.sgd.SGD"
    assert run.settings["optimizer.lr"] == 0.05
    np.testing.assert_array_equal(run.series["train/loss"][1], [k[0] for k in kept])


def test_the_window_follows_a_recording_and_replays_it(window, qtbot, tmp_path: Path) -> None:
    path = tmp_path / "live.h5"
    rec, (model, loss_fn, x, y), opt = _recording_sgd(path)
    _train(rec, model, loss_fn, opt, x, y, 10)
    assert window.open_path(path)
    run = window.model.runs["run"]
    assert run.series["train/loss"].n == 10
    _train(rec, model, loss_fn, opt, x, y, 20)
    qtbot.waitUntil(lambda: run.series["train/loss"].n == 30, timeout=5000)
    rec.close()
    qtbot.waitUntil(lambda: window.session.follow is None, timeout=5000)
    run = window.model.runs["run"]
    assert run.status == "finished"
    assert run.series["norms/grad_total"].n == 30
    assert window.open_path(path)  # and it replays once finished
    assert window.model.runs["run"].series["train/loss"].n == 30


def test_the_example_in_the_docs_runs(tmp_path: Path, monkeypatch) -> None:
    """The first Python block of docs/recorder.md, as written, in a fresh folder."""
    code = re.search(r"```python\n(.*?)```", DOCS.read_text("utf-8"), re.S)
    assert code is not None
    monkeypatch.chdir(tmp_path)
    exec(compile(code[1], str(DOCS), "exec"), {"__name__": "__main__"})
    with SessionReader(tmp_path / "run.h5") as reader:
        assert reader.run("run").status == "finished"
        assert reader.read("run", "train/loss")[0].tolist() == list(range(230))
        assert reader.read("run", "eval/accuracy")[0].tolist() == [0, 50, 100, 150, 200]
        assert reader.read("run", "hessian/top_eigenvalues")[0].tolist() == [0, 100, 200]
        assert reader.read("run", "spectra/weights/0.weight")[0].tolist() == [0, 200]
        assert reader.read("run", "eval/accuracy")[1][-1] > 0.8
        assert [e.kind for e in reader.events("run")] == ["end"]


SCRIPT = """
import sys, torch
from torch import nn
from descentlab import Recorder

torch.manual_seed(0)
model = nn.Linear(4, 1)
x, y = torch.randn(16, 4), torch.randn(16, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
with Recorder(sys.argv[1], model, loss_fn=nn.MSELoss(), probe=(x, y), optimizer=opt,
              diagnostics={"norms": {}}, flush_interval=0.0) as rec:
    for step in range(8):
        if step == 5:
            print("halfway", flush=True)
            sys.stdin.readline()  # the test reads the file while the script waits here
        opt.zero_grad(); loss = nn.functional.mse_loss(model(x), y); loss.backward(); opt.step()
        rec.step(loss)
"""


def test_another_process_reads_the_session_while_the_script_trains(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    script = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert script.stdout is not None and script.stdin is not None
        assert script.stdout.readline() == "halfway\n"
        with SessionReader(path) as reader:  # open while the script finishes, as the window is
            assert reader.run("run").status == "running"
            assert reader.read("run", "train/loss")[0].tolist() == [0, 1, 2, 3, 4]
            assert reader.read("run", "norms/update_total")[0].tolist() == [0, 1, 2, 3, 4]
            script.stdin.write("go on\n")
            script.stdin.close()
            assert script.wait(timeout=120) == 0
    finally:
        if script.poll() is None:
            script.kill()
    with SessionReader(path) as reader:
        assert reader.run("run").status == "finished"
        assert reader.read("run", "train/loss")[0].tolist() == list(range(8))
