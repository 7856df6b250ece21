"""Spectra diagnostic: singular values of every weight matrix and statistics of its spectrum.

Per matrix W (rows × cols): the singular values σ, the spectral norm σ₁, the stable rank Σσ²/σ₁²,
the effective rank exp(H(σ/Σσ)), the Marchenko–Pastur bulk edge λ₊ = s²(1 + √(rows/cols))² of the
eigenvalues σ²/cols of W Wᵀ/cols (s² the mean squared entry of W) with the count of eigenvalues
above it, and the Clauset–Shalizi–Newman exponent α of the eigenvalue tail (α is NaN for matrices
with fewer than `spectral.MIN_TAIL` nonzero eigenvalues). Conventions in `engine/spectral.py`.

A convolution kernel (out, in, kh, kw) is read as the (out, in·kh·kw) matrix it applies to each
patch. Singular values are computed exactly (`torch.linalg.svdvals`) in float64 on the CPU: the
lab's matrices are small, so this is milliseconds, and it spares the GPU solver's per-call
synchronisation and float32 rounding of the small singular values.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from descentlab.engine import spectral
from descentlab.engine.plugin import (
    Diagnostic,
    DiagnosticPlugin,
    Display,
    Output,
    SetupContext,
    StepContext,
)


def _weights(layer: str) -> str:
    return f"spectra/weights/{layer}"


def _stable_rank(layer: str) -> str:
    return f"spectra/stable_rank/{layer}"


def _spectral_norm(layer: str) -> str:
    return f"spectra/spectral_norm/{layer}"


def _effective_rank(layer: str) -> str:
    return f"spectra/effective_rank/{layer}"


def _mp_edge(layer: str) -> str:
    return f"spectra/mp_edge/{layer}"


def _mp_outliers(layer: str) -> str:
    return f"spectra/mp_outliers/{layer}"


def _alpha(layer: str) -> str:
    return f"spectra/alpha/{layer}"


def as_matrix(param: Tensor) -> Tensor:
    """The parameter as a float64 CPU matrix: rows are output units, columns everything else."""
    return param.detach().reshape(param.shape[0], -1).to("cpu", torch.float64)


def stable_rank(singular_values: Tensor) -> float:
    """Σσ²/σ₁² = ‖W‖_F²/‖W‖₂², a rank that small singular values barely count in.

    It lies in [1, rank W]; the zero matrix (σ₁ = 0) gets 0, its rank.
    """
    top = singular_values[0]
    if top == 0:
        return 0.0
    return float(singular_values.square().sum() / top.square())


class SpectraDiagnostic(Diagnostic):
    """Per-matrix singular values, descending, with stable rank and spectral norm."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.layers: list[str] = []

    def outputs(self, ctx: SetupContext) -> list[Output]:
        ranks = spectral.matrix_ranks(ctx.named_params)
        self.layers = list(ranks)
        outputs = []
        for name, rank_bound in ranks.items():
            outputs += [
                Output(_weights(name), "vector", shape=(rank_bound,), layer=name),
                Output(_stable_rank(name), "per_layer", layer=name),
                Output(_spectral_norm(name), "per_layer", layer=name),
                Output(_effective_rank(name), "per_layer", layer=name),
                Output(_mp_edge(name), "per_layer", layer=name),
                Output(_mp_outliers(name), "per_layer", layer=name),
                Output(_alpha(name), "per_layer", layer=name),
            ]
        return outputs

    @torch.no_grad()
    def compute(self, ctx: StepContext) -> dict[str, Any]:
        records: dict[str, Any] = {}
        for name in self.layers:
            matrix = as_matrix(ctx.named_params[name])
            singular_values = torch.linalg.svdvals(matrix)
            records[_weights(name)] = singular_values.numpy()
            records[_stable_rank(name)] = stable_rank(singular_values)
            records[_spectral_norm(name)] = float(singular_values[0])
            records[_effective_rank(name)] = spectral.effective_rank(singular_values)
            rows, cols = matrix.shape
            eigenvalues = singular_values.square() / cols
            bulk = spectral.marchenko_pastur_outliers(
                eigenvalues, spectral.noise_variance(matrix), rows, cols
            )
            records[_mp_edge(name)] = bulk.edge
            records[_mp_outliers(name)] = float(bulk.outliers)
            records[_alpha(name)] = spectral.power_law_fit(eigenvalues).alpha
        return records


PLUGIN = DiagnosticPlugin(
    id="spectra",
    title="Weight spectra",
    summary="Singular values σ₁ ≥ σ₂ ≥ … of every weight matrix (convolution kernels as "
    "out × in·kh·kw), with the spectral norm σ₁, the stable rank Σσ²/σ₁² and the effective "
    "rank exp(entropy of σ/Σσ). The eigenvalues σ²/cols are compared with the Marchenko–Pastur "
    "edge of a random matrix of the same shape and mean squared entry (edge and outlier count), "
    "and their tail is fitted by a power law (Clauset–Shalizi–Newman α; α < 2 or > 6 are "
    "heuristic flags, not verdicts). Training tends to grow a few outliers above a random bulk; "
    "orthogonalising optimizers such as Muon keep spectra flatter, which shows as a higher "
    "stable rank.",
    params=(),
    create=SpectraDiagnostic,
    outputs=(
        Output(
            "spectra/weights/<layer>",
            "vector",
            display=Display(
                "Singular values of weights σ", "σ(W)", "σ", symbol="σ", log_y=True, order=70
            ),
        ),
        Output(
            "spectra/stable_rank/<layer>",
            "per_layer",
            display=Display("Stable rank Σσ²/σ₁²", "Stable rank", "Σσ²/σ₁²", order=71),
        ),
        Output(
            "spectra/spectral_norm/<layer>",
            "per_layer",
            display=Display("Spectral norm σ₁", "σ₁(W)", "σ₁", order=72),
        ),
        Output(
            "spectra/effective_rank/<layer>",
            "per_layer",
            display=Display("Effective rank exp H(σ/Σσ)", "Eff. rank", "exp H", order=73),
        ),
        Output(
            "spectra/mp_edge/<layer>",
            "per_layer",
            display=Display("Marchenko–Pastur bulk edge λ₊", "MP edge", "λ₊", order=74),
        ),
        Output(
            "spectra/mp_outliers/<layer>",
            "per_layer",
            display=Display(
                "Eigenvalues above the Marchenko–Pastur edge", "MP outliers", "count", order=75
            ),
        ),
        Output(
            "spectra/alpha/<layer>",
            "per_layer",
            display=Display("Power-law exponent α of the eigenvalue tail", "Tail α", "α", order=76),
        ),
    ),
    cost="cheap",
    every=50,
    reference="Marchenko & Pastur (1967); Roy & Vetterli (2007), The effective rank; Clauset, "
    "Shalizi & Newman (2009), Power-law distributions in empirical data, SIAM Review 51(4); "
    "Martin & Mahoney (2021), Implicit self-regularization in deep neural networks, JMLR 22.",
)
