"""Hessian diagnostic: sharpness against the 2/η stability line, negative curvature, tr H, ‖H‖_F.

All quantities are of the Hessian H = ∇²L(θ) of the loss on the task's fixed probe batch, over
every trainable parameter, from Hessian-vector products (no n×n matrix is ever formed unless
`exact` asks for it): the top-k eigenvalues and the smallest one by warm-started Lanczos, tr H by
Hutch++ or Hutchinson, ‖H‖_F from the same Rademacher products, optionally the spectral density
by stochastic Lanczos quadrature, the exact spectrum of a small model, and per-layer (diagonal
block) top eigenvalues and traces. Full-batch GD at rate η is stable along an eigendirection
only while λ < 2/η, so `hessian/two_over_lr` is recorded beside λ_max (edge of stability: λ_max
rises to about 2/η and hovers there); at minima linearly stable for SGD, tr H ≤ 2/η, so the same
line is the reference for `hessian/trace`.

The estimator part is `CurvatureDiagnostic`, written once against a `Curvature` (how to build
the operator and its diagonal blocks at θ) and a series prefix; the `ggn` and `fisher`
diagnostics are the same class on other operators.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from descentlab.engine.curvature.dense import MAX_SIZE, check_size, dense_spectrum
from descentlab.engine.curvature.lanczos import LanczosResult, lanczos
from descentlab.engine.curvature.operators import HessianOperator, LinearOperator
from descentlab.engine.curvature.slq import slq
from descentlab.engine.curvature.trace import TraceEstimate, hutchinson, hutchpp, krylov_hutchpp
from descentlab.engine.params import Param
from descentlab.engine.plugin import (
    Diagnostic,
    DiagnosticPlugin,
    Display,
    Output,
    OutputKind,
    SetupContext,
    StepContext,
    Task,
)

GRID_STEP = 2**40
"""The `step` whose generator draws the Lanczos start that fixes the density grid, at setup."""

DENSITY_MARGIN = 0.25
"""The density grid spans [λ_min − m·s, λ_max + m·s], s = λ_max − λ_min, from the first record."""


def curvature_params(matrix: str, min_eigenvalue: bool) -> tuple[Param, ...]:
    """The parameter schema shared by the curvature diagnostics; `matrix` names the operator."""
    return (
        Param("top_k", "int", 3, "How many of the largest eigenvalues to track.", low=1, high=20),
        Param(
            "iterations",
            "int",
            40,
            f"Lanczos budget of {matrix}-vector products per record (stops earlier once "
            "converged).",
            low=2,
            high=500,
        ),
        Param(
            "min_eigenvalue",
            "bool",
            min_eigenvalue,
            "Also track the smallest (most negative) eigenvalue.",
        ),
        Param("trace", "bool", True, f"Estimate the trace of the {matrix}."),
        Param(
            "trace_samples",
            "int",
            30,
            f"{matrix}-vector products spent on the trace and Frobenius estimates.",
            low=3,
            high=1000,
        ),
        Param(
            "trace_method",
            "choice",
            "hutch++",
            "Hutch++ deflates the top of the spectrum (error ~1/m); Hutchinson is plain (~1/√m); "
            "Krylov Hutch++ builds its sketch by Lanczos from ∇L, where the Hessian has one, and "
            "reaches Hutch++'s error with fewer products (docs/benchmarks.md).",
            choices=("hutch++", "hutchinson", "krylov-hutch++"),
        ),
        Param("frobenius", "bool", True, f"Estimate the Frobenius norm of the {matrix}."),
        Param(
            "density",
            "bool",
            False,
            "Record the spectral density by stochastic Lanczos quadrature, on a grid fixed at "
            "the start from the extreme eigenvalues (later eigenvalues outside it are clipped).",
        ),
        Param("density_points", "int", 201, "Grid points of the density.", low=11, high=2001),
        Param("density_runs", "int", 3, "Random starts of the density estimate.", low=1, high=50),
        Param("density_steps", "int", 40, "Lanczos steps per density start.", low=2, high=500),
        Param(
            "density_width",
            "float",
            0.01,
            "Gaussian broadening of the density, as a fraction of the grid's range.",
            low=1e-4,
            high=0.5,
        ),
        Param(
            "exact",
            "bool",
            False,
            f"Record the exact spectrum (dense matrix, {MAX_SIZE} parameters at most), descending.",
        ),
        Param(
            "per_layer",
            "bool",
            False,
            "Top eigenvalue and trace of each parameter's diagonal block.",
        ),
        Param(
            "seed", "int", 0, "Seed of the random probes and Lanczos starts.", low=0, high=2**31 - 1
        ),
    )


BlockOperator = Callable[[dict[str, nn.Parameter]], LinearOperator]
"""The operator's diagonal block over some of the parameters (all of them: the whole operator)."""

Curvature = Callable[[nn.Module, Task, dict[str, nn.Parameter]], tuple[Tensor, BlockOperator]]
"""(model, task, trainable parameters) ↦ (probe loss, block operators) at the current θ."""


def hessian_curvature(
    model: nn.Module, task: Task, named: dict[str, nn.Parameter]
) -> tuple[Tensor, BlockOperator]:
    """The Hessian of the probe loss; a block is H_BB, by double backward on the same graph."""
    loss = task.loss(model, task.probe)
    return loss, lambda block: HessianOperator(loss, list(block.values()))


def _trainable(named_params: dict[str, nn.Parameter]) -> list[nn.Parameter]:
    return [p for p in named_params.values() if p.requires_grad]


def _named_trainable(named_params: dict[str, nn.Parameter]) -> dict[str, nn.Parameter]:
    return {name: p for name, p in named_params.items() if p.requires_grad}


def _generator(seed: int, step: int) -> torch.Generator:
    """A generator fixed by (seed, step): a record's probes do not depend on the schedule."""
    mixed = np.random.SeedSequence([seed, step]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed))


@dataclass(frozen=True)
class DensityGrid:
    """The fixed grid of a density series, `linspace(lo, hi, points)`, and the broadening σ."""

    lo: float
    hi: float
    points: int
    width: float


class CurvatureDiagnostic(Diagnostic):
    """Lanczos, Hutch++/Hutchinson, SLQ, dense and per-block estimates of one curvature matrix.

    Written once against a `Curvature` and a series prefix (`hessian`, `ggn`, `fisher`); keeps the
    last Lanczos result to warm-start the next record and the density grid fixed at setup.

    Args:
        params: the validated parameters of `curvature_params`.
        prefix: the series prefix, the plugin's id.
        matrix: the matrix's name in messages (`Hessian`, `GGN`, `Fisher`).
        curvature: the probe loss and block operators of the matrix at the current θ.
    """

    def __init__(
        self,
        params: dict[str, Any],
        prefix: str = "hessian",
        matrix: str = "Hessian",
        curvature: Curvature = hessian_curvature,
    ) -> None:
        super().__init__(params)
        self.prefix = prefix
        self.matrix = matrix
        self.curvature = curvature
        self.last: LanczosResult | None = None
        """The previous record's Ritz pairs (None before the first and after a non-finite loss)."""
        self.grid: DensityGrid | None = None
        """The density grid, fixed by `outputs` from the extreme eigenvalues at θ_0."""

    def name(self, series: str) -> str:
        return f"{self.prefix}/{series}"

    def _k(self, named_params: dict[str, nn.Parameter]) -> int:
        return min(self.params["top_k"], sum(p.numel() for p in _trainable(named_params)))

    def outputs(self, ctx: SetupContext) -> list[Output]:
        """The enabled series; top_k is clamped to the number of trainable parameters.

        With `exact`, raises a ValueError for models above the dense size limit; with `density`,
        fixes the grid from the extreme eigenvalues at the current parameters.
        """
        p = self.params
        named = _named_trainable(ctx.named_params)
        if not named:
            raise ValueError(f"the model has no trainable parameters to take a {self.matrix} over")
        n = sum(t.numel() for t in named.values())
        outputs = [
            Output(self.name("top_eigenvalues"), "vector", (self._k(ctx.named_params),)),
            Output(self.name("two_over_lr"), "scalar"),
        ]
        if p["min_eigenvalue"]:
            outputs.append(Output(self.name("min_eigenvalue"), "scalar"))
        if p["trace"]:
            outputs.append(Output(self.name("trace"), "scalar"))
        if p["frobenius"]:
            outputs.append(Output(self.name("frobenius"), "scalar"))
        if p["exact"]:
            try:
                check_size(n)
            except ValueError as error:
                raise ValueError(f"{self.prefix} diagnostic, exact=True: {error}") from None
            outputs.append(
                Output(self.name("exact_spectrum"), "vector", (n,), attrs={"order": "descending"})
            )
        if p["density"]:
            self.grid = self._fix_grid(ctx.model, ctx.task, named)
            grid = self.grid
            outputs.append(
                Output(
                    self.name("density"),
                    "histogram",
                    (grid.points,),
                    attrs={"grid": [grid.lo, grid.hi, grid.points], "width": grid.width},
                )
            )
        if p["per_layer"]:
            for layer in named:
                outputs.append(
                    Output(
                        f"{self.name('layer_top_eigenvalue')}/{layer}", "per_layer", (), layer=layer
                    )
                )
                outputs.append(
                    Output(f"{self.name('layer_trace')}/{layer}", "per_layer", (), layer=layer)
                )
        return outputs

    def _fix_grid(
        self, model: nn.Module, task: Task, named: dict[str, nn.Parameter]
    ) -> DensityGrid:
        p = self.params
        with torch.enable_grad():
            loss, block = self.curvature(model, task, named)
            if not torch.isfinite(loss):
                raise ValueError(f"{self.prefix} density: the probe loss is not finite at θ_0")
            result = lanczos(
                block(named),
                1,
                iterations=p["density_steps"],
                generator=_generator(p["seed"], GRID_STEP),
            )
        top, bottom = result.eigenvalues[0].item(), result.min_eigenvalue
        span = top - bottom
        if span <= 1e-12 * max(abs(top), abs(bottom)):
            span = max(abs(top), 1.0)
        lo, hi = bottom - DENSITY_MARGIN * span, top + DENSITY_MARGIN * span
        points = p["density_points"]
        return DensityGrid(lo, hi, points, p["density_width"] * (hi - lo))

    def compute(self, ctx: StepContext) -> dict[str, Any]:
        """Curvature of the probe loss at θ_t; `.grad` is neither read nor written."""
        p = self.params
        named = _named_trainable(ctx.named_params)
        k = self._k(ctx.named_params)
        values: dict[str, Any] = {
            self.name("two_over_lr"): 2.0 / ctx.lr if ctx.lr > 0 else math.nan
        }
        with torch.enable_grad():
            loss, block = self.curvature(ctx.model, ctx.task, named)
            if not torch.isfinite(loss):
                self.last = None
                return values | self._nan_record(k, named)
            op = block(named)
            generator = _generator(p["seed"], ctx.step)
            result = lanczos(
                op,
                k,
                start=self._warm_start(op),
                iterations=p["iterations"],
                smallest=p["min_eigenvalue"],
                generator=generator,
            )
            self.last = result
            values[self.name("top_eigenvalues")] = result.eigenvalues.numpy()
            if p["min_eigenvalue"]:
                values[self.name("min_eigenvalue")] = result.min_eigenvalue
            if p["trace"] or p["frobenius"]:
                estimate = self._trace(op, p["trace_method"], p["trace_samples"], generator)
                if p["trace"]:
                    values[self.name("trace")] = estimate.trace
                if p["frobenius"]:
                    values[self.name("frobenius")] = estimate.frobenius
            if p["density"]:
                grid = self.grid
                if grid is None:
                    raise RuntimeError("outputs() must run before compute() to fix the grid")
                quadrature = slq(op, p["density_runs"], p["density_steps"], generator)
                density = quadrature.density(grid.lo, grid.hi, grid.points, grid.width)
                values[self.name("density")] = density.numpy()
            if p["exact"]:
                values[self.name("exact_spectrum")] = dense_spectrum(op).flip(0).numpy()
            if p["per_layer"]:
                for layer, param in named.items():
                    block_op = block({layer: param})
                    top = lanczos(
                        block_op, 1, iterations=p["iterations"], smallest=False, generator=generator
                    ).eigenvalues[0]
                    trace = self._trace(
                        block_op, p["trace_method"], p["trace_samples"], generator
                    ).trace
                    values[f"{self.name('layer_top_eigenvalue')}/{layer}"] = top.item()
                    values[f"{self.name('layer_trace')}/{layer}"] = trace
        return values

    @staticmethod
    def _trace(
        op: LinearOperator, method: str, budget: int, generator: torch.Generator
    ) -> TraceEstimate:
        """Trace and Frobenius estimates by the chosen estimator with `budget` products."""
        if method == "krylov-hutch++":
            return krylov_hutchpp(op, budget, generator, getattr(op, "gradient", None))
        return (hutchpp if method == "hutch++" else hutchinson)(op, budget, generator)

    def _warm_start(self, op: LinearOperator) -> torch.Tensor | None:
        """The previous top eigenvectors (and the smallest one when tracked), if still valid.

        Without them, the loss gradient where the operator has one (the Hessian's): it lies
        mostly in the top eigenspace (Gur-Ari, Roberts & Dyer, 2018), so the top eigenvalue of
        a trained network converges in a few products instead of ten or more.
        """
        if self.last is None or self.last.eigenvectors.shape[0] != op.shape[0]:
            return getattr(op, "gradient", None)
        vectors = self.last.eigenvectors
        if self.params["min_eigenvalue"]:
            vectors = torch.cat([vectors, self.last.min_eigenvector[:, None]], dim=1)
        return vectors

    def _nan_record(self, k: int, named: dict[str, nn.Parameter]) -> dict[str, Any]:
        p = self.params
        record: dict[str, Any] = {self.name("top_eigenvalues"): np.full(k, np.nan)}
        for series in ("min_eigenvalue", "trace", "frobenius"):
            if p[series]:
                record[self.name(series)] = math.nan
        if p["density"] and self.grid is not None:
            record[self.name("density")] = np.full(self.grid.points, np.nan)
        if p["exact"]:
            n = sum(t.numel() for t in named.values())
            record[self.name("exact_spectrum")] = np.full(n, np.nan)
        if p["per_layer"]:
            for layer in named:
                record[f"{self.name('layer_top_eigenvalue')}/{layer}"] = math.nan
                record[f"{self.name('layer_trace')}/{layer}"] = math.nan
        return record


def curvature_outputs(prefix: str, matrix: str, letter: str) -> tuple[Output, ...]:
    """Every series a curvature diagnostic can write, with how each is shown; `letter` is the
    matrix's symbol in formulas (H, G, F)."""
    m = matrix

    def series(name: str, kind: OutputKind, display: Display) -> Output:
        return Output(f"{prefix}/{name}", kind, display=display)

    top = f"{prefix}/top_eigenvalues"
    return (
        series(
            "top_eigenvalues",
            "vector",
            Display(
                f"Sharpness: top {m} eigenvalues λ vs 2/η",
                f"λmax({m})" if m != "Hessian" else "Sharpness",
                "λ",
                "λ",
                log_y=True,
                order=50,
            ),
        ),
        series("two_over_lr", "scalar", Display(label="2/η", group=top, role="reference")),
        series(
            "min_eigenvalue",
            "scalar",
            Display(f"Smallest {m} eigenvalue λmin", f"λmin({m})", "λmin", order=52),
        ),
        series(
            "trace",
            "scalar",
            Display(f"{m} trace tr {letter}", f"tr {letter}", f"tr {letter}", order=53),
        ),
        series(
            "frobenius",
            "scalar",
            Display(f"{m} Frobenius norm ‖{letter}‖_F", f"‖{letter}‖_F", f"‖{letter}‖_F", order=54),
        ),
        series(
            "density",
            "histogram",
            Display(f"{m} spectral density (SLQ)", f"{m} density", "density", "λ", order=55),
        ),
        series(
            "exact_spectrum",
            "vector",
            Display(f"Exact {m} spectrum, descending", f"{m} spectrum", "λ", "λ", order=56),
        ),
        series(
            "layer_top_eigenvalue/<layer>",
            "per_layer",
            Display(f"Top eigenvalue of each layer's {m} block", "Layer λmax", "λmax", order=57),
        ),
        series(
            "layer_trace/<layer>",
            "per_layer",
            Display(f"Trace of each layer's {m} block", "Layer trace", "tr", order=58),
        ),
    )


def curvature_plugin(
    *,
    id: str,
    title: str,
    summary: str,
    matrix: str,
    letter: str,
    curvature: Curvature,
    min_eigenvalue: bool,
    reference: str,
) -> DiagnosticPlugin:
    """The plugin of a curvature diagnostic: series `id/…`, measured on `curvature`."""
    return DiagnosticPlugin(
        id=id,
        title=title,
        summary=summary,
        params=curvature_params(matrix, min_eigenvalue=min_eigenvalue),
        create=functools.partial(
            CurvatureDiagnostic, prefix=id, matrix=matrix, curvature=curvature
        ),
        outputs=curvature_outputs(id, matrix, letter),
        cost="heavy",
        every=50,
        reference=reference,
    )


PLUGIN = curvature_plugin(
    id="hessian",
    title="Hessian spectrum",
    summary=(
        "Curvature of the loss on the fixed probe batch, from Hessian-vector products: the "
        "largest eigenvalues (sharpness) against the 2/η stability line of gradient descent, "
        "the smallest eigenvalue (negative curvature, saddles), the trace (tr H ≤ 2/η at minima "
        "linearly stable for SGD) and the Frobenius norm; optionally the spectral density (SLQ), "
        "the exact spectrum of small models and per-layer blocks. Lanczos is warm-started from "
        "the previous record's eigenvectors (the first record from the loss gradient)."
    ),
    matrix="Hessian",
    letter="H",
    curvature=hessian_curvature,
    min_eigenvalue=True,
    reference=(
        "Lanczos (1950); Hutchinson (1989); Meyer, Musco, Musco & Woodruff, Hutch++ (SOSA 2021); "
        "Ubaru, Chen & Saad, SLQ (SIMAX 2017); Ghorbani, Krishnan & Xiao (ICML 2019); "
        "Yao et al., PyHessian (2020); Cohen et al., Edge of Stability (ICLR 2021)"
    ),
)
