"""The experiment spec (a TOML file, README.md's Experiments): parse it, check it all up front,
report every error at once.

Validation happens at the boundary, before a model is built or a file is written, so that an
invalid spec costs the user nothing but a message naming each bad field, its value and what is
allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import tomli_w

from descentlab.engine import claims as claim_checks
from descentlab.engine import registry
from descentlab.engine.compat import tomllib
from descentlab.engine.params import Param, Problems, check_params, check_value
from descentlab.engine.schedules import SCHEDULES

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")
RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*$")
DEFAULT_OPTIMIZER = "adam"

TOP_PARAMS = {
    "name": Param("name", "str", "experiment", "name of the experiment"),
    "seed": Param(
        "seed", "int", 0, "seed of the initial weights and the batch order", 0, 2**63 - 1
    ),
    "steps": Param("steps", "int", 500, "optimizer steps per run", 1, 10**9),
    "device": Param("device", "str", "auto", "auto, cpu, cuda or cuda:N"),
    "dtype": Param(
        "dtype", "choice", "float32", "floating-point type", choices=("float32", "float64")
    ),
    "checkpoint_every": Param(
        "checkpoint_every",
        "int",
        0,
        "store parameters and optimizer state every this many steps (0: only at the end); "
        "forks and interpolations start from checkpoints",
        0,
        10**9,
    ),
}
_TABLES = ("task", "runs", "diagnostics", "claims")


class SpecError(ValueError):
    """An invalid spec; `problems` lists every error, one line each, naming the field."""

    def __init__(self, problems: list[str], source: str = "spec") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} is invalid ({len(problems)} problem(s)):\n{lines}")


@dataclass
class PluginRef:
    """A plugin id with its validated parameters (defaults filled in)."""

    id: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **{k: v for k, v in self.params.items() if v is not None}}


@dataclass
class RunSpec:
    name: str
    optimizer: PluginRef
    schedule: PluginRef = field(default_factory=lambda: PluginRef("constant", {"warmup_steps": 0}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "optimizer": self.optimizer.to_dict(),
            "schedule": self.schedule.to_dict(),
        }


@dataclass
class DiagnosticSpec:
    id: str
    every: int
    params: dict[str, Any] = field(default_factory=dict)
    runs: list[str] | None = None
    """Names of the runs it applies to; None means all."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "every": self.every}
        out.update({k: v for k, v in self.params.items() if v is not None})
        if self.runs is not None:
            out["runs"] = self.runs
        return out


@dataclass
class ClaimSpec:
    """A claim a preset makes about its own run: a check of `engine.claims` and its parameters."""

    id: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **{k: v for k, v in self.params.items() if v is not None}}


@dataclass
class ExperimentSpec:
    task: PluginRef
    runs: list[RunSpec]
    diagnostics: list[DiagnosticSpec] = field(default_factory=list)
    claims: list[ClaimSpec] = field(default_factory=list)
    name: str = "experiment"
    seed: int = 0
    steps: int = 500
    device: str = "auto"
    dtype: str = "float32"
    checkpoint_every: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "steps": self.steps,
            "device": self.device,
            "dtype": self.dtype,
            "checkpoint_every": self.checkpoint_every,
            "task": self.task.to_dict(),
            "runs": [r.to_dict() for r in self.runs],
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            **({"claims": [c.to_dict() for c in self.claims]} if self.claims else {}),
        }

    def to_toml(self) -> str:
        """The spec as TOML, every default spelled out, so a saved spec re-runs identically."""
        return tomli_w.dumps(self.to_dict())


def every_param(default: int) -> Param:
    """The schema of a diagnostic's `every` (steps between two records)."""
    return Param("every", "int", default, "steps between two records", 1, 10**9)


def _plugin_ref(
    kind: registry.Kind, raw: Any, where: str, problems: Problems, default_id: str | None = None
) -> PluginRef | None:
    """Resolve `{id = ..., **params}` (or a bare id string) against the registry."""
    if isinstance(raw, str):
        raw = {"id": raw}
    if raw is None and default_id is not None:
        raw = {"id": default_id}
    if not isinstance(raw, dict):
        problems.add(where, f"{raw!r} is not a table with an `id`")
        return None
    params = dict(raw)
    plugin_id = params.pop("id", None)
    known = registry.plugins(kind)
    if not isinstance(plugin_id, str) or plugin_id not in known:
        what = "missing" if plugin_id is None else f"unknown id {plugin_id!r}"
        problems.add(f"{where}.id", f"{what}; allowed: {', '.join(known)}")
        return None
    return PluginRef(plugin_id, check_params(known[plugin_id].params, params, where, problems))


def _schedule(raw: Any, where: str, problems: Problems) -> PluginRef | None:
    if raw is None:
        raw = {"id": "constant"}
    if isinstance(raw, str):
        raw = {"id": raw}
    if not isinstance(raw, dict):
        problems.add(where, f"{raw!r} is not a table with an `id`")
        return None
    params = dict(raw)
    sid = params.pop("id", "constant")
    if not isinstance(sid, str) or sid not in SCHEDULES:
        problems.add(f"{where}.id", f"unknown schedule {sid!r}; allowed: {', '.join(SCHEDULES)}")
        return None
    return PluginRef(sid, check_params(SCHEDULES[sid], params, where, problems))


def _runs(raw: Any, problems: Problems) -> list[RunSpec]:
    if raw is None:
        raw = [{"name": DEFAULT_OPTIMIZER, "optimizer": {"id": DEFAULT_OPTIMIZER}}]
    if not isinstance(raw, list) or not raw:
        problems.add("runs", f"{raw!r} is not a non-empty array of tables ([[runs]])")
        return []
    runs: list[RunSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"runs[{i}]"
        if not isinstance(item, dict):
            problems.add(where, f"{item!r} is not a table")
            continue
        for key in item:
            if key not in ("name", "optimizer", "schedule"):
                problems.add(f"{where}.{key}", "unknown key; allowed: name, optimizer, schedule")
        opt = _plugin_ref(
            "optimizers",
            item.get("optimizer"),
            f"{where}.optimizer",
            problems,
            default_id=DEFAULT_OPTIMIZER,
        )
        sched = _schedule(item.get("schedule"), f"{where}.schedule", problems)
        name = item.get("name", opt.id if opt else f"run{i}")
        if not isinstance(name, str) or not RUN_NAME_PATTERN.match(name):
            problems.add(
                f"{where}.name",
                f"{name!r} is not a valid run name; allowed: letters, "
                "digits and _ . + - (no spaces or slashes), starting with a letter or digit",
            )
        elif name in seen:
            problems.add(
                f"{where}.name", f"{name!r} is used by another run; run names must be unique"
            )
        seen.add(name if isinstance(name, str) else "")
        if opt and sched:
            runs.append(RunSpec(name, opt, sched))
    return runs


def _diagnostics(raw: Any, run_names: set[str], problems: Problems) -> list[DiagnosticSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.add("diagnostics", f"{raw!r} is not an array of tables ([[diagnostics]])")
        return []
    out: list[DiagnosticSpec] = []
    known = registry.plugins("diagnostics")
    for i, item in enumerate(raw):
        where = f"diagnostics[{i}]"
        if not isinstance(item, dict):
            problems.add(where, f"{item!r} is not a table")
            continue
        params = dict(item)
        did = params.pop("id", None)
        if not isinstance(did, str) or did not in known:
            what = "missing" if did is None else f"unknown id {did!r}"
            problems.add(f"{where}.id", f"{what}; allowed: {', '.join(known)}")
            continue
        every = check_value(
            every_param(known[did].every),
            f"{where}.every",
            params.pop("every", known[did].every),
            problems,
        )
        runs = params.pop("runs", None)
        if runs is not None and (
            not isinstance(runs, list) or any(r not in run_names for r in runs)
        ):
            problems.add(
                f"{where}.runs",
                f"{runs!r} is not a list of run names; allowed: {', '.join(sorted(run_names))}",
            )
            runs = None
        checked = check_params(known[did].params, params, where, problems)
        out.append(DiagnosticSpec(did, every or known[did].every, checked, runs))
    return out


def parse_diagnostics(raw: Any, source: str = "diagnostics") -> list[DiagnosticSpec]:
    """Validate `[[diagnostics]]` tables on their own, for a loop without a spec (the Recorder):
    the same checks and messages as in a spec, with no runs to name; raise SpecError."""
    problems = Problems()
    out = _diagnostics(raw, set(), problems)
    if problems:
        raise SpecError(problems.items, source)
    return out


def _claims(raw: Any, run_names: set[str], problems: Problems) -> list[ClaimSpec]:
    """`[[claims]]`: each an `id` of `engine.claims.CHECKS` and that check's parameters."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.add("claims", f"{raw!r} is not an array of tables ([[claims]])")
        return []
    out: list[ClaimSpec] = []
    known = claim_checks.CHECKS
    for i, item in enumerate(raw):
        where = f"claims[{i}]"
        if not isinstance(item, dict):
            problems.add(where, f"{item!r} is not a table")
            continue
        params = dict(item)
        cid = params.pop("id", None)
        if not isinstance(cid, str) or cid not in known:
            what = "missing" if cid is None else f"unknown id {cid!r}"
            problems.add(f"{where}.id", f"{what}; allowed: {', '.join(known)}")
            continue
        check = known[cid]
        before = len(problems.items)
        checked = check_params(check.params, params, where, problems)
        for name in check.run_params:
            run = checked.get(name)
            if isinstance(run, str) and run not in run_names:
                problems.add(
                    f"{where}.{name}",
                    f"{run!r} is not a run of this experiment; allowed: "
                    + ", ".join(sorted(run_names)),
                )
        if len(problems.items) > before:
            continue
        if check.validate is not None:
            for name, message in check.validate(checked):
                problems.add(f"{where}.{name}", message)
        out.append(ClaimSpec(cid, checked))
    return out


def check_fork(
    parent: RunSpec, name: str, optimizer: dict[str, Any] | None, schedule: dict[str, Any] | None
) -> RunSpec:
    """The spec of a run forked from `parent`, with the given settings replacing the parent's."""
    problems = Problems()
    if not RUN_NAME_PATTERN.match(name):
        problems.add("fork.name", f"{name!r} is not a valid run name")
    opt = _plugin_ref(
        "optimizers", optimizer or parent.optimizer.to_dict(), "fork.optimizer", problems
    )
    sched = _schedule(schedule or parent.schedule.to_dict(), "fork.schedule", problems)
    if problems or opt is None or sched is None:
        raise SpecError(problems.items, "fork")
    return RunSpec(name, opt, sched)


PYTHON_TASK = "python"
"""The task id whose `file` names the user's own Python file (`plugins/tasks/python_file.py`)."""


def _split_python_args(raw: Any, problems: Problems) -> tuple[Any, dict[str, Any]]:
    """The `[task]` table without its `[task.args]` table (a python task's factory arguments,
    which no schema describes), and those arguments; `args` on another task stays to be refused."""
    if not isinstance(raw, dict) or raw.get("id") != PYTHON_TASK or "args" not in raw:
        return raw, {}
    rest = dict(raw)
    args = rest.pop("args")
    if not isinstance(args, dict):
        problems.add("task.args", f"{args!r} is not a table of keyword arguments ([task.args])")
        return rest, {}
    return rest, args


def _check_python_task(
    task: PluginRef, args: dict[str, Any], base_dir: Path | None, problems: Problems
) -> None:
    """Check a python task's `file` and `factory` without reading or running the file (a spec is
    also parsed when a session is opened, which must never run code), and make `file` absolute
    against `base_dir`, the spec file's folder, so the spec runs the same from anywhere."""
    file, factory = task.params.get("file"), task.params.get("factory")
    if not file:
        problems.add(
            "task.file", 'missing; name the Python file that defines the task, e.g. "my_task.py"'
        )
    elif base_dir is not None and not Path(file).expanduser().is_absolute():
        task.params["file"] = str((base_dir / Path(file).expanduser()).resolve())
    if isinstance(factory, str) and not factory.isidentifier():
        problems.add("task.factory", f"{factory!r} is not a Python function name")
    task.params["args"] = args


def parse_spec(
    data: dict[str, Any], source: str = "spec", base_dir: Path | None = None
) -> ExperimentSpec:
    """Validate a spec given as a dict (parsed TOML, or the GUI form); raise SpecError.

    `base_dir` is the folder relative paths in the spec (a python task's `file`) start from:
    the spec file's folder when there is one; without it they stay as written and are read from
    the current folder.
    """
    problems = Problems()
    if not isinstance(data, dict):
        raise SpecError([f"top level: {data!r} is not a table"], source)
    for key in data:
        if key not in TOP_PARAMS and key not in _TABLES:
            problems.add(key, f"unknown key; allowed: {', '.join([*TOP_PARAMS, *_TABLES])}")
    top = {k: check_value(p, k, data.get(k, p.default), problems) for k, p in TOP_PARAMS.items()}
    device = top["device"]
    if isinstance(device, str) and not DEVICE_PATTERN.match(device):
        problems.add("device", f"{device!r} is not a device; allowed: auto, cpu, cuda, cuda:N, mps")
    if "task" not in data:
        problems.add(
            "task",
            'missing; a spec needs a [task] table with an `id`, e.g. [task] id = "quadratic"',
        )
        task = None
    else:
        raw_task, args = _split_python_args(data["task"], problems)
        task = _plugin_ref("tasks", raw_task, "task", problems)
        if task is not None and task.id == PYTHON_TASK:
            _check_python_task(task, args, base_dir, problems)
    runs = _runs(data.get("runs"), problems)
    diagnostics = _diagnostics(data.get("diagnostics"), {r.name for r in runs}, problems)
    claims = _claims(data.get("claims"), {r.name for r in runs}, problems)
    if problems:
        raise SpecError(problems.items, source)
    assert task is not None
    return ExperimentSpec(task=task, runs=runs, diagnostics=diagnostics, claims=claims, **top)


def parse_toml(text: str, source: str = "spec", base_dir: Path | None = None) -> ExperimentSpec:
    """Parse and validate TOML text; syntax errors become a SpecError with line and column.

    `base_dir`: the folder of the spec file the text comes from (see `parse_spec`)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError([f"not valid TOML: {exc}"], source) from None
    return parse_spec(data, source, base_dir)


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate a spec file; a missing or unreadable file is a SpecError too."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError([f"cannot read the file: {reason}"], str(path)) from None
    return parse_toml(text, str(path), path.parent)


def run_spec_text(spec_text: str, run: str, config: Mapping[str, Any], parent_run: str = "") -> str:
    """A spec that re-runs `run` alone from step 0, as TOML: the session's spec with that run
    only, its optimizer and schedule from the run's recorded `config` (a fork's own settings
    included), the diagnostics that applied to it and the claims about it alone.

    Args:
        spec_text: the session's spec.
        run: the run to keep.
        config: the run's recorded config (its `optimizer` and `schedule` tables).
        parent_run: the run it was forked from, if any: diagnostics limited to the parent
            apply to its forks.

    Raises:
        SpecError: the session's spec cannot be read by this lab.
    """
    spec = parse_toml(spec_text, "the session's spec")
    owner = parent_run or run
    diagnostics = [
        replace(d, runs=None)
        for d in spec.diagnostics
        if d.runs is None or owner in d.runs or run in d.runs
    ]
    claims = [
        c
        for c in spec.claims
        if all(c.params.get(k) == run for k in claim_checks.CHECKS[c.id].run_params)
    ]
    settings = {k: dict(config[k]) for k in ("optimizer", "schedule")}
    optimizer, schedule = (PluginRef(str(t.pop("id")), t) for t in settings.values())
    alone = replace(
        spec, runs=[RunSpec(run, optimizer, schedule)], diagnostics=diagnostics, claims=claims
    )
    return parse_toml(alone.to_toml(), f"the spec of run {run}").to_toml()  # as it will be read
