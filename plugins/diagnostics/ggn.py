"""GGN diagnostic: the spectrum, trace and norm of the generalised Gauss–Newton matrix.

G = Jᵀ H_out J (Schraudolph 2002) of the probe loss, J the Jacobian of the model outputs and
H_out the criterion's Hessian in the outputs (diag(p) − ppᵀ per example for softmax
cross-entropy), applied by `GGNOperator` and measured by the estimators of the hessian
diagnostic. G is positive semi-definite for convex criteria, so its smallest eigenvalue is
not tracked by default; it equals the Hessian where the model is linear in θ and drops the
term Σ ∂ℓ/∂f · ∇²f, which vanishes at an interpolating minimum.
"""

from __future__ import annotations

from torch import Tensor, nn

from descentlab.engine.curvature.operators import GGNOperator
from descentlab.engine.plugin import Task
from descentlab.plugins.diagnostics.hessian import BlockOperator, curvature_plugin


def ggn_curvature(
    model: nn.Module, task: Task, named: dict[str, nn.Parameter]
) -> tuple[Tensor, BlockOperator]:
    """The GGN of the probe loss; a block is J_BᵀH_out J_B, sharing one forward pass."""
    inputs, targets = task.probe
    outputs = model(inputs)
    loss = task.criterion(outputs, targets)

    def block(params: dict[str, nn.Parameter]) -> GGNOperator:
        return GGNOperator(outputs, targets, task.criterion, list(params.values()))

    return loss, block


PLUGIN = curvature_plugin(
    id="ggn",
    title="Gauss–Newton spectrum",
    summary=(
        "Curvature of the probe loss as the generalised Gauss–Newton matrix JᵀH_outJ, from a "
        "Jacobian product, the criterion's output Hessian and a transposed Jacobian product: "
        "top eigenvalues against 2/η, trace, Frobenius norm, and optionally the SLQ density, "
        "the exact spectrum of small models and per-layer blocks. Positive semi-definite, so "
        "it has no saddles to report; compare it with the hessian diagnostic to see the "
        "residual (non-convex) part of the curvature."
    ),
    matrix="GGN",
    letter="G",
    curvature=ggn_curvature,
    min_eigenvalue=False,
    reference=(
        "Schraudolph (Neural Computation 2002); Martens, New insights and perspectives on the "
        "natural gradient method (JMLR 2020); Lanczos (1950); Hutch++ (SOSA 2021); "
        "Ubaru, Chen & Saad (SIMAX 2017)"
    ),
)
