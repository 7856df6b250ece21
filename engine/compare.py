"""Comparison of runs across sessions: what differs between them, grouped statistics, rankings.

A sweep is usually many session files (one per learning rate, one per seed, …). This module
loads any number of them into one flat list of runs labelled `<session stem>/<run>`, flattens
each run's settings into dotted keys (`optimizer.lr`, `task.dim`, `seed`, `steps`), and answers
the questions a comparison asks: which settings differ (and only those), what a setting's groups
look like across seeds (mean and min–max per step), and which run ends best. It is headless, so
the comparison window, `descentlab compare --table` and scripts share it.

Only scalar series (one number per record) take part: they are what overlays, bands and
final-metric rankings are made of.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from descentlab.engine.compat import tomllib
from descentlab.engine.session.reader import SessionError, SessionReader

SEED = "seed"
"""The setting that repeats a configuration rather than changing it (grouping leaves it out)."""
CORE_METRICS = ("train/loss", "eval/loss", "eval/accuracy")
"""Final metrics shown by default, in this order, when a run has them."""
MISSING = "-"
"""How a setting a run does not have is shown (it counts as different from any value)."""


class CompareError(ValueError):
    """A comparison that cannot be made as asked (no runs, an unknown setting or metric)."""


@dataclass
class ComparedRun:
    """One run of one session, with what a comparison needs of it already read."""

    label: str
    """`<session stem>/<run>`, unique across the comparison."""
    session: Path
    name: str
    status: str
    settings: dict[str, Any]
    """Flattened settings (`optimizer.lr`, `task.id`, `seed`, …); lists become tuples."""
    series: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """Scalar series only: steps (n,) int64 and values (n,) float64."""
    parent: str = ""
    """Label of the run this one was forked from; "" when it was not forked."""
    fork_step: int = -1

    def final(self, metric: str) -> float:
        """Last recorded value of a scalar series; NaN when the run has no record of it."""
        values = self.series.get(metric, (None, np.empty(0)))[1]
        return float(values[-1]) if len(values) else math.nan

    def finals(self) -> dict[str, float]:
        """Last value of every scalar series the run recorded."""
        return {name: float(v[-1]) for name, (_, v) in self.series.items() if len(v)}


@dataclass
class Comparison:
    """Runs loaded from several sessions, and the files that could not be read (one line each)."""

    runs: list[ComparedRun]
    skipped: list[str] = field(default_factory=list)

    def run(self, label: str) -> ComparedRun:
        for run in self.runs:
            if run.label == label:
                return run
        raise CompareError(f"no run {label!r}; runs: {', '.join(r.label for r in self.runs)}")

    def series_names(self) -> list[str]:
        """Every scalar series of any run, core ones first, then in order of first appearance."""
        seen: dict[str, None] = {}
        for run in self.runs:
            seen.update(dict.fromkeys(run.series))
        core = [m for m in CORE_METRICS if m in seen]
        return core + [m for m in seen if m not in core]


@dataclass(frozen=True)
class Aggregate:
    """Statistics of one series across a group of runs, on the union of their steps.

    At each step, `mean`, `min` and `max` are taken over the runs that recorded that step, and
    `count` says how many did: nothing is interpolated or carried forward. Non-finite records
    (a diverged seed) propagate, so a group with a diverged run shows it rather than hiding it.
    """

    steps: np.ndarray
    mean: np.ndarray
    min: np.ndarray
    max: np.ndarray
    count: np.ndarray


# -- loading ------------------------------------------------------------------------------------


def session_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files to load: each path as given, or every `*.h5` in it (sorted) for a folder."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        files.extend(sorted(path.glob("*.h5")) if path.is_dir() else [path])
    return files


def load(paths: Iterable[str | Path]) -> Comparison:
    """Read every session of `paths` (files, or folders of `*.h5`) into one comparison.

    A file that cannot be read is skipped and its reason kept in `skipped` (the reader's
    one-line message); so is a file given twice. Nothing is raised for a bad file: a folder
    with one broken session still compares the others.
    """
    comparison = Comparison([])
    stems: set[str] = set()
    seen: set[Path] = set()
    for path in session_files(paths):
        if path.resolve() in seen:
            comparison.skipped.append(f"{path}: given twice; read once")
            continue
        seen.add(path.resolve())
        try:
            with SessionReader(path) as reader:
                runs = _read_session(reader, _unique_stem(path.stem, stems))
        except SessionError as exc:
            comparison.skipped.append(str(exc))
            continue
        comparison.runs.extend(runs)
    return comparison


def _unique_stem(stem: str, taken: set[str]) -> str:
    """The file's stem, numbered (`sweep-2`) when two files of that name come from two folders."""
    unique, k = stem, 2
    while unique in taken:
        unique, k = f"{stem}-{k}", k + 1
    taken.add(unique)
    return unique


def _read_session(reader: SessionReader, stem: str) -> list[ComparedRun]:
    spec_steps = _spec_steps(reader.spec_text)
    runs = []
    for info in reader.runs():
        settings = flatten(info.config)
        if spec_steps is not None:
            settings["steps"] = spec_steps
        if info.parent_run:
            settings["fork.parent"] = info.parent_run
            settings["fork.step"] = info.fork_step
        series = {}
        for name in reader.series_names(info.name):
            if reader.series_info(info.name, name).shape == ():
                steps, values = reader.read(info.name, name)
                series[name] = (np.asarray(steps, np.int64), np.asarray(values, np.float64))
        runs.append(
            ComparedRun(
                label=f"{stem}/{info.name}",
                session=reader.path,
                name=info.name,
                status=info.status,
                settings=settings,
                series=series,
                parent=f"{stem}/{info.parent_run}" if info.parent_run else "",
                fork_step=info.fork_step,
            )
        )
    return runs


def _spec_steps(text: str) -> int | None:
    """The session's planned number of steps (kept in its spec, not in the run configs)."""
    try:
        steps = tomllib.loads(text).get("steps")
    except tomllib.TOMLDecodeError:
        return None
    return steps if isinstance(steps, int) else None


# -- settings -----------------------------------------------------------------------------------


def flatten(config: dict[str, Any]) -> dict[str, Any]:
    """A run's config as flat dotted keys: `optimizer.lr`, `schedule.id`, `task.dim`, `seed`.

    The run's `name` is left out (it is the label, not a setting). Diagnostics are keyed by
    their id (`diagnostics.hessian.every`), so their order in the spec does not matter; lists
    become tuples, so values compare and hash.
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if key == "name":
            continue
        if key == "diagnostics" and isinstance(value, list):
            used: set[str] = set()
            for index, entry in enumerate(value):
                diag = entry if isinstance(entry, dict) else {}
                ident = str(diag.get("id", index))
                while ident in used:  # the same diagnostic twice, with other settings
                    ident += "+"
                used.add(ident)
                rest = {k: v for k, v in diag.items() if k != "id"}
                _flatten_into(flat, f"diagnostics.{ident}", rest or {"on": True})
            continue
        _flatten_into(flat, key, value)
    return flat


def _flatten_into(flat: dict[str, Any], prefix: str, value: Any) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten_into(flat, f"{prefix}.{key}", inner)
    else:
        flat[prefix] = _hashable(value)


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


_ABSENT = object()


def differing(runs: Sequence[ComparedRun]) -> list[str]:
    """Sorted keys whose values are not all equal across `runs` (a key some runs lack counts).

    Exactly those: a setting every run shares is not listed, whatever it is.
    """
    if len(runs) < 2:
        return []
    keys = sorted({k for run in runs for k in run.settings})
    out = []
    for key in keys:
        values = [run.settings.get(key, _ABSENT) for run in runs]
        if any(not _same(values[0], v) for v in values[1:]):
            out.append(key)
    return out


def _same(a: Any, b: Any) -> bool:
    if a is _ABSENT or b is _ABSENT:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):  # True == 1 in Python, not in a spec
        return type(a) is type(b) and a == b
    return bool(a == b)


def table_keys(runs: Sequence[ComparedRun], all_settings: bool = False) -> list[str]:
    """The setting columns of a runs table: the differing settings (or all), those every run
    has first (`optimizer.id`, `optimizer.lr`, `seed`), then those only some runs have (one
    optimizer's own hyperparameters, `fork.*`), each part sorted."""
    keys = sorted({k for run in runs for k in run.settings}) if all_settings else differing(runs)
    shared = [k for k in keys if all(k in run.settings for run in runs)]
    return shared + [k for k in keys if k not in shared]


def format_value(value: Any) -> str:
    """A setting or metric as a table shows it: 4 significant digits for floats."""
    if value is None or value is _ABSENT:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


# -- grouping and statistics --------------------------------------------------------------------


def grouping_keys(runs: Sequence[ComparedRun], key: str | None) -> list[str]:
    """The settings a grouping uses: `key` alone, or (None) every differing one but the seed."""
    if key is not None:
        known = {k for run in runs for k in run.settings}
        if key not in known:
            raise CompareError(
                f"cannot group by {key!r}: no run has that setting; settings: "
                f"{', '.join(sorted(known))}"
            )
        return [key]
    return [k for k in table_keys(runs) if k != SEED]


def group(runs: Sequence[ComparedRun], key: str | None = None) -> dict[str, list[ComparedRun]]:
    """Runs grouped by the value of setting `key`, or (None) of every differing setting but the
    seed, so that seeds of one configuration fall together.

    Groups are labelled `key=value, …` with the keys that tell them apart (`all runs` when
    nothing but the seed differs) and come in the order of their values (numbers numerically,
    settings every run has first), so a learning-rate sweep reads in order.
    """
    keys = grouping_keys(runs, key)
    groups: dict[tuple[Any, ...], list[ComparedRun]] = {}
    for run in runs:
        groups.setdefault(tuple(run.settings.get(k, _ABSENT) for k in keys), []).append(run)
    ordered = sorted(groups, key=lambda values: tuple(_order(v) for v in values))
    return dict(zip(_group_labels(keys, ordered), (groups[v] for v in ordered), strict=True))


def _group_labels(keys: list[str], groups: list[tuple[Any, ...]]) -> list[str]:
    """Short unique labels: a key is named only where it tells groups apart that the keys
    before it did not (`optimizer.id=adam, optimizer.lr=0.05`, not also adam's `betas`,
    which only say again that it is Adam)."""
    if not keys:
        return ["all runs"]
    parts: list[list[str]] = [[] for _ in groups]
    for index, key in enumerate(keys):
        buckets: dict[tuple[str, ...], list[int]] = {}
        for g, part in enumerate(parts):
            buckets.setdefault(tuple(part), []).append(g)
        for members in buckets.values():
            values = [groups[g][index] for g in members]
            if any(not _same(values[0], v) for v in values[1:]):
                for g, value in zip(members, values, strict=True):
                    parts[g].append(f"{key}={format_value(value)}")
    return [", ".join(part) for part in parts]


def _order(value: Any) -> tuple[int, float, str]:
    """Sort key for mixed setting values: numbers by size, then the rest by text, then absent."""
    if value is _ABSENT:
        return (2, 0.0, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, format_value(value))


def aggregate(runs: Sequence[ComparedRun], series: str) -> Aggregate:
    """Mean, min and max of `series` across `runs` at every step any of them recorded.

    Each statistic at a step is over the runs that recorded that step (`count` of them); a run
    that lacks a step contributes nothing there (no interpolation, no carrying forward).
    """
    present = [run.series[series] for run in runs if series in run.series]
    steps = np.unique(np.concatenate([s for s, _ in present])) if present else np.empty(0, int)
    total = np.zeros(len(steps))
    count = np.zeros(len(steps), dtype=np.int64)
    low = np.full(len(steps), np.inf)
    high = np.full(len(steps), -np.inf)
    for run_steps, values in present:
        index = np.searchsorted(steps, run_steps)  # steps increase strictly within a series
        total[index] += values
        count[index] += 1
        low[index] = np.minimum(low[index], values)  # NaN propagates, as in the mean
        high[index] = np.maximum(high[index], values)
    return Aggregate(steps.astype(np.int64), total / np.maximum(count, 1), low, high, count)


# -- ranking ------------------------------------------------------------------------------------


def sort_runs(runs: Sequence[ComparedRun], by: str, descending: bool = False) -> list[ComparedRun]:
    """Runs ordered by a final metric (a scalar series) or by a setting.

    Runs without a value (no record, NaN) come last in either direction; `inf` (a diverged run)
    sorts as the largest number.
    """
    metrics = {m for run in runs for m in run.series}
    settings = {k for run in runs for k in run.settings}
    if by not in metrics and by not in settings:
        raise CompareError(
            f"cannot sort by {by!r}: it is neither a final metric nor a setting of these runs; "
            f"metrics: {', '.join(sorted(metrics))}"
        )

    def value(run: ComparedRun) -> tuple[int, float, str] | None:
        if by in metrics:
            final = run.final(by)
            return None if math.isnan(final) else (0, final, "")
        setting = run.settings.get(by, _ABSENT)
        return None if setting is _ABSENT else _order(setting)

    keyed = [(value(run), run) for run in runs]
    have = [(key, run) for key, run in keyed if key is not None]
    lack = [run for key, run in keyed if key is None]
    return [run for _, run in sorted(have, key=lambda pair: pair[0], reverse=descending)] + lack


# -- the table --------------------------------------------------------------------------------


def table_rows(
    comparison: Comparison,
    metrics: Sequence[str] | None = None,
    all_settings: bool = False,
    sort: str | None = None,
    descending: bool = False,
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the runs table: run, status, final metrics, settings (the metrics
    first: they are what a reader ranks by, and the settings of a mixed sweep run long).

    Settings are the differing ones (all of them with `all_settings`); metrics default to the
    core ones the runs have (`train/loss`, `eval/loss`, `eval/accuracy`), and the `sort` metric
    is always shown.
    """
    runs = comparison.runs
    names = comparison.series_names()
    metrics = [m for m in CORE_METRICS if m in names] if metrics is None else list(metrics)
    if sort is not None and sort in names and sort not in metrics:
        metrics.append(sort)
    unknown = [m for m in metrics if m not in names]
    if unknown:
        raise CompareError(
            f"no scalar series {', '.join(map(repr, unknown))} in these runs; series: "
            f"{', '.join(names)}"
        )
    keys = table_keys(runs, all_settings)
    if sort is not None:
        runs = sort_runs(runs, sort, descending)
    header = ["run", "status", *(f"final {m}" for m in metrics), *keys]
    rows = [
        [
            run.label,
            run.status,
            *(format_value(run.final(m) if m in run.series else _ABSENT) for m in metrics),
            *(format_value(run.settings.get(k, _ABSENT)) for k in keys),
        ]
        for run in runs
    ]
    return header, rows


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, numbers right-aligned, a rule under the header."""
    widths = [max(len(c) for c in column) for column in zip(header, *rows, strict=True)]

    def numeric(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return False
        return True

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if numeric(c) else c.ljust(w) for c, w in zip(cells, widths, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])
