"""Teacher–student regression: a student MLP learns the function of a fixed random teacher MLP.

The target function is known and realisable (when the student is at least as large), so the
lowest attainable loss is the label noise's variance, a clean baseline for optimizers.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from descentlab.engine.params import Param
from descentlab.engine.plugin import Task, TaskPlugin
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

HELD_OUT_FRACTION = 0.2


def _teacher_init(module: nn.Module, generator: torch.Generator) -> None:
    """Weights N(0, 1/fan_in) and no bias offset: every unit sees O(1) pre-activations."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=1 / math.sqrt(module.in_features), generator=generator)
        nn.init.zeros_(module.bias)


def build(params: dict[str, Any], seed: int, device: torch.device, dtype: torch.dtype) -> Task:
    """Gaussian inputs, teacher outputs scaled to unit variance, plus label noise; then a split."""
    dim, samples, activation = params["dim"], params["samples"], params["activation"]
    teacher = build_module(
        partial(mlp, [dim, *params["teacher_hidden"], 1], activation),
        seed,
        "teacher",
        torch.device("cpu"),
        torch.float64,
        init=_teacher_init,
    )
    rng = numpy_rng(seed, "data")
    inputs = rng.standard_normal((samples, dim))
    with torch.no_grad():
        clean = teacher(torch.as_tensor(inputs)).numpy()
    targets = clean / clean.std() + params["noise"] * rng.standard_normal(clean.shape)
    train, held_out = split_data(
        inputs, targets, round(HELD_OUT_FRACTION * samples), numpy_rng(seed, "split"), device, dtype
    )
    student = build_module(
        partial(mlp, [dim, *params["student_hidden"], 1], activation), seed, "init", device, dtype
    )
    return Task(
        model=student,
        criterion=F.mse_loss,
        probe=probe_of(train),
        train=train,
        held_out=held_out,
        batch_size=params["batch_size"],
        roles=infer_roles(student),
    )


PLUGIN = TaskPlugin(
    id="teacher-student",
    title="Teacher–student regression",
    summary=(
        "A fixed random teacher MLP labels Gaussian inputs (its outputs scaled to unit variance, "
        "plus optional label noise) and a student MLP of another width and depth learns them "
        "with mean squared error. The target is realisable, so the best loss is the noise "
        "variance, and over- or under-parameterising the student is one setting away."
    ),
    params=(
        Param("dim", "int", 16, "Input dimension.", low=1, high=4096),
        Param(
            "teacher_hidden",
            "ints",
            [32],
            "Widths of the teacher's hidden layers.",
            low=1,
            high=8192,
        ),
        Param(
            "student_hidden",
            "ints",
            [64],
            "Widths of the student's hidden layers.",
            low=1,
            high=8192,
        ),
        Param(
            "activation",
            "choice",
            "tanh",
            "Nonlinearity of teacher and student.",
            choices=tuple(ACTIVATIONS),
        ),
        Param(
            "samples", "int", 2048, "Examples in all, 20% of them held out.", low=10, high=1_000_000
        ),
        Param(
            "noise",
            "float",
            0.0,
            "Standard deviation of Gaussian label noise, relative to the teacher's output.",
            low=0.0,
        ),
        batch_size_param(64),
    ),
    build=build,
    reference=(
        "Gardner & Derrida (1989), Three unfinished works on the optimal storage capacity of "
        "networks, J. Phys. A 22; Saad & Solla (1995), On-line learning in soft committee machines."
    ),
)
