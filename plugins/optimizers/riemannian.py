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
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from typing import Any

import geoopt
import torch
from torch import Tensor, nn

from descentlab.engine.live_hyper import SCHEMA_NAMES
from descentlab.engine.params import Param, defaults
from descentlab.engine.plugin import Needs, OptimizerPlugin, Role
from descentlab.plugins.optimizers import torch_optim

MANIFOLDS = ("stiefel", "sphere", "euclidean")
"""The choices of the `manifold` hyperparameter."""

EUCLIDEAN = geoopt.Euclidean()
STIEFEL = geoopt.Stiefel()  # geoopt's default: canonical metric, Cayley retraction
SPHERE = geoopt.Sphere()

REFERENCE = (
    "Bécigneul & Ganea, Riemannian Adaptive Optimization Methods, ICLR 2019; Kochurov, Karimov "
    "& Kozlukov, Geoopt: Riemannian Optimization in PyTorch, arXiv:2005.02819, 2020; Cayley "
    "retraction on the Stiefel manifold: Wen & Yin, A feasible method for optimization with "
    "orthogonality constraints, Math. Program. 142, 2013."
)


class Chart:
    """A parameter seen as a point of a geoopt manifold of matrices or vectors.

    The map x ↦ T(x)/r is a reshape (to the matrix (out, rest), or to one vector for the sphere),
    a transpose (wide matrices, so that geoopt's Stiefel, which wants orthonormal columns, gives
    orthonormal rows) and a scale 1/r (the sphere of radius r). Points and tangent vectors go
    through the same linear map; Riemannian gradients are projections, so they commute with it,
    and squared norms (Adam's second moment) scale back by r².
    """

    def __init__(
        self, manifold: geoopt.Manifold, shape: torch.Size, flat: bool, radius: float = 1.0
    ) -> None:
        self.manifold = manifold
        self.shape = shape
        rows = shape[0]
        cols = math.prod(shape[1:])
        self.inner_shape: tuple[int, ...] = (rows * cols,) if flat else (rows, cols)
        self.transpose = not flat and rows < cols
        self.radius = radius

    def to_manifold(self, t: Tensor) -> Tensor:
        t = t.reshape(self.inner_shape)
        return (t.mT if self.transpose else t) / self.radius

    def from_manifold(self, t: Tensor) -> Tensor:
        t = t.mT if self.transpose else t
        return (t * self.radius).reshape(self.shape)

    def egrad2rgrad(self, x: Tensor, u: Tensor) -> Tensor:
        chart = self.to_manifold
        return self.from_manifold(self.manifold.egrad2rgrad(chart(x), chart(u)))

    def proju(self, x: Tensor, u: Tensor) -> Tensor:
        return self.from_manifold(self.manifold.proju(self.to_manifold(x), self.to_manifold(u)))

    def projx(self, x: Tensor) -> Tensor:
        return self.from_manifold(self.manifold.projx(self.to_manifold(x)))

    def retr(self, x: Tensor, u: Tensor) -> Tensor:
        return self.from_manifold(self.manifold.retr(self.to_manifold(x), self.to_manifold(u)))

    def retr_transp(self, x: Tensor, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        chart = self.to_manifold
        new_x, new_v = self.manifold.retr_transp(chart(x), chart(u), chart(v))
        return self.from_manifold(new_x), self.from_manifold(new_v)

    def component_inner(self, x: Tensor, u: Tensor) -> Tensor:
        """⟨u, u⟩ at x for the whole matrix: Adam's second moment is one number per manifold."""
        return self.manifold.inner(self.to_manifold(x), self.to_manifold(u)) * self.radius**2

    def distance_to_manifold(self, x: Tensor) -> float:
        """How far x is from the manifold, in the max norm: ‖WᵀW − I‖ or |‖W‖ − r|/r."""
        y = self.to_manifold(x)
        if isinstance(self.manifold, geoopt.Sphere):
            return abs(float(y.norm()) - 1.0)
        eye = torch.eye(y.shape[-1], dtype=y.dtype, device=y.device)
        return float((y.mT @ y - eye).abs().max())

    @torch.no_grad()
    def keep_on(self, x: Tensor, momenta: list[Tensor]) -> None:
        """Put x back on the manifold, and its momenta on the tangent space, if x is off it by
        more than √ε of its dtype.

        Rounding alone stays far below that, so a point on the manifold is left bit-identical
        (a resumed run continues exactly). Only a point put off the manifold from outside moves:
        an initialisation, or a fork that loads another optimizer's weights.
        """
        if self.distance_to_manifold(x) > math.sqrt(torch.finfo(x.dtype).eps):
            x.copy_(self.projx(x))
            for momentum in momenta:
                momentum.copy_(self.proju(x, momentum))


def chart(manifold: str, param: Tensor, radius: float = 1.0) -> Chart | geoopt.Euclidean:
    """The chart of `param` on `manifold` ("euclidean": geoopt's Euclidean space)."""
    if manifold == "stiefel":
        return Chart(STIEFEL, param.shape, flat=False)
    if manifold == "sphere":
        return Chart(SPHERE, param.shape, flat=True, radius=radius)
    return EUCLIDEAN


MOMENTA = ("exp_avg", "momentum_buffer")
"""geoopt's state entries that are tangent vectors (Adam's first moment, SGD's velocity)."""


class _OnManifolds:
    """Mixin for a geoopt optimizer: each param group's manifold is read from the group.

    A constrained group holds one parameter, its `manifold` name and, on the sphere, its
    `radius`; the step runs geoopt's update group by group with that chart as
    `_default_manifold`, the manifold geoopt uses for a tensor that is not a ManifoldParameter.
    Before its update, a constrained parameter found off its manifold (`Chart.keep_on`) is
    projected back: the Cayley retraction keeps WᵀW as it is, so a matrix that arrives off the
    Stiefel manifold, say in a fork from another optimizer's checkpoint, would never reach it.
    """

    _geoopt_step: Any

    def _chart(self, group: dict[str, Any]) -> Chart | geoopt.Euclidean:
        return chart(group["manifold"], group["params"][0], group.get("radius", 1.0))

    def _momenta(self, p: Tensor) -> list[Tensor]:
        state = self.state[p]  # type: ignore[attr-defined]
        return [state[key] for key in MOMENTA if key in state]

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        groups = self.param_groups  # type: ignore[attr-defined]
        try:
            for group in groups:
                self.param_groups = [group]
                self._default_manifold = manifold = self._chart(group)
                if isinstance(manifold, Chart):
                    for p in group["params"]:
                        manifold.keep_on(p, self._momenta(p))
                # geoopt's step unwrapped: torch's step hooks belong to this step, not to it.
                self._geoopt_step(self)
        finally:
            self.param_groups = groups
        return loss

    @torch.no_grad()
    def stabilize_group(self, group: dict[str, Any]) -> None:
        """Project the group's parameters, and their momenta, back onto the manifold.

        geoopt's own version only acts on ManifoldParameters, which the lab does not use.
        """
        manifold = self._chart(group)
        if not isinstance(manifold, Chart):
            return
        for p in group["params"]:
            p.copy_(manifold.projx(p))
            for momentum in self._momenta(p):
                momentum.copy_(manifold.proju(p, momentum))


class RiemannianSGD(_OnManifolds, geoopt.optim.RiemannianSGD):
    """geoopt's RiemannianSGD with the manifold of each parameter group read from the group."""

    _geoopt_step = staticmethod(inspect.unwrap(geoopt.optim.RiemannianSGD.step))


class RiemannianAdam(_OnManifolds, geoopt.optim.RiemannianAdam):
    """geoopt's RiemannianAdam with the manifold of each parameter group read from the group."""

    _geoopt_step = staticmethod(inspect.unwrap(geoopt.optim.RiemannianAdam.step))

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Keep geoopt's step counts Python ints through `load_state_dict` and copies.

        torch.optim.Adam's `__setstate__` turns them into float32 tensors; geoopt would then
        compute β^t in float32, and a run resumed from a checkpoint would drift from the
        original.
        """
        super().__setstate__(state)
        for param_state in self.state.values():
            if isinstance(param_state.get("step"), Tensor):
                param_state["step"] = int(param_state["step"].item())


def _fixed() -> dict[str, Any]:
    """The group tag saying the schema's `manifold` is not live: parameters are put on their
    manifold when the optimizer is built, and the Euclidean group must stay Euclidean."""
    return {SCHEMA_NAMES: {"manifold": None}}


def param_groups(
    named_params: list[tuple[str, nn.Parameter]], roles: dict[str, Role], manifold: str
) -> list[dict[str, Any]]:
    """One group per constrained parameter (put on its manifold in place), one for the rest.

    A Stiefel matrix already on the manifold (a run resumed from a checkpoint) is left as it is,
    so that the resumed run continues bit-identically (`Chart.keep_on`).
    """
    groups: list[dict[str, Any]] = []
    rest: list[nn.Parameter] = []
    for name, param in named_params:
        if manifold == "euclidean" or roles.get(name, "other") != "hidden" or param.ndim < 2:
            rest.append(param)
            continue
        group: dict[str, Any] = {"params": [param], "manifold": manifold, **_fixed()}
        if manifold == "sphere":
            radius = float(param.detach().norm())
            if radius == 0.0:
                raise ValueError(
                    f"manifold 'sphere': parameter {name!r} is zero, so it has no sphere of its "
                    "initial norm to live on; use 'stiefel' or 'euclidean'."
                )
            group["radius"] = radius
        else:
            Chart(STIEFEL, param.shape, flat=False).keep_on(param, [])
        groups.append(group)
    if rest:
        groups.append({"params": rest, "manifold": "euclidean", **_fixed()})
    return groups


def _build(
    cls: type[torch.optim.Optimizer],
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
    return cls(param_groups(named_params, roles, manifold), **kwargs)


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
            derived = torch_optim._derive(arg)
            assert derived is not None, f"{cls.__name__}.{name} has no number or flag default"
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

SGD_PARAMS = _schema(
    geoopt.optim.RiemannianSGD,
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
    build=functools.partial(_build, RiemannianSGD, SGD_PARAMS),
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
    build=functools.partial(_build, RiemannianAdam, ADAM_PARAMS),
    needs=Needs(roles=True),
)

PLUGINS: list[OptimizerPlugin] = [SGD_PLUGIN, ADAM_PLUGIN]
"""geoopt's Riemannian SGD and Adam."""
