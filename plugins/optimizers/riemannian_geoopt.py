"""geoopt's Riemannian SGD and Adam reading each group's manifold from the group.

The implementation behind `riemannian.py`'s descriptors, imported only when one of them is built
(geoopt pulls in SciPy's optimizers, a few seconds at start-up). `riemannian.py` says what the
optimizers do and why.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import geoopt
import torch
from torch import Tensor, nn

from descentlab.engine.live_hyper import SCHEMA_NAMES
from descentlab.engine.plugin import Role
from descentlab.plugins.optimizers.common import evaluate

EUCLIDEAN = geoopt.Euclidean()
STIEFEL = geoopt.Stiefel()  # geoopt's default: canonical metric, Cayley retraction
SPHERE = geoopt.Sphere()


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
    param_groups: list[dict[str, Any]]  # the optimizer's, which the mixin is combined with
    state: dict[Tensor, dict[str, Any]]

    def _chart(self, group: dict[str, Any]) -> Chart | geoopt.Euclidean:
        return chart(group["manifold"], group["params"][0], group.get("radius", 1.0))

    def _momenta(self, p: Tensor) -> list[Tensor]:
        state = self.state[p]
        return [state[key] for key in MOMENTA if key in state]

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = evaluate(closure)
        groups = self.param_groups
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
