"""Update spectra: singular values of the last update Δθ_{t−1} of every weight matrix.

Each update is read as a matrix the way `spectra.as_matrix` reads weights (rows are output units,
a convolution kernel is out × in·kh·kw). Besides its singular values σ₁ ≥ … ≥ σ_r (r = min(rows,
cols)), spectral norm and stable rank, the diagnostic records how far the update is from an
orthogonal one:

    orthogonality = ‖σ/σ₁ − 1‖₂ / √r = ‖U/σ₁ − polar(U)‖_F / √r,

the root-mean-square gap between the normalised singular values and 1. The two forms agree because
the polar factor polar(U) = P Qᵀ (for U = P diag(σ) Qᵀ) shares U's singular vectors and has every
singular value 1. It is scale-free, 0 exactly when all singular values are equal (a perfectly
orthogonalised, Muon-style update, whatever its learning rate), and below 1 always (√(1 − 1/r) for
a rank-one update); a large square Gaussian matrix gives √(5/4 − 8/(3π)) ≈ 0.63 by the
quarter-circle law. A zero update has no direction: its orthogonality is NaN.
"""

from __future__ import annotations

import math
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
from descentlab.plugins.diagnostics.spectra import as_matrix

PREFIX = "update_spectra"


def _series(quantity: str, layer: str) -> str:
    return f"{PREFIX}/{quantity}/{layer}"


def orthogonality(singular_values: Tensor) -> float:
    """‖σ/σ₁ − 1‖₂/√r for descending singular values; NaN for the zero matrix."""
    top = float(singular_values[0]) if singular_values.numel() else 0.0
    if top == 0:
        return math.nan
    gap = singular_values / top - 1.0
    return float(gap.norm() / math.sqrt(singular_values.numel()))


class UpdateSpectraDiagnostic(Diagnostic):
    """Singular values, spectral norm, stable rank and orthogonality of each matrix's Δθ."""

    needs_update = True

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.layers: list[str] = []

    def outputs(self, ctx: SetupContext) -> list[Output]:
        ranks = spectral.matrix_ranks(ctx.named_params)
        self.layers = list(ranks)
        outputs = []
        for name, rank_bound in ranks.items():
            outputs += [
                Output(_series("singular_values", name), "vector", (rank_bound,), layer=name),
                Output(_series("spectral_norm", name), "per_layer", layer=name),
                Output(_series("stable_rank", name), "per_layer", layer=name),
                Output(_series("orthogonality", name), "per_layer", layer=name),
            ]
        return outputs

    @torch.no_grad()
    def compute(self, ctx: StepContext) -> dict[str, Any]:
        """Nothing at step 0 (no update yet), nor for a layer that got no update."""
        if not ctx.update:
            return {}
        records: dict[str, Any] = {}
        for name in self.layers:
            if name not in ctx.update:
                continue
            singular_values = torch.linalg.svdvals(as_matrix(ctx.update[name]))
            records[_series("singular_values", name)] = singular_values.numpy()
            records[_series("spectral_norm", name)] = float(singular_values[0])
            records[_series("stable_rank", name)] = spectral.stable_rank(singular_values)
            records[_series("orthogonality", name)] = orthogonality(singular_values)
        return records


PLUGIN = DiagnosticPlugin(
    id="update-spectra",
    title="Update spectra",
    summary="Singular values of the last update Δθ of every weight matrix, with its spectral "
    "norm, stable rank and distance from orthogonal ‖σ/σ₁ − 1‖/√r (the RMS gap between the "
    "normalised singular values and 1; 0 for a perfectly orthogonalised update such as Muon "
    "aims for; about 0.63 for a large square Gaussian matrix). SGD and Adam updates of trained "
    "layers are usually dominated by a few directions (low stable rank); Muon's are nearly flat.",
    params=(),
    create=UpdateSpectraDiagnostic,
    outputs=(
        Output(
            "update_spectra/singular_values/<layer>",
            "vector",
            display=Display(
                "Singular values of the update Δθ", "σ(Δθ)", "σ", symbol="σ", log_y=True
            ),
        ),
        Output(
            "update_spectra/spectral_norm/<layer>",
            "per_layer",
            display=Display("Update spectral norm ‖Δθ‖₂", "‖Δθ‖₂", "‖Δθ‖₂"),
        ),
        Output(
            "update_spectra/stable_rank/<layer>",
            "per_layer",
            display=Display("Update stable rank", "Δθ rank", "Σσ²/σ₁²"),
        ),
        Output(
            "update_spectra/orthogonality/<layer>",
            "per_layer",
            display=Display(
                "Update distance from orthogonal (0: orthogonal)", "Δθ orthogonality", "distance"
            ),
        ),
    ),
    cost="cheap",
    every=10,
    reference="Jordan et al. (2024), Muon: an optimizer for hidden layers in neural networks; "
    "Bernstein & Newhouse (2024), Old optimizer, new norm: an anthology.",
)
