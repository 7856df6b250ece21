"""Imports that depend on the Python version, in one place.

The project supports Python 3.10 (`requires-python >= 3.10`), where `tomllib` is not in the
standard library yet; `tomli` (a dependency for < 3.11) is the same parser under another name.
Import `tomllib` from here rather than from the standard library, so that 3.10 keeps working.
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["tomllib"]
