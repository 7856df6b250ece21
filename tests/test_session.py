"""The HDF5 session format (docs/session-format.md): round trip, live reading, SIGKILL, bad files.

The writer runs in a subprocess wherever two processes matter (live reading, a killed writer):
HDF5 shares one handle between all opens of a file inside a process, so only a second process
shows what the app and a user's h5py script see.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import h5py
import numpy as np
import pytest

from descentlab.app.cli import main
from descentlab.engine.plugin import Output
from descentlab.engine.session.format import EVENT_DTYPE
from descentlab.engine.session.reader import SessionError, SessionReader
from descentlab.engine.session.writer import SessionWriter
from descentlab.engine.sink import RunHeader

SPEC_TEXT = 'name = "t"\nsteps = 3\n\n[task]\nid = "quadratic"\n'
AXES = {"x": [-1.0, 0.0, 1.0, 2.0, 3.0], "y": [0.0, 0.5, 1.0, 1.5], "center": [0.0, 0.0]}
OUTPUTS = [
    Output("train/loss", "scalar", unit="nats"),
    Output("hessian/top_eigenvalues", "vector", (3,)),
    Output("norms/grad/fc1.weight", "per_layer", layer="fc1.weight"),
    Output("landscape/plane", "grid2d", (4, 5), attrs=AXES),
]
N = 40


def loss(step: int) -> float:
    return 1.0 / (step + 1)


def eigen(step: int) -> list[float]:
    return [3.0 + step, 2.0, -0.5 * step]


def plane(step: int) -> np.ndarray:
    return np.arange(20.0).reshape(4, 5) * (step + 1)


def fill(writer: SessionWriter, run: str, steps: range) -> None:
    for s in steps:
        writer.append(run, "train/loss", s, loss(s))
        writer.append(run, "hessian/top_eigenvalues", s, np.asarray(eigen(s)))
        writer.append(run, "norms/grad/fc1.weight", s, 0.1 * s)
        if s % 10 == 0:
            writer.append(run, "landscape/plane", s, plane(s))


def write_session(path: Path) -> None:
    """Three runs: a finished one with every kind of series, a diverged one and a failed one."""
    with SessionWriter(path, SPEC_TEXT) as w:
        w.add_run(
            RunHeader("adam", {"name": "adam", "optimizer": {"id": "adam", "lr": 0.001}}, OUTPUTS)
        )
        w.add_run(
            RunHeader("sgd", {"name": "sgd", "optimizer": {"id": "sgd", "lr": 10.0}}, OUTPUTS[:1])
        )
        w.add_run(RunHeader("bad", {"name": "bad", "optimizer": {"id": "sgd"}}, OUTPUTS[:1]))
        w.start_live()
        fill(w, "adam", range(N))
        w.event("adam", 5, "pause")
        w.event("adam", 5, "resume")
        w.event("adam", 7, "hyper", "lr: 0.001 -> 0.002")
        w.append("sgd", "train/loss", 0, 1.0)
        w.append("sgd", "train/loss", 1, float("inf"))
        w.event("sgd", 1, "diverged", "loss is inf")
        w.end_run("sgd", "diverged", 1)
        w.end_run("bad", "failed", 0, "RuntimeError: boom")
        w.flush(force=True)
        w.end_run("adam", "finished", N)


# -- round trip -----------------------------------------------------------------------------


def test_round_trip_reads_back_everything(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    write_session(path)
    with SessionReader(path) as r:
        attrs = r.attrs
        assert attrs["format"] == "descentlab-session"
        assert attrs["format_version"] == 1
        assert attrs["app_version"] == version("descentlab")
        assert datetime.fromisoformat(attrs["created"]).tzinfo is not None
        assert r.spec_text == SPEC_TEXT
        assert r.run_names() == ["adam", "sgd", "bad"]  # creation order

        adam = r.run("adam")
        assert adam.status == "finished"
        assert adam.config == {"name": "adam", "optimizer": {"id": "adam", "lr": 0.001}}
        assert (adam.parent_run, adam.fork_step, adam.error) == ("", -1, "")
        assert adam.started and adam.ended
        assert datetime.fromisoformat(adam.ended) >= datetime.fromisoformat(adam.started)
        assert (r.run("sgd").status, r.run("sgd").error) == ("diverged", "")
        assert (r.run("bad").status, r.run("bad").error) == ("failed", "RuntimeError: boom")

        assert r.series_names("adam") == [o.name for o in OUTPUTS]  # declaration order
        assert r.series_names("sgd") == ["train/loss"]

        steps, values = r.read("adam", "train/loss")
        np.testing.assert_array_equal(steps, np.arange(N))
        assert steps.dtype == np.int64
        np.testing.assert_array_equal(values, [loss(s) for s in range(N)])
        info = r.series_info("adam", "train/loss")
        assert (info.kind, info.unit, info.layer, info.shape, info.axes) == (
            "scalar",
            "nats",
            "",
            (),
            {},
        )

        steps, values = r.read("adam", "hessian/top_eigenvalues")
        assert values.shape == (N, 3)
        np.testing.assert_array_equal(values, [eigen(s) for s in range(N)])
        assert r.series_info("adam", "hessian/top_eigenvalues").kind == "vector"

        info = r.series_info("adam", "norms/grad/fc1.weight")
        assert (info.kind, info.layer, info.shape) == ("per_layer", "fc1.weight", ())
        np.testing.assert_array_equal(r.read("adam", "norms/grad/fc1.weight")[1], 0.1 * steps)

        steps, values = r.read("adam", "landscape/plane")
        np.testing.assert_array_equal(steps, [0, 10, 20, 30])
        np.testing.assert_array_equal(values, [plane(s) for s in steps])
        info = r.series_info("adam", "landscape/plane")
        assert (info.kind, info.shape, info.axes) == ("grid2d", (4, 5), AXES)

        np.testing.assert_array_equal(r.read("sgd", "train/loss")[1], [1.0, np.inf])
        assert [(e.step, e.kind, e.detail) for e in r.events("adam")] == [
            (5, "pause", ""),
            (5, "resume", ""),
            (7, "hyper", "lr: 0.001 -> 0.002"),
            (N, "end", "finished"),
        ]
        assert [(e.kind, e.detail) for e in r.events("sgd")] == [
            ("diverged", "loss is inf"),
            ("end", "diverged"),
        ]
        assert r.events("bad")[-1].detail == "failed: RuntimeError: boom"
        assert all(e.time > 1.6e9 for e in r.events("adam"))


def test_a_finished_session_is_plain_hdf5(tmp_path: Path) -> None:
    """The few lines of docs/session-format.md, with nothing but h5py and json."""
    path = tmp_path / "s.h5"
    write_session(path)
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "descentlab-session"
        assert f.attrs["format_version"] == 1
        assert f.attrs["spec"] == SPEC_TEXT
        final = {}
        for name, run in f["runs"].items():
            assert json.loads(run.attrs["config"])["name"] == name
            series = run["series/train/loss"]
            assert series["step"].shape == series["value"].shape
            last = float(series["value"][-1]) if len(series["value"]) else None
            final[name] = (run.attrs["status"], run.attrs["error"], last)
        assert final == {
            "adam": ("finished", "", loss(N - 1)),
            "sgd": ("diverged", "", np.inf),
            "bad": ("failed", "RuntimeError: boom", None),
        }
        grid = f["runs/adam/series/landscape/plane"]
        assert grid["value"].shape == (4, 4, 5)
        assert grid["step"][:].tolist() == [0, 10, 20, 30]
        assert grid.attrs["kind"] == "grid2d"
        assert json.loads(grid.attrs["axes"]) == AXES
        assert f["runs/adam/series/norms/grad/fc1.weight"].attrs["layer"] == "fc1.weight"
        events = f["runs/adam/events"][:]
        assert events.dtype == EVENT_DTYPE
        assert events["kind"].tolist() == [b"pause", b"resume", b"hyper", b"end"]
        assert events["step"].tolist() == [5, 5, 7, N]


def test_a_fork_added_while_live_keeps_the_first_run(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    with SessionWriter(path, SPEC_TEXT, flush_interval=0.0) as w:
        w.add_run(RunHeader("adam", {"name": "adam"}, OUTPUTS))
        w.start_live()
        fill(w, "adam", range(20))
        w.flush()
        w.add_run(RunHeader("fork", {"name": "fork"}, OUTPUTS, parent_run="adam", fork_step=20))
        w.start_live()
        w.event("adam", 20, "fork", "forked as fork")
        w.event("fork", 20, "fork", "forked from adam at step 20")
        fill(w, "adam", range(20, N))
        fill(w, "fork", range(20, 30))
        w.end_run("adam", "finished", N)
        w.end_run("fork", "stopped", 30)
    with SessionReader(path) as r:
        fork = r.run("fork")
        assert (fork.parent_run, fork.fork_step, fork.status) == ("adam", 20, "stopped")
        steps, values = r.read("adam", "train/loss")
        np.testing.assert_array_equal(steps, np.arange(N))
        np.testing.assert_array_equal(values, [loss(s) for s in range(N)])
        np.testing.assert_array_equal(
            r.read("adam", "landscape/plane")[1], [plane(s) for s in (0, 10, 20, 30)]
        )
        np.testing.assert_array_equal(r.read("fork", "train/loss")[0], np.arange(20, 30))
        assert [e.kind for e in r.events("adam")] == ["fork", "end"]
        assert r.events("fork")[0].detail == "forked from adam at step 20"


def test_a_reader_in_the_writing_process_does_not_break_a_fork(tmp_path: Path) -> None:
    """HDF5 shares one handle per file in a process: the fork must not close it from under us."""
    path = tmp_path / "s.h5"
    w = SessionWriter(path, SPEC_TEXT, flush_interval=0.0)
    w.add_run(RunHeader("a", {}, OUTPUTS[:1]))
    w.start_live()
    for s in range(5):
        w.append("a", "train/loss", s, loss(s))
    w.flush()
    with SessionReader(path) as r:
        assert len(r.read("a", "train/loss")[0]) == 5
        w.add_run(RunHeader("b", {}, OUTPUTS[:1], parent_run="a", fork_step=5))
        w.start_live()
        w.append("b", "train/loss", 5, 0.5)
        w.end_run("a", "finished", 5)
        w.end_run("b", "finished", 6)
        w.close()
        assert r.run_names() == ["a", "b"]
    with SessionReader(path) as r:
        assert [x.status for x in r.runs()] == ["finished", "finished"]
        np.testing.assert_array_equal(r.read("b", "train/loss")[1], [0.5])


# -- live files ------------------------------------------------------------------------------

LIVE_WRITER = """
import sys
from descentlab.engine.plugin import Output
from descentlab.engine.session.writer import SessionWriter
from descentlab.engine.sink import RunHeader

outputs = [Output("train/loss", "scalar"), Output("v", "vector", (2,))]
w = SessionWriter(sys.argv[1], "x = 1", flush_interval=60.0)
w.add_run(RunHeader("a", {}, outputs))
w.start_live()
step = 0
print("ready", flush=True)
for line in sys.stdin:
    cmd, arg = line.split()
    if cmd == "write":
        for _ in range(int(arg)):
            w.append("a", "train/loss", step, step / 7)
            w.append("a", "v", step, [step, -step])
            step += 1
        w.flush(force=True)
    elif cmd == "fork":
        w.add_run(RunHeader(arg, {}, outputs, parent_run="a", fork_step=step))
        w.start_live()
    elif cmd == "end":
        w.end_run("a", "finished", step)
        w.close()
        print("ok", flush=True)
        break
    print("ok", flush=True)
"""


class Child:
    """A subprocess speaking a line protocol on stdin/stdout."""

    def __init__(self, code: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def expect(self, word: str) -> None:
        line = self.proc.stdout.readline().strip()  # type: ignore[union-attr]
        if line != word:
            self.proc.kill()
            raise AssertionError(f"child said {line!r}: {self.proc.stderr.read()}")  # type: ignore[union-attr]

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        self.expect("ok")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def test_a_live_session_is_readable_while_written(tmp_path: Path) -> None:
    path = tmp_path / "live.h5"
    child = Child(LIVE_WRITER, str(path))
    try:
        child.expect("ready")
        child.send("write 100")
        with SessionReader(path) as r:
            assert r.run("a").status == "running"
            steps, values = r.read("a", "train/loss")
            np.testing.assert_array_equal(steps, np.arange(100))
            np.testing.assert_array_equal(values, np.arange(100) / 7)
            child.send("write 300")  # the open reader sees the new rows (datasets refreshed)
            steps, values = r.read("a", "v")
            np.testing.assert_array_equal(steps, np.arange(400))
            np.testing.assert_array_equal(values[:, 1], -np.arange(400.0))
            child.send("fork b")  # the writer reopens the file while this reader holds it
            child.send("write 50")
            assert len(r.read("a", "train/loss")[0]) == 450
        with SessionReader(path) as r:  # a reader opened afterwards sees the fork
            assert r.run_names() == ["a", "b"]
            assert (r.run("b").parent_run, r.run("b").fork_step) == ("a", 400)
            np.testing.assert_array_equal(r.read("a", "train/loss")[0], np.arange(450))
        with h5py.File(path, "r", swmr=True) as f:  # what docs/session-format.md shows
            ds = f["runs/a/series/train/loss/value"]
            child.send("write 10")
            ds.refresh()
            assert ds.shape == (460,)
        child.send("end x")
        assert child.proc.wait(30) == 0
        with SessionReader(path) as r:
            assert r.run("a").status == "finished"
            assert len(r.read("a", "v")[0]) == 460
    finally:
        child.close()


# -- SIGKILL -------------------------------------------------------------------------------

KILLED_WRITER = """
import sys
import h5py
from descentlab.engine.plugin import Output
from descentlab.engine.session.writer import SessionWriter
from descentlab.engine.sink import RunHeader

appended = 0
_flush = h5py.File.flush


def flush(self):  # the writer flushes through h5py; report what has reached the OS
    _flush(self)
    print(appended, flush=True)


h5py.File.flush = flush
w = SessionWriter(sys.argv[1], "x = 1", flush_interval=0.2)
w.add_run(RunHeader("a", {}, [Output("train/loss", "scalar"), Output("v", "vector", (3,))]))
w.start_live()
while True:
    w.append("a", "train/loss", appended, appended / 7 + 0.25)
    w.append("a", "v", appended, [appended, -appended, appended / 3])
    if appended % 1000 == 0:
        w.event("a", appended, "hyper", f"lr: {appended}")
    appended += 1
    w.flush()
"""


def _collect(stream: object, into: list[tuple[float, int]]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.append((time.monotonic(), int(line)))


@pytest.mark.parametrize("after", [0.3, 0.7, 1.2])
def test_a_killed_writer_leaves_a_consistent_prefix(tmp_path: Path, after: float) -> None:
    path = tmp_path / "killed.h5"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    flushed: list[tuple[float, int]] = []
    thread = threading.Thread(target=_collect, args=(proc.stdout, flushed), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not (flushed and flushed[-1][1]) and proc.poll() is None:
            assert time.monotonic() < deadline, "the writer flushed no record in 60 s"
            time.sleep(0.01)
        assert flushed, f"the writer failed: {proc.stderr.read()}"  # type: ignore[union-attr]
        time.sleep(after)
        seen = list(flushed)  # every count read so far was flushed before the kill
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        thread.join(10)
    assert proc.returncode == -signal.SIGKILL
    last_time, last_count = seen[-1]
    assert killed_at - last_time < 1.0, "no flush in the last second before the kill"

    with SessionReader(path) as r:
        assert r.run("a").status == "running"
        steps, values = r.read("a", "train/loss")
        n = len(steps)
        assert n >= last_count > 0
        np.testing.assert_array_equal(steps, np.arange(n))
        np.testing.assert_array_equal(values, np.arange(n) / 7 + 0.25)
        steps, values = r.read("a", "v")
        m = len(steps)
        assert m >= last_count
        np.testing.assert_array_equal(steps, np.arange(m))
        i = np.arange(m, dtype=float)
        np.testing.assert_array_equal(values, np.stack([i, -i, i / 3], axis=1))
        events = r.events("a")
        assert [e.step for e in events] == list(range(0, 1000 * len(events), 1000))
        assert len(events) >= (last_count - 1) // 1000 + 1


def test_a_killed_descentlab_run_leaves_a_readable_session(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "long.toml"
    spec.write_text(
        textwrap.dedent(
            """
            name = "long"
            steps = 300000
            device = "cpu"

            [task]
            id = "quadratic"
            dim = 8

            [[runs]]
            name = "gd"
            optimizer = { id = "sgd", lr = 0.005 }
            """
        )
    )
    path = tmp_path / "long.h5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "descentlab.app.cli", "run", str(spec), "-o", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        rows = 0
        deadline = time.monotonic() + 60
        while rows < 200 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            try:  # a session not yet live (or not yet there) is a SessionError: poll again
                with SessionReader(path) as r:
                    rows = len(r.read("gd", "train/loss")[0])
            except SessionError:
                pass
        assert rows >= 200, f"the run wrote nothing: {proc.stderr.read()}"  # type: ignore[union-attr]
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL

    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "run gd: optimizer sgd, status running" in out
    assert "train/loss  [scalar, scalar]" in out
    with SessionReader(path) as r:
        steps, losses = r.read("gd", "train/loss")
        assert len(steps) >= rows
        np.testing.assert_array_equal(steps, np.arange(len(steps)))
        assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


# -- broken files ----------------------------------------------------------------------------


def _foreign(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(3)
        f.attrs["format"] = "something-else"


def _edit(change):  # a valid session, then one thing broken with plain h5py
    def make(path: Path) -> None:
        write_session(path)
        with h5py.File(path, "a") as f:
            change(f)

    return make


def _truncated(path: Path) -> None:
    write_session(path.with_suffix(".full"))
    data = path.with_suffix(".full").read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _left_open(swmr: bool):
    """A writer that exits without closing: before SWMR started, or during it (then cut)."""

    def make(path: Path) -> None:
        code = textwrap.dedent(
            f"""
            import os, h5py, numpy as np
            f = h5py.File({str(path)!r}, "x", libver="latest")
            f.attrs["format"] = "descentlab-session"
            f.attrs["format_version"] = 1
            f.create_dataset("runs/a/series/train/loss/value", data=np.arange(5000.0),
                             maxshape=(None,), chunks=(256,))
            f.flush()
            if {swmr}:
                f.swmr_mode = True
                f.flush()
            os._exit(0)
            """
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        if swmr:
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])

    return make


def _drop_value(f: h5py.File) -> None:
    del f["runs/adam/series/hessian/top_eigenvalues/value"]


def _garble_config(f: h5py.File) -> None:
    f["runs/sgd"].attrs["config"] = "{not json"


BROKEN = {
    "missing": (None, "no such file"),
    "folder": (lambda p: p.mkdir(), "is a folder, not a session file"),
    "text": (lambda p: p.write_text("hello, I am text\n"), "not an HDF5 file"),
    "empty": (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    "truncated": (_truncated, "truncated session file"),
    "cut-while-live": (_left_open(swmr=True), "truncated session file"),
    "left-open": (_left_open(swmr=False), "was left so by a writer killed before it started"),
    "foreign": (_foreign, "an HDF5 file, but not a Descent Lab session"),
    "future": (
        _edit(lambda f: f.attrs.__setitem__("format_version", 99)),
        "session format version 99 is not one this Descent Lab reads (1)",
    ),
    "no-runs": (_edit(lambda f: f.__delitem__("runs")), "the /runs group is missing"),
    "no-value": (
        _edit(_drop_value),
        "series 'hessian/top_eigenvalues' of run 'adam' has no 'value' dataset",
    ),
    "bad-config": (_edit(_garble_config), "run 'sgd' has bad attributes"),
}


def read_everything(path: Path) -> None:
    with SessionReader(path) as r:
        for run in r.runs():
            for name in r.series_names(run.name):
                r.series_info(run.name, name)
                r.read(run.name, name)
            r.events(run.name)


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_file_gets_one_clear_line(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make, message = BROKEN[case]
    path = tmp_path / "broken.h5"
    if make is not None:
        make(path)
    with pytest.raises(SessionError) as caught:
        read_everything(path)
    text = str(caught.value)
    assert message in text
    assert str(path) in text and "\n" not in text

    capsys.readouterr()
    assert main(["info", str(path)]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [f"error: {text}"]
    assert "Traceback" not in out + err
