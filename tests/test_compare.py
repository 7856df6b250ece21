"""Comparison of sessions: differing settings, grouped statistics, ranking, the window, the CLI.

The sessions are real: tiny quadratic sweeps run by the Runner into session files. Two
sessions differ in the seed, and each holds two learning rates, so exactly `optimizer.lr` and
`seed` differ; the statistics are checked against numpy on the records read back with h5py.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pyqtgraph as pg
import pytest

from descentlab.app.cli import main
from descentlab.engine.commands import Command, Fork
from descentlab.engine.compare import (
    ComparedRun,
    CompareError,
    Comparison,
    aggregate,
    differing,
    flatten,
    group,
    load,
    sort_runs,
    table_rows,
)
from descentlab.engine.runner import Runner
from descentlab.engine.session.writer import SessionWriter
from descentlab.engine.spec import parse_toml

LRS = (0.01, 0.05)
STEPS = 8


def sweep_spec(seed: int) -> str:
    runs = "".join(
        f'[[runs]]\nname = "lr{lr}"\noptimizer = {{ id = "sgd", lr = {lr} }}\n' for lr in LRS
    )
    return (
        f'name = "sweep"\nseed = {seed}\nsteps = {STEPS}\ndevice = "cpu"\n'
        f'[task]\nid = "quadratic"\ndim = 4\ncondition = 10.0\n{runs}'
    )


class _ForkAt:
    """Forks run `lr0.01` as `lr0.01-fast` (lr 0.05) once the runner reaches `step`."""

    def __init__(self, runner: Runner, step: int) -> None:
        self.runner, self.step, self.done = runner, step, False

    def poll(self, timeout: float) -> list[Command]:
        if self.done or self.runner.step < self.step:
            return []
        self.done = True
        return [Fork("lr0.01", "lr0.01-fast", {"id": "sgd", "lr": 0.05}, None)]


def write(path: Path, text: str, fork_at: int | None = None) -> Path:
    spec = parse_toml(text)
    runner = Runner(spec, poll_interval=0.0)
    commands = _ForkAt(runner, fork_at) if fork_at is not None else None
    with SessionWriter(path, spec.to_toml()) as writer:
        runner.run(writer, commands=commands)
    return path


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with two seeds of a two-lr sweep, one session with a fork, and one broken file."""
    folder = tmp_path_factory.mktemp("sweep")
    write(folder / "seed0.h5", sweep_spec(0))
    write(folder / "seed1.h5", sweep_spec(1))
    write(folder / "forked.h5", sweep_spec(2), fork_at=4)
    (folder / "broken.h5").write_text("not a session\n")
    return folder


def h5_loss(path: Path, run: str) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as f:
        g = f[f"runs/{run}/series/train/loss"]
        return g["step"][:], g["value"][:]


def two_sessions(folder: Path) -> Comparison:
    return load([folder / "seed0.h5", folder / "seed1.h5"])


def test_two_sessions_differ_exactly_in_lr_and_seed(sessions: Path) -> None:
    comparison = two_sessions(sessions)
    labels = [r.label for r in comparison.runs]
    assert labels == ["seed0/lr0.01", "seed0/lr0.05", "seed1/lr0.01", "seed1/lr0.05"]
    assert differing(comparison.runs) == ["optimizer.lr", "seed"]
    run = comparison.runs[0]
    assert run.settings["task.dim"] == 4 and run.settings["steps"] == STEPS
    assert run.settings["optimizer.id"] == "sgd" and "name" not in run.settings
    # one session alone: only the lr differs; one run alone: nothing does
    assert differing(comparison.runs[:2]) == ["optimizer.lr"]
    assert differing(comparison.runs[:1]) == []


def test_flatten_keys_diagnostics_by_id_and_missing_keys_differ() -> None:
    config = {
        "name": "a",
        "optimizer": {"id": "adam", "betas": [0.9, 0.99]},
        "diagnostics": [{"id": "hessian", "every": 50, "top_k": 2}, {"id": "eval", "every": 5}],
    }
    flat = flatten(config)
    assert flat == {
        "optimizer.id": "adam",
        "optimizer.betas": (0.9, 0.99),
        "diagnostics.hessian.every": 50,
        "diagnostics.hessian.top_k": 2,
        "diagnostics.eval.every": 5,
    }
    a = ComparedRun("s/a", Path("s.h5"), "a", "finished", flat)
    b = ComparedRun("s/b", Path("s.h5"), "b", "finished", {**flat, "diagnostics.eval.every": 5})
    c = ComparedRun("s/c", Path("s.h5"), "c", "finished", {**flat, "seed": 1})
    assert differing([a, b]) == []
    assert differing([a, c]) == ["seed"]  # present in one run only
    d = ComparedRun("s/d", Path("s.h5"), "d", "finished", {**flat, "diagnostics.eval.every": 1})
    e = ComparedRun("s/e", Path("s.h5"), "e", "finished", {**flat, "diagnostics.eval.every": True})
    assert differing([d, e]) == ["diagnostics.eval.every"]  # true is not 1 in a spec


def test_group_by_lr_aggregates_mean_min_max_across_seeds(sessions: Path) -> None:
    comparison = two_sessions(sessions)
    groups = group(comparison.runs, "optimizer.lr")
    assert list(groups) == ["optimizer.lr=0.01", "optimizer.lr=0.05"]
    assert group(comparison.runs).keys() == groups.keys()  # auto: all differing but the seed
    for lr, (label, members) in zip(LRS, groups.items(), strict=True):
        assert [m.label for m in members] == [f"seed0/lr{lr}", f"seed1/lr{lr}"], label
        steps0, loss0 = h5_loss(sessions / "seed0.h5", f"lr{lr}")
        steps1, loss1 = h5_loss(sessions / "seed1.h5", f"lr{lr}")
        np.testing.assert_array_equal(steps0, steps1)
        stats = aggregate(members, "train/loss")
        stacked = np.stack([loss0, loss1])
        np.testing.assert_array_equal(stats.steps, steps0)
        np.testing.assert_allclose(stats.mean, stacked.mean(axis=0), rtol=1e-12)
        np.testing.assert_array_equal(stats.min, stacked.min(axis=0))
        np.testing.assert_array_equal(stats.max, stacked.max(axis=0))
        np.testing.assert_array_equal(stats.count, np.full(STEPS, 2))
        assert np.all(stats.min < stats.max)  # the seeds really differ


def test_group_labels_name_only_the_settings_that_tell_groups_apart() -> None:
    def run(label: str, seed: int, **optimizer: object) -> ComparedRun:
        settings = {"seed": seed, **flatten({"optimizer": optimizer})}
        return ComparedRun(label, Path("s.h5"), label, "finished", settings)

    adam = {"id": "adam", "lr": 0.05, "betas": [0.9, 0.999]}
    runs = [
        run("a0", 0, **adam),
        run("a1", 1, **adam),
        run("s0", 0, id="sgd", lr=0.05, momentum=0.0),
        run("t0", 0, id="sgd", lr=0.01, momentum=0.0),
        run("t1", 1, id="sgd", lr=0.01, momentum=0.9),
    ]
    groups = group(runs)
    assert {k: [r.label for r in v] for k, v in groups.items()} == {
        "optimizer.id=adam": ["a0", "a1"],
        "optimizer.id=sgd, optimizer.lr=0.01, optimizer.momentum=0": ["t0"],
        "optimizer.id=sgd, optimizer.lr=0.01, optimizer.momentum=0.9": ["t1"],
        "optimizer.id=sgd, optimizer.lr=0.05": ["s0"],
    }
    assert list(group(runs[:2])) == ["all runs"]  # only the seed differs
    with pytest.raises(CompareError, match=r"cannot group by 'optimizer\.rho'"):
        group(runs, "optimizer.rho")


def test_aggregate_uses_the_union_of_steps_without_inventing_values() -> None:
    def run(label: str, steps: list[int], values: list[float]) -> ComparedRun:
        series = {"x": (np.array(steps), np.array(values, dtype=float))}
        return ComparedRun(label, Path("s.h5"), label, "finished", {}, series)

    stats = aggregate([run("a", [0, 2, 4], [1.0, 2.0, 3.0]), run("b", [2, 3], [4.0, 8.0])], "x")
    np.testing.assert_array_equal(stats.steps, [0, 2, 3, 4])
    np.testing.assert_array_equal(stats.count, [1, 2, 1, 1])
    np.testing.assert_array_equal(stats.mean, [1.0, 3.0, 8.0, 3.0])
    np.testing.assert_array_equal(stats.min, [1.0, 2.0, 8.0, 3.0])
    np.testing.assert_array_equal(stats.max, [1.0, 4.0, 8.0, 3.0])


def test_sorting_by_final_loss(sessions: Path) -> None:
    comparison = two_sessions(sessions)
    finals = {
        r.label: h5_loss(sessions / f"{r.label.split('/')[0]}.h5", r.name)[1][-1]
        for r in comparison.runs
    }
    expected = sorted(finals, key=finals.__getitem__)
    assert [r.label for r in sort_runs(comparison.runs, "train/loss")] == expected
    down = sort_runs(comparison.runs, "train/loss", descending=True)
    assert [r.label for r in down] == expected[::-1]
    assert [r.label for r in sort_runs(comparison.runs, "optimizer.lr")][:2] == [
        "seed0/lr0.01",
        "seed1/lr0.01",
    ]
    with pytest.raises(CompareError, match="cannot sort by 'bogus'"):
        sort_runs(comparison.runs, "bogus")


def test_runs_without_the_metric_sort_last() -> None:
    def run(label: str, final: float | None) -> ComparedRun:
        series = {} if final is None else {"m": (np.array([0]), np.array([final]))}
        return ComparedRun(label, Path("s.h5"), label, "finished", {}, series)

    runs = [run("nan", np.nan), run("none", None), run("inf", np.inf), run("one", 1.0)]
    assert [r.label for r in sort_runs(runs, "m")] == ["one", "inf", "nan", "none"]
    assert [r.label for r in sort_runs(runs, "m", descending=True)] == ["inf", "one", "nan", "none"]


def test_a_folder_with_an_unreadable_file_is_reported_not_fatal(sessions: Path) -> None:
    comparison = load([sessions])
    assert len(comparison.skipped) == 1
    assert "broken.h5" in comparison.skipped[0] and "not an HDF5 file" in comparison.skipped[0]
    assert len(comparison.runs) == 2 + 2 + 3  # forked.h5 holds two runs and a fork
    again = load([sessions / "seed0.h5", sessions / "seed0.h5"])
    assert len(again.runs) == 2 and "given twice" in again.skipped[0]


def test_a_fork_records_its_parent_and_branching_step(sessions: Path) -> None:
    comparison = load([sessions / "forked.h5"])
    fork = comparison.run("forked/lr0.01-fast")
    assert fork.parent == "forked/lr0.01" and fork.fork_step == 4
    assert differing(comparison.runs) == ["fork.parent", "fork.step", "optimizer.lr"]
    assert fork.series["train/loss"][0][0] == 4


def test_cli_table_lists_differing_settings_and_sorts(
    sessions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [str(sessions / "seed0.h5"), str(sessions / "seed1.h5")]
    assert main(["compare", *paths, "--table", "--sort", "train/loss"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "status", "final", "train/loss", "optimizer.lr", "seed"]
    rows = [line.split() for line in lines[2:]]
    finals = [float(r[2]) for r in rows]
    assert finals == sorted(finals) and len(rows) == 4
    assert {r[3] for r in rows} == {"0.01", "0.05"} and {r[4] for r in rows} == {"0", "1"}
    assert [r[1] for r in rows] == ["finished"] * 4
    header, _ = table_rows(two_sessions(sessions), all_settings=True)
    assert "task.dim" in header and "optimizer.momentum" in header

    assert main(["compare", str(sessions), "--table"]) == 0
    captured = capsys.readouterr()
    assert "skipped:" in captured.err and "broken.h5" in captured.err
    assert len(captured.out.splitlines()) == 2 + 7

    assert main(["compare", *paths, "--table", "--metric", "train/lr", "--sort", "train/loss"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[2:6] == ["final", "train/lr", "final", "train/loss"]

    assert main(["compare", *paths, "--table", "--sort", "bogus"]) == 2
    assert "cannot sort by 'bogus'" in capsys.readouterr().err
    assert main(["compare", str(sessions / "broken.h5"), "--table"]) == 2
    assert "no run to compare" in capsys.readouterr().err


def test_cli_compare_without_a_display_says_so(
    sessions: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    assert main(["compare", str(sessions / "seed0.h5")]) == 2
    assert "--table" in capsys.readouterr().err


def test_window_shows_table_overlay_fork_and_grouped_bands(qtbot, sessions: Path) -> None:
    from descentlab.app.compare_window import AUTO_GROUP, CompareWindow

    comparison = load([sessions / "seed0.h5", sessions / "seed1.h5", sessions / "forked.h5"])
    window = CompareWindow(comparison)
    qtbot.addWidget(window)
    window.show()
    headers = [
        window.table.horizontalHeaderItem(c).text() for c in range(window.table.columnCount())
    ]
    assert headers == [
        "run", "status", "final train/loss", "optimizer.lr", "seed", "fork.parent", "fork.step",
    ]  # fmt: skip
    assert window.table.rowCount() == 7
    assert set(window.curves) == {r.label for r in comparison.runs}
    assert set(window.fork_markers) == {"forked/lr0.01-fast"}
    x, y = window.curves["forked/lr0.01-fast"].getData()
    assert x[0] == 4  # the fork starts at its branching point
    parent_steps, parent_loss = comparison.run("forked/lr0.01").series["train/loss"]
    assert y[0] == pytest.approx(parent_loss[parent_steps == 4][0])  # same θ at the branch

    window.sort_by("final train/loss")
    finals = [comparison.run(label).final("train/loss") for label in window.row_labels()]
    assert finals == sorted(finals)
    window.only_differing.setChecked(False)
    assert window.table.columnCount() > 7
    window.only_differing.setChecked(True)

    window.set_visible("forked/lr0.01-fast", False)
    assert "forked/lr0.01-fast" not in window.curves and not window.fork_markers
    window.set_group("optimizer.lr")
    assert set(window.bands) == {"optimizer.lr=0.01", "optimizer.lr=0.05"}
    assert all(isinstance(b, pg.FillBetweenItem) for b in window.bands.values())
    assert not window.curves
    assert [c for c in window.aggregates["optimizer.lr=0.01"].count] == [3] * STEPS
    mean = window.means["optimizer.lr=0.05"].getData()[1]
    members = [r for r in window.visible_runs() if r.settings["optimizer.lr"] == 0.05]
    assert len(members) == 3  # the hidden fork is left out
    np.testing.assert_allclose(
        mean, np.mean([r.series["train/loss"][1] for r in members], axis=0), rtol=1e-12
    )
    window.set_group(AUTO_GROUP)
    assert list(window.bands) == ["optimizer.lr=0.01", "optimizer.lr=0.05"]
    window.set_visible("forked/lr0.01-fast", True)  # its fork settings now differ too
    assert len(window.bands) == 3
    assert list(window.bands) == [
        "optimizer.lr=0.01",
        "optimizer.lr=0.05, fork.parent=lr0.01",
        "optimizer.lr=0.05, fork.parent=-",  # a setting a run lacks sorts last
    ]
    fork_group = window.aggregates["optimizer.lr=0.05, fork.parent=lr0.01"]
    assert fork_group.count.tolist() == [1] * (STEPS - 4)
    window.set_group(None)
    assert not window.bands and len(window.curves) == 7


def test_window_exports_png_and_csv(qtbot, sessions: Path, tmp_path: Path) -> None:
    from descentlab.app.compare_window import CompareWindow

    window = CompareWindow(two_sessions(sessions))
    qtbot.addWidget(window)
    window.show()
    window.export_csv(tmp_path / "runs.csv")
    lines = (tmp_path / "runs.csv").read_text().splitlines()
    assert lines[0] == "run,series,step,value" and len(lines) == 1 + 4 * STEPS
    window.set_group("optimizer.lr")
    window.export_csv(tmp_path / "groups.csv")
    lines = (tmp_path / "groups.csv").read_text().splitlines()
    assert lines[0] == "group,series,step,mean,min,max,count" and len(lines) == 1 + 2 * STEPS
    window.export_png(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000


def test_lab_window_file_menu_opens_a_comparison(
    qtbot, sessions: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtCore import QSettings

    from descentlab.app import compare_window
    from descentlab.app.main_window import MainWindow

    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path))
    lab = MainWindow(sessions_dir=tmp_path, confirm_close=False, remember_layout=False)
    qtbot.addWidget(lab)
    monkeypatch.setattr(compare_window, "choose_sessions", lambda parent: [str(sessions)])
    opened = lab.compare_sessions_dialog()
    assert opened is not None and opened.parent() is lab and opened.isVisible()
    assert opened.table.rowCount() == 7 and "broken.h5" in opened.statusBar().currentMessage()
    (file_menu,) = [a.menu() for a in lab.menuBar().actions() if a.text() == "&File"]
    assert lab.act_compare in file_menu.actions()
    opened.close()
