"""Append-only writer of a session file, safe against a killed process and readable while live.

Every series of a run is created when the run is added; then the file enters HDF5's
single-writer/multiple-reader (SWMR) mode, in which data are only appended and flushed at least
every `flush_interval` seconds. SWMR keeps the file consistent on disk at every moment, so a
worker killed with SIGKILL leaves a file that opens (the reader falls back to SWMR reading) and
lost at most the records since the last flush. SWMR cannot create objects or rewrite attributes,
so adding a run later (a fork) and writing final statuses leave SWMR mode briefly.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from descentlab.engine.checkpoints import Tree
from descentlab.engine.plugin import Output
from descentlab.engine.session.format import (
    CHUNK_ROWS,
    EVENT_DTYPE,
    FORMAT,
    FORMAT_VERSION,
    STATUSES,
)
from descentlab.engine.session.trees import write_tree
from descentlab.engine.sink import RunHeader


def app_version() -> str:
    try:
        return version("descentlab")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SessionWriter:
    """Writes one experiment to one `.h5` file.

    Args:
        path: the session file; it must not exist yet (a session is never overwritten here).
        spec_text: the experiment spec as TOML, stored in the root attributes.
        append: add runs to an existing, closed session instead of creating one (`spec_text` is
            then ignored: the file keeps the spec it was made from).
        flush_interval: seconds between two flushes at most; what a killed worker can lose.
    """

    def __init__(
        self, path: str | Path, spec_text: str, flush_interval: float = 0.5, append: bool = False
    ) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        if append:  # more runs into a closed session: forks from its checkpoints
            self._file = h5py.File(self.path, "a", libver="latest")
        else:
            self._file = h5py.File(self.path, "x", libver="latest")
            attrs = self._file.attrs
            attrs["format"] = FORMAT
            attrs["format_version"] = FORMAT_VERSION
            attrs["created"] = now_iso()
            attrs["app_version"] = app_version()
            attrs["spec"] = spec_text
            # creation order, not HDF5's default alphabetical order: runs keep the order (and so
            # the colours) they had live, and series the order their diagnostics declared them
            self._file.create_group("runs", track_order=True)
        self._live = False
        self._buffers: dict[tuple[str, str], tuple[list[int], list[Any]]] = defaultdict(
            lambda: ([], [])
        )
        self._events: dict[str, list[tuple[int, float, bytes, bytes]]] = defaultdict(list)
        self._declared: dict[str, set[str]] = {}
        self._final: dict[str, tuple[str, str]] = {}
        self._last_flush = time.monotonic()

    # -- structure ------------------------------------------------------------------------

    def add_run(self, header: RunHeader) -> None:
        """Create a run with every series it will write; records can be appended from now on."""
        if self._live:
            self._leave_swmr()
        run = self._file["runs"].create_group(header.name, track_order=True)
        run.attrs.update(
            config=json.dumps(header.config),
            status="running",
            parent_run=header.parent_run,
            fork_step=header.fork_step,
            started=now_iso(),
            ended="",
            error="",
        )
        run.create_dataset("events", shape=(0,), maxshape=(None,), dtype=EVENT_DTYPE, chunks=(64,))
        series = run.create_group("series", track_order=True)
        for out in header.outputs:
            self._create_series(series, out)
        self._declared[header.name] = {o.name for o in header.outputs}

    def _create_series(self, series: h5py.Group, out: Output) -> None:
        parent = series
        for part in out.name.split("/")[:-1]:
            parent = parent[part] if part in parent else parent.create_group(part, track_order=True)
        group = parent.create_group(out.name.rsplit("/", 1)[-1])
        group.create_dataset(
            "step", shape=(0,), maxshape=(None,), dtype="<i8", chunks=(CHUNK_ROWS,)
        )
        rows = max(1, min(CHUNK_ROWS, (1 << 20) // (8 * max(1, int(np.prod(out.shape))))))
        group.create_dataset(
            "value",
            shape=(0, *out.shape),
            maxshape=(None, *out.shape),
            dtype="<f8",
            chunks=(rows, *out.shape),
        )
        group.attrs.update(kind=out.kind, unit=out.unit, layer=out.layer)
        if out.attrs:
            group.attrs["axes"] = json.dumps(out.attrs)

    def start_live(self) -> None:
        """Enter SWMR mode: from now on the file is only appended to, and readable while live."""
        self._file.flush()
        # After `_leave_swmr` kept a handle shared with a reader in this process, the file is
        # still in SWMR mode, and starting it again would raise.
        if not self._file.id.get_intent() & h5py.h5f.ACC_SWMR_WRITE:
            self._file.swmr_mode = True
        self._live = True

    def _leave_swmr(self) -> None:
        self.flush(force=True)
        self._live = False
        if h5py.h5f.get_obj_count(self._file.id, h5py.h5f.OBJ_FILE) > 1:
            # A reader in this process shares HDF5's handle of the file: closing ours would not
            # end SWMR mode, and reopening would fail. HDF5 2 creates objects and writes
            # attributes in SWMR mode too, so the structure is changed in place.
            return
        self._file.close()
        # Without `locking=False` the reopening fails (errno 11) whenever another process has
        # the file open for SWMR reading (the app replaying it live, a user's h5py script):
        # SWMR readers hold a shared lock. The file is back in SWMR mode moments later.
        self._file = h5py.File(self.path, "a", libver="latest", locking=False)

    # -- records --------------------------------------------------------------------------

    def declared(self, run: str) -> set[str]:
        """Series names created for a run; appending any other name is an error."""
        return self._declared[run]

    def append(self, run: str, name: str, step: int, value: Any) -> None:
        steps, values = self._buffers[(run, name)]
        steps.append(step)
        values.append(value)

    def event(self, run: str, step: int, kind: str, detail: str = "") -> None:
        self._events[run].append(
            (step, time.time(), kind.encode()[:32], detail.encode("utf-8", "replace")[:512])
        )

    def checkpoint(
        self, run: str, step: int, params: dict[str, np.ndarray], optimizer_state: Tree | None
    ) -> None:
        """Store θ_step (and the encoded optimizer state) under `/runs/<run>/checkpoints/<step>`.

        New groups cannot be created in SWMR mode with older HDF5 libraries, so a live file
        leaves it for the moment of writing, as a fork does; checkpoints come by schedule, rarely.
        """
        live = self._live
        if live:
            self._leave_swmr()
        group = self._file["runs"][run].require_group("checkpoints")
        if str(step) in group:
            del group[str(step)]
        point = group.create_group(str(step))
        arrays = point.create_group("params", track_order=True)
        for name, value in params.items():
            arrays.create_dataset(name, data=value)
        if optimizer_state is not None:
            write_tree(point, "optimizer", optimizer_state)
        self._file.flush()
        if live:
            self.start_live()

    def end_run(self, run: str, status: str, step: int, error: str = "") -> None:
        """Mark a run ended; the status attribute is written when the file is closed."""
        assert status in STATUSES and status != "running", status
        self._final[run] = (status, error)
        self.event(run, step, "end", status + (f": {error}" if error else ""))

    def flush(self, force: bool = False) -> None:
        """Write buffered records if `flush_interval` has passed (or `force`)."""
        now = time.monotonic()
        if not force and now - self._last_flush < self.flush_interval:
            return
        self._last_flush = now
        runs = self._file["runs"]
        for (run, name), (steps, values) in self._buffers.items():
            if not steps:
                continue
            group = runs[run]["series"][name]
            _extend(group["step"], np.asarray(steps, dtype="<i8"))
            _extend(group["value"], np.asarray(values, dtype="<f8"))
            steps.clear()
            values.clear()
        for run, events in self._events.items():
            if events:
                _extend(runs[run]["events"], np.array(events, dtype=EVENT_DTYPE))
                events.clear()
        self._file.flush()

    def close(self) -> None:
        """Flush, write the final statuses and close; the file is then a plain HDF5 file."""
        if not self._file.id.valid:
            return
        self.flush(force=True)
        if self._live:
            self._leave_swmr()
        for run, (status, error) in self._final.items():
            self._file["runs"][run].attrs.update(status=status, error=error, ended=now_iso())
        self._file.close()

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _extend(dataset: h5py.Dataset, rows: np.ndarray) -> None:
    n = dataset.shape[0]
    dataset.resize(n + rows.shape[0], axis=0)
    dataset[n:] = rows


def write_claims(path: str | Path, claims: list[dict[str, Any]]) -> None:
    """Append the verdicts of a spec's claims to a closed session file, under `/claims`.

    Each item has `id`, `held`, `summary`, `numbers` (name → float) and `params`; one subgroup
    per claim, in order (`0`, `1`, …), with those as attributes (numbers and params as JSON).
    Verdicts are computed from the finished runs, so they are written after the session was
    closed; an existing `/claims` group is replaced. Like `_leave_swmr`, it opens without file
    locking, since the app may still hold the file open for reading.
    """
    with h5py.File(path, "a", libver="latest", locking=False) as file:
        if "claims" in file:
            del file["claims"]
        group = file.create_group("claims", track_order=True)
        for i, claim in enumerate(claims):
            group.create_group(str(i)).attrs.update(
                id=claim["id"],
                held=bool(claim["held"]),
                summary=claim["summary"],
                numbers=json.dumps(claim["numbers"]),
                params=json.dumps(claim["params"]),
            )
