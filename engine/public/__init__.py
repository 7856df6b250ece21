"""`descentlab` itself: the names a user's own script imports, `from descentlab import Recorder`.

pyproject.toml maps the package `descentlab` to this folder (the repository's top-level folders
are app/, engine/, plugins/ and assets/, and a package of its own would be one more);
`descentlab.app`, `descentlab.engine` and `descentlab.plugins` keep their own folders. Names
load on first use (PEP 562), so importing `descentlab.app` or `descentlab.engine` does not
import the recorder, torch or h5py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from descentlab.engine.recorder import Recorder

__all__ = ["Recorder"]


def __getattr__(name: str) -> Any:
    if name == "Recorder":
        from descentlab.engine.recorder import Recorder

        return Recorder
    raise AttributeError(f"module 'descentlab' has no attribute {name!r}")
