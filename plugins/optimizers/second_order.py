"""Second-order optimizers: M-FAC, exact Gauss–Newton, Newton, lazy Newton, FOSI, natural gradient.

Each one preconditions the gradient with a curvature matrix that first-order methods never form:
a sliding-window empirical Fisher (M-FAC), the Gauss–Newton matrix JᵀQJ of the batch (EGN), the
exact Hessian (Newton), its extreme eigenpairs (FOSI) or the empirical Fisher of per-example
gradients (natural gradient). All curvature is global, over the concatenation of every parameter
(flattened in the order `build` receives them), which is why each optimizer has one parameter
group and keeps its global state under the first parameter's entry of `self.state`.

Optimizers that need more than the gradient (Needs(batch=True)) get the model, the mean-loss
criterion and the batch from `set_batch` before every step and evaluate Jacobians, Hessians and
per-example gradients with `torch.func` on the current parameters; the curvature algebra reuses
`descentlab.engine.curvature` (Hessian operator, Lanczos, per-example gradients, empirical Fisher).
These are methods for small models: the costs in each summary are per step, n the number of
parameters, B the batch size and M the number of model outputs in a batch.

Longer than most modules (about 890 lines) because its six optimizers share the flattening,
the size guard and the `set_batch` contract; each class reads top to bottom on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from descentlab.engine import registry
from descentlab.engine.curvature.lanczos import lanczos
from descentlab.engine.curvature.operators import (
    EmpiricalFisherOperator,
    HessianOperator,
    flatten,
    per_example_gradients,
    unflatten,
)
from descentlab.engine.params import Param, defaults
from descentlab.engine.plugin import Batch, Needs, OptimizerPlugin, Role
from descentlab.plugins.optimizers.common import (
    builder,
    evaluate,
    lr_param,
    momentum_param,
    seed_param,
)

Criterion = Callable[[Tensor, Tensor], Tensor]

HESSIAN_CHUNK = 64
"""Hessian rows computed per vectorised backward pass: bounds the memory of `torch.func`'s vmap
at 64 copies of the graph while keeping most of the speed of a single batched pass."""


# --------------------------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------------------------


class _GlobalOptimizer(torch.optim.Optimizer):
    """One parameter group over every parameter, for methods whose curvature couples them all.

    The parameters' names are kept for `torch.func.functional_call`, and `set_batch` stores what
    the training loop hands over before each step (Needs(batch=True)); the batch is transient,
    not state, since the loop sets it again before every step.
    """

    def __init__(self, named_params: list[tuple[str, nn.Parameter]], hyper: dict[str, Any]):
        if not named_params:
            raise ValueError(f"{type(self).__name__} needs at least one parameter")
        self.names = [name for name, _ in named_params]
        super().__init__([{"params": [p for _, p in named_params]}], hyper)
        self._batch: tuple[nn.Module, Criterion, Batch] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The base class pickles only defaults, state and groups; the names and settings must
        # travel too. The batch does not: it holds the model and is set again before each step.
        return {**self.__dict__, "_batch": None}

    def set_batch(self, model: nn.Module, criterion: Criterion, batch: Batch) -> None:
        """Remember the model, the mean-loss criterion and the batch of the coming step."""
        self._batch = (model, criterion, batch)

    @property
    def params(self) -> list[Tensor]:
        return self.param_groups[0]["params"]

    @property
    def global_state(self) -> dict[str, Any]:
        """State that belongs to all parameters together, kept under the first one."""
        return self.state[self.params[0]]

    def _batch_or_raise(self) -> tuple[nn.Module, Criterion, Batch]:
        if self._batch is None:
            raise RuntimeError(
                f"{type(self).__name__} needs the batch: call set_batch(model, criterion, batch) "
                "before step() (the Runner does so for optimizers with Needs(batch=True))"
            )
        return self._batch

    def _gradient(self) -> Tensor:
        """The flat gradient in `.grad` (zeros for parameters without one)."""
        return flatten([p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params])

    def _move(self, direction: Tensor, alpha: float) -> None:
        """θ ← θ + α·direction for a flat direction."""
        for p, piece in zip(self.params, unflatten(direction, self.params), strict=True):
            p.add_(piece, alpha=alpha)


def _flat_parameters(params: Sequence[Tensor]) -> Tensor:
    return flatten([p.detach() for p in params])


def exact_hessian(
    model: nn.Module,
    criterion: Criterion,
    batch: Batch,
    names: Sequence[str],
    params: Sequence[Tensor],
) -> Tensor:
    """The dense n×n Hessian of the batch loss over `params`, symmetrised.

    Reverse-over-reverse `torch.func.jacrev(grad(L))` on a flat parameter vector, its rows
    computed `HESSIAN_CHUNK` at a time: about n/64 vectorised double-backward passes.
    """
    inputs, targets = batch
    like = [p.detach() for p in params]

    def loss(flat: Tensor) -> Tensor:
        values = dict(zip(names, unflatten(flat, like), strict=True))
        return criterion(torch.func.functional_call(model, values, (inputs,)), targets)

    with torch.enable_grad():
        hessian = torch.func.jacrev(torch.func.grad(loss), chunk_size=HESSIAN_CHUNK)(
            _flat_parameters(params)
        )
    return 0.5 * (hessian + hessian.T)


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iterations: int, tolerance: float
) -> tuple[Tensor, int]:
    """Solve A x = b for symmetric positive definite A by conjugate gradients from x = 0.

    Hestenes & Stiefel (1952). Stops after `iterations` products or once ‖b − Ax‖ ≤
    tolerance·‖b‖. Returns x and the number of products spent.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = r @ r
    stop = (tolerance * b.norm()) ** 2
    for i in range(iterations):
        if rr <= stop:
            return x, i
        ap = matvec(p)
        step = rr / (p @ ap)
        x = x + step * p
        r = r - step * ap
        rr_next = r @ r
        p = r + (rr_next / rr) * p
        rr = rr_next
    return x, iterations


def _lr_param(default: float, what: str = "") -> Param:
    return lr_param(default, f"Learning rate η{what}.")


def _damping_param(default: float, what: str, low: float = 1e-10) -> Param:
    return Param("damping", "float", default, what, low=low, high=1e6, log=True)


def _count_param(name: str, default: int, help_text: str, high: int) -> Param:
    """A positive count or size (iterations, a period, a limit), on a log scale."""
    return Param(name, "int", default, help_text, low=1, high=high, log=True)


def _tolerance_param(default: float, help_text: str) -> Param:
    return Param("tolerance", "float", default, help_text, low=1e-14, high=1.0, log=True)


# --------------------------------------------------------------------------------------------
# M-FAC
# --------------------------------------------------------------------------------------------


class MFAC(_GlobalOptimizer):
    """M-FAC with a sliding window of the last m gradients: θ ← θ − η F⁻¹g.

    F = λI + (1/m) GᵀG, G the m×n window (rows not yet filled are zero). By Woodbury,
    F⁻¹g = (1/λ)[g − Gᵀ(mλI + GGᵀ)⁻¹Gg]. The current gradient enters the window first, so
    Gg is the new row of the Gram matrix GGᵀ, which is kept in the state and updated one row
    and column per step: O(mn + m³) per step instead of O(m²n).

    State: each parameter's slice of the window, "window" (m, numel); under the first
    parameter also "gram" (m, m) and "count", the number of gradients seen.
    """

    def __init__(
        self, named_params: list[tuple[str, nn.Parameter]], lr: float, damping: float, window: int
    ) -> None:
        super().__init__(named_params, {"lr": lr, "damping": damping, "window": window})

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = evaluate(closure)
        group = self.param_groups[0]
        lr, damping = group["lr"], group["damping"]
        params = self.params
        first = self.global_state
        if "gram" not in first:
            m = group["window"]
            first["count"] = 0
            first["gram"] = torch.zeros(m, m, dtype=params[0].dtype, device=params[0].device)
        m = first["gram"].shape[0]  # the window's size is fixed by the buffers once they exist
        grads = [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params
        ]
        slot = first["count"] % m
        row = torch.zeros(m, dtype=params[0].dtype, device=params[0].device)
        for p, g in zip(params, grads, strict=True):
            state = self.state[p]
            if "window" not in state:
                state["window"] = torch.zeros(m, p.numel(), dtype=p.dtype, device=p.device)
            state["window"][slot] = g
            row += state["window"] @ g
        gram = first["gram"]
        gram[slot, :] = row
        gram[:, slot] = row
        first["count"] += 1
        eye = torch.eye(m, dtype=gram.dtype, device=gram.device)
        coefficients = torch.linalg.solve(m * damping * eye + gram, row)
        for p, g in zip(params, grads, strict=True):
            direction = (g - self.state[p]["window"].T @ coefficients) / damping
            p.add_(direction.view_as(p), alpha=-lr)
        return loss


MFAC_PARAMS = (
    _lr_param(1e-2),
    _damping_param(
        1e-2,
        "λ of F = λI + (1/m)Σgᵢgᵢᵀ: directions the window has not seen are scaled by 1/λ, so "
        "η/λ is the step of plain gradient descent there.",
    ),
    Param(
        "window",
        "int",
        16,
        "Number m of past gradients in the Fisher estimate; costs O(mn) memory and O(m³) per "
        "step. Fixed once training starts.",
        low=1,
        high=4096,
    ),
)


# --------------------------------------------------------------------------------------------
# Exact Gauss–Newton
# --------------------------------------------------------------------------------------------


def gauss_newton_factors(
    model: nn.Module,
    criterion: Criterion,
    batch: Batch,
    names: Sequence[str],
    params: Sequence[Tensor],
) -> tuple[Tensor, Tensor]:
    """J (M, n), the Jacobian of the batch's M model outputs, and Q (M, M), the Hessian of the
    criterion with respect to those outputs, at the current parameters.

    Q is the criterion's own Hessian, taken by `torch.func.hessian` on the outputs, so the
    mean-loss scaling is in it (softmax cross-entropy: (diag(p) − ppᵀ)/B per example; mean
    squared error over N entries: 2I/N) and any twice-differentiable criterion works.
    """
    inputs, targets = batch
    like = [p.detach() for p in params]

    def outputs_of(flat: Tensor) -> Tensor:
        values = dict(zip(names, unflatten(flat, like), strict=True))
        return torch.func.functional_call(model, values, (inputs,))

    with torch.enable_grad():
        flat = _flat_parameters(params)
        outputs = outputs_of(flat).detach()
        jacobian = torch.func.jacrev(outputs_of)(flat).reshape(outputs.numel(), flat.numel())
        q = torch.func.hessian(lambda f: criterion(f, targets))(outputs)
    return jacobian, q.reshape(outputs.numel(), outputs.numel())


def gauss_newton_direction(jacobian: Tensor, q: Tensor, gradient: Tensor, damping: float) -> Tensor:
    """d = −(JᵀQJ + λI)⁻¹g through the M×M system (Duncan–Guttman / Woodbury):

    d = −(1/λ)[g − JᵀQ^½(λI + Q^½JJᵀQ^½)⁻¹Q^½Jg].

    Q^½ is the symmetric square root of Q by eigendecomposition; negative eigenvalues of Q (a
    criterion not convex in the outputs) are set to zero, which keeps the Gauss–Newton matrix
    positive semi-definite. Costs O(M²n + M³).
    """
    eigenvalues, vectors = torch.linalg.eigh(0.5 * (q + q.T))
    root = (vectors * eigenvalues.clamp_min(0).sqrt()) @ vectors.T
    a = root @ jacobian
    system = a @ a.T
    system.diagonal().add_(damping)
    inner = torch.linalg.solve(system, a @ gradient)
    return -(gradient - a.T @ inner) / damping


class ExactGaussNewton(_GlobalOptimizer):
    """EGN: θ ← θ + η v with v ← μv + d, d = −(JᵀQJ + λI)⁻¹g solved in the batch-sized space.

    State under the first parameter: "momentum" (n,) when μ > 0.
    """

    def __init__(
        self,
        named_params: list[tuple[str, nn.Parameter]],
        lr: float,
        damping: float,
        momentum: float,
        max_outputs: int,
    ) -> None:
        super().__init__(named_params, {"lr": lr, "damping": damping, "momentum": momentum})
        self.max_outputs = max_outputs

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = evaluate(closure)
        model, criterion, batch = self._batch_or_raise()
        group = self.param_groups[0]
        with torch.no_grad():
            outputs = model(batch[0])
        if outputs.numel() > self.max_outputs:
            raise ValueError(
                f"egn: the batch has {outputs.numel():,} model outputs, more than "
                f"max_outputs={self.max_outputs:,}; the Gauss–Newton system is M×M with M the "
                "number of outputs, so use a smaller batch or raise max_outputs"
            )
        jacobian, q = gauss_newton_factors(model, criterion, batch, self.names, self.params)
        direction = gauss_newton_direction(jacobian, q, self._gradient(), group["damping"])
        if group["momentum"] > 0:
            state = self.global_state
            if "momentum" not in state:
                state["momentum"] = torch.zeros_like(direction)
            direction = state["momentum"].mul_(group["momentum"]).add_(direction)
        self._move(direction, group["lr"])
        return loss


EGN_PARAMS = (
    _lr_param(1.0),
    _damping_param(
        1.0,
        "λ of (JᵀQJ + λI): large λ turns the step into gradient descent with rate η/λ, small λ "
        "into a full Gauss–Newton step.",
    ),
    momentum_param(0.0, "Momentum μ: v ← μv + d."),
    _count_param(
        "max_outputs",
        4096,
        "Refuse batches with more model outputs M (batch × classes) than this: each step builds "
        "the M×n Jacobian and solves an M×M system.",
        high=10**6,
    ),
)


# --------------------------------------------------------------------------------------------
# Newton, damped and lazy
# --------------------------------------------------------------------------------------------


def newton_factor(hessian: Tensor, damping: float) -> dict[str, Any]:
    """Factorise H + λI for solves, as a state entry.

    If H + λI is positive definite, its Cholesky factor ("saddle_free": False). Otherwise the
    saddle-free form (Dauphin et al., 2014): |H| + λI with |H| = V|Λ|Vᵀ, which keeps Newton's
    scaling but moves away from saddle points and maxima instead of towards them ("factor" V,
    "inverse_eigenvalues" 1/(|λᵢ| + λ)). Directions where |λᵢ| + λ vanishes (a singular H
    with λ = 0) are left out. (The solver is a flag, not a name: `load_state_dict` mangles
    strings in the state.)
    """
    if not torch.isfinite(hessian).all():
        raise FloatingPointError(
            "the Hessian holds NaN or inf: the run has diverged (raise damping to take shorter "
            "steps where the curvature is small)"
        )
    shifted = hessian.clone()
    shifted.diagonal().add_(damping)
    cholesky, info = torch.linalg.cholesky_ex(shifted)
    if info.item() == 0:
        return {"saddle_free": False, "factor": cholesky}
    eigenvalues, vectors = torch.linalg.eigh(hessian)
    scale = eigenvalues.abs() + damping
    floor = torch.finfo(scale.dtype).eps * scale.max()
    inverse = torch.where(scale > floor, 1.0 / scale, torch.zeros_like(scale))
    return {"saddle_free": True, "factor": vectors, "inverse_eigenvalues": inverse}


def newton_solve(factor: dict[str, Any], gradient: Tensor) -> Tensor:
    """(H + λI)⁻¹g (or (|H| + λI)⁻¹g) from a `newton_factor`."""
    if not factor["saddle_free"]:
        return torch.cholesky_solve(gradient[:, None], factor["factor"])[:, 0]
    vectors = factor["factor"]
    return vectors @ (factor["inverse_eigenvalues"] * (vectors.T @ gradient))


class Newton(_GlobalOptimizer):
    """Damped Newton θ ← θ − η(H + λI)⁻¹∇L with the exact batch Hessian, refreshed every
    `refresh` steps (1: classic Newton; more: lazy Newton, reusing H's factorisation).

    State under the first parameter: "step", "hessian_evals", "saddle_free", "factor" (n×n) and,
    for the saddle-free form, "inverse_eigenvalues" (n,).
    """

    def __init__(
        self,
        named_params: list[tuple[str, nn.Parameter]],
        lr: float,
        damping: float,
        refresh: int,
    ) -> None:
        super().__init__(named_params, {"lr": lr, "damping": damping, "refresh": refresh})

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = evaluate(closure)
        group = self.param_groups[0]
        state = self.global_state
        if not state:
            state.update(step=0, hessian_evals=0)
        if state["step"] % group["refresh"] == 0:
            model, criterion, batch = self._batch_or_raise()
            hessian = exact_hessian(model, criterion, batch, self.names, self.params)
            for key in ("saddle_free", "factor", "inverse_eigenvalues"):
                state.pop(key, None)
            state.update(newton_factor(hessian, group["damping"]))
            state["hessian_evals"] += 1
        state["step"] += 1
        self._move(newton_solve(state, self._gradient()), -group["lr"])
        return loss


def _size_guard(plugin_id: str, named_params: list[tuple[str, nn.Parameter]], limit: int) -> None:
    n = sum(p.numel() for _, p in named_params)
    if n > limit:
        raise ValueError(
            f"{plugin_id}: the model has {n:,} parameters, more than max_params={limit}; the "
            f"exact Hessian is {n:,}×{n:,} and its factorisation costs O(n³) — choose a smaller "
            "model or raise max_params"
        )


def _newton_damping(default: float, why: str) -> Param:
    return _damping_param(
        default,
        "λ added to the Hessian's diagonal. If H + λI is not positive definite, the step uses "
        f"|H| + λI (eigenvalues by absolute value, saddle-free Newton).{why}",
        low=0.0,
    )


_MAX_PARAMS = _count_param(
    "max_params",
    3000,
    "Refuse models with more parameters: the dense n×n Hessian costs O(n²) memory and its "
    "factorisation O(n³).",
    high=10**6,
)

NEWTON_PARAMS = (
    _lr_param(1.0),
    _newton_damping(
        0.1,
        " With much less, the near-flat directions of a neural network's Hessian take huge "
        "steps: 1e-3 diverges on a small digits MLP.",
    ),
    _MAX_PARAMS,
)

LAZY_NEWTON_PARAMS = (
    _lr_param(1.0),
    _newton_damping(
        0.1,
        " Larger than newton's by default: a stale Hessian with little damping overshoots "
        "on non-convex models.",
    ),
    _MAX_PARAMS,
    _count_param(
        "refresh",
        10,
        "Steps between Hessian evaluations; in between, the stored factorisation is reused (the "
        "paper's optimum is about the number of parameters). λ is read at each refresh.",
        high=10**6,
    ),
)


def _newton_builder(plugin_id: str, schema: tuple[Param, ...]) -> Callable[..., Newton]:
    """The `build` of a `Newton` (refresh 1 unless the schema has one), after the size guard."""

    def build(
        named_params: list[tuple[str, nn.Parameter]], roles: dict[str, Role], hyper: dict[str, Any]
    ) -> Newton:
        h = {"refresh": 1, **defaults(schema), **hyper}
        _size_guard(plugin_id, named_params, h.pop("max_params"))
        return Newton(named_params, **h)

    return build


# --------------------------------------------------------------------------------------------
# FOSI
# --------------------------------------------------------------------------------------------

FOSI_RELATIVE_FLOOR = 1e-6
"""Eigenpairs with |λ| below this fraction of the largest |λ| are left to the base optimizer:
a Newton step 1/|λ| along a nearly flat direction would be unbounded."""


class FOSI(_GlobalOptimizer):
    """FOSI: a Newton step inside the span of the Hessian's extreme eigenvectors V, the base
    optimizer on the rest of the gradient.

    Every `every` steps Lanczos on Hessian-vector products of the batch loss gives the k
    largest eigenpairs (and optionally the smallest), (V, Λ). With g₁ = VVᵀg and g₂ = g − g₁:
    u ← μu + g₁ (heavy ball, SGD base) or u ← μu + (1 − μ)g₁ (Adam base); the base optimizer
    steps on g₂ and its step is projected off V and scaled by c = clip(λ_max/λ_k, 1, clip)
    (SGD; c = 1 for Adam); then θ ← θ − α(η/η₀)·V|Λ|⁻¹Vᵀu, with η₀ the rate at build, so a
    schedule or a live edit of η scales both parts alike.

    State under the first parameter: "step", "basis" (n, j), "inverse_eigenvalues" (j,),
    "velocity" (n,), "scale"; the base optimizer's state travels in `state_dict()["base"]`.
    """

    def __init__(
        self,
        named_params: list[tuple[str, nn.Parameter]],
        base: torch.optim.Optimizer,
        *,
        lr: float,
        base_id: str,
        alpha: float,
        momentum: float,
        k: int,
        smallest: bool,
        every: int,
        iterations: int,
        tolerance: float,
        clip: float,
        seed: int,
    ) -> None:
        super().__init__(
            named_params,
            {"lr": lr, "initial_lr": lr, "alpha": alpha, "momentum": momentum, "every": every},
        )
        self.base = base
        self.base_id = base_id
        self.k = k
        self.smallest = smallest
        self.iterations = iterations
        self.tolerance = tolerance
        self.clip = 1.0 if base_id == "adam" else clip
        self.seed = seed

    def _estimate(self) -> None:
        """Refresh V and Λ by Lanczos on the batch Hessian, started from the previous V."""
        model, criterion, batch = self._batch_or_raise()
        state = self.global_state
        generator = torch.Generator().manual_seed(self.seed + state["step"])
        with torch.enable_grad():
            loss = criterion(model(batch[0]), batch[1])
            operator = HessianOperator(loss, self.params)
            k = min(self.k, operator.shape[0])
            result = lanczos(
                operator,
                k,
                iterations=self.iterations,
                tol=self.tolerance,
                smallest=self.smallest,
                generator=generator,
            )
        values = result.eigenvalues.to(self.params[0].dtype)
        vectors = result.eigenvectors
        if self.smallest and k < operator.shape[0]:
            values = torch.cat([values, values.new_tensor([result.min_eigenvalue])])
            vectors = torch.cat([vectors, result.min_eigenvector[:, None]], dim=1)
        keep = values.abs() > FOSI_RELATIVE_FLOOR * values.abs().max()
        top = values[:k][keep[:k]].abs()
        ratio = (top.max() / top.min()).item() if top.numel() else 1.0
        state["scale"] = min(max(ratio, 1.0), self.clip)
        state["basis"] = vectors[:, keep].to(self.params[0].device)
        state["inverse_eigenvalues"] = 1.0 / values[keep].abs()

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = evaluate(closure)
        group = self.param_groups[0]
        state = self.global_state
        params = self.params
        if not state:
            n = sum(p.numel() for p in params)
            state.update(step=0, velocity=params[0].new_zeros(n))
        if state["step"] % group["every"] == 0:
            self._estimate()
        state["step"] += 1
        basis, inverse = state["basis"], state["inverse_eigenvalues"]
        gradient = self._gradient()
        in_span = basis @ (basis.T @ gradient)
        momentum = group["momentum"]
        velocity = state["velocity"].mul_(momentum)
        velocity.add_(in_span, alpha=1.0 if self.base_id == "sgd" else 1.0 - momentum)
        newton = basis @ (inverse * (basis.T @ velocity))

        before = _flat_parameters(params)
        saved = [p.grad for p in params]
        for p, piece in zip(params, unflatten(gradient - in_span, params), strict=True):
            p.grad = piece.clone()
        for base_group in self.base.param_groups:
            base_group["lr"] = group["lr"]
        self.base.step()
        for p, grad in zip(params, saved, strict=True):
            p.grad = grad
        base_step = _flat_parameters(params) - before
        base_step -= basis @ (basis.T @ base_step)
        update = state["scale"] * base_step
        update.add_(newton, alpha=-group["alpha"] * group["lr"] / group["initial_lr"])
        for p, piece in zip(params, unflatten(before + update, params), strict=True):
            p.copy_(piece)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's own state and groups, plus the base optimizer's under "base"."""
        return {**super().state_dict(), "base": self.base.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        own = dict(state_dict)
        self.base.load_state_dict(own.pop("base"))
        super().load_state_dict(own)


FOSI_PARAMS = (
    _lr_param(1e-2, " of the base optimizer; the Newton part scales with η/η₀"),
    Param(
        "base",
        "choice",
        "sgd",
        "Base optimizer on the gradient outside span(V): the catalogue's sgd (heavy ball with "
        "momentum μ) or adam (β₁ = μ).",
        choices=("sgd", "adam"),
    ),
    Param(
        "alpha",
        "float",
        0.1,
        "α, the Newton step inside span(V); with heavy-ball momentum the velocity sums to about "
        "g₁/(1 − μ), so α = 0.1 and μ = 0.9 give a full Newton step.",
        low=1e-6,
        high=10.0,
        log=True,
    ),
    momentum_param(0.9, "Momentum μ of both parts."),
    Param("k", "int", 5, "Largest Hessian eigenpairs in V.", low=1, high=1000),
    Param(
        "smallest",
        "bool",
        False,
        "Add the smallest (most negative) eigenpair to V; its Newton step uses |λ|.",
    ),
    _count_param("every", 20, "Steps between Lanczos estimates of V and Λ.", high=10**6),
    _count_param(
        "iterations", 40, "Lanczos iterations (Hessian-vector products) per estimate.", high=10**4
    ),
    _tolerance_param(
        1e-5,
        "Lanczos stops early once every wanted pair's residual is below this fraction of the "
        "largest |λ|; smaller buys accuracy with Hessian-vector products.",
    ),
    Param(
        "clip",
        "float",
        3.0,
        "Upper bound of the SGD base's step scale c = λ_max/λ_k (Adam's is 1).",
        low=1.0,
        high=100.0,
    ),
    seed_param("Seed of Lanczos's random start vectors."),
)


def _build_fosi(
    named_params: list[tuple[str, nn.Parameter]], roles: dict[str, Role], hyper: dict[str, Any]
) -> FOSI:
    h = {**defaults(FOSI_PARAMS), **hyper}
    base_hyper: dict[str, Any] = {"lr": h["lr"]}
    if h["base"] == "sgd":
        base_hyper["momentum"] = h["momentum"]
    else:
        base_hyper["betas"] = [h["momentum"], 0.999]
    base = registry.plugins("optimizers")[h["base"]].build(named_params, roles, base_hyper)
    return FOSI(
        named_params,
        base,
        lr=h["lr"],
        base_id=h["base"],
        alpha=h["alpha"],
        momentum=h["momentum"],
        k=h["k"],
        smallest=h["smallest"],
        every=h["every"],
        iterations=h["iterations"],
        tolerance=h["tolerance"],
        clip=h["clip"],
        seed=h["seed"],
    )


# --------------------------------------------------------------------------------------------
# Natural gradient
# --------------------------------------------------------------------------------------------


class NaturalGradient(_GlobalOptimizer):
    """θ ← θ − η(F + λI)⁻¹g with F = (1/B)Σgᵢgᵢᵀ, the empirical Fisher of the batch's
    per-example gradients, solved by conjugate gradients.

    State under the first parameter: "cg_iterations", the products spent by the last solve.
    """

    def __init__(
        self,
        named_params: list[tuple[str, nn.Parameter]],
        lr: float,
        damping: float,
        cg_iters: int,
        tolerance: float,
    ) -> None:
        super().__init__(
            named_params,
            {"lr": lr, "damping": damping, "cg_iters": cg_iters, "tolerance": tolerance},
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = evaluate(closure)
        model, criterion, batch = self._batch_or_raise()
        group = self.param_groups[0]
        with torch.enable_grad():
            per_example, _ = per_example_gradients(model, criterion, batch, self.names)
        fisher = EmpiricalFisherOperator(per_example)
        damping = group["damping"]
        solution, spent = conjugate_gradient(
            lambda v: fisher @ v + damping * v,
            self._gradient(),
            group["cg_iters"],
            group["tolerance"],
        )
        self.global_state["cg_iterations"] = spent
        self._move(solution, -group["lr"])
        return loss


NATURAL_GRADIENT_PARAMS = (
    _lr_param(0.1),
    _damping_param(
        1e-1,
        "λ of (F + λI): the empirical Fisher has rank at most B, so λ sets the step in every "
        "other direction (η/λ, gradient descent).",
    ),
    _count_param(
        "cg_iters",
        20,
        "Conjugate-gradient iterations per step (each one product with F, O(Bn)).",
        high=10**4,
    ),
    _tolerance_param(1e-6, "Stop CG once the residual is below this fraction of ‖g‖."),
)


# --------------------------------------------------------------------------------------------
# Descriptors
# --------------------------------------------------------------------------------------------

FAMILY = "second-order"

PLUGINS: list[OptimizerPlugin] = [
    OptimizerPlugin(
        id="mfac",
        title="M-FAC (sliding-window Fisher)",
        summary="Matrix-free approximate curvature: the empirical Fisher of the last m gradients, "
        "F = λI + (1/m)Σgᵢgᵢᵀ, inverted by Woodbury, F⁻¹g = (1/λ)[g − Gᵀ(mλI + GGᵀ)⁻¹Gg] "
        "with G the m×n window, and θ ← θ − η F⁻¹g. Directions the window spans are scaled by "
        "their inverse gradient energy, the others by 1/λ. Cost per step O(mn + m³), memory "
        "O(mn); one global Fisher over all parameters.",
        params=MFAC_PARAMS,
        build=builder(MFAC, MFAC_PARAMS, named=True),
        family=FAMILY,
        reference="Frantar, Kurtic & Alistarh, M-FAC: Efficient Matrix-Free Approximations of "
        "Second-Order Information, NeurIPS 2021.",
    ),
    OptimizerPlugin(
        id="egn",
        title="Exact Gauss–Newton (EGN)",
        summary="d = −(JᵀQJ + λI)⁻¹g with J the Jacobian of the batch's M outputs and Q the "
        "criterion's Hessian in the outputs (softmax cross-entropy: (diag(p) − ppᵀ)/B per "
        "example), solved in the batch-sized space: d = −(1/λ)[g − JᵀQ^½(λI + "
        "Q^½JJᵀQ^½)⁻¹Q^½Jg]; v ← μv + d, θ ← θ + ηv. Q is taken by torch.func.hessian of the "
        "task's criterion, so any criterion works; on tasks whose model returns the loss "
        "itself (2-D functions, quadratic) Q = 0 and the step is gradient descent at rate η/λ. "
        "Cost per step O(Mn) backward work for J plus O(M²n + M³).",
        params=EGN_PARAMS,
        build=builder(ExactGaussNewton, EGN_PARAMS, named=True),
        family=FAMILY,
        reference="Korbit, Adeoye, Bemporad & Zanon, Exact Gauss-Newton Optimization for "
        "Training Deep Neural Networks, arXiv:2405.14402, 2024.",
        needs=Needs(batch=True),
        exempt={
            "decreases-quadratic": "the quadratic task's model returns the loss itself, so the "
            "identity criterion has Q = 0 and EGN is gradient descent at rate η/λ = 1, unstable "
            "for λ_max = 10 (> 2); defaults are set for models with outputs"
        },
    ),
    OptimizerPlugin(
        id="newton",
        title="Newton (damped)",
        summary="θ ← θ − η(H + λI)⁻¹∇L with the exact Hessian of the batch loss "
        "(torch.func, reverse over reverse) and a Cholesky solve. Where H + λI is not positive "
        "definite the step uses |H| + λI, the eigenvalues by absolute value (saddle-free "
        "Newton), so it never steps towards a saddle or a maximum. With λ = 0 and η = 1 it "
        "minimises a convex quadratic in one step. Cost per step: n/64 vectorised "
        "double-backward passes and O(n³); refused above max_params parameters.",
        params=NEWTON_PARAMS,
        build=_newton_builder("newton", NEWTON_PARAMS),
        family=FAMILY,
        reference="Nocedal & Wright, Numerical Optimization, 2nd ed., Springer 2006, ch. 3; "
        "saddle-free form: Dauphin et al., Identifying and attacking the saddle point problem "
        "in high-dimensional non-convex optimization, NeurIPS 2014.",
        needs=Needs(batch=True),
    ),
    OptimizerPlugin(
        id="lazy-newton",
        title="Lazy Newton",
        summary="Damped Newton θ ← θ − η(H + λI)⁻¹∇L that computes and factorises the exact "
        "Hessian only every `refresh` steps and reuses the factorisation in between (fresh "
        "gradients, stale curvature); same saddle-free fallback as newton. Amortised cost "
        "O(n³/refresh + n²) per step; the paper's choice refresh ≈ n gains a factor of about "
        "√n in arithmetic over Newton.",
        params=LAZY_NEWTON_PARAMS,
        build=_newton_builder("lazy-newton", LAZY_NEWTON_PARAMS),
        family=FAMILY,
        reference="Doikov, Chayti & Jaggi, Second-order optimization with lazy Hessians, "
        "ICML 2023.",
        needs=Needs(batch=True),
    ),
    OptimizerPlugin(
        id="fosi",
        title="FOSI (Newton in the top eigenspace + base optimizer)",
        summary="Every `every` steps Lanczos on Hessian-vector products gives the k largest "
        "(optionally also the smallest) eigenpairs (V, Λ). The gradient splits into g₁ = VVᵀg "
        "and g₂ = g − g₁: a Newton step α·V|Λ|⁻¹Vᵀu on the momentum u of g₁, and the base "
        "optimizer (sgd or adam from the catalogue) on g₂, its step projected off V and, for "
        "SGD, scaled by clip(λ₁/λ_k, 1, clip). The base sees a Hessian without its largest "
        "eigenvalues, hence a smaller condition number. Cost: `iterations` Hessian-vector "
        "products every `every` steps plus O(nk) per step.",
        params=FOSI_PARAMS,
        build=_build_fosi,
        family=FAMILY,
        reference="Sivan, Gal & Schuster, FOSI: Hybrid First and Second Order Optimization, "
        "ICLR 2024.",
        needs=Needs(batch=True),
    ),
    OptimizerPlugin(
        id="natural-gradient",
        title="Natural gradient (empirical Fisher, CG)",
        summary="θ ← θ − η(F + λI)⁻¹g with F = (1/B)Σgᵢgᵢᵀ the empirical Fisher of the batch's "
        "per-example gradients (torch.func vmap), the system solved by conjugate gradients. "
        "Cost per step: per-example gradients (B backward passes, vectorised), O(Bn) memory, "
        "and O(Bn) per CG iteration.",
        params=NATURAL_GRADIENT_PARAMS,
        build=builder(NaturalGradient, NATURAL_GRADIENT_PARAMS, named=True),
        family=FAMILY,
        reference="Amari, Natural Gradient Works Efficiently in Learning, Neural Computation "
        "10(2), 1998; the empirical Fisher's limits: Kunstner, Balles & Hennig, NeurIPS 2019.",
        needs=Needs(batch=True),
    ),
]
