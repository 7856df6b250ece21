"""Reader of session files: finished, live (being written) or left behind by a killed worker.

Every failure a user can cause (a missing, foreign, truncated or corrupt file, a newer format)
becomes a `SessionError` with a one-line message; the CLI and the app show it as it is.
"""

from __future__ import annotations

import json
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from descentlab.engine.checkpoints import Checkpoint, decode
from descentlab.engine.session.format import FORMAT, READABLE_VERSIONS
from descentlab.engine.session.trees import read_tree


class SessionError(Exception):
    """A session file that cannot be read, with the reason in one line."""


@dataclass(frozen=True)
class Event:
    step: int
    time: float
    kind: str
    detail: str


@dataclass(frozen=True)
class RunInfo:
    name: str
    status: str
    config: dict[str, Any]
    parent_run: str
    fork_step: int
    started: str
    ended: str
    error: str


@dataclass(frozen=True)
class ClaimRecord:
    """A claim's verdict as stored in `/claims/<i>`: did it hold on this session's runs."""

    id: str
    held: bool
    summary: str
    numbers: dict[str, float]
    params: dict[str, Any]


@dataclass(frozen=True)
class SeriesInfo:
    name: str
    kind: str
    unit: str
    layer: str
    shape: tuple[int, ...]
    axes: dict[str, Any]


_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_WRITE_ACCESS, _SWMR_WRITE_ACCESS = 0x01, 0x04
_LIVE_WAIT = 1.0
"""Seconds to wait for a live writer to write out the end of its file before calling it cut."""


@dataclass(frozen=True)
class _Superblock:
    """What the reader needs of an HDF5 superblock of version 2 or later (the ones SWMR uses)."""

    flags: int
    eof: int
    """Where the file ends, by its own account (absolute offset)."""


def _superblock(path: Path) -> _Superblock | None:
    """Parse the superblock; None for the older versions 0 and 1 (no flags, never live)."""
    with open(path, "rb") as fh:
        size = path.stat().st_size
        base = 0
        while base + 48 <= size:  # the superblock sits at 0, 512, 1024, 2048, ... (user block)
            fh.seek(base)
            head = fh.read(48)
            if head[:8] == _SIGNATURE:
                break
            base = 512 if base == 0 else 2 * base
        else:
            return None
    version, offset_size = head[8], head[9]
    if version < 2 or offset_size not in (4, 8):
        return None
    fmt = "<I" if offset_size == 4 else "<Q"
    (eof,) = struct.unpack_from(fmt, head, 12 + 2 * offset_size)
    (base_addr,) = struct.unpack_from(fmt, head, 12)
    return _Superblock(head[11], eof + base_addr)


def _open(path: Path) -> h5py.File:
    """Open a finished, live or abandoned session, or raise SessionError saying why not.

    A finished file opens plainly, which also checks that it is whole. A file whose flags say
    it is open for SWMR writing is live or was left by a killed writer; SWMR reading opens both,
    but it retries (for hours) any metadata it finds incomplete, so a cut file must be turned
    away before, by comparing its size with the end its superblock records.
    """
    try:
        if not path.exists():
            raise SessionError(f"{path}: no such file")
        if path.is_dir():
            raise SessionError(f"{path}: is a folder, not a session file")
        if path.stat().st_size == 0:
            raise SessionError(f"{path}: is empty (0 bytes), not a session file")
        if not h5py.is_hdf5(path):
            raise SessionError(
                f"{path}: not an HDF5 file (a session is a .h5 file written by Descent Lab)"
            )
        try:
            return h5py.File(path, "r")
        except OSError as exc:
            plain_error = exc
        sb = _superblock(path)
        if sb is None or not sb.flags & _SWMR_WRITE_ACCESS:
            raise SessionError(_open_failure(path, plain_error, sb))
        deadline = time.monotonic() + _LIVE_WAIT
        while path.stat().st_size < sb.eof and time.monotonic() < deadline:
            time.sleep(0.05)  # a live writer is between allocating the end and writing it
            sb = _superblock(path) or sb
        size = path.stat().st_size
        if size < sb.eof:
            raise SessionError(_truncated(path, size, sb.eof))
        return h5py.File(path, "r", swmr=True)
    except OSError as exc:
        raise SessionError(f"{path}: cannot be opened ({_first_line(exc)})") from None


def _truncated(path: Path, size: int, eof: int) -> str:
    return (
        f"{path}: truncated session file: it has {size} bytes but its header says {eof} "
        "(copied or downloaded only in part?)"
    )


def _open_failure(path: Path, exc: OSError, sb: _Superblock | None) -> str:
    reason = _first_line(exc)
    if isinstance(exc, BlockingIOError) or "unable to lock file" in reason:
        return (
            f"{path}: is being written by another process and cannot be read at this moment "
            "(it can once the run has started); try again"
        )
    match = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", reason)
    if match:
        return _truncated(path, int(match[1]), int(match[2]))
    if sb is not None and sb.flags & _WRITE_ACCESS:
        return (
            f"{path}: is open for writing and not yet live, or was left so by a writer killed "
            "before it started recording; try again in a moment (a file that stays this way "
            "is incomplete; `h5clear -s` clears its flag)"
        )
    return f"{path}: corrupt HDF5 file ({reason})"


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class SessionReader:
    """Read-only view of a session file.

    Args:
        path: the `.h5` session file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = _open(self.path)
        try:
            self._check_format()
        except Exception:
            self._file.close()
            raise

    def _check_format(self) -> None:
        try:
            attrs = self._file.attrs
            fmt = _text(attrs.get("format", ""))
            ver = attrs.get("format_version")
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise SessionError(
                f"{self.path}: corrupt HDF5 file: its root attributes cannot be read "
                f"({_first_line(exc)})"
            ) from None
        if fmt != FORMAT:
            raise SessionError(
                f"{self.path}: an HDF5 file, but not a Descent Lab session (no "
                f"format={FORMAT!r} attribute)"
            )
        try:
            known = int(ver) in READABLE_VERSIONS
        except (TypeError, ValueError):
            known = False
        if not known:
            raise SessionError(
                f"{self.path}: session format version "
                f"{'(missing)' if ver is None else _text(ver)} is not one this Descent Lab "
                f"reads ({', '.join(map(str, READABLE_VERSIONS))}); a newer version of the app "
                "may read it"
            )
        if "runs" not in self._file or not isinstance(self._file["runs"], h5py.Group):
            raise SessionError(f"{self.path}: corrupt session: the /runs group is missing")

    def _guard(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except SessionError:
            raise
        except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
            raise SessionError(
                f"{self.path}: corrupt session: {what} ({_first_line(exc)})"
            ) from None

    # -- root -----------------------------------------------------------------------------

    @property
    def spec_text(self) -> str:
        return _text(self._file.attrs.get("spec", ""))

    @property
    def attrs(self) -> dict[str, Any]:
        return {
            k: _text(v) if isinstance(v, (str, bytes)) else v for k, v in self._file.attrs.items()
        }

    def run_names(self) -> list[str]:
        return self._guard("cannot list runs", lambda: list(self._file["runs"].keys()))

    def run(self, name: str) -> RunInfo:
        def read() -> RunInfo:
            a = self._file["runs"][name].attrs
            status = _text(a["status"])
            if status == "running":  # attributes are final only when closed; events are live
                ends = [e for e in self.events(name) if e.kind == "end"]
                if ends:
                    status = ends[-1].detail.split(":")[0]
            return RunInfo(
                name,
                status,
                json.loads(_text(a["config"])),
                _text(a["parent_run"]),
                int(a["fork_step"]),
                _text(a["started"]),
                _text(a["ended"]),
                _text(a["error"]),
            )

        return self._guard(f"run {name!r} has bad attributes", read)

    def runs(self) -> list[RunInfo]:
        return [self.run(n) for n in self.run_names()]

    # -- series ---------------------------------------------------------------------------

    def series_names(self, run: str) -> list[str]:
        """Full series names of a run (`train/loss`, `norms/grad/fc1.weight`, ...)."""

        def walk() -> list[str]:
            names: list[str] = []

            def visit(prefix: str, group: h5py.Group) -> None:
                # keys() follows the writer's creation order; visititems() would sort by name
                for key in group:
                    obj = group[key]
                    if not isinstance(obj, h5py.Group):
                        continue
                    name = prefix + key
                    missing = [k for k in ("step", "value") if k not in obj]
                    if not missing:
                        names.append(name)
                    elif len(missing) == 1 or "kind" in obj.attrs:  # a series, not a prefix
                        raise SessionError(
                            f"{self.path}: corrupt session: series {name!r} of run {run!r} has "
                            f"no {' and no '.join(map(repr, missing))} dataset"
                        )
                    else:
                        visit(name + "/", obj)

            visit("", self._file["runs"][run]["series"])
            return names

        return self._guard(f"cannot list the series of run {run!r}", walk)

    def series_info(self, run: str, name: str) -> SeriesInfo:
        def read() -> SeriesInfo:
            g = self._file["runs"][run]["series"][name]
            a = g.attrs
            axes = json.loads(_text(a["axes"])) if "axes" in a else {}
            return SeriesInfo(
                name,
                _text(a.get("kind", "scalar")),
                _text(a.get("unit", "")),
                _text(a.get("layer", "")),
                tuple(g["value"].shape[1:]),
                axes,
            )

        return self._guard(f"series {name!r} of run {run!r}", read)

    def read(self, run: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Steps (n,) and values (n, …) of one series, cut to the rows both datasets hold."""

        def read() -> tuple[np.ndarray, np.ndarray]:
            g = self._file["runs"][run]["series"][name]
            step, value = g["step"], g["value"]
            if self._file.swmr_mode:
                step.refresh()
                value.refresh()
            n = min(step.shape[0], value.shape[0])  # a live writer may be between the two
            return step[:n], value[:n]

        return self._guard(f"series {name!r} of run {run!r} cannot be read", read)

    def events(self, run: str) -> list[Event]:
        def read() -> list[Event]:
            ds = self._file["runs"][run]["events"]
            if self._file.swmr_mode:
                ds.refresh()
            return [
                Event(int(r["step"]), float(r["time"]), _text(r["kind"]), _text(r["detail"]))
                for r in ds[:]
            ]

        return self._guard(f"events of run {run!r} cannot be read", read)

    # -- checkpoints ----------------------------------------------------------------------

    def checkpoint_steps(self, run: str) -> list[int]:
        """Steps with a stored checkpoint, ascending (the last one is the run's final state)."""

        def read() -> list[int]:
            group = self._file["runs"][run]
            return sorted(int(s) for s in group["checkpoints"]) if "checkpoints" in group else []

        return self._guard(f"checkpoints of run {run!r} cannot be listed", read)

    def checkpoint(self, run: str, step: int) -> Checkpoint:
        """Parameters θ_step and the optimizer's state_dict (None when it was not storable)."""
        if step not in self.checkpoint_steps(run):
            steps = ", ".join(map(str, self.checkpoint_steps(run))) or "none"
            raise SessionError(
                f"{self.path}: run {run!r} has no checkpoint at step {step}; it has: {steps}"
            )

        def read() -> Checkpoint:
            point = self._file["runs"][run]["checkpoints"][str(step)]
            params = {name: np.asarray(ds[()]) for name, ds in point["params"].items()}
            state = decode(read_tree(point["optimizer"])) if "optimizer" in point else None
            return Checkpoint(step, params, state)

        return self._guard(f"checkpoint {step} of run {run!r} cannot be read", read)

    # -- claims ---------------------------------------------------------------------------

    def claims(self) -> list[ClaimRecord]:
        """The verdicts of the spec's claims (`/claims`), in order; empty when there are none."""

        def read() -> list[ClaimRecord]:
            if "claims" not in self._file:
                return []
            group = self._file["claims"]
            records = []
            for key in sorted(group, key=int):
                a = group[key].attrs
                records.append(
                    ClaimRecord(
                        _text(a["id"]),
                        bool(a["held"]),
                        _text(a["summary"]),
                        {k: float(v) for k, v in json.loads(_text(a["numbers"])).items()},
                        json.loads(_text(a["params"])),
                    )
                )
            return records

        return self._guard("the claims cannot be read", read)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SessionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
