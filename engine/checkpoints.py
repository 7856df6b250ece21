"""Checkpoints: a run's parameters and optimizer state as plain arrays and JSON values.

A session must never hold pickles (opening one executes nothing), so an optimizer's `state_dict`
is turned into a tree that HDF5 stores natively: dicts and lists become groups, tensors become
arrays (bfloat16, which numpy lacks, is widened to float32 and narrowed back), and numbers,
booleans, strings and None are kept as JSON. `decode` rebuilds a `state_dict` that
`load_state_dict` accepts, so a fork from a checkpoint continues exactly where the run was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

Tree = dict[str, Any]
"""An encoded value: {"type": ..., ...}; see `encode`."""


class CheckpointError(ValueError):
    """An optimizer state holding something a session cannot store without pickling."""


@dataclass(frozen=True)
class Checkpoint:
    """Parameters θ_step by name, and the optimizer's `state_dict` (None when not stored)."""

    step: int
    params: dict[str, np.ndarray]
    optimizer_state: dict[str, Any] | None


def encode(value: Any, where: str = "state") -> Tree:
    """An optimizer state (or part of it) as a tree of arrays and JSON values.

    Nodes are {"type": "tensor", "array", "torch_dtype"}, {"type": "json", "value"},
    {"type": "dict", "items", "int_keys"} and {"type": "list" | "tuple", "items"}.
    """
    if isinstance(value, Tensor):
        tensor = value.detach().cpu()
        dtype = str(tensor.dtype).removeprefix("torch.")
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return {"type": "tensor", "array": tensor.numpy(), "torch_dtype": dtype}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"type": "json", "value": value}
    if isinstance(value, dict):
        int_keys = bool(value) and all(isinstance(k, int) for k in value)
        if not int_keys and not all(isinstance(k, str) for k in value):
            raise CheckpointError(f"{where} has keys that are neither all ints nor all strings")
        items = {str(k): encode(v, f"{where}[{k!r}]") for k, v in value.items()}
        return {"type": "dict", "items": items, "int_keys": int_keys}
    if isinstance(value, (list, tuple)):
        items = {str(i): encode(v, f"{where}[{i}]") for i, v in enumerate(value)}
        return {"type": type(value).__name__, "items": items}
    raise CheckpointError(f"{where} holds a {type(value).__name__}, which a session cannot store")


def decode(tree: Tree) -> Any:
    """The inverse of `encode`: tensors come back on the CPU with their original dtype."""
    kind = tree["type"]
    if kind == "tensor":
        tensor = torch.from_numpy(np.array(tree["array"]))
        return tensor.to(getattr(torch, tree["torch_dtype"]))
    if kind == "json":
        return tree["value"]
    items = tree["items"]
    if kind == "dict":
        return {(int(k) if tree["int_keys"] else k): decode(v) for k, v in items.items()}
    values = [decode(items[str(i)]) for i in range(len(items))]
    return tuple(values) if kind == "tuple" else values


def parameters(named: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
    """Parameter arrays on the CPU, bfloat16 widened to float32."""
    out = {}
    for name, p in named.items():
        tensor = p.detach().cpu()
        out[name] = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy().copy()
    return out
