"""Curvature operators: matrices known only through their products with vectors.

The algorithms beside this module (Lanczos, Hutchinson, Hutch++) are written once against
`LinearOperator`, anything with `shape`, `dtype`, `device` and `@` on flat vectors (n,) or blocks
of column vectors (n, m). A dense `torch.Tensor` qualifies, which is how the tests check the
algorithms against exact matrices.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import torch
from torch import Tensor, nn


class LinearOperator(Protocol):
    """A symmetric n×n matrix applied as `op @ v` to a vector (n,) or a block (n, m)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def device(self) -> torch.device: ...

    def __matmul__(self, other: Tensor) -> Tensor: ...


def flatten(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate per-parameter tensors into one flat vector, in the given order."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Split a flat vector into views shaped like `like`, the inverse of `flatten`."""
    pieces = torch.split(vector, [t.numel() for t in like])
    return [piece.view_as(t) for piece, t in zip(pieces, like, strict=True)]


class _ParameterOperator:
    """What the Hessian and GGN operators share: an n×n operator over the flattened `params`,
    applied one flat vector at a time by `matvec`, with a count of the products computed."""

    def __init__(self, params: Sequence[Tensor]) -> None:
        self.params = list(params)
        n = sum(p.numel() for p in self.params)
        self._shape = (n, n)
        self.matvecs = 0
        """Products computed so far, for cost accounting."""

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def dtype(self) -> torch.dtype:
        return self.params[0].dtype

    @property
    def device(self) -> torch.device:
        return self.params[0].device

    def _check(self, v: Tensor) -> None:
        if v.shape != (self._shape[0],):
            raise ValueError(f"expected a vector of {self._shape[0]} entries, got {tuple(v.shape)}")

    def matvec(self, v: Tensor) -> Tensor:
        raise NotImplementedError

    def __matmul__(self, other: Tensor) -> Tensor:
        """A @ v for a vector (n,), or A @ V column by column for a block (n, m)."""
        return _apply(self.matvec, other)


BlockPath = Literal["auto", "loop", "batched"]
"""How a Hessian operator applies a block (n, m): a loop of m single products, one batched
backward (`is_grads_batched`, vmap over the retained graph), or whichever measured faster."""

BLOCK_PATHS = ("auto", "loop", "batched")

BLOCK_TRIALS = 2
"""Block products timed on each path before "auto" settles (the first of each is often cold)."""

BLOCK_TIMINGS: dict[tuple, dict[str, list[float]]] = {}
"""Seconds per column of each block path, keyed by the parameters' shapes, dtype and device.

Shared by every Hessian operator of the process, so a model's measurement is made once: its
first block products alternate between the loop and the batched path, `BLOCK_TRIALS` each (every
result is used, so measuring costs no extra product), and later ones take the path with the
smaller best time."""


class HessianOperator(_ParameterOperator):
    """H = ∇²L(θ) of a scalar loss L over `params`, applied as Hv = ∇_θ(∇_θL · v).

    The gradient ∇L is built once with `create_graph=True`; each product is then one backward
    pass through that graph (Pearlmutter's exact product, by double backward as in PyHessian),
    with v handed to autograd as the cotangent of ∇L, so no extra graph is built per product.
    Memory is one retained graph and a product costs about two backward passes. Products come
    from `torch.autograd.grad`, never `.backward()`, so no `.grad` attribute is read or written:
    the training loop's gradients stay as they were. Built on a subset of the parameters it is
    the diagonal block H_BB of the Hessian (per-layer curvature).

    A block (n, m) is applied either column by column or by one batched backward, vmap'd over
    the m cotangents (`is_grads_batched`). Which is faster depends on the model (about 1.3× for
    the batched path on a small MLP, 1.6× slower on a CNN, where vmap falls back to slow
    convolution rules), so `block="auto"` measures both on the first block products of each
    model structure and keeps the faster (see `BLOCK_TIMINGS`); the two paths agree to
    rounding, not bit for bit.

    Vectors are flat, in the order of `params`; results have the parameters' dtype and device.
    The operator holds the graph until it is dropped, so keep it no longer than needed.
    """

    def __init__(self, loss: Tensor, params: Sequence[Tensor], block: BlockPath = "auto") -> None:
        """Take ∇L once, keeping its graph for the products.

        Args:
            loss: scalar loss with a graph reaching `params` (computed with grad enabled).
            params: the tensors θ the Hessian is taken over; they share one dtype and device.
            block: how blocks of vectors are applied: "auto" (the faster path, measured once
                per model structure), "loop" or "batched".
        """
        if loss.ndim != 0:
            raise ValueError(f"the loss must be a scalar, got shape {tuple(loss.shape)}")
        if not params:
            raise ValueError("the Hessian needs at least one parameter")
        if block not in BLOCK_PATHS:
            raise ValueError(f"block must be one of {BLOCK_PATHS}, got {block!r}")
        super().__init__(params)
        self.block = block
        # Parameters the loss does not reach get zero gradients, so their Hessian rows are zero.
        self._grads = torch.autograd.grad(
            loss, self.params, create_graph=True, allow_unused=True, materialize_grads=True
        )
        # Gradient entries that do not depend on θ (L at most linear in those parameters)
        # contribute nothing to any product; autograd refuses them as outputs, so skip them.
        self._live = [i for i, g in enumerate(self._grads) if g.requires_grad]
        self._key = (
            tuple(tuple(p.shape) for p in self.params),
            self.dtype,
            self.device,
        )

    @property
    def gradient(self) -> Tensor:
        """∇L at θ, flat and detached: a free by-product of building the operator.

        A good Lanczos start for the top of the spectrum, since training gradients lie mostly
        in the span of the top Hessian eigenvectors (Gur-Ari, Roberts & Dyer, 2018).
        """
        return flatten(self._grads).detach()

    @property
    def block_timings(self) -> dict[str, list[float]]:
        """Seconds per column measured so far on each block path for this model structure."""
        return BLOCK_TIMINGS.setdefault(self._key, {"loop": [], "batched": []})

    def matvec(self, v: Tensor) -> Tensor:
        """Hv for a flat vector v (n,), returned detached, flat, in the parameters' dtype."""
        self._check(v)
        self.matvecs += 1
        return self._products(unflatten(v.detach().to(self.dtype), self.params), None)

    def __matmul__(self, other: Tensor) -> Tensor:
        """H @ v for a vector (n,), or H @ V for a block (n, m) by the block path."""
        if other.ndim != 2 or other.shape[1] < 2 or self.block == "loop":
            return super().__matmul__(other)
        if other.shape[0] != self._shape[0]:
            raise ValueError(f"expected a block of {self._shape[0]} rows, got {tuple(other.shape)}")
        path: str = self.block
        timings = self.block_timings
        measuring = path == "auto" and min(map(len, timings.values())) < BLOCK_TRIALS
        if measuring:
            path = min(timings, key=lambda p: len(timings[p]))
        elif path == "auto":
            path = min(timings, key=lambda p: min(timings[p]))
        start = time.perf_counter()
        if path == "loop":
            result = super().__matmul__(other)
        elif self.block == "batched":
            result = self._batched(other)
        else:
            try:
                result = self._batched(other)
            except RuntimeError:
                # Some backward graphs cannot be vmapped; "auto" then keeps the loop.
                timings[path] = [math.inf] * BLOCK_TRIALS
                return super().__matmul__(other)
        if measuring:
            timings[path].append((time.perf_counter() - start) / other.shape[1])
        return result

    def _batched(self, block: Tensor) -> Tensor:
        """H @ V (n, m) in one backward, the m columns as a batch of cotangents."""
        m = block.shape[1]
        rows = block.detach().to(self.dtype).T
        pieces = [
            piece.reshape(m, *p.shape)
            for piece, p in zip(
                torch.split(rows, [p.numel() for p in self.params], dim=1), self.params, strict=True
            )
        ]
        with warnings.catch_warnings():
            # Ops without a batching rule fall back to a per-column loop with a performance
            # warning; "auto" then measures that slowness and keeps the plain loop instead.
            warnings.filterwarnings("ignore", message=".*performance drop.*")
            products = self._products(pieces, m)
        self.matvecs += m
        return products.reshape(m, -1).T

    def _products(self, pieces: list[Tensor], batch: int | None) -> Tensor:
        """Flat H-products of the cotangents `pieces` (one vector, or a batch of `batch`)."""
        lead = () if batch is None else (batch,)
        if not self._live:
            # ∇L does not depend on θ (the loss is at most linear in it): H = 0.
            return torch.zeros(*lead, self._shape[0], dtype=self.dtype, device=self.device)
        hv = torch.autograd.grad(
            [self._grads[i] for i in self._live],
            self.params,
            grad_outputs=[pieces[i] for i in self._live],
            retain_graph=True,
            allow_unused=True,
            is_grads_batched=batch is not None,
        )
        # A parameter ∇L does not depend on has a zero row (None here: autograd would
        # materialise it without the batch dimension).
        flat = [
            h.reshape(*lead, -1)
            if h is not None
            else torch.zeros(*lead, p.numel(), dtype=self.dtype, device=self.device)
            for h, p in zip(hv, self.params, strict=True)
        ]
        return torch.cat(flat, dim=-1).detach()


class GGNOperator(_ParameterOperator):
    """G = Jᵀ H_out J, the generalised Gauss–Newton matrix of L(θ) = ℓ(f(θ)) over `params`.

    Schraudolph (2002). J = ∂f/∂θ is the Jacobian of the model outputs f (any shape: (B, C),
    (B, T, V)) and H_out = ∂²ℓ/∂f² the Hessian of the criterion at fixed outputs, taken by
    autograd on the criterion itself, so it holds for any twice-differentiable criterion
    (softmax cross-entropy with mean reduction: H_out = (diag(p) − ppᵀ)/B per example; MSE:
    2I/(number of entries)). G is positive semi-definite whenever ℓ is convex in f, and it
    equals the Hessian when f is linear in θ.

    A product Gv is Jv by the double-backward trick (Jv = ∂/∂u ⟨Jᵀu, v⟩, u a dummy
    cotangent), then H_out(Jv) by double backward through ℓ, then Jᵀ(H_out Jv) by one
    backward: reverse mode only, so every model that trains can be probed, at about three
    backward passes per product. `.grad` is neither read nor written.
    """

    def __init__(
        self,
        outputs: Tensor,
        targets: Tensor,
        criterion: Callable[[Tensor, Tensor], Tensor],
        params: Sequence[Tensor],
    ) -> None:
        """Keep the graph of `outputs` and build ∇_f ℓ with its own graph.

        Args:
            outputs: the model outputs f(θ), computed with grad enabled from `params`.
            targets: the targets handed to `criterion`.
            criterion: `criterion(outputs, targets)`, a scalar loss (the task's mean loss).
            params: the tensors θ; a subset gives the diagonal block J_BᵀH_out J_B.
        """
        if not params:
            raise ValueError("the GGN needs at least one parameter")
        super().__init__(params)
        self._outputs = outputs
        self._cotangent = torch.zeros_like(outputs, requires_grad=True)
        # Jᵀu with a graph in u, so that differentiating ⟨Jᵀu, v⟩ by u gives Jv.
        self._jt_u = torch.autograd.grad(
            outputs,
            self.params,
            grad_outputs=self._cotangent,
            create_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
        self._z = outputs.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = criterion(self._z, targets)
            if loss.ndim != 0:
                raise ValueError(f"the criterion must be a scalar, got shape {tuple(loss.shape)}")
            (self._grad_z,) = torch.autograd.grad(loss, self._z, create_graph=True)

    def jvp(self, v: Tensor) -> Tensor:
        """Jv, shaped like the outputs."""
        pieces = unflatten(v.detach().to(self.dtype), self.params)
        dot = torch.stack([(g * u).sum() for g, u in zip(self._jt_u, pieces, strict=True)]).sum()
        if not dot.requires_grad:
            return torch.zeros_like(self._outputs)
        (jv,) = torch.autograd.grad(dot, self._cotangent, retain_graph=True, materialize_grads=True)
        return jv

    def output_hvp(self, w: Tensor) -> Tensor:
        """H_out w for w shaped like the outputs."""
        if not self._grad_z.requires_grad:  # ℓ linear in f
            return torch.zeros_like(w)
        (hw,) = torch.autograd.grad(
            self._grad_z, self._z, grad_outputs=w, retain_graph=True, materialize_grads=True
        )
        return hw

    def vjp(self, w: Tensor) -> Tensor:
        """Jᵀw, flat, for w shaped like the outputs."""
        jtw = torch.autograd.grad(
            self._outputs,
            self.params,
            grad_outputs=w.detach(),
            retain_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
        return flatten(jtw).detach()

    def matvec(self, v: Tensor) -> Tensor:
        """Gv for a flat vector v (n,), returned detached, flat, in the parameters' dtype."""
        self._check(v)
        self.matvecs += 1
        return self.vjp(self.output_hvp(self.jvp(v)))


def per_example_gradients(
    model: nn.Module,
    criterion: Callable[[Tensor, Tensor], Tensor],
    batch: tuple[Tensor, Tensor],
    names: Sequence[str],
) -> tuple[Tensor, Tensor]:
    """The (B, n) matrix of per-example gradients g_i = ∇_θ ℓ(f(x_i; θ), y_i), and the losses.

    Each example's loss is `criterion` on a batch of one (for sequence tasks, the mean over its
    tokens), so with equal-sized examples the batch loss is the mean of the B losses. Computed
    by `torch.func.vmap(grad(...))` over `functional_call`, with the named parameters `names`
    (the others, and the buffers, stay the module's); rows follow the order of `names`.
    Modules that mix examples (batch norm in training mode) have no per-example gradient.
    """
    inputs, targets = batch
    own = dict(model.named_parameters())
    params = {name: own[name].detach() for name in names}

    def loss_of(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        out = torch.func.functional_call(model, p, (x.unsqueeze(0),))
        return criterion(out, y.unsqueeze(0))

    grads, losses = torch.func.vmap(
        torch.func.grad_and_value(loss_of), in_dims=(None, 0, 0), randomness="same"
    )(params, inputs, targets)
    rows = torch.cat([grads[name].reshape(inputs.shape[0], -1) for name in names], dim=1)
    return rows, losses


class EmpiricalFisherOperator:
    """F = (1/B) Σ_i g_i g_iᵀ = (1/B) GᵀG, the empirical Fisher of per-example gradients G (B, n).

    Amari (1998) for the Fisher; the empirical variant as discussed by Kunstner, Balles & Hennig
    (2019). Products are F v = (1/B) Gᵀ(Gv) from the stored matrix, so a product costs 2Bn
    flops and no pass through the model; memory is the B×n matrix. A column slice of G gives the
    diagonal block F_BB. F is positive semi-definite of rank at most B.
    """

    def __init__(self, per_example: Tensor) -> None:
        if per_example.ndim != 2 or per_example.shape[0] < 1:
            raise ValueError(f"expected a (B, n) matrix, got shape {tuple(per_example.shape)}")
        self.per_example = per_example.detach()
        n = per_example.shape[1]
        self._shape = (n, n)
        self.matvecs = 0
        """Products computed so far (a block counts once per column)."""

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def dtype(self) -> torch.dtype:
        return self.per_example.dtype

    @property
    def device(self) -> torch.device:
        return self.per_example.device

    def __matmul__(self, other: Tensor) -> Tensor:
        """F @ v for a vector (n,), or F @ V for a block (n, m), in one pass."""
        if other.ndim not in (1, 2) or other.shape[0] != self._shape[0]:
            raise ValueError(f"expected (n,) or (n, m) with n = {self._shape[0]}")
        g = self.per_example
        self.matvecs += 1 if other.ndim == 1 else other.shape[1]
        return g.T @ (g @ other.to(self.dtype)) / g.shape[0]


def _apply(matvec: Callable[[Tensor], Tensor], other: Tensor) -> Tensor:
    if other.ndim == 1:
        return matvec(other)
    if other.ndim == 2:
        return torch.stack([matvec(col) for col in other.unbind(dim=1)], dim=1)
    raise ValueError(f"expected a vector or a matrix, got shape {tuple(other.shape)}")
