"""Fisher diagnostic: the spectrum, trace and norm of the empirical Fisher matrix.

F = (1/B) Σ_i g_i g_iᵀ over the probe batch's per-example gradients g_i (`torch.func.vmap` of
`grad`), applied as F v = (1/B) Gᵀ(Gv) by `EmpiricalFisherOperator` and measured by the
estimators of the hessian diagnostic. F is positive semi-definite of rank at most B, and
tr F = (1/B) Σ ‖g_i‖² is exact from G; it is not the Fisher of the model's predictive
distribution (Kunstner, Balles & Hennig 2019), which for cross-entropy is the GGN.
Memory is the B×n matrix of per-example gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from descentlab.engine.curvature.operators import EmpiricalFisherOperator, per_example_gradients
from descentlab.engine.plugin import Task
from descentlab.plugins.diagnostics.hessian import BlockOperator, curvature_plugin


def fisher_curvature(
    model: nn.Module, task: Task, named: dict[str, nn.Parameter]
) -> tuple[Tensor, BlockOperator]:
    """The empirical Fisher of the probe batch; a block is the slice G_B of the gradients."""
    names = list(named)
    rows, losses = per_example_gradients(model, task.criterion, task.probe, names)
    offsets: dict[str, tuple[int, int]] = {}
    begin = 0
    for name in names:
        offsets[name] = (begin, begin + named[name].numel())
        begin += named[name].numel()

    def block(params: dict[str, nn.Parameter]) -> EmpiricalFisherOperator:
        if list(params) == names:
            return EmpiricalFisherOperator(rows)
        columns = [rows[:, slice(*offsets[name])] for name in params]
        return EmpiricalFisherOperator(torch.cat(columns, dim=1))

    return losses.mean(), block


PLUGIN = curvature_plugin(
    id="fisher",
    title="Empirical Fisher spectrum",
    summary=(
        "The empirical Fisher (1/B)Σ g_i g_iᵀ of the probe batch's per-example gradients: top "
        "eigenvalues against 2/η, trace (the mean squared per-example gradient norm), "
        "Frobenius norm, and optionally the SLQ density, the exact spectrum of small models "
        "and per-layer blocks. Positive semi-definite of rank at most the probe size."
    ),
    matrix="Fisher",
    letter="F",
    curvature=fisher_curvature,
    min_eigenvalue=False,
    reference=(
        "Amari (1998); Kunstner, Balles & Hennig, Limitations of the empirical Fisher "
        "approximation (NeurIPS 2019); Lanczos (1950); Hutch++ (SOSA 2021); "
        "Ubaru, Chen & Saad (SIMAX 2017)"
    ),
)
