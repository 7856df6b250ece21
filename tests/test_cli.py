"""The `descentlab` command line, called in-process through `main([...])`."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from descentlab.app.cli import main
from descentlab.engine.plugin import Output
from descentlab.engine.progress import ProgressBar
from descentlab.engine.session.reader import SessionReader
from descentlab.engine.session.writer import SessionWriter
from descentlab.engine.sink import RunHeader

TINY = """
name = "tiny"
seed = 1
steps = 50
device = "cpu"

[task]
id = "quadratic"
dim = 4

[[runs]]
name = "gd"
optimizer = { id = "sgd", lr = 0.005 }
"""

WITH_DIAGNOSTICS = (
    TINY
    + """
[[runs]]
name = "heavy-ball"
optimizer = { id = "sgd", lr = 0.005, momentum = 0.9 }

[[diagnostics]]
id = "norms"
every = 5

[[diagnostics]]
id = "hessian"
every = 10
top_k = 2
"""
)

# The built-in plugins declared as entry points in pyproject.toml, by the ids they register.
BUILTIN = {
    "tasks": [
        "function2d",
        "quadratic",
        "gaussian-mixture",
        "digits-mlp",
        "digits-cnn",
        "teacher-student",
        "matrix-sensing",
        "char-transformer",
    ],
    "optimizers": ["sgd", "adam", "adamw", "rmsprop", "adagrad", "lbfgs", "muon"],
    "diagnostics": ["eval", "norms", "spectra", "hessian"],
}


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.mark.parametrize("kind", list(BUILTIN))
def test_list_prints_every_builtin_id(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", kind]) == 0
    out, err = capsys.readouterr()
    listed = re.findall(r"^  (\S+) — ", out, flags=re.MULTILINE)
    assert set(BUILTIN[kind]) <= set(listed), out
    assert len(listed) == len(set(listed))
    assert "warning" not in err


def test_list_rejects_an_unknown_kind(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["list", "schedules"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_run_writes_a_session_that_info_shows(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "out" / "s.h5"  # a missing folder is created
    assert main(["run", str(spec), "-o", str(out_file)]) == 0
    out, err = capsys.readouterr()
    assert out_file.is_file()
    assert f"session written to {out_file}" in out
    assert "gd: finished after 50 steps" in out
    assert "50/50" in err and "steps/s" in err  # the progress bar goes to stderr

    with SessionReader(out_file) as r:
        assert r.run_names() == ["gd"]
        assert r.run("gd").status == "finished"
        steps, losses = r.read("gd", "train/loss")
        np.testing.assert_array_equal(steps, np.arange(50))
        assert losses[-1] < losses[0]
        assert 'id = "quadratic"' in r.spec_text

    assert main(["info", str(out_file)]) == 0
    out, err = capsys.readouterr()
    assert "Descent Lab session, format 1" in out
    assert "run gd: optimizer sgd, status finished, 50 steps, last loss" in out
    assert "train/loss  [scalar, scalar]  50 records" in out
    assert "train/lr  [scalar, scalar]  50 records" in out
    assert err == ""


def test_quiet_prints_no_progress_bar(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(spec), "-o", str(tmp_path / "s.h5"), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "steps/s" not in out and "[#" not in out
    assert "session written to" in out


def test_an_existing_output_needs_force(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "keep.h5"
    target.write_bytes(b"precious data")
    assert main(["run", str(spec), "-o", str(target), "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert target.read_bytes() == b"precious data"
    assert err.startswith("error: ") and "--force" in err and len(err.splitlines()) == 1
    assert "session written" not in out

    assert main(["run", str(spec), "-o", str(target), "--quiet", "--force"]) == 0
    with SessionReader(target) as r:
        assert r.run("gd").status == "finished"


def test_an_invalid_spec_lists_every_problem_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default output would go to ./sessions
    bad = tmp_path / "bad.toml"
    bad.write_text(
        textwrap.dedent(
            """
            steps = -3
            colour = "blue"

            [task]
            id = "no-such-task"

            [[runs]]
            name = "a"
            optimizer = { id = "no-such-optimizer" }

            [[diagnostics]]
            id = "hessian"
            top_k = 0
            """
        )
    )
    for argv in (["run", str(bad), "-o", "s.h5"], ["run", str(bad)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert err.startswith("error: ")
        assert "5 problem(s)" in err
        for field in ("steps", "colour", "task.id", "runs[0].optimizer.id", "top_k"):
            assert field in err, field
        assert "no-such-task" in err and "no-such-optimizer" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_a_missing_spec_is_invalid_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(tmp_path / "nope.toml"), "-o", str(tmp_path / "s.h5")]) == 2
    err = capsys.readouterr().err
    assert "nope.toml" in err and "cannot read the file" in err
    assert not (tmp_path / "s.h5").exists()


def test_export_writes_one_csv_per_series(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "diag.toml"
    spec.write_text(WITH_DIAGNOSTICS)
    session = tmp_path / "s.h5"
    assert main(["run", str(spec), "-o", str(session), "--quiet"]) == 0
    out_dir = tmp_path / "csv"
    assert main(["export", str(session), "--csv", str(out_dir)]) == 0
    out = capsys.readouterr().out

    with SessionReader(session) as r:
        expected = {}
        for run in r.run_names():
            for name in r.series_names(run):
                expected[(run, name)] = r.read(run, name)
        assert {"train/loss", "train/lr", "hessian/top_eigenvalues"} <= set(r.series_names("gd"))
        assert any(n.startswith("norms/") for n in r.series_names("gd"))
    assert f"exported {len(expected)} series" in out

    written = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.csv"))
    assert written == sorted(
        [f"{run}/{name.replace('/', '__')}.csv" for run, name in expected]
        + [f"{run}/events.csv" for run in ("gd", "heavy-ball")]
    )
    for (run, name), (steps, values) in expected.items():
        with open(out_dir / run / f"{name.replace('/', '__')}.csv", newline="") as fh:
            rows = list(csv.reader(fh))
        width = int(np.prod(values.shape[1:]))
        header = ["step", "value"] if values.ndim == 1 else [f"value_{i}" for i in range(width)]
        assert rows[0] == (header if values.ndim == 1 else ["step", *header]), name
        assert len(rows) - 1 == len(steps), name
        table = np.array(rows[1:], dtype=float)
        np.testing.assert_array_equal(table[:, 0], steps)
        np.testing.assert_array_equal(table[:, 1:], values.reshape(len(steps), width))

    top = out_dir / "gd" / "hessian__top_eigenvalues.csv"
    assert top.read_text().splitlines()[0] == "step,value_0,value_1"
    assert len(top.read_text().splitlines()) == 1 + 5  # steps 0, 10, 20, 30, 40
    events = (out_dir / "gd" / "events.csv").read_text().splitlines()
    assert events[0] == "step,time,kind,detail" and events[-1].startswith("50,")


def test_export_of_a_broken_session_is_invalid_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "notes.h5"
    text.write_text("not a session")
    assert main(["export", str(text), "--csv", str(tmp_path / "csv")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {text}: not an HDF5 file")
    assert not (tmp_path / "csv").exists()


def test_export_of_empty_series_writes_headers_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A diagnostic that never came due (or a run stopped at once) leaves empty series."""
    session = tmp_path / "s.h5"
    with SessionWriter(session, "") as w:
        outputs = [
            Output("train/loss", "scalar"),
            Output("hessian/top_eigenvalues", "vector", (3,)),
        ]
        w.add_run(RunHeader("a", {}, outputs))
        w.start_live()
        w.end_run("a", "stopped", 0)
    assert main(["export", str(session), "--csv", str(tmp_path / "csv")]) == 0
    assert (tmp_path / "csv/a/train__loss.csv").read_text().splitlines() == ["step,value"]
    top = (tmp_path / "csv/a/hessian__top_eigenvalues.csv").read_text().splitlines()
    assert top == ["step,value_0,value_1,value_2"]
    assert "exported 2 series" in capsys.readouterr().out


def test_a_forks_progress_counts_from_the_fork_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 11: forking at 100 up to 200 showed `200/100 200%` and `ETA -0s`."""
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY.replace("steps = 50", "steps = 100\ncheckpoint_every = 50"))
    session = tmp_path / "s.h5"
    assert main(["run", str(spec), "-o", str(session), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["fork", str(session), "gd", "100", "gd2", "--steps", "200"]) == 0
    lines = capsys.readouterr().err.splitlines()  # not a terminal: at most one line per tenth
    shown = [re.search(r"\] (\d+)/(\d+)\s+(\d+)%", line).groups() for line in lines]
    assert [tuple(map(int, s)) for s in shown][-1] == (200, 200, 100)
    # the fork trains steps 101..200: step s is (s - 100)% of them
    assert all(int(t) == 200 and int(s) - 100 == int(p) for s, t, p in shown)
    assert not any("ETA -" in line for line in lines)


def test_progress_line_spans_the_steps_still_to_train() -> None:
    runner = types.SimpleNamespace(step=150, runs={})  # what the bar reads of a runner
    bar = ProgressBar(100, 200, io.StringIO())
    assert bar.fraction(100) == 0.0 and bar.fraction(150) == 0.5 and bar.fraction(200) == 1.0
    line = bar.line(runner)  # type: ignore[arg-type]
    assert "] 150/200  50% " in line
    assert re.search(r"ETA\s+\d+s", line)  # 50 steps left at a positive rate: never negative


def test_the_command_line_starts_without_qt() -> None:
    """`descentlab run/list` never import Qt; the engine never imports the app (issue 12)."""
    code = (
        "import sys, descentlab.app.cli, descentlab.engine.headless\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph',"
        " 'qasync') or m.startswith('descentlab.app.') and m != 'descentlab.app.cli'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
