"""Reader of session files: finished, live (being written) or left behind by a killed worker.

Every failure a user can cause (a missing, foreign, truncated or corrupt file, a newer format)
becomes a `SessionError` with a one-line message; the CLI and the app show it as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from descentlab.engine.session.format import FORMAT, READABLE_VERSIONS


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
class SeriesInfo:
    name: str
    kind: str
    unit: str
    layer: str
    shape: tuple[int, ...]
    axes: dict[str, Any]


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise SessionError(f"{path}: no such file")
    if path.is_dir():
        raise SessionError(f"{path}: is a folder, not a session file")
    if not h5py.is_hdf5(path):
        raise SessionError(
            f"{path}: not an HDF5 file (a session is a .h5 file written by Descent Lab)"
        )
    try:
        # SWMR reading works both for a live file and for one whose writer was killed (whose
        # consistency flags still say "open for writing"); plain reading covers older files.
        return h5py.File(path, "r", swmr=True)
    except OSError:
        pass
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise SessionError(f"{path}: truncated or corrupt HDF5 file ({_first_line(exc)})") from None


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
        attrs = self._file.attrs
        if _text(attrs.get("format", "")) != FORMAT:
            raise SessionError(
                f"{self.path}: an HDF5 file, but not a Descent Lab session (no "
                f"format={FORMAT!r} attribute)"
            )
        ver = attrs.get("format_version")
        if ver is None or int(ver) not in READABLE_VERSIONS:
            raise SessionError(
                f"{self.path}: session format version {ver!r} is not one this Descent Lab "
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

            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Group) and "step" in obj and "value" in obj:
                    names.append(name)

            self._file["runs"][run]["series"].visititems(visit)
            return sorted(names)

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

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SessionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
