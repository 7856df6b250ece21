"""A byte-level GPT on any text file the user points at: the character transformer's model with
the 256 byte values as its vocabulary, so every file (any language, any encoding) tokenises the
same way and nothing is learned about the file before training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from descentlab.engine.params import Param
from descentlab.engine.plugin import Task, TaskPlugin
from descentlab.plugins.tasks.char_transformer import PLUGIN as CHAR_TRANSFORMER
from descentlab.plugins.tasks.char_transformer import TRAIN_FRACTION, text_task

BYTES = 256


def read_bytes(file: str, limit: int) -> np.ndarray:
    """The first `limit` bytes of `file` (all when `limit` is 0) as uint8.

    Raises:
        ValueError: no file given, or it cannot be read; the message names the field.
    """
    if not file:
        raise ValueError("file: give the path of a text file to train on")
    path = Path(file).expanduser()
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit if limit else -1)
    except OSError as exc:
        raise ValueError(f"file: cannot read {path}: {exc.strerror or exc}") from None
    return np.frombuffer(raw, dtype=np.uint8)


def build(params: dict[str, Any], seed: int, device: torch.device, dtype: torch.dtype) -> Task:
    """The file's bytes on `device` as uint8, split by position (first 90% for training)."""
    if params["width"] % params["heads"]:
        raise ValueError(
            f"width ({params['width']}) must be divisible by heads ({params['heads']})"
        )
    data = read_bytes(params["file"], params["max_bytes"])
    held_out = len(data) - int(TRAIN_FRACTION * len(data))
    if held_out <= params["context"]:
        raise ValueError(
            f"file: {len(data)} bytes leave {held_out} held-out bytes, fewer than context + 1 "
            f"({params['context'] + 1}); use a longer file or a shorter context"
        )
    tokens = torch.as_tensor(data.copy()).to(device)
    return text_task(tokens, BYTES, params, seed, device, dtype)


_SHARED = [p for p in CHAR_TRANSFORMER.params if p.name != "chars"]

PLUGIN = TaskPlugin(
    id="text-gpt",
    title="Byte-level GPT on a text file",
    summary=(
        "The character transformer's GPT-style decoder predicts the next byte of a text file "
        "you choose (a book, your own code, any language). The vocabulary is the 256 byte "
        "values, so no tokenizer is fitted; the file is split by position, 90% for training, "
        "lives on the device as bytes, and batches are random windows."
    ),
    params=(
        Param(
            "file",
            "str",
            "",
            "The text file to train on; a relative path starts at the working directory.",
        ),
        Param(
            "max_bytes",
            "int",
            0,
            "Read only the first N bytes of the file (0: all of it).",
            low=0,
        ),
        *_SHARED,
    ),
    build=build,
    reference=CHAR_TRANSFORMER.reference,
)
