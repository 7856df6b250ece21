"""Checkpoints: optimizer states survive the trip through a session file exactly, without pickles,
and a run restarted from one continues bit-identically."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from descentlab.app.cli import main
from descentlab.engine import checkpoints, registry
from descentlab.engine.fork import prepare_fork, run_fork
from descentlab.engine.memory import MemorySink
from descentlab.engine.params import defaults
from descentlab.engine.runner import Runner
from descentlab.engine.session.reader import SessionError, SessionReader
from descentlab.engine.session.writer import SessionWriter
from descentlab.engine.spec import parse_spec


def _spec(optimizer: str = "adam", steps: int = 10, every: int = 5):
    return parse_spec(
        {
            "steps": steps,
            "checkpoint_every": every,
            "dtype": "float64",
            "task": {"id": "quadratic", "dim": 6},
            "runs": [{"name": "a", "optimizer": {"id": optimizer}}],
        }
    )


def test_encoding_round_trips_every_kind_of_state_value() -> None:
    state = {
        "state": {
            0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3)},
            1: {"half": torch.ones(4, dtype=torch.bfloat16), "window": [torch.zeros(2), None]},
        },
        "param_groups": [{"lr": 0.1, "betas": (0.9, 0.99), "nesterov": False, "params": [0, 1]}],
    }
    back = checkpoints.decode(checkpoints.encode(state))
    assert back["param_groups"] == state["param_groups"]
    assert isinstance(back["param_groups"][0]["betas"], tuple)
    assert set(back["state"]) == {0, 1}
    assert torch.equal(back["state"][0]["exp_avg"], state["state"][0]["exp_avg"])
    assert back["state"][1]["half"].dtype == torch.bfloat16
    assert back["state"][1]["window"][1] is None


def test_unstorable_state_is_refused_with_the_path_to_it() -> None:
    with pytest.raises(checkpoints.CheckpointError, match=r"state\[0\]\['fn'\] holds a function"):
        checkpoints.encode({0: {"fn": lambda: None}})


def test_runner_checkpoints_on_schedule_and_at_the_end() -> None:
    sink = MemorySink()
    runner = Runner(_spec(steps=12, every=5))
    runner.run(sink)
    run = sink.runs["a"]
    assert sorted(run.checkpoints) == [5, 10, 12]
    final = run.checkpoints[12].params["x"]
    np.testing.assert_array_equal(final, runner.runs["a"].named["x"].detach().numpy())
    assert run.checkpoints[5].optimizer_state["state"][0]["step"].item() == 5


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "muon"])
def test_a_run_restarted_from_a_file_checkpoint_continues_bit_identically(
    tmp_path, optimizer: str
) -> None:
    path = tmp_path / "s.h5"
    with SessionWriter(path, "") as writer:
        Runner(_spec(optimizer)).run(writer)
    with SessionReader(path) as reader:
        assert reader.checkpoint_steps("a") == [5, 10]
        middle, end = reader.checkpoint("a", 5), reader.checkpoint("a", 10)

    task_plugin = registry.plugins("tasks")["quadratic"]
    task = task_plugin.build(
        defaults(task_plugin.params) | {"dim": 6}, 0, torch.device("cpu"), torch.float64
    )
    with torch.no_grad():
        for name, p in task.model.named_parameters():
            p.copy_(torch.from_numpy(middle.params[name]))
    plugin = registry.plugins("optimizers")[optimizer]
    opt = plugin.build(list(task.model.named_parameters()), task.roles, defaults(plugin.params))
    opt.load_state_dict(middle.optimizer_state)
    for _ in range(5):
        opt.zero_grad()
        task.loss(task.model, task.probe).backward()
        opt.step()
    np.testing.assert_array_equal(task.model.x.detach().numpy(), end.params["x"])


def test_checkpoints_hold_no_pickled_objects(tmp_path) -> None:
    path = tmp_path / "s.h5"
    with SessionWriter(path, "") as writer:
        Runner(_spec()).run(writer)
    kinds: set[str] = set()
    with h5py.File(path, "r") as f:
        f["runs/a/checkpoints"].visititems(
            lambda _, obj: kinds.add(obj.dtype.kind) if isinstance(obj, h5py.Dataset) else None
        )
    assert kinds <= {"f", "i", "u", "b"}


def test_asking_for_a_missing_checkpoint_lists_the_steps_there_are(tmp_path) -> None:
    path = tmp_path / "s.h5"
    with SessionWriter(path, "") as writer:
        Runner(_spec()).run(writer)
    with SessionReader(path) as reader, pytest.raises(SessionError, match="it has: 5, 10"):
        reader.checkpoint("a", 7)


def _session_with_checkpoints(path, optimizer: str = "adam") -> None:
    spec = parse_spec(
        {
            "steps": 12,
            "checkpoint_every": 4,
            "task": {"id": "digits-mlp", "batch_size": 32, "hidden": [16]},
            "runs": [{"name": "a", "optimizer": {"id": optimizer}}, {"name": "b"}],
            "diagnostics": [{"id": "norms", "every": 2, "runs": ["a"]}],
        }
    )
    with SessionWriter(path, spec.to_toml()) as writer:
        Runner(spec).run(writer)


def test_a_fork_with_the_parents_settings_reproduces_the_parent_bit_for_bit(tmp_path) -> None:
    path = tmp_path / "s.h5"
    _session_with_checkpoints(path)
    runner = prepare_fork(path, "a", 4, "a-again")
    assert run_fork(path, runner) == "finished"
    with SessionReader(path) as reader:
        info = reader.run("a-again")
        assert (info.parent_run, info.fork_step) == ("a", 4)
        steps, losses = reader.read("a-again", "train/loss")
        assert steps.tolist() == list(range(4, 12))
        _, parent_losses = reader.read("a", "train/loss")
        np.testing.assert_array_equal(losses, parent_losses[4:])
        assert "norms/distance_from_init" in reader.series_names("a-again")
        fork_end, parent_end = reader.checkpoint("a-again", 12), reader.checkpoint("a", 12)
        for name, value in parent_end.params.items():
            np.testing.assert_array_equal(fork_end.params[name], value)


def test_a_fork_with_another_optimizer_starts_from_the_parents_parameters(tmp_path) -> None:
    path = tmp_path / "s.h5"
    _session_with_checkpoints(path)
    runner = prepare_fork(path, "a", 8, "a-sgd", optimizer={"id": "sgd", "lr": 0.05}, steps=10)
    (run,) = runner.runs.values()
    with SessionReader(path) as reader:
        start = reader.checkpoint("a", 8).params
    for name, p in run.named.items():
        np.testing.assert_array_equal(p.detach().numpy(), start[name])
    run_fork(path, runner)
    with SessionReader(path) as reader:
        assert reader.run("a-sgd").config["optimizer"]["id"] == "sgd"
        assert reader.read("a-sgd", "train/loss")[0].tolist() == [8, 9]


@pytest.mark.parametrize(
    ("parent", "step", "name", "message"),
    [
        ("zz", 4, "x", "no run 'zz'; runs: a, b"),
        ("a", 5, "x", "no checkpoint at step 5; it has: 4, 8, 12"),
        ("a", 4, "b", "a run named 'b' exists already"),
    ],
)
def test_fork_mistakes_are_named(tmp_path, parent: str, step: int, name: str, message: str) -> None:
    path = tmp_path / "s.h5"
    _session_with_checkpoints(path)
    with pytest.raises(SessionError, match=message):
        prepare_fork(path, parent, step, name)


def test_cli_fork_sets_hyperparameters_and_names_mistakes(tmp_path, capsys) -> None:
    path = tmp_path / "s.h5"
    _session_with_checkpoints(path)
    assert main(["fork", str(path), "a", "4", "hot", "--set", "lr=0.01", "--quiet"]) == 0
    assert "hot: forked from a at step 4, finished at step 12" in capsys.readouterr().out
    with SessionReader(path) as reader:
        assert reader.run("hot").config["optimizer"]["lr"] == 0.01
        assert reader.run("hot").config["optimizer"]["id"] == "adam"
    assert main(["fork", str(path), "a", "4", "x", "--set", "lr", "--quiet"]) == 2
    assert "expected key=value" in capsys.readouterr().err
    assert main(["fork", str(path), "a", "4", "x", "--optimizer", "nope", "--quiet"]) == 2
    assert "unknown id 'nope'" in capsys.readouterr().err


def test_cli_interpolates_between_two_runs_from_their_last_checkpoints(tmp_path, capsys) -> None:
    path = tmp_path / "s.h5"
    _session_with_checkpoints(path)
    assert main(["interpolate", f"{path}:a", f"{path}:b", "--points", "3"]) == 0
    out = capsys.readouterr().out
    assert f"from {path}:a at step 12 (t = 0) to {path}:b at step 12 (t = 1)" in out
    with SessionReader(path) as reader:
        spec = parse_spec(
            {"task": {"id": "digits-mlp", "batch_size": 32, "hidden": [16]}, "steps": 1}
        )
        task = Runner(spec).task
        with torch.no_grad():
            for name, p in task.model.named_parameters():
                p.copy_(torch.from_numpy(reader.checkpoint("a", 12).params[name]))
            start = task.loss(task.model, task.probe).item()
    assert f"t = 0.000  loss {start:.6g}" in out
    assert "barrier height:" in out


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ("{p}", "{p}:b", "expected SESSION.h5:RUN"),
        ("{p}:a", "{p}:zz", "no run 'zz'; runs: a, b"),
        ("{p}:a", "{q}:a", "trained on different tasks"),
    ],
)
def test_cli_interpolation_mistakes_are_named(tmp_path, capsys, a: str, b: str, message: str):
    p, q = tmp_path / "s.h5", tmp_path / "q.h5"
    _session_with_checkpoints(p)
    with SessionWriter(q, "") as writer:
        Runner(_spec()).run(writer)
    assert main(["interpolate", a.format(p=p, q=q), b.format(p=p, q=q)]) == 2
    assert message in capsys.readouterr().err
