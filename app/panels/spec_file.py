"""Spec files for the experiment panel: the bundled default, reading TOML, writing a draft."""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from descentlab.engine.compat import tomllib
from descentlab.engine.spec import SpecError


def default_spec() -> dict[str, Any]:
    """The bundled default experiment, so the panel opens on something runnable (what
    `descentlab` with no arguments opens)."""
    preset = importlib.resources.files("descentlab.assets") / "presets" / "default.toml"
    return tomllib.loads(preset.read_text(encoding="utf-8"))


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """The TOML table in `path`, valid as a spec or not (the panel marks its problems).

    Raises:
        SpecError: the file cannot be read or is not TOML, naming the file and the reason.
    """
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problem = f"cannot read the file: {reason}"
    except tomllib.TOMLDecodeError as exc:
        problem = f"not valid TOML: {exc}"
    raise SpecError([problem], str(path))


def spec_toml(data: Mapping[str, Any]) -> str:
    """A spec dict as TOML text; unset values (None) are left out, as TOML has no null."""
    return tomli_w.dumps(_without_none(data))


def _without_none(value: Any) -> Any:
    """`value` with None dropped from every table and array, as TOML has no null."""
    if isinstance(value, Mapping):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value if v is not None]
    return value
