"""Exact dense matrices and spectra of small operators, the ground truth for the estimators."""

from __future__ import annotations

import torch
from torch import Tensor

from descentlab.engine.curvature.operators import LinearOperator

MAX_SIZE = 3000
"""Default size limit: a 3000×3000 float64 matrix is 72 MB and its eigvalsh takes seconds."""


def dense_matrix(op: LinearOperator, max_size: int = MAX_SIZE, chunk: int = 256) -> Tensor:
    """The n×n matrix of symmetric `op`, from n products with unit vectors, symmetrised.

    Args:
        op: symmetric operator of shape (n, n).
        max_size: refuse operators larger than this, with a ValueError naming both sizes.
        chunk: unit vectors applied per block product.
    """
    n = op.shape[0]
    check_size(n, max_size)
    columns = []
    for begin in range(0, n, chunk):
        end = min(begin + chunk, n)
        eye = torch.zeros(n, end - begin, dtype=op.dtype, device=op.device)
        eye[torch.arange(begin, end), torch.arange(end - begin)] = 1
        columns.append(op @ eye)
    matrix = torch.cat(columns, dim=1)
    return 0.5 * (matrix + matrix.T)


def dense_spectrum(op: LinearOperator, max_size: int = MAX_SIZE) -> Tensor:
    """All n eigenvalues of symmetric `op`, ascending, float64 on the CPU (eigvalsh)."""
    return torch.linalg.eigvalsh(dense_matrix(op, max_size).double().cpu())


def check_size(n: int, max_size: int = MAX_SIZE) -> None:
    """Raise a ValueError if an n×n dense matrix exceeds `max_size`."""
    if n > max_size:
        raise ValueError(
            f"an exact spectrum needs the dense {n}×{n} matrix, but only sizes up to "
            f"{max_size} parameters are allowed; use the Lanczos and SLQ estimates instead"
        )
