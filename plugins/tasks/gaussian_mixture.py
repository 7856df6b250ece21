"""Classification of points drawn from a mixture of Gaussians by a small MLP.

Small and fast enough for exact curvature on the CPU, with difficulty set by one knob: how far
apart the cluster means are compared to the clusters' unit spread.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

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


def build(params: dict[str, Any], seed: int, device: torch.device, dtype: torch.dtype) -> Task:
    """Balanced classes around seeded means, split 80/20 once; the MLP from its own stream."""
    dims, clusters, samples = params["dims"], params["clusters"], params["samples"]
    rng = numpy_rng(seed, "data")
    means = params["separation"] * rng.standard_normal((clusters, dims))
    labels = rng.permutation(samples) % clusters
    points = means[labels] + rng.standard_normal((samples, dims))
    train, held_out = split_data(
        points, labels, round(HELD_OUT_FRACTION * samples), numpy_rng(seed, "split"), device, dtype
    )
    sizes = [dims, *params["hidden"], clusters]
    model = build_module(partial(mlp, sizes, params["activation"]), seed, "init", device, dtype)
    return Task(
        model=model,
        criterion=F.cross_entropy,
        probe=probe_of(train),
        train=train,
        held_out=held_out,
        batch_size=params["batch_size"],
        classification=True,
        roles=infer_roles(model),
    )


PLUGIN = TaskPlugin(
    id="gaussian-mixture",
    title="Gaussian-mixture classification",
    summary=(
        "Points from k Gaussian clusters with unit spread and seeded means, labelled by their "
        "cluster, classified by a small MLP with cross-entropy. The separation of the means sets "
        "how much the classes overlap, from trivially separable to noisy. Small enough for exact "
        "Hessians, and in two dimensions the data can be plotted directly."
    ),
    params=(
        Param("dims", "int", 2, "Dimension of the input points.", low=1, high=1024),
        Param("clusters", "int", 4, "Number of clusters, one class each.", low=2, high=100),
        Param(
            "separation",
            "float",
            3.0,
            "Spread of the cluster means in units of the clusters' standard deviation.",
            low=0.01,
            high=100.0,
            log=True,
        ),
        Param(
            "samples", "int", 1024, "Points in all, 20% of them held out.", low=10, high=1_000_000
        ),
        Param("hidden", "ints", [32, 32], "Widths of the MLP's hidden layers.", low=1, high=8192),
        Param(
            "activation",
            "choice",
            "tanh",
            "Nonlinearity between the MLP's layers.",
            choices=tuple(ACTIVATIONS),
        ),
        batch_size_param(64),
    ),
    build=build,
)
