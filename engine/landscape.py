"""Loss landscapes: directions, slices along them, projected paths, interpolations, flatness.

The pictures of the loss-landscape papers are losses on an affine family of parameters,

    L(a, b) = L(c + a·d₁ + b·d₂)            (a plane; a line has one direction)

around a centre c (usually the current θ), evaluated on the task's fixed probe batch. What
changes between pictures is the choice of directions:

- filter-normalised Gaussian directions (Li et al. 2018): Gaussian entries, each filter (slice
  along the first axis of a weight) rescaled to the norm of the matching filter of θ, so that
  networks whose weights differ only by a per-filter scale get the same picture. Biases and
  normalisation parameters are optionally zeroed; a one-dimensional parameter kept in is one
  filter (unlike the reference code, which copies θ itself there and makes the two directions of
  a 2-D problem collinear);
- the top Hessian eigenvectors (unit vectors, from Lanczos on Hessian-vector products);
- the principal directions of the recent trajectory, PCA of wᵢ − c (uncentred: the variance is
  the second moment about the current point, the plane's centre), with the share of ‖W − c‖²_F
  that each explains;
- the direction θ − θ₀ from initialisation, completed to a plane by a random direction made
  orthogonal to it and as long.

A grid is evaluated by the fastest measured path (docs/benchmarks.md): on a GPU, batched with
`torch.func.functional_call` under `vmap` (chunked); on the CPU a plain loop over a working copy
of the model whose parameters are overwritten in place, and for a model that opens with an
`nn.Linear` the first layer's pre-activations, affine in (a, b), are computed once per grid:
z₁(a, b) = Z₀ + a·Z₁ + b·Z₂, which saves that layer's matrix product at every point.

Barrier height of a linear interpolation θ(t) = (1 − t)·θ_A + t·θ_B (Entezari et al. 2022):
B = max_t [L(θ(t)) − ((1 − t)·L(θ_A) + t·L(θ_B))], zero when the loss is convex along the path.

Roughness along random directions: for K filter-normalised directions, the 1-D slices Lⱼ(α) on
[−span, span], each fitted by a least-squares quadratic qⱼ; R = mean_j ‖Lⱼ − qⱼ‖ / ‖Lⱼ − mean Lⱼ‖,
zero on a quadratic landscape and near one where the slice is all wiggles.

Flatness (Zhang et al. 2023, GAM), both at the SAM point θ̂ = θ + ρ·g/‖g‖ of one ascent step:
zeroth-order R⁰ = L(θ̂) − L(θ) (SAM's sharpness), first-order R¹ = ρ·‖∇L(θ̂)‖; the mean value
theorem bounds the ρ-ball's R⁰ by its R¹.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from descentlab.engine.curvature.lanczos import lanczos
from descentlab.engine.curvature.operators import HessianOperator, flatten, unflatten
from descentlab.engine.plugin import Batch, Role, Task

Params = dict[str, Tensor]
"""Tensors keyed by parameter name: a point θ, or a direction in parameter space."""

Criterion = Callable[[Tensor, Tensor], Tensor]
Method = Literal["auto", "loop", "affine", "vmap"]
METHODS: tuple[str, ...] = ("auto", "loop", "affine", "vmap")

VMAP_BUDGET = 1 << 28
"""Bytes of activations one vmap chunk may hold (256 MiB); it sets the chunk size."""


class NotReady(ValueError):
    """Directions that are undefined for now: θ has not left θ₀, or the path is too short."""


# --------------------------------------------------------------------------------------------
# Directions
# --------------------------------------------------------------------------------------------


def ignored_names(params: Mapping[str, Tensor], roles: Mapping[str, Role]) -> set[str]:
    """Parameters a filter-normalised direction leaves out when asked: biases and norms.

    Roles decide (`bias`, `norm`); a parameter without a role is left out when it is a vector.
    """
    return {
        name
        for name, p in params.items()
        if roles.get(name) in ("bias", "norm") or (name not in roles and p.ndim <= 1)
    }


def filter_normalized(
    params: Mapping[str, Tensor], generator: torch.Generator, ignore: Iterable[str] = ()
) -> Params:
    """A Gaussian direction with each filter rescaled to the norm of θ's matching filter.

    A filter is a slice along the first axis (an output row of a linear layer, an output channel
    of a convolution); a vector parameter is one filter. Entries are drawn in float64 on the CPU,
    so a seed gives the same direction on every device.

    A filter of θ that is zero (a zero-initialised bias, a point at the origin) keeps its
    Gaussian entries, so that the direction does not vanish there.

    Args:
        params: the point θ whose filter norms the direction copies.
        generator: CPU generator of the Gaussian entries.
        ignore: names whose direction is zero (biases, normalisation parameters).
    """
    skip = set(ignore)
    direction: Params = {}
    for name, w in params.items():
        d = torch.randn(w.shape, generator=generator, dtype=torch.float64)
        d = d.to(device=w.device, dtype=w.dtype)
        if name in skip:
            direction[name] = torch.zeros_like(w)
            continue
        rows_w = w.detach().reshape(1 if w.ndim <= 1 else w.shape[0], -1)
        rows_d = d.reshape(rows_w.shape)
        norms_w = rows_w.norm(dim=1, keepdim=True)
        scale = norms_w / rows_d.norm(dim=1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
        scale = torch.where(norms_w > 0, scale, torch.ones_like(scale))
        direction[name] = (rows_d * scale).reshape(w.shape)
    return direction


def hessian_directions(
    model: nn.Module,
    criterion: Criterion,
    batch: Batch,
    params: Mapping[str, Tensor],
    k: int = 2,
    iterations: int = 30,
    generator: torch.Generator | None = None,
) -> tuple[list[Params], np.ndarray]:
    """The top-k Hessian eigenvectors at `params` (unit vectors) and their eigenvalues.

    The Hessian is that of the loss on `batch` over every parameter, from Lanczos on
    Hessian-vector products of a working copy of `model` (the model itself is not touched).
    """
    work = _working_copy(model)
    named = dict(work.named_parameters())
    _assign(named, params)
    for p in named.values():
        p.requires_grad_(True)
    with torch.enable_grad():
        inputs, targets = batch
        loss = criterion(work(inputs), targets)
        op = HessianOperator(loss, list(named.values()))
        result = lanczos(op, k, iterations=iterations, smallest=False, generator=generator)
    like = list(named.values())
    vectors = [
        dict(zip(named, unflatten(result.eigenvectors[:, j].detach(), like), strict=True))
        for j in range(k)
    ]
    return vectors, result.eigenvalues.numpy()


@dataclass(frozen=True)
class PCA:
    """Principal directions of a trajectory about a centre, and the share each explains."""

    directions: Tensor
    """(k, n) orthonormal rows."""
    explained: np.ndarray
    """(k,) σᵢ² / Σσ², the share of ‖W − c‖²_F along each direction."""
    all_explained: np.ndarray
    """The shares of every component (they sum to one)."""


def pca_directions(snapshots: Tensor, center: Tensor, k: int = 2) -> PCA:
    """PCA of the flat snapshots (m, n) about `center` (n,), uncentred, by a thin SVD.

    Each direction is oriented so that the oldest snapshot lies on its negative side, so that
    pictures recomputed a few steps apart keep the path coming from the same corner.
    """
    if snapshots.ndim != 2 or snapshots.shape[1] != center.shape[0]:
        raise ValueError(f"snapshots must be (m, {center.shape[0]}), got {tuple(snapshots.shape)}")
    deltas = (snapshots - center).double()
    _, singular, vh = torch.linalg.svd(deltas, full_matrices=False)
    if singular.numel() < k or float(singular[k - 1]) <= 1e-12 * float(singular[0]):
        raise NotReady(f"the trajectory spans fewer than {k} directions around the centre")
    energy = singular.square()
    shares = (energy / energy.sum()).numpy()
    directions = vh[:k]
    signs = torch.where(deltas[0] @ directions.T > 0, -1.0, 1.0).to(directions.dtype)
    directions = (directions * signs[:, None]).to(snapshots.dtype)
    return PCA(directions, shares[:k].copy(), shares)


def init_plane(
    params: Mapping[str, Tensor],
    init: Mapping[str, Tensor],
    generator: torch.Generator,
    ignore: Iterable[str] = (),
) -> list[Params]:
    """θ − θ₀, and a filter-normalised random direction made orthogonal to it and as long.

    At a = −1, b = 0 the plane passes through θ₀. Raises NotReady while θ = θ₀.
    """
    names = list(params)
    first = flatten([params[n].detach() - init[n] for n in names])
    length = first.norm()
    if float(length) == 0.0:
        raise NotReady("θ has not moved from θ₀ yet: the direction θ − θ₀ is zero")
    second = flatten(list(filter_normalized(params, generator, ignore).values()))
    second = second - (second @ first) / length.square() * first
    second = second * (length / second.norm())
    like = [params[n] for n in names]
    return [
        dict(zip(names, unflatten(first, like), strict=True)),
        dict(zip(names, unflatten(second, like), strict=True)),
    ]


# --------------------------------------------------------------------------------------------
# Evaluation of affine families c + Σ aⱼ dⱼ
# --------------------------------------------------------------------------------------------


def _working_copy(model: nn.Module) -> nn.Module:
    """A private copy whose parameters may be overwritten; gradients off, mode kept."""
    work = copy.deepcopy(model)
    for p in work.parameters():
        p.requires_grad_(False)
    return work


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    """A lasting pool of `workers` threads: starting threads for every row would cost more than
    the parallel evaluation gains on a small model."""
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="landscape")
    return _POOLS[workers]


def _set_point(
    named: Mapping[str, Tensor],
    names: Sequence[str],
    center: Mapping[str, Tensor],
    directions: Sequence[Mapping[str, Tensor]],
    coord: Sequence[float],
) -> None:
    """Overwrite the parameters `names` of a working copy with c + Σⱼ aⱼ·dⱼ."""
    params = [named[n] for n in names]
    torch._foreach_copy_(params, [center[n] for n in names])
    for a, d in zip(coord, directions, strict=True):
        if a != 0.0:
            torch._foreach_add_(params, [d[n] for n in names], alpha=a)


def _assign(named: Mapping[str, Tensor], values: Mapping[str, Tensor]) -> None:
    with torch.no_grad():
        for name, p in named.items():
            p.copy_(values[name])


def affine_applicable(model: nn.Module) -> bool:
    """Whether `model` is an `nn.Sequential` that opens with an `nn.Linear` (the MLP shortcut)."""
    return isinstance(model, nn.Sequential) and len(model) > 1 and isinstance(model[0], nn.Linear)


def resolve_method(method: Method, model: nn.Module, device: torch.device) -> str:
    """`auto` is the fastest path measured here (docs/benchmarks.md): on the CPU the affine
    first layer when it applies, else the loop (4× faster than vmap on the digits CNN); on a GPU
    vmap, which `AffineFamily` replaces by the loop for a model vmap cannot batch."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if method == "affine" and not affine_applicable(model):
        raise ValueError("method 'affine' needs an nn.Sequential whose first module is nn.Linear")
    if method != "auto":
        return method
    if device.type == "cpu":
        return "affine" if affine_applicable(model) else "loop"
    return "vmap"


class AffineFamily:
    """Losses on the points c + Σⱼ aⱼ·dⱼ of one affine family, for any coordinates (m, k).

    Keeps its own copies of the centre and directions and a working copy of the model, so the
    live model may go on training while a grid is evaluated in slices over several steps.
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: Criterion,
        batch: Batch,
        center: Mapping[str, Tensor],
        directions: Sequence[Mapping[str, Tensor]],
        method: Method = "auto",
    ) -> None:
        self.work = _working_copy(model)
        self.criterion = criterion
        self.inputs, self.targets = batch
        self.named: dict[str, Tensor] = dict(self.work.named_parameters())
        missing = set(self.named) - set(center)
        if missing:
            raise ValueError(f"the centre lacks parameters {', '.join(sorted(missing))}")
        self.center = {n: center[n].detach().clone() for n in self.named}
        self.directions = [{n: d[n].detach().clone() for n in self.named} for d in directions]
        device = next(iter(self.named.values())).device
        self.method = resolve_method(method, self.work, device)
        self._copies: list[tuple[nn.Module, dict[str, Tensor]]] = []
        """More working copies, one per extra core, for the loop on a CPU."""
        self._may_fall_back = method == "auto"
        if self.method == "affine":
            self._prepare_affine()
        self.evaluations = 0
        """Points evaluated so far, for cost accounting."""

    @property
    def k(self) -> int:
        return len(self.directions)

    def losses(self, coords: Tensor | np.ndarray) -> np.ndarray:
        """The losses (m,) at the coordinate rows `coords` (m, k), in float64."""
        coords = torch.as_tensor(np.asarray(coords, dtype=np.float64)).reshape(-1, self.k)
        self.evaluations += coords.shape[0]
        with torch.no_grad():
            if self.method == "vmap":
                try:
                    return self._vmap(coords)
                except RuntimeError:
                    if not self._may_fall_back:
                        raise
                    self.method = "loop"  # vmap cannot batch this model: loop from now on
            if self.method == "affine":
                return self._affine(coords)
            return self._loop(coords)

    # -- the three paths --------------------------------------------------------------------

    def _set(self, names: Sequence[str], coord: Sequence[float]) -> None:
        _set_point(self.named, names, self.center, self.directions, coord)

    def _loop(self, coords: Tensor) -> np.ndarray:
        """Point after point; on a multi-core CPU, one point per core at a time.

        A small model's forward pass does not keep several cores busy (an 8×8 convolution is
        split too finely), so evaluating `torch.get_num_threads()` points at once, each on its
        own copy of the model with one thread, is faster: 1.5× on digits-cnn with two cores
        (docs/benchmarks.md). torch releases the GIL inside its kernels.
        """
        workers = min(torch.get_num_threads(), coords.shape[0] // 4)
        if workers < 2 or self.center[next(iter(self.named))].device.type != "cpu":
            return self._loop_on(self.work, self.named, coords.tolist())
        while len(self._copies) < workers - 1:
            work = _working_copy(self.work)
            self._copies.append((work, dict(work.named_parameters())))
        lanes = [(self.work, self.named), *self._copies[: workers - 1]]
        chunks = np.array_split(np.arange(coords.shape[0]), workers)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            parts = _pool(workers).map(
                lambda lane, rows: self._loop_on(lane[0], lane[1], coords[rows].tolist()),
                lanes,
                chunks,
            )
            return np.concatenate(list(parts))
        finally:
            torch.set_num_threads(threads)

    def _loop_on(
        self, work: nn.Module, named: dict[str, Tensor], coords: list[list[float]]
    ) -> np.ndarray:
        names = list(named)
        out = np.empty(len(coords))
        with torch.no_grad():  # grad mode is per thread
            for i, coord in enumerate(coords):
                _set_point(named, names, self.center, self.directions, coord)
                out[i] = float(self.criterion(work(self.inputs), self.targets))
        return out

    def _prepare_affine(self) -> None:
        """Z₀ = X·W₀ᵀ + b₀ at the centre and Zⱼ = X·Uⱼᵀ + uⱼ along each direction, once."""
        work = self.work
        assert isinstance(work, nn.Sequential)  # resolve_method chose affine for this reason
        first = work[0]
        prefix = "0."
        w, b = prefix + "weight", prefix + "bias"

        def pre(point: Params) -> Tensor:
            bias = point[b] if first.bias is not None else None
            return torch.nn.functional.linear(self.inputs, point[w], bias)

        with torch.no_grad():
            self._z0 = pre(self.center)
            self._zd = [pre(d) for d in self.directions]
        self._rest = work[1:]
        self._rest_names = [n for n in self.named if not n.startswith(prefix)]

    def _affine(self, coords: Tensor) -> np.ndarray:
        out = np.empty(coords.shape[0])
        for i, coord in enumerate(coords.tolist()):
            self._set(self._rest_names, coord)
            z = self._z0
            for a, zd in zip(coord, self._zd, strict=True):
                if a != 0.0:
                    z = torch.add(z, zd, alpha=a)
            out[i] = float(self.criterion(self._rest(z), self.targets))
        return out

    def _vmap(self, coords: Tensor) -> np.ndarray:
        names = list(self.named)
        center = [self.center[n] for n in names]
        dirs = [[d[n] for n in names] for d in self.directions]
        dtype = center[0].dtype
        coords = coords.to(device=center[0].device, dtype=dtype)

        def loss(coord: Tensor) -> Tensor:
            point = {}
            for i, n in enumerate(names):
                value = center[i]
                for j, d in enumerate(dirs):
                    value = value + coord[j] * d[i]
                point[n] = value
            outputs = torch.func.functional_call(self.work, point, (self.inputs,))
            return self.criterion(outputs, self.targets)

        chunk = self._chunk()
        values = torch.func.vmap(loss, chunk_size=chunk)(coords)
        return values.double().cpu().numpy()

    def _chunk(self) -> int:
        """Points per vmap chunk: a memory budget over one point's parameters and outputs."""
        size = max(1, self.inputs.element_size())
        per_point = sum(p.numel() for p in self.named.values()) * size * 4
        with torch.no_grad():
            width = self.work(self.inputs).numel() * size * 8
        return max(1, VMAP_BUDGET // (per_point + width))


def axis(span: float, resolution: int) -> np.ndarray:
    """The coordinates linspace(−span, span, resolution) of a slice."""
    if resolution < 2:
        raise ValueError(f"resolution must be at least 2, got {resolution}")
    return np.linspace(-span, span, resolution)


def evaluate_plane(family: AffineFamily, alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """The grid (len(betas), len(alphas)): row i is b = betas[i], as on a 2-D task's surface."""
    return np.stack([plane_row(family, alphas, b) for b in betas])


def plane_row(family: AffineFamily, alphas: np.ndarray, beta: float) -> np.ndarray:
    """One row of a plane: the losses at (a, beta) for every a in `alphas`."""
    coords = np.stack([alphas, np.full_like(alphas, beta)], axis=1)
    return family.losses(coords)


# --------------------------------------------------------------------------------------------
# Trajectories, interpolation, roughness, flatness
# --------------------------------------------------------------------------------------------


def project(points: Tensor, center: Tensor, directions: Tensor) -> np.ndarray:
    """Least-squares coordinates (m, k) of flat points (m, n) in the basis `directions` (k, n).

    Solves the normal equations (D Dᵀ) x = D (w − c) for each point, by the pseudo-inverse: the
    closest point of the plane, exact for a point in it whether or not the directions are
    orthogonal (and the shortest such coordinates if they are dependent).
    """
    d = directions.double()
    gram = d @ d.T
    rhs = (points.double() - center.double()) @ d.T
    return (rhs @ torch.linalg.pinv(gram, hermitian=True)).cpu().numpy()


@dataclass(frozen=True)
class Interpolation:
    """Losses along θ(t) = (1 − t)·θ_A + t·θ_B and the barrier height (Entezari et al. 2022)."""

    ts: np.ndarray
    losses: np.ndarray
    barrier: float
    """max_t [L(θ(t)) − ((1 − t)·L(θ_A) + t·L(θ_B))] ≥ 0."""


def barrier_height(ts: np.ndarray, losses: np.ndarray) -> float:
    """The largest excess of the losses over the chord between their endpoints."""
    chord = (1 - ts) * losses[0] + ts * losses[-1]
    return float(np.max(losses - chord))


def interpolate(
    model: nn.Module,
    criterion: Criterion,
    batch: Batch,
    start: Mapping[str, Tensor],
    end: Mapping[str, Tensor],
    points: int = 21,
    method: Method = "auto",
) -> Interpolation:
    """Losses at `points` evenly spaced t ∈ [0, 1] from `start` to `end`, with the barrier."""
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points}")
    direction = {n: end[n].detach() - start[n].detach() for n in start}
    family = AffineFamily(model, criterion, batch, start, [direction], method)
    ts = np.linspace(0.0, 1.0, points)
    losses = family.losses(ts[:, None])
    return Interpolation(ts, losses, barrier_height(ts, losses))


def interpolate_runs(
    task: Task,
    params_a: Mapping[str, np.ndarray],
    params_b: Mapping[str, np.ndarray],
    points: int = 21,
    method: Method = "auto",
) -> Interpolation:
    """Linear interpolation from run A's parameters to run B's on the task's probe batch.

    The parameter dicts are what `SessionReader.checkpoint(run, step)` returns; both runs must
    be of this task (same names and shapes as `task.model`). Raises ValueError naming the first
    parameter that is missing, extra or of another shape.
    """
    named = dict(task.model.named_parameters())
    tensors = []
    for label, given in (("run A", params_a), ("run B", params_b)):
        extra, missing = set(given) - set(named), set(named) - set(given)
        if missing or extra:
            which = sorted(missing)[0] if missing else sorted(extra)[0]
            kind = "lacks" if missing else "has an unknown parameter"
            raise ValueError(f"{label} {kind} {which!r}: not a checkpoint of this task's model")
        point = {}
        for name, p in named.items():
            value = np.asarray(given[name])
            if value.shape != tuple(p.shape):
                raise ValueError(
                    f"{label}: parameter {name!r} has shape {value.shape}, the task's model "
                    f"{tuple(p.shape)}"
                )
            point[name] = torch.as_tensor(value).to(device=p.device, dtype=p.dtype)
        tensors.append(point)
    start, end = tensors
    return interpolate(task.model, task.criterion, task.probe, start, end, points, method)


def roughness(lines: np.ndarray, alphas: np.ndarray) -> float:
    """mean_j ‖Lⱼ − qⱼ‖ / ‖Lⱼ − mean Lⱼ‖ with qⱼ the least-squares quadratic fit of line j.

    `lines` is (K, len(alphas)); a flat line (no variation) counts as smooth (zero).
    """
    vander = np.stack([np.ones_like(alphas), alphas, alphas**2], axis=1)
    coef, *_ = np.linalg.lstsq(vander, lines.T, rcond=None)
    residual = np.linalg.norm(lines.T - vander @ coef, axis=0)
    spread = np.linalg.norm(lines - lines.mean(axis=1, keepdims=True), axis=1)
    ratios = np.where(spread > 0, residual / np.where(spread > 0, spread, 1.0), 0.0)
    return float(ratios.mean())


def _loss_and_grad(
    work: nn.Module, criterion: Criterion, batch: Batch, point: Mapping[str, Tensor]
) -> tuple[float, list[Tensor]]:
    named = dict(work.named_parameters())
    _assign(named, point)
    params = list(named.values())
    for p in params:
        p.requires_grad_(True)
    try:
        with torch.enable_grad():
            inputs, targets = batch
            loss = criterion(work(inputs), targets)
            grads = torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)
    finally:
        for p in params:
            p.requires_grad_(False)
    return float(loss.detach()), list(grads)


@dataclass(frozen=True)
class Flatness:
    """First- and zeroth-order flatness at θ within radius ρ, from one SAM ascent step."""

    first: float
    """ρ·‖∇L(θ̂)‖."""
    zeroth: float
    """L(θ̂) − L(θ)."""


def flatness(
    model: nn.Module,
    criterion: Criterion,
    batch: Batch,
    params: Mapping[str, Tensor],
    rho: float,
) -> Flatness:
    """R¹ and R⁰ at θ̂ = θ + ρ·g/‖g‖ (Zhang et al. 2023; Foret et al. 2021).

    At a critical point (g = 0) the ascent direction is undefined and both are zero.
    """
    if rho <= 0:
        raise ValueError(f"rho must be positive, got {rho}")
    work = _working_copy(model)
    names = [n for n, _ in work.named_parameters()]
    loss, grads = _loss_and_grad(work, criterion, batch, params)
    norm = float(torch.stack([g.double().norm() for g in grads]).norm())
    if norm == 0.0 or not math.isfinite(norm):
        return Flatness(0.0 if norm == 0.0 else math.nan, 0.0 if norm == 0.0 else math.nan)
    hat = {n: params[n].detach() + (rho / norm) * g for n, g in zip(names, grads, strict=True)}
    loss_hat, grads_hat = _loss_and_grad(work, criterion, batch, hat)
    grad_norm_hat = float(torch.stack([g.double().norm() for g in grads_hat]).norm())
    return Flatness(rho * grad_norm_hat, loss_hat - loss)
