"""The headless commands of `descentlab`: run, fork, info, export, list, interpolate.

Each `cmd_*` does one command's work and returns its exit code; `app.cli` parses the command
line and calls them (it alone opens windows, so the engine never imports the app). Exit codes:
0 success (a diverged run is a result, not a failure), 2 invalid input (`UserError`, `SpecError`,
`SessionError`, each with a message naming the problem), 1 internal failure. Ctrl-C stops the
runs cleanly: the session is closed with status `stopped` and exit code 130.
"""

from __future__ import annotations

import csv
import json
import signal
import sys
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch

from descentlab.engine import catalogue, registry
from descentlab.engine.claims import Verdict, check_session, verdict_line
from descentlab.engine.commands import Command, Stop
from descentlab.engine.compare import CompareError, Comparison, format_table, table_rows
from descentlab.engine.compare import load as load_comparison
from descentlab.engine.compat import tomllib
from descentlab.engine.fork import prepare_fork, run_fork
from descentlab.engine.landscape import interpolate_runs
from descentlab.engine.params import Param, defaults
from descentlab.engine.plugin import FAMILIES, DiagnosticPlugin
from descentlab.engine.progress import ProgressBar
from descentlab.engine.runner import Runner
from descentlab.engine.session.reader import SessionReader
from descentlab.engine.session.writer import SessionWriter
from descentlab.engine.spec import load_spec, parse_toml

EXIT_OK, EXIT_INTERNAL, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


class UserError(Exception):
    """Invalid input from the user: printed as it is, exit code 2."""


def default_spec_text() -> str:
    """The built-in default experiment, shipped in `assets/presets/default.toml`."""
    return files("descentlab.assets").joinpath("presets/default.toml").read_text("utf-8")


class _SignalStop:
    """Turns SIGINT/SIGTERM into a Stop command, so the session is closed properly."""

    def __init__(self) -> None:
        self.hit = False
        self._previous = {
            sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)
        }

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.hit = True

    def restore(self) -> None:
        """Give the signals back to their former handlers (`main` may be called in-process)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def poll(self, timeout: float) -> list[Command]:
        return [Stop()] if self.hit else []


def _session_path(output: str | None, name: str, force: bool) -> Path:
    if output is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path("sessions") / f"{name}-{stamp}.h5"
    else:
        path = Path(output)
    if path.exists() and not force:
        raise UserError(
            f"{path}: exists already; choose another -o FILE or pass --force to replace it"
        )
    if path.exists() and path.is_dir():
        raise UserError(f"{path}: is a folder; -o takes a file name ending in .h5")
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    return path


def cmd_run(spec_path: str | None, output: str | None, quiet: bool, force: bool) -> int:
    spec = (
        parse_toml(default_spec_text(), "default preset")
        if spec_path is None
        else load_spec(spec_path)
    )
    runner = Runner(spec)  # builds everything before a file exists: a bad spec writes nothing
    path = _session_path(output, spec.name, force)
    stopper = _SignalStop()
    bar = None if quiet else ProgressBar.for_runner(runner, sys.stderr)
    try:
        with SessionWriter(path, spec.to_toml()) as writer:
            runner.run(writer, commands=stopper, on_progress=bar.update if bar else None)
    finally:
        stopper.restore()
    if bar:
        bar.close(runner)
    print(f"session written to {path}")
    for run in runner.runs.values():
        detail = f" ({run.error})" if run.error else ""
        print(
            f"  {run.name}: {run.status} after {run.steps_done} steps, "
            f"last loss {run.last_loss:.6g}{detail}"
        )
    if spec.claims and not stopper.hit:  # a stopped run says nothing about a claim
        print("claims:")
        for verdict in check_session(path, spec.claims):
            print(f"  {verdict_line(verdict)}")
    return EXIT_INTERRUPTED if stopper.hit else EXIT_OK


def _settings(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs with TOML values (`lr=0.01`, `betas=[0.9, 0.99]`, `nesterov=true`)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {pair!r}: expected key=value, e.g. --set lr=0.01")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value.strip()  # a bare word: a string such as a choice
    return out


def cmd_fork(
    session: str,
    parent: str,
    step: int,
    name: str,
    optimizer: str | None,
    sets: list[str],
    steps: int | None,
    quiet: bool,
) -> int:
    """Continue run `parent` from its checkpoint at `step` as run `name`, in the same file."""
    with SessionReader(session) as reader:
        if parent not in reader.run_names():
            raise UserError(f"{session}: no run {parent!r}; runs: {', '.join(reader.run_names())}")
        recorded = dict(reader.run(parent).config["optimizer"])
    table = {"id": optimizer} if optimizer else recorded
    table = {**table, **_settings(sets)}
    runner = prepare_fork(session, parent, step, name, optimizer=table, steps=steps)
    bar = None if quiet else ProgressBar.for_runner(runner, sys.stderr)
    status = run_fork(session, runner, on_progress=bar.update if bar else None)
    if bar:
        bar.close(runner)
    (run,) = runner.runs.values()
    print(
        f"{name}: forked from {parent} at step {step}, {status} at step {runner.step}, "
        f"last loss {run.last_loss:.6g}; written to {session}"
    )
    return EXIT_OK


def _endpoint(where: str, step: int | None) -> tuple[dict[str, Any], dict[str, np.ndarray], str]:
    """A run's task config, its parameters at `step` (default: its last checkpoint), and a label;
    `where` is SESSION:RUN."""
    session, sep, run = where.rpartition(":")
    if not sep or not session or not run:
        raise UserError(f"{where!r}: expected SESSION.h5:RUN, e.g. runs.h5:adam")
    with SessionReader(session) as reader:
        if run not in reader.run_names():
            raise UserError(f"{session}: no run {run!r}; runs: {', '.join(reader.run_names())}")
        steps = reader.checkpoint_steps(run)
        if not steps:
            raise UserError(f"{where}: the run has no checkpoint (it did not finish)")
        point = reader.checkpoint(run, steps[-1] if step is None else step)
        info = reader.run(run)
    task = {"task": info.config["task"], "seed": info.config["seed"], "dtype": info.config["dtype"]}
    return task, point.params, f"{where} at step {point.step}"


def cmd_interpolate(a: str, b: str, step_a: int | None, step_b: int | None, points: int) -> int:
    """Losses on the straight line from run A's parameters to run B's, and the barrier."""
    task_a, params_a, label_a = _endpoint(a, step_a)
    task_b, params_b, label_b = _endpoint(b, step_b)
    if task_a != task_b:
        raise UserError(
            f"{a} and {b} were trained on different tasks (or seeds or dtypes); an interpolation "
            "needs one task: " + json.dumps(task_a) + " vs " + json.dumps(task_b)
        )
    spec = task_a["task"]
    plugin = registry.plugins("tasks")[spec["id"]]
    params = defaults(plugin.params) | {k: v for k, v in spec.items() if k != "id"}
    dtype = torch.float64 if task_a["dtype"] == "float64" else torch.float32
    task = plugin.build(params, task_a["seed"], torch.device("cpu"), dtype)
    try:
        line = interpolate_runs(task, params_a, params_b, points)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(f"from {label_a} (t = 0) to {label_b} (t = 1), loss on the task's probe batch:")
    for t, loss in zip(line.ts, line.losses, strict=True):
        print(f"  t = {t:.3f}  loss {loss:.6g}")
    print(f"barrier height: {line.barrier:.6g}")
    return EXIT_OK


def cmd_info(path: str) -> int:
    with SessionReader(path) as reader:
        attrs = reader.attrs
        print(
            f"{path}: Descent Lab session, format {attrs.get('format_version')}, created "
            f"{attrs.get('created')}, app {attrs.get('app_version')}"
        )
        for run in reader.runs():
            steps, losses = reader.read(run.name, "train/loss")
            last = f"{losses[-1]:.6g}" if len(losses) else "-"
            fork = (
                f", forked from {run.parent_run} at step {run.fork_step}" if run.parent_run else ""
            )
            optimizer = run.config.get("optimizer", {}).get("id", "?")
            error = f", error: {run.error}" if run.error else ""
            print(
                f"run {run.name}: optimizer {optimizer}, status {run.status}, {len(steps)} "
                f"steps, last loss {last}{fork}{error}"
            )
            for name in reader.series_names(run.name):
                info = reader.series_info(run.name, name)
                n = len(reader.read(run.name, name)[0])
                shape = "x".join(map(str, info.shape)) or "scalar"
                print(f"    {name}  [{info.kind}, {shape}]  {n} records")
            checkpoints = reader.checkpoint_steps(run.name)
            if checkpoints:
                print(f"    checkpoints at steps: {', '.join(map(str, checkpoints))}")
            events = reader.events(run.name)
            if events:
                print(
                    f"    events: {len(events)} ("
                    + ", ".join(sorted({e.kind for e in events}))
                    + ")"
                )
        claims = reader.claims()
        if claims:
            print("claims:")
        for claim in claims:
            print(f"  {verdict_line(Verdict(claim.held, claim.summary))}  [{claim.id}]")
    return EXIT_OK


def cmd_export(path: str, out_dir: str) -> int:
    target = Path(out_dir)
    if target.exists() and not target.is_dir():
        raise UserError(f"{target}: exists and is not a folder")
    written = 0
    with SessionReader(path) as reader:
        for run in reader.run_names():
            folder = target / run
            folder.mkdir(parents=True, exist_ok=True)
            for name in reader.series_names(run):
                steps, values = reader.read(run, name)
                # not reshape(n, -1): that cannot infer the width of an empty series
                flat = values.reshape(len(steps), int(np.prod(values.shape[1:])))
                header = (
                    ["step", "value"]
                    if flat.shape[1] == 1 and values.ndim == 1
                    else ["step", *[f"value_{i}" for i in range(flat.shape[1])]]
                )
                with open(folder / (name.replace("/", "__") + ".csv"), "w", newline="") as fh:
                    w = csv.writer(fh)
                    w.writerow(header)
                    for s, row in zip(steps.tolist(), flat.tolist(), strict=True):
                        w.writerow([s, *(repr(v) for v in row)])
                written += 1
            with open(folder / "events.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["step", "time", "kind", "detail"])
                for e in reader.events(run):
                    w.writerow([e.step, e.time, e.kind, e.detail])
    print(f"exported {written} series to {target}/<run>/<series>.csv")
    return EXIT_OK


def _param_line(p: Param) -> str:
    scale = ", log" if p.log else ""
    return f"      {p.name} = {p.default!r}  ({p.allowed()}{scale}) {p.help}"


def cmd_list(kind: str, markdown: bool = False) -> int:
    """Print a kind's plugins; optimizers grouped by family (or the catalogue page)."""
    if markdown:
        if kind != "optimizers":
            raise UserError("--markdown is available for optimizers only")
        print(catalogue.markdown(), end="")
        return EXIT_OK
    found = registry.plugins(kind)  # type: ignore[call-overload]
    groups = catalogue.by_family(found) if kind == "optimizers" else {"": list(found.values())}
    for family, items in groups.items():
        if family:
            print(f"[{family}] {FAMILIES.get(family, '')}")
        for plugin in items:
            print(f"  {plugin.id} — {plugin.title}")
            if plugin.reference:
                print(f"      reference: {plugin.reference}")
            if kind == "optimizers" and catalogue.needs_text(plugin):
                print(f"      needs: {catalogue.needs_text(plugin)}")
            for check, reason in getattr(plugin, "exempt", {}).items():
                print(f"      exempt from {check}: {reason}")
            if isinstance(plugin, DiagnosticPlugin):
                print(f"      cost: {plugin.cost}, every {plugin.every} steps by default")
            for p in plugin.params:
                print(_param_line(p))
    for failure in registry.load_failures(kind):  # type: ignore[arg-type]
        print(f"warning: plugin failed to load: {failure}", file=sys.stderr)
    return EXIT_OK


def load_compared(paths: list[str]) -> Comparison:
    """The runs of the sessions at `paths` (files or folders of *.h5), for `descentlab compare`.

    Unreadable files are reported on stderr (one line each) and left out; no run at all is a
    UserError.
    """
    comparison = load_comparison(paths)
    for reason in comparison.skipped:
        print(f"skipped: {reason}", file=sys.stderr)
    if not comparison.runs:
        raise UserError(f"no run to compare in {', '.join(paths)}")
    return comparison


def cmd_compare_table(
    comparison: Comparison,
    sort: str | None,
    descending: bool,
    all_settings: bool,
    metrics: list[str] | None,
) -> int:
    """Print the runs table of `descentlab compare --table`."""
    try:
        header, rows = table_rows(comparison, metrics, all_settings, sort, descending)
    except CompareError as exc:
        raise UserError(str(exc)) from None
    print(format_table(header, rows))
    return EXIT_OK
