"""Handwritten digits (scikit-learn's bundled 8×8 images) classified by an MLP or a small CNN.

A real dataset that ships with scikit-learn, so it needs no download and fits in memory on any
device: the whole dataset lives as tensors next to the model.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from descentlab.engine.params import Param
from descentlab.engine.plugin import Batch, Task, TaskPlugin
from descentlab.plugins.tasks.common import (
    ACTIVATIONS,
    batch_size_param,
    build_module,
    infer_roles,
    mlp,
    numpy_rng,
    probe_of,
    split_data,
)

HELD_OUT = 360
"""Examples held out of the 1797: the usual 80/20 split, 1437 for training."""
CLASSES = 10
REFERENCE = (
    "Alpaydin & Kaynak (1998), Optical Recognition of Handwritten Digits, UCI Machine Learning "
    "Repository; bundled as sklearn.datasets.load_digits."
)


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """Pixels scaled from 0…16 to [0, 1], as (n, 64) float64 rows, and the labels."""
    pixels, labels = load_digits(return_X_y=True)
    return pixels / 16.0, labels.astype(np.int64)


def _data(seed: int, device: torch.device, dtype: torch.dtype) -> tuple[Batch, Batch]:
    """The seeded split, drawn with numpy so that it never depends on torch's RNG."""
    images, labels = _digits()
    return split_data(images, labels, HELD_OUT, numpy_rng(seed, "split"), device, dtype)


def _task(model: nn.Module, train: Batch, held_out: Batch, batch_size: int) -> Task:
    return Task(
        model=model,
        criterion=F.cross_entropy,
        probe=probe_of(train),
        train=train,
        held_out=held_out,
        batch_size=batch_size,
        classification=True,
        roles=infer_roles(model),
    )


def build_mlp(params: dict[str, Any], seed: int, device: torch.device, dtype: torch.dtype) -> Task:
    """The 64 pixels of an image in, ten logits out."""
    train, held_out = _data(seed, device, dtype)
    sizes = [64, *params["hidden"], CLASSES]
    model = build_module(
        functools.partial(mlp, sizes, params["activation"]), seed, "init", device, dtype
    )
    return _task(model, train, held_out, params["batch_size"])


def _cnn(channels: list[int]) -> nn.Module:
    layers: list[nn.Module] = [nn.Unflatten(1, (1, 8, 8))]
    for c_in, c_out in itertools.pairwise([1, *channels]):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
    layers += [nn.Flatten(), nn.Linear(channels[-1] * 64, CLASSES)]
    return nn.Sequential(*layers)


def build_cnn(params: dict[str, Any], seed: int, device: torch.device, dtype: torch.dtype) -> Task:
    """Pixel rows back to 1×8×8 images; 'same'-padded 3×3 convolutions keep the 8×8 grid."""
    if not params["channels"]:
        raise ValueError("channels: give at least one convolution's width")
    train, held_out = _data(seed, device, dtype)
    model = build_module(functools.partial(_cnn, params["channels"]), seed, "init", device, dtype)
    return _task(model, train, held_out, params["batch_size"])


digits_mlp = TaskPlugin(
    id="digits-mlp",
    title="Digits, MLP",
    summary=(
        "scikit-learn's bundled handwritten digits (1797 grey 8×8 images, ten classes; 1437 for "
        "training, 360 held out) classified by a fully connected network with cross-entropy. "
        "Real data at a size where a step takes well under a millisecond, so optimizers can be "
        "raced and inspected on the CPU."
    ),
    params=(
        Param("hidden", "ints", [128, 128], "Widths of the MLP's hidden layers.", low=1, high=8192),
        Param(
            "activation",
            "choice",
            "relu",
            "Nonlinearity between the MLP's layers.",
            choices=tuple(ACTIVATIONS),
        ),
        batch_size_param(64),
    ),
    build=build_mlp,
    reference=REFERENCE,
)

digits_cnn = TaskPlugin(
    id="digits-cnn",
    title="Digits, small CNN",
    summary=(
        "The bundled 8×8 handwritten digits classified by a small convolutional network: 3×3 "
        "convolutions with ReLU that keep the 8×8 grid, then a linear head. Convolution kernels "
        "are 4-D weights, which matters to optimizers that treat matrices specially (Muon, "
        "Shampoo) and to per-layer spectra."
    ),
    params=(
        Param(
            "channels",
            "ints",
            [16, 32],
            "Output channels of each 3×3 convolution, in order.",
            low=1,
            high=1024,
        ),
        batch_size_param(64),
    ),
    build=build_cnn,
    reference=REFERENCE,
)

PLUGINS = [digits_mlp, digits_cnn]
