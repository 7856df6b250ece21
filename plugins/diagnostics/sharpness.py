"""Sharpness diagnostic: stability references for GD, SGD and Adam, batch-size dependence, overlap.

Every quantity comes from Hessian-vector products of the task's loss at θ_t (no n×n matrix):

1. Preconditioned sharpness λmax(P⁻¹H) of adaptive optimizers against the Adam stability
   threshold (2 + 2β₁)/((1 − β₁)η), 38/η for β₁ = 0.9 (Cohen et al. 2022). P⁻¹H is similar to
   the symmetric P^{-1/2} H P^{-1/2}, whose top eigenvalue Lanczos finds.
2. SGD/GD linear-stability ratios: tr(H)·η/2 (at most 1 at a minimum linearly stable for SGD)
   and λmax·η/2 (about 1 at the edge of stability of full-batch GD).
3. λmax of mini-batch Hessians of several batch sizes beside that of the full probe: the
   mini-batch one is larger, which is why the stable learning rate grows with the batch size.
4. How much of the training-batch gradient lies in the top-k Hessian eigenspace
   ‖Vₖᵀg‖²/‖g‖² (Gur-Ari et al. 2018), and how stable that subspace is between records.

The preconditioner (part 1). Adam's update with the momentum left un-bias-corrected is
θ ← θ − η P⁻¹ m with m the EMA of gradients and, following Cohen et al. 2022 (§2, "Adaptive
gradient methods at the edge of stability"), P = (1 − β₁ᵗ)·diag(√v̂ + ε), v̂ = v/(1 − β₂ᵗ): the
momentum bias correction is folded into P. This diagnostic does the same by default
(`momentum_bias_correction`); switched off, P = diag(√v̂ + ε). The factor tends to 1 within a
few dozen steps, so the two agree except at the very start of training. P is read from the
optimizer's state as it stands at θ_t, i.e. the preconditioner of the step that produced θ_t
(the next step's differs by O(1 − β₂)). Per-group learning rates are folded in as
P_g · η/η_g with η the run's learning rate, so the one threshold still applies.
Supported: torch.optim.Adam, AdamW (including amsgrad: the running max of v), NAdam, RAdam
(P as for Adam; NAdam's momentum and RAdam's rectification make the threshold approximate) and
Adamax (P = diag(u), its infinity-norm state, which already contains ε). Other optimizers,
including Muon + AdamW, get no preconditioned outputs: their update is not a diagonal
preconditioning of one gradient EMA over all parameters. Weight decay is ignored (it shifts H by
at most the decay coefficient).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from descentlab.engine.curvature.lanczos import LanczosResult, lanczos
from descentlab.engine.curvature.operators import HessianOperator, flatten
from descentlab.engine.curvature.trace import hutchinson, hutchpp
from descentlab.engine.params import Param
from descentlab.engine.plugin import (
    Batch,
    Diagnostic,
    DiagnosticPlugin,
    Display,
    Output,
    SetupContext,
    StepContext,
    Task,
)

PRECONDITIONED = "sharpness/preconditioned"
ADAM_THRESHOLD = "sharpness/adam_threshold"
TRACE_RATIO = "sharpness/trace_over_two_over_lr"
LAMBDA_RATIO = "sharpness/lambda_max_over_two_over_lr"
BATCH = "sharpness/batch_lambda_max"
GRADIENT_OVERLAP = "sharpness/gradient_overlap"
SUBSPACE_OVERLAP = "sharpness/subspace_overlap"

ADAPTIVE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.NAdam, torch.optim.RAdam)
"""Optimizers whose state holds `exp_avg_sq` and `step`, preconditioning by √v̂ + ε."""

PARAMS = (
    Param("preconditioned", "bool", True, "λmax(P⁻¹H) for Adam-type optimizers, vs 38/η."),
    Param(
        "momentum_bias_correction",
        "bool",
        True,
        "Fold Adam's momentum bias correction (1 − β₁ᵗ) into P, as Cohen et al. 2022 do.",
    ),
    Param("stability", "bool", True, "tr(H)·η/2 (SGD) and λmax·η/2 (GD) stability ratios."),
    Param(
        "trace_samples",
        "int",
        30,
        "Hessian-vector products spent on the trace estimate.",
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
    Param("batch", "bool", True, "λmax of mini-batch Hessians beside the full probe's."),
    Param(
        "batch_sizes",
        "ints",
        [8, 32, 128],
        "Mini-batch sizes, drawn from the training data without replacement.",
        low=1,
        high=1_000_000,
    ),
    Param("batch_draws", "int", 2, "Mini-batches averaged per size.", low=1, high=100),
    Param(
        "batch_iterations",
        "int",
        30,
        "Lanczos budget per mini-batch λmax (and for the preconditioned one).",
        low=2,
        high=500,
    ),
    Param("overlap", "bool", True, "Gradient overlap with the top-k eigenspace; its stability."),
    Param(
        "top_k", "int", 10, "Dimension k of the top eigenspace (at most n − 1).", low=1, high=100
    ),
    Param(
        "iterations",
        "int",
        80,
        "Lanczos budget for the probe Hessian's top-k pairs (stops earlier once converged).",
        low=2,
        high=1000,
    ),
    Param(
        "seed",
        "int",
        0,
        "Seed of the random probes, batches and Lanczos starts.",
        low=0,
        high=2**31 - 1,
    ),
)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _trainable(named_params: dict[str, nn.Parameter]) -> list[tuple[str, nn.Parameter]]:
    return [(name, p) for name, p in named_params.items() if p.requires_grad]


def _generator(seed: int, step: int, stream: int) -> torch.Generator:
    """A generator fixed by (seed, step, stream): records do not depend on the schedule."""
    mixed = np.random.SeedSequence([seed, step, stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed))


BATCH_STREAM = 1
"""The `stream` of `_generator` that draws the mini-batches (see `minibatches`)."""


def minibatches(
    task: Task, batch_sizes: list[int], draws: int, seed: int, step: int
) -> list[list[Batch]]:
    """The mini-batches the diagnostic uses at `step`: `draws` per size, in `batch_sizes` order.

    Each is drawn without replacement from `task.train` (a size at least the data's gives the
    whole training set) by a generator fixed by (seed, step), so tests can rebuild them.
    """
    if task.train is None:
        raise ValueError("the task has no training data to draw mini-batches from")
    inputs, targets = task.train
    n = inputs.shape[0]
    generator = _generator(seed, step, BATCH_STREAM)
    batches = []
    for size in batch_sizes:
        drawn = []
        for _ in range(draws):
            idx = torch.randperm(n, generator=generator)[: min(size, n)].to(inputs.device)
            drawn.append((inputs[idx], targets[idx]))
        batches.append(drawn)
    return batches


class Congruence:
    """D H D for a symmetric operator H and a diagonal D = diag(d), as a `LinearOperator`."""

    def __init__(self, op: Any, d: Tensor) -> None:
        self.op = op
        self.d = d

    @property
    def shape(self) -> tuple[int, ...]:
        return self.op.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.op.dtype

    @property
    def device(self) -> torch.device:
        return self.op.device

    def __matmul__(self, other: Tensor) -> Tensor:
        d = self.d if other.ndim == 1 else self.d[:, None]
        return d * (self.op @ (d * other))


def preconditioner_kind(optimizer: torch.optim.Optimizer) -> str | None:
    """'adam' (exp_avg_sq), 'adamax' (exp_inf) or None when P⁻¹H is not defined here."""
    if not all("betas" in group for group in optimizer.param_groups):
        return None
    if type(optimizer) is torch.optim.Adamax:
        return "adamax"
    if isinstance(optimizer, ADAPTIVE):
        return "adam"
    return None


def preconditioner(
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    lr: float,
    momentum_bias_correction: bool = True,
) -> tuple[Tensor, float] | None:
    """Flat diagonal P (in `params` order) of an Adam-type optimizer, and its β₁.

    P = (1 − β₁ᵗ)·(√(v/(1 − β₂ᵗ)) + ε) (the factor only with `momentum_bias_correction`),
    u for Adamax (times the same factor), scaled by η/η_g per group. None when a parameter has
    no state yet (before the first step), is not optimized, or the groups' β₁ differ.
    """
    kind = preconditioner_kind(optimizer)
    if kind is None or not lr > 0:
        return None
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    pieces = []
    beta1s = set()
    for p in params:
        group = group_of.get(id(p))
        state = optimizer.state.get(p, {})
        if group is None or "step" not in state:
            return None
        beta1, beta2 = (float(beta) for beta in group["betas"])  # tensors are allowed too
        beta1s.add(beta1)
        t = float(state["step"])
        if t <= 0:
            return None
        if kind == "adamax":
            diag = state["exp_inf"].detach().to(p.dtype)
        else:
            v = state["max_exp_avg_sq"] if group.get("amsgrad") else state["exp_avg_sq"]
            diag = (v.detach().to(p.dtype) / (1 - beta2**t)).sqrt() + float(group["eps"])
        if momentum_bias_correction:
            diag = diag * (1 - beta1**t)
        pieces.append(diag * (lr / float(group["lr"])))
    if len(beta1s) != 1:
        return None
    return flatten(pieces), beta1s.pop()


# --------------------------------------------------------------------------------------------
# The diagnostic
# --------------------------------------------------------------------------------------------


class SharpnessDiagnostic(Diagnostic):
    """One run's sharpness probe; keeps eigenvectors between records for warm starts."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.last: LanczosResult | None = None
        """The previous record's top-k Ritz pairs of the probe Hessian."""
        self.last_preconditioned: Tensor | None = None
        self.last_batches: list[list[Batch]] | None = None
        """The mini-batches of the last record, per size (as `minibatches` returns them)."""
        self._parts: set[str] = set()

    def _k(self, n: int) -> int:
        return max(1, min(self.params["top_k"], n - 1))

    def outputs(self, ctx: SetupContext) -> list[Output]:
        """The enabled series, for the parts that apply to this optimizer and task."""
        p = self.params
        trainable = _trainable(ctx.named_params)
        if not trainable:
            raise ValueError("the model has no trainable parameters to take a Hessian over")
        parts = set()
        outputs: list[Output] = []
        if p["preconditioned"] and preconditioner_kind(ctx.optimizer) is not None:
            parts.add("preconditioned")
            outputs += [Output(PRECONDITIONED, "scalar"), Output(ADAM_THRESHOLD, "scalar")]
        if p["stability"]:
            parts.add("stability")
            outputs += [Output(TRACE_RATIO, "scalar"), Output(LAMBDA_RATIO, "scalar")]
        if p["batch"] and ctx.task.train is not None and p["batch_sizes"]:
            parts.add("batch")
            labels: list[Any] = [int(b) for b in p["batch_sizes"]] + ["probe"]
            outputs.append(Output(BATCH, "vector", (len(labels),), attrs={"batch_sizes": labels}))
        if p["overlap"]:
            parts.add("overlap")
            outputs += [Output(GRADIENT_OVERLAP, "scalar"), Output(SUBSPACE_OVERLAP, "scalar")]
        self._parts = parts
        return outputs

    def compute(self, ctx: StepContext) -> dict[str, Any]:
        """All enabled parts at θ_t; `.grad` is neither read nor written."""
        p = self.params
        parts = self._parts
        names = [name for name, _ in _trainable(ctx.named_params)]
        params = [ctx.named_params[name] for name in names]
        values: dict[str, Any] = {}
        lr = ctx.lr
        lambda_max = math.nan
        with torch.enable_grad():
            loss = ctx.probe_loss()
            if not torch.isfinite(loss):
                self.last = self.last_preconditioned = None
                return self._nan_record(ctx)
            op = HessianOperator(loss, params)
            n = op.shape[0]
            if parts & {"stability", "batch", "overlap"}:
                k = self._k(n) if "overlap" in parts else 1
                self.last = self._top(op, k, ctx.step, values)
                lambda_max = self.last.eigenvalues[0].item()
            if "stability" in parts:
                estimator = hutchpp if p["trace_method"] == "hutch++" else hutchinson
                trace = estimator(op, p["trace_samples"], _generator(p["seed"], ctx.step, 2)).trace
                values[TRACE_RATIO] = trace * lr / 2
                values[LAMBDA_RATIO] = lambda_max * lr / 2
            if "overlap" in parts:
                values.update(self._gradient_overlap(ctx, names))
            if "preconditioned" in parts:
                values.update(self._preconditioned(ctx, op, params))
            del op
            if "batch" in parts:
                values[BATCH] = self._batch_sharpness(ctx, params, lambda_max)
        return values

    # ---------------------------------------------------------------------------------------

    def _top(self, op: HessianOperator, k: int, step: int, values: dict[str, Any]) -> LanczosResult:
        """Top-k pairs of the probe Hessian; the subspace overlap with the previous record's."""
        previous = self.last
        start = None
        if previous is not None and previous.eigenvectors.shape == (op.shape[0], k):
            start = previous.eigenvectors
        result = lanczos(
            op,
            k,
            start=start,
            iterations=self.params["iterations"],
            smallest=False,
            generator=_generator(self.params["seed"], step, 0),
        )
        if start is not None and "overlap" in self._parts:
            cross = start.T @ result.eigenvectors
            values[SUBSPACE_OVERLAP] = cross.double().square().sum().item() / k
        return result

    def _gradient_overlap(self, ctx: StepContext, names: list[str]) -> dict[str, Any]:
        if self.last is None or any(name not in ctx.grads for name in names):
            return {}
        g = flatten([ctx.grads[name].detach() for name in names]).to(self.last.eigenvectors)
        norm2 = g.double().square().sum().item()
        if not norm2 > 0 or not math.isfinite(norm2):
            return {GRADIENT_OVERLAP: math.nan}
        projected = self.last.eigenvectors.T @ g
        return {GRADIENT_OVERLAP: projected.double().square().sum().item() / norm2}

    def _preconditioned(
        self, ctx: StepContext, op: HessianOperator, params: list[nn.Parameter]
    ) -> dict[str, Any]:
        found = preconditioner(
            ctx.optimizer, params, ctx.lr, self.params["momentum_bias_correction"]
        )
        if found is None:
            return {}
        diag, beta1 = found
        scaled = Congruence(op, diag.to(op.dtype).rsqrt())
        previous = self.last_preconditioned
        result = lanczos(
            scaled,
            1,
            start=previous if previous is not None and previous.shape[0] == op.shape[0] else None,
            iterations=self.params["batch_iterations"],
            smallest=False,
            generator=_generator(self.params["seed"], ctx.step, 3),
        )
        self.last_preconditioned = result.eigenvectors[:, 0]
        return {
            PRECONDITIONED: result.eigenvalues[0].item(),
            ADAM_THRESHOLD: (2 + 2 * beta1) / ((1 - beta1) * ctx.lr),
        }

    def _batch_sharpness(
        self, ctx: StepContext, params: list[nn.Parameter], probe_lambda: float
    ) -> np.ndarray:
        p = self.params
        self.last_batches = minibatches(
            ctx.task, p["batch_sizes"], p["batch_draws"], p["seed"], ctx.step
        )
        generator = _generator(p["seed"], ctx.step, 4)
        record = []
        for drawn in self.last_batches:
            estimates = []
            for batch in drawn:
                loss = ctx.task.loss(ctx.model, batch)
                if not torch.isfinite(loss):
                    estimates.append(math.nan)
                    continue
                result = lanczos(
                    HessianOperator(loss, params),
                    1,
                    start=self.last.eigenvectors[:, :1] if self.last is not None else None,
                    iterations=p["batch_iterations"],
                    smallest=False,
                    perturbation=1.0,
                    generator=generator,
                )
                estimates.append(result.eigenvalues[0].item())
            record.append(float(np.mean(estimates)))
        record.append(probe_lambda)
        return np.asarray(record, dtype=np.float64)

    def _nan_record(self, ctx: StepContext) -> dict[str, Any]:
        record: dict[str, Any] = {}
        if "stability" in self._parts:
            record |= {TRACE_RATIO: math.nan, LAMBDA_RATIO: math.nan}
        if "overlap" in self._parts:
            record[GRADIENT_OVERLAP] = math.nan
        if "batch" in self._parts:
            record[BATCH] = np.full(len(self.params["batch_sizes"]) + 1, np.nan)
        return record


PLUGIN = DiagnosticPlugin(
    id="sharpness",
    title="Sharpness and stability",
    summary=(
        "Stability references from Hessian-vector products at the current parameters: the "
        "preconditioned sharpness λmax(P⁻¹H) of Adam-type optimizers against (2 + 2β₁)/((1 − β₁)η) "
        "(P = (1 − β₁ᵗ)·diag(√v̂ + ε) from the optimizer state, as Cohen et al. 2022; skipped for "
        "optimizers that are not purely diagonal-Adam-like, Muon + AdamW included); tr(H)·η/2 "
        "and λmax·η/2 (SGD- and GD-stability, ≤ 1 when stable); λmax of mini-batch Hessians of "
        "several sizes beside the probe's; the share of the training gradient in the top-k "
        "Hessian eigenspace and that subspace's overlap with the previous record's."
    ),
    params=PARAMS,
    create=SharpnessDiagnostic,
    outputs=(
        Output(
            PRECONDITIONED,
            "scalar",
            display=Display(
                "Preconditioned sharpness λmax(P⁻¹H) vs the Adam threshold",
                "λmax(P⁻¹H)",
                "λmax(P⁻¹H)",
                log_y=True,
                order=51,
            ),
        ),
        Output(
            ADAM_THRESHOLD,
            "scalar",
            display=Display(
                label="(2 + 2β₁)/((1 − β₁)η)", group=PRECONDITIONED, role="reference", log_y=True
            ),
        ),
        Output(
            TRACE_RATIO,
            "scalar",
            display=Display("SGD stability tr(H)·η/2 (≤ 1: stable)", "tr(H)·η/2", "tr(H)·η/2"),
        ),
        Output(
            LAMBDA_RATIO,
            "scalar",
            display=Display("GD stability λmax·η/2 (≤ 1: stable)", "λmax·η/2", "λmax·η/2"),
        ),
        Output(
            BATCH,
            "vector",
            display=Display("λmax by batch size (last: probe)", "λmax by batch", "λmax", "size "),
        ),
        Output(
            GRADIENT_OVERLAP,
            "scalar",
            unit="fraction",
            display=Display(
                "Gradient in the top-k Hessian eigenspace ‖Vₖᵀg‖²/‖g‖²", "Grad overlap", "share"
            ),
        ),
        Output(
            SUBSPACE_OVERLAP,
            "scalar",
            unit="fraction",
            display=Display(
                "Top-k eigenspace overlap between records", "Subspace overlap", "overlap"
            ),
        ),
    ),
    cost="heavy",
    every=50,
    reference=(
        "Cohen et al., Gradient Descent on Neural Networks Typically Occurs at the Edge of "
        "Stability (ICLR 2021); Cohen et al., Adaptive Gradient Methods at the Edge of Stability "
        "(2022); Wu, Ma & E, How SGD Selects the Global Minima (NeurIPS 2018); Gur-Ari, Roberts "
        "& Dyer, Gradient Descent Happens in a Tiny Subspace (2018); Meyer et al., Hutch++ (2021)"
    ),
)
