"""Test-wide settings: one torch thread (tiny models run faster, and results do not depend on the
machine's core count), and Qt offscreen so the window tests need no display."""

from __future__ import annotations

import os

import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
torch.set_num_threads(1)
