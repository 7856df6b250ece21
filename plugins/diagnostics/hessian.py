"""Hessian diagnostic: sharpness against the 2/η stability line, negative curvature, tr H, ‖H‖_F.

All quantities are of the Hessian H = ∇²L(θ) of the loss on the task's fixed probe batch, over
every trainable parameter, from Hessian-vector products (no n×n matrix is ever formed):
the top-k eigenvalues and the smallest one by warm-started Lanczos, tr H by Hutch++ or
Hutchinson, ‖H‖_F from the same Rademacher products. Full-batch GD at rate η is stable along an
eigendirection only while λ < 2/η, so `hessian/two_over_lr` is recorded beside λ_max (edge of
stability: λ_max rises to about 2/η and hovers there).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from descentlab.engine.curvature.lanczos import LanczosResult, lanczos
from descentlab.engine.curvature.operators import HessianOperator
from descentlab.engine.curvature.trace import hutchinson, hutchpp
from descentlab.engine.params import Param
from descentlab.engine.plugin import (
    Diagnostic,
    DiagnosticPlugin,
    Output,
    SetupContext,
    StepContext,
)

TOP = "hessian/top_eigenvalues"
MIN = "hessian/min_eigenvalue"
TRACE = "hessian/trace"
FROBENIUS = "hessian/frobenius"
TWO_OVER_LR = "hessian/two_over_lr"

PARAMS = (
    Param("top_k", "int", 3, "How many of the largest eigenvalues to track.", low=1, high=20),
    Param(
        "iterations",
        "int",
        40,
        "Lanczos budget of Hessian-vector products per record (stops earlier once converged).",
        low=2,
        high=500,
    ),
    Param("min_eigenvalue", "bool", True, "Also track the smallest (most negative) eigenvalue."),
    Param("trace", "bool", True, "Estimate the trace of the Hessian."),
    Param(
        "trace_samples",
        "int",
        30,
        "Hessian-vector products spent on the trace and Frobenius estimates.",
        low=3,
        high=1000,
    ),
    Param(
        "trace_method",
        "choice",
        "hutch++",
        "Hutch++ deflates the top of the spectrum (error ~1/m); Hutchinson is plain (~1/√m).",
        choices=("hutch++", "hutchinson"),
    ),
    Param("frobenius", "bool", True, "Estimate the Frobenius norm ‖H‖_F."),
    Param("seed", "int", 0, "Seed of the random probes and Lanczos starts.", low=0, high=2**31 - 1),
)


def _trainable(named_params: dict[str, nn.Parameter]) -> list[nn.Parameter]:
    return [p for p in named_params.values() if p.requires_grad]


def _generator(seed: int, step: int) -> torch.Generator:
    """A generator fixed by (seed, step): a record's probes do not depend on the schedule."""
    mixed = np.random.SeedSequence([seed, step]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed))


class HessianDiagnostic(Diagnostic):
    """One run's Hessian probe; keeps the last Lanczos result to warm-start the next record."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.last: LanczosResult | None = None
        """The previous record's Ritz pairs (None before the first and after a non-finite loss)."""

    def _k(self, named_params: dict[str, nn.Parameter]) -> int:
        return min(self.params["top_k"], sum(p.numel() for p in _trainable(named_params)))

    def outputs(self, ctx: SetupContext) -> list[Output]:
        """The enabled series; top_k is clamped to the number of trainable parameters."""
        if not _trainable(ctx.named_params):
            raise ValueError("the model has no trainable parameters to take a Hessian over")
        outputs = [
            Output(TOP, "vector", (self._k(ctx.named_params),)),
            Output(TWO_OVER_LR, "scalar"),
        ]
        if self.params["min_eigenvalue"]:
            outputs.append(Output(MIN, "scalar"))
        if self.params["trace"]:
            outputs.append(Output(TRACE, "scalar"))
        if self.params["frobenius"]:
            outputs.append(Output(FROBENIUS, "scalar"))
        return outputs

    def compute(self, ctx: StepContext) -> dict[str, Any]:
        """Hessian of the probe loss at θ_t; `.grad` is neither read nor written."""
        p = self.params
        params = _trainable(ctx.named_params)
        k = self._k(ctx.named_params)
        values: dict[str, Any] = {TWO_OVER_LR: 2.0 / ctx.lr if ctx.lr > 0 else math.nan}
        with torch.enable_grad():
            loss = ctx.probe_loss()
            if not torch.isfinite(loss):
                self.last = None
                return values | self._nan_record(k)
            op = HessianOperator(loss, params)
            generator = _generator(p["seed"], ctx.step)
            result = lanczos(
                op,
                k,
                start=self._warm_start(op.shape[0]),
                iterations=p["iterations"],
                smallest=p["min_eigenvalue"],
                generator=generator,
            )
            self.last = result
            values[TOP] = result.eigenvalues.numpy()
            if p["min_eigenvalue"]:
                values[MIN] = result.min_eigenvalue
            if p["trace"] or p["frobenius"]:
                estimator = hutchpp if p["trace_method"] == "hutch++" else hutchinson
                estimate = estimator(op, p["trace_samples"], generator)
                if p["trace"]:
                    values[TRACE] = estimate.trace
                if p["frobenius"]:
                    values[FROBENIUS] = estimate.frobenius
        return values

    def _warm_start(self, n: int) -> torch.Tensor | None:
        """The previous top eigenvectors (and the smallest one when tracked), if still valid."""
        if self.last is None or self.last.eigenvectors.shape[0] != n:
            return None
        vectors = self.last.eigenvectors
        if self.params["min_eigenvalue"]:
            vectors = torch.cat([vectors, self.last.min_eigenvector[:, None]], dim=1)
        return vectors

    def _nan_record(self, k: int) -> dict[str, Any]:
        record: dict[str, Any] = {TOP: np.full(k, np.nan)}
        enabled = {MIN: "min_eigenvalue", TRACE: "trace", FROBENIUS: "frobenius"}
        record.update({name: math.nan for name, flag in enabled.items() if self.params[flag]})
        return record


PLUGIN = DiagnosticPlugin(
    id="hessian",
    title="Hessian spectrum",
    summary=(
        "Curvature of the loss on the fixed probe batch, from Hessian-vector products: the "
        "largest eigenvalues (sharpness) against the 2/η stability line of gradient descent, "
        "the smallest eigenvalue (negative curvature, saddles), the trace and the Frobenius "
        "norm. Lanczos is warm-started from the previous record's eigenvectors."
    ),
    params=PARAMS,
    create=HessianDiagnostic,
    outputs=(
        (TOP, "vector"),
        (MIN, "scalar"),
        (TRACE, "scalar"),
        (FROBENIUS, "scalar"),
        (TWO_OVER_LR, "scalar"),
    ),
    cost="heavy",
    every=50,
    reference=(
        "Lanczos (1950); Hutchinson (1989); Meyer, Musco, Musco & Woodruff, Hutch++ (SOSA 2021); "
        "Yao et al., PyHessian (2020); Cohen et al., Edge of Stability (ICLR 2021)"
    ),
)
