"""Curvature operators: matrices known only through their products with vectors.

The algorithms beside this module (Lanczos, Hutchinson, Hutch++) are written once against
`LinearOperator`, anything with `shape`, `dtype`, `device` and `@` on flat vectors (n,) or blocks
of column vectors (n, m). A dense `torch.Tensor` qualifies, which is how the tests check the
algorithms against exact matrices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor


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


class HessianOperator:
    """H = ∇²L(θ) of a scalar loss L over `params`, applied as Hv = ∇_θ(∇_θL · v).

    The gradient ∇L is built once with `create_graph=True`; each product is then one backward
    pass through that graph (Pearlmutter's exact product, by double backward as in PyHessian), so
    memory is one retained graph and a product costs about two backward passes. Products come from
    `torch.autograd.grad`, never `.backward()`, so no `.grad` attribute is read or written: the
    training loop's gradients stay as they were. Built on a subset of the parameters it is the
    diagonal block H_BB of the Hessian (per-layer curvature).

    Vectors are flat, in the order of `params`; results have the parameters' dtype and device.
    The operator holds the graph until it is dropped, so keep it no longer than needed.
    """

    def __init__(self, loss: Tensor, params: Sequence[Tensor]) -> None:
        """Take ∇L once, keeping its graph for the products.

        Args:
            loss: scalar loss with a graph reaching `params` (computed with grad enabled).
            params: the tensors θ the Hessian is taken over; they share one dtype and device.
        """
        if loss.ndim != 0:
            raise ValueError(f"the loss must be a scalar, got shape {tuple(loss.shape)}")
        if not params:
            raise ValueError("the Hessian needs at least one parameter")
        self.params = list(params)
        # Parameters the loss does not reach get zero gradients, so their Hessian rows are zero.
        self._grads = torch.autograd.grad(
            loss, self.params, create_graph=True, allow_unused=True, materialize_grads=True
        )
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

    def matvec(self, v: Tensor) -> Tensor:
        """Hv for a flat vector v (n,), returned detached, flat, in the parameters' dtype."""
        if v.shape != (self._shape[0],):
            raise ValueError(f"expected a vector of {self._shape[0]} entries, got {tuple(v.shape)}")
        pieces = unflatten(v.detach().to(self.dtype), self.params)
        dot = torch.stack([(g * u).sum() for g, u in zip(self._grads, pieces, strict=True)]).sum()
        self.matvecs += 1
        if not dot.requires_grad:
            # ∇L does not depend on θ (the loss is at most linear in it): H = 0.
            return torch.zeros_like(v, dtype=self.dtype)
        hv = torch.autograd.grad(
            dot, self.params, retain_graph=True, allow_unused=True, materialize_grads=True
        )
        return flatten(hv).detach()

    def __matmul__(self, other: Tensor) -> Tensor:
        """H @ v for a vector (n,), or H @ V column by column for a block (n, m)."""
        if other.ndim == 1:
            return self.matvec(other)
        if other.ndim == 2:
            return torch.stack([self.matvec(col) for col in other.unbind(dim=1)], dim=1)
        raise ValueError(f"expected a vector or a matrix, got shape {tuple(other.shape)}")
