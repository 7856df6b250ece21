"""Constants of the HDF5 session format (docs/session-format.md), shared by writer and reader."""

from __future__ import annotations

import numpy as np

FORMAT = "descentlab-session"
FORMAT_VERSION = 1
READABLE_VERSIONS = (1,)

STATUSES = ("running", "finished", "stopped", "diverged", "failed")
"""Run statuses; every status but `running` is final and is also logged as an `end` event."""

EVENT_DTYPE = np.dtype([("step", "<i8"), ("time", "<f8"), ("kind", "S32"), ("detail", "S512")])
"""Fixed-size fields: HDF5's single-writer/multiple-reader mode cannot append variable-length
strings, and a fixed size keeps every event readable with plain numpy."""

CHUNK_ROWS = 256
"""Rows per chunk of a series: small enough that a flush writes little, large enough that a
100 000-step scalar series is a few hundred chunks."""
