"""Riemannian SGD and Adam from geoopt, with the hidden matrices constrained to a manifold.

geoopt (Kochurov, Karimov & Kozlukov, 2020) implements the optimizers of Bécigneul & Ganea:
the Euclidean gradient g is turned into the Riemannian gradient (its projection on the tangent
space), the step leaves the manifold along a retraction R_W(−η·v), and momenta are carried to the
new point by vector transport. Which manifold a tensor lives on, geoopt reads from its class
(`ManifoldParameter`); the lab cannot swap the model's `nn.Parameter` objects (the Runner and the
diagnostics hold them), so the manifold is kept in the parameter group instead (`group["manifold"]`,
a string, so state dicts stay plain) and the step hands geoopt's own update each group in turn
with that group's manifold as geoopt's default one. The arithmetic is geoopt's, unchanged.

Which parameters are constrained: those whose role is "hidden" and that have at least two
dimensions, seen as matrices (out, in): a convolution kernel (out, in, kh, kw) is the matrix
(out, in·kh·kw) of its flattened filters. Everything else (biases, norms, embeddings, the head,
1-D parameters) stays Euclidean, where geoopt's updates are plain SGD and Adam.

- stiefel: orthonormal columns, WᵀW = I, or orthonormal rows, WWᵀ = I, when the matrix is wider
  than tall; geoopt's default Stiefel manifold (canonical metric, Cayley retraction). A run starts
  from the projection of the shared initialisation: the polar factor UVᵀ of W = UΣVᵀ, the
  orthonormal matrix nearest to W.
- sphere: the whole matrix on the sphere of its initial Frobenius norm, ‖W‖_F = ‖W₀‖_F, so the run
  starts from the shared initialisation itself and keeps its scale; only the direction is learned.
- euclidean: nothing is constrained (a baseline: geoopt's SGD and Adam on every parameter).

This module holds the descriptors and imports no geoopt; the optimizers themselves are in
`riemannian_geoopt.py`, imported when one is built.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any

import torch
from torch import nn

from descentlab.engine.params import Param, defaults
from descentlab.engine.plugin import Needs, OptimizerPlugin, Role
from descentlab.plugins.optimizers import torch_optim

MANIFOLDS = ("stiefel", "sphere", "euclidean")
"""The choices of the `manifold` hyperparameter."""

REFERENCE = (
    "Bécigneul & Ganea, Riemannian Adaptive Optimization Methods, ICLR 2019; Kochurov, Karimov "
    "& Kozlukov, Geoopt: Riemannian Optimization in PyTorch, arXiv:2005.02819, 2020; Cayley "
    "retraction on the Stiefel manifold: Wen & Yin, A feasible method for optimization with "
    "orthogonality constraints, Math. Program. 142, 2013."
)


def _build(
    algorithm: str,
    params: tuple[Param, ...],
    named_params: list[tuple[str, nn.Parameter]],
    roles: dict[str, Role],
    hyper: dict[str, Any],
) -> torch.optim.Optimizer:
    kwargs = {**defaults(params), **hyper}
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    manifold = kwargs.pop("manifold")
    if manifold not in MANIFOLDS:
        raise ValueError(f"manifold {manifold!r} is not one of {', '.join(MANIFOLDS)}")
    # geoopt (and SciPy's optimizers under it) loads here, not when the catalogue is listed.
    from descentlab.plugins.optimizers import riemannian_geoopt

    cls: dict[str, type[torch.optim.Optimizer]]
    cls = {"sgd": riemannian_geoopt.RiemannianSGD, "adam": riemannian_geoopt.RiemannianAdam}
    return cls[algorithm](riemannian_geoopt.param_groups(named_params, roles, manifold), **kwargs)


_HELP = {
    **torch_optim._HELP,
    "weight_decay": "λ of the L2 penalty: λθ is added to the Euclidean gradient, before the "
    "projection on the tangent space.",
    "momentum": "Momentum μ; the velocity is carried to each new point by vector transport.",
    "dampening": "Fraction of the gradient left out of the velocity: v ← μv + (1 − dampening)·g.",
    "nesterov": "Nesterov momentum: step along g + μv (needs μ > 0 and no dampening).",
    "amsgrad": "Divide by the running maximum of the second moment (AMSGrad).",
}

MANIFOLD = Param(
    "manifold",
    "choice",
    "stiefel",
    "Manifold of the hidden matrices: stiefel (orthonormal columns, or rows when wider than "
    "tall; the run starts from the polar factor of the initialisation), sphere (the whole "
    "matrix at its initial Frobenius norm) or euclidean (nothing constrained).",
    choices=MANIFOLDS,
)

STABILIZE = Param(
    "stabilize",
    "int",
    None,
    "Every this many steps, project the constrained matrices (and their momenta) back onto "
    "the manifold, against the drift of rounding errors; unset: never.",
    low=1,
    high=10**9,
    log=True,
    nullable=True,
)


def _schema(
    cls: type, names: tuple[str, ...], overrides: dict[str, dict[str, Any]]
) -> tuple[Param, ...]:
    """`names` derived from `cls`'s signature with torch_optim's rules and ranges, then
    `overrides`, then the manifold and stabilisation; arguments without a default (SGD's lr)
    come from `overrides` alone."""
    signature = inspect.signature(cls).parameters
    params = [MANIFOLD]
    for name in names:
        arg = signature[name]
        if arg.default is arg.empty:  # a required number: `overrides` gives its default
            derived = Param(name, "float", None, "")
        else:
            found = torch_optim._derive(arg)
            assert found is not None, f"{cls.__name__}.{name} has no number or flag default"
            derived = found
        changes = {
            "help": _HELP.get(name, derived.help),
            **torch_optim._RANGES.get(name, {}),
            **overrides.get(name, {}),
        }
        params.append(dataclasses.replace(derived, **changes))
    return (*params, STABILIZE)


_WHICH = (
    "Hidden matrices (role hidden, convolution kernels as (out, in·kh·kw)) live on the chosen "
    "manifold, every other parameter in Euclidean space."
)

_STIEFEL = (
    "On stiefel the Riemannian gradient is G − WGᵀW (canonical metric) and the retraction the "
    "Cayley transform, so WᵀW = I (WWᵀ = I for wide matrices) holds at every step; the run "
    "starts from the polar factor of the shared initialisation. On sphere the gradient loses its "
    "radial part and W is rescaled to its initial norm after the step."
)

# geoopt.optim.RiemannianSGD takes torch.optim.SGD's arguments with the same defaults but lr
# (a test checks that they agree); reading torch's signature keeps geoopt out of the listing.
SGD_PARAMS = _schema(
    torch.optim.SGD,
    ("lr", "momentum", "dampening", "weight_decay", "nesterov"),
    {
        "lr": {"default": 0.1, "help": "Learning rate η (geoopt has no default; 0.1 as for sgd)."},
        "dampening": {"low": 0.0, "high": 1.0},
    },
)

# geoopt's RiemannianAdam takes torch.optim.Adam's arguments (through **kwargs) but reads only
# these; foreach, fused, decoupled_weight_decay and the like would be ignored.
ADAM_PARAMS = _schema(torch.optim.Adam, ("lr", "betas", "eps", "weight_decay", "amsgrad"), {})

SGD_PLUGIN = OptimizerPlugin(
    id="riemannian-sgd",
    title="Riemannian SGD (geoopt)",
    family="riemannian",
    summary="SGD on a manifold: W ← R_W(−η·v) with v the Riemannian gradient (or its momentum, "
    f"carried along by vector transport) and R a retraction back onto the manifold. {_WHICH} "
    f"{_STIEFEL} Unlike torch's SGD, geoopt starts the momentum buffer at g and adds g to it "
    "in the same step, so the first step is (1 + μ − dampening)·ηg.",
    reference="Bonnabel, Stochastic gradient descent on Riemannian manifolds, IEEE TAC 58(9), "
    f"2013; {REFERENCE}",
    params=SGD_PARAMS,
    build=functools.partial(_build, "sgd", SGD_PARAMS),
    needs=Needs(roles=True),
)

ADAM_PLUGIN = OptimizerPlugin(
    id="riemannian-adam",
    title="Riemannian Adam (geoopt)",
    family="riemannian",
    summary="Adam on a manifold (Bécigneul & Ganea): m ← β₁m + (1 − β₁)g and v ← β₂v + "
    "(1 − β₂)‖g‖²_W with g the Riemannian gradient, W ← R_W(−η·m̂/(√v̂ + ε)), and m carried to "
    "the new point by vector transport. The second moment is one number per manifold (the whole "
    "matrix), not per coordinate; Euclidean parameters take per-coordinate Adam steps. "
    f"{_WHICH} {_STIEFEL}",
    reference=REFERENCE,
    params=ADAM_PARAMS,
    build=functools.partial(_build, "adam", ADAM_PARAMS),
    needs=Needs(roles=True),
)

PLUGINS: list[OptimizerPlugin] = [SGD_PLUGIN, ADAM_PLUGIN]
"""geoopt's Riemannian SGD and Adam."""
