"""Orthogonalising and spectral optimizers: exact-SVD Muon, SWAN, SPECTRA, the symmetry-compatible
stack, and AuON as coded and as written.

They share one shape. A rule of this module updates the matrices whose role is "hidden" (kernels
with more dimensions are reshaped to out × rest), and `torch.optim.AdamW` updates everything else,
as Muon's authors leave embeddings, heads, biases and norms to AdamW. `LayerwiseWithAdamW` exposes
both as one optimizer, in the way `muon.MuonWithAdamW` does: its matrix groups carry
`group["algorithm"]` (the rule that reads them) and their live hyperparameters, the AdamW groups
are AdamW's own dicts, and the state is shared, so `state_dict` round-trips all of it. Groups
that a schema name other than their key's sets (the AdamW groups' `adamw_*`, the stack's
`embedding_lr` and `head_lr`) say so in their `live_hyper.SCHEMA_NAMES` tag.

Step size by shape (`adjust_lr_fn`, the convention of `torch.optim.Muon`, used alike by ortho-svd,
SWAN, the stack's hidden matrices and AuON): a direction D of an A × B matrix is applied as
W ← W(1 − ηλ) − η·s·D with s = √max(1, A/B) ("original", Keller Jordan), s = 0.2·√max(A, B)
("match_rms_adamw", Moonshot: an orthogonal D then has the RMS of an AdamW step) or s = 1 ("none").

SPECTRA is a wrapper instead: it builds any catalogue optimizer as its base and clips the spectrum
of the base's update of every matrix.

The matrix functions (`newton_schulz`, `orthogonalise_svd`, the spectral clips) are plain functions
so that other modules can import them.

Longer than most modules (about 780 lines) because its six optimizers share the layer-wise
optimizer, the matrix functions and the shape scaling above; a file per optimizer would import
most of this one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from descentlab.engine.live_hyper import SCHEMA_NAMES
from descentlab.engine.params import Param, defaults
from descentlab.engine.plugin import Needs, OptimizerPlugin, Role
from descentlab.plugins.optimizers.common import (
    ADAMW,
    ADAMW_NAMES,
    Closure,
    SharedGroupsOptimizer,
    adamw_kwargs,
    adamw_params,
    decay_param,
    evaluate,
    lr_param,
    momentum_param,
    split_hidden,
)

MUON_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
"""(a, b, c) of Muon's quintic Newton–Schulz map: five steps send every singular value of a
Frobenius-normalised matrix into roughly [0.68, 1.13], fast rather than exactly to 1."""

CUBIC_COEFFICIENTS = (1.5, -0.5, 0.0)
"""The classical cubic Newton–Schulz map X ← (3X − XXᵀX)/2: slower at first, but it converges to
the polar factor exactly (quadratically near it), which SWAN's whitening asks for."""

SHAPE_SCALES = ("original", "match_rms_adamw", "none")


# --------------------------------------------------------------------------------------------
# Matrix functions
# --------------------------------------------------------------------------------------------


def newton_schulz(
    G: Tensor,
    steps: int = 5,
    coefficients: tuple[float, float, float] = MUON_COEFFICIENTS,
    eps: float = 1e-7,
) -> Tensor:
    """Approximate polar factor UVᵀ of G = USVᵀ by a Newton–Schulz iteration, in G's dtype.

    X ← G/‖G‖_F (transposed when G has more rows than columns, so that XXᵀ is the small Gram),
    then `steps` times A = XXᵀ, X ← aX + (bA + cA²)X with (a, b, c) = `coefficients`. Each step
    maps every singular value σ of X to aσ + bσ³ + cσ⁵ and leaves the singular vectors alone.

    Args:
        G: a matrix.
        steps: iterations; more bring the singular values closer to the map's fixed point.
        coefficients: (a, b, c); `MUON_COEFFICIENTS` or `CUBIC_COEFFICIENTS`.
        eps: floor of ‖G‖_F, so that a zero matrix stays zero.
    Returns:
        A matrix of G's shape.
    """
    a, b, c = coefficients
    tall = G.shape[0] > G.shape[1]
    X = G.mT if tall else G
    X = X / X.norm().clamp_min(eps)
    for _ in range(steps):
        A = X @ X.mT
        X = a * X + (b * A + c * (A @ A)) @ X
    return X.mT if tall else X


def orthogonalise_svd(G: Tensor) -> Tensor:
    """The exact polar factor UVᵀ of G = USVᵀ (reduced SVD), on the range of G only.

    Singular values below max(A, B)·ε_dtype·σ₁ count as zero and their directions are dropped, so
    that a zero or rank-deficient matrix is not completed by arbitrary singular vectors.
    """
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    if S.numel() == 0:
        return torch.zeros_like(G)
    tol = max(G.shape) * torch.finfo(G.dtype).eps * S[0]
    keep = (tol < S).to(G.dtype)
    return (U * keep) @ Vh


def spectral_clip_hard(U: Tensor, c: float) -> Tensor:
    """P·min(S, c)·Qᵀ for U = PSQᵀ (SVD): singular values above c are cut to c."""
    P, S, Qh = torch.linalg.svd(U, full_matrices=False)
    return (P * S.clamp(max=c)) @ Qh


def spectral_clip_soft(U: Tensor, c: float) -> Tensor:
    """H_c(U) = U(I + UᵀU/c²)^(−1/2), i.e. every singular value σ ↦ σ/√(1 + σ²/c²).

    Computed exactly by an eigendecomposition of the Gram matrix on the smaller side
    (UᵀU = QΛQᵀ, then U·Q·diag(1/√(1 + λ/c²))·Qᵀ), which is cheap for the lab's matrices; the
    paper's Newton–Schulz form approximates the same function. c = 0 gives 0.
    """
    if c <= 0:
        return torch.zeros_like(U)
    wide = U.shape[0] < U.shape[1]
    X = U.mT if wide else U
    lam, Q = torch.linalg.eigh(X.mT @ X)
    factor = (1 + lam.clamp_min(0) / c**2).rsqrt()
    out = X @ (Q * factor) @ Q.mT
    return out.mT if wide else out


def standardise_rows(G: Tensor, eps: float = 1e-8) -> Tensor:
    """SWAN's GradNorm: (G − ḡ1ᵀ)/s with ḡ, s each row's mean and (population) std."""
    centred = G - G.mean(dim=1, keepdim=True)
    return centred / (centred.square().mean(dim=1, keepdim=True).sqrt() + eps)


def normalise_rows(M: Tensor, eps: float = 1e-8) -> Tensor:
    """Each row divided by its ℓ2 norm (plus eps): the row-norm update."""
    return M / (M.norm(dim=1, keepdim=True) + eps)


def right_polar(M: Tensor, eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """One-sided (right) polar factor P = M(MᵀM + εI)^(−1/2) and ν = ⟨M, P⟩ ≈ ‖M‖_* (nuclear).

    The inverse square root of the column Gram comes from its eigendecomposition; P is
    equivariant under row permutations on the left and any rotation on the right.
    """
    lam, Q = torch.linalg.eigh(M.mT @ M)
    P = M @ (Q * (lam.clamp_min(0) + eps).rsqrt()) @ Q.mT
    return P, (M * P).sum()


def shape_scale(shape: torch.Size | tuple[int, ...], rule: str) -> float:
    """s of the step W ← W − η·s·D for an A × B matrix, by `adjust_lr_fn` (module docstring)."""
    rows, cols = shape[0], shape[1]
    if rule == "original":
        return math.sqrt(max(1.0, rows / cols))
    if rule == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    if rule == "none":
        return 1.0
    raise ValueError(f"adjust_lr_fn {rule!r} is not one of {', '.join(SHAPE_SCALES)}")


# --------------------------------------------------------------------------------------------
# Rules: (2-D gradient, state, group) -> 2-D direction D, applied as W ← W(1 − ηλ) − η·D
# --------------------------------------------------------------------------------------------


def _momentum(G: Tensor, state: dict[str, Any], group: dict[str, Any], nesterov: bool) -> Tensor:
    """B ← μB + (1 − μ)G (torch's Muon), then (1 − μ)G + μB if `nesterov`, else B."""
    if "momentum_buffer" not in state:
        state["momentum_buffer"] = torch.zeros_like(G)
    buf = state["momentum_buffer"]
    buf.lerp_(G, 1 - group["momentum"])
    return G.lerp(buf, group["momentum"]) if nesterov else buf


def _ortho_svd(G: Tensor, state: dict[str, Any], group: dict[str, Any]) -> Tensor:
    M = _momentum(G, state, group, group["nesterov"])
    return shape_scale(G.shape, group["adjust_lr_fn"]) * orthogonalise_svd(M)


def _muon_ns(G: Tensor, state: dict[str, Any], group: dict[str, Any]) -> Tensor:
    M = _momentum(G, state, group, group["nesterov"])
    orthogonal = newton_schulz(M, group["ns_steps"], MUON_COEFFICIENTS)
    return shape_scale(G.shape, group["adjust_lr_fn"]) * orthogonal


def _swan(G: Tensor, state: dict[str, Any], group: dict[str, Any]) -> Tensor:
    whitened = newton_schulz(standardise_rows(G), group["ns_steps"], CUBIC_COEFFICIENTS)
    return shape_scale(G.shape, group["adjust_lr_fn"]) * whitened


def _cosh_rms(X: Tensor, gamma: float) -> Tensor:
    """r = √mean(cosh(γX)²) of a Frobenius-normalised X."""
    return torch.cosh(gamma * X).square().mean().sqrt()


def _auon(G: Tensor, state: dict[str, Any], group: dict[str, Any]) -> Tensor:
    M = _momentum(G, state, group, group["nesterov"])
    r = _cosh_rms(M / (M.norm() + 1e-7), group["gamma"])
    return shape_scale(G.shape, group["adjust_lr_fn"]) * M / (r + 1e-8)


def _auon_paper(G: Tensor, state: dict[str, Any], group: dict[str, Any]) -> Tensor:
    M = _momentum(G, state, group, group["nesterov"])
    unit = M / (M.norm() + 1e-7)
    r = _cosh_rms(unit, group["gamma"])
    return shape_scale(G.shape, group["adjust_lr_fn"]) * unit / (r + 1e-8)


def _row_norm(G: Tensor, state: dict[str, Any], group: dict[str, Any]) -> Tensor:
    return normalise_rows(_momentum(G, state, group, nesterov=False))


def _spectral(G: Tensor, state: dict[str, Any], group: dict[str, Any]) -> Tensor:
    polar, nu = right_polar(_momentum(G, state, group, nesterov=False))
    return nu * polar


def _hybrid(G: Tensor, state: dict[str, Any], group: dict[str, Any]) -> Tensor:
    polar, _ = right_polar(_momentum(G, state, group, nesterov=False))
    return normalise_rows(polar)


RULES: dict[str, Callable[[Tensor, dict[str, Any], dict[str, Any]], Tensor]] = {
    "ortho-svd": _ortho_svd,
    "newton-schulz": _muon_ns,
    "swan": _swan,
    "auon": _auon,
    "auon-paper": _auon_paper,
    "row-norm": _row_norm,
    "spectral": _spectral,
    "hybrid": _hybrid,
}
"""Every matrix rule by the name its groups carry in `group["algorithm"]`."""


# --------------------------------------------------------------------------------------------
# One optimizer over matrix rules and AdamW
# --------------------------------------------------------------------------------------------


class LayerwiseWithAdamW(SharedGroupsOptimizer):
    """Matrix groups stepped by `RULES[group["algorithm"]]`, the rest by `torch.optim.AdamW`.

    `matrix_groups` are group dicts with "params", "algorithm", "lr", "weight_decay" and whatever
    their rule reads; `adamw` holds AdamW's keyword arguments for `adamw_params`. The AdamW
    groups come last and are AdamW's own dicts (tagged "adamw"), shared as in `MuonWithAdamW`.
    """

    def __init__(
        self,
        matrix_groups: list[dict[str, Any]],
        adamw_params: list[nn.Parameter],
        adamw: dict[str, Any],
    ) -> None:
        for group in matrix_groups:
            if group["algorithm"] not in RULES:
                raise ValueError(f"unknown matrix rule {group['algorithm']!r}")
        inner: dict[str, torch.optim.Optimizer] = {}
        if adamw_params:
            group = {"params": adamw_params, "algorithm": ADAMW, SCHEMA_NAMES: dict(ADAMW_NAMES)}
            inner[ADAMW] = torch.optim.AdamW([group], **adamw)
        super().__init__([g for g in matrix_groups if g["params"]], inner)

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Tensor | None:
        """One step of every matrix rule and of AdamW on the gradients in `.grad`.

        A closure (none is needed) is evaluated once, before the steps.
        """
        loss = evaluate(closure)
        for group in self._own_groups():
            rule = RULES[group["algorithm"]]
            lr, decay = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                direction = rule(p.grad.reshape(p.shape[0], -1), self.state[p], group)
                if decay:
                    p.mul_(1 - lr * decay)
                p.add_(direction.view_as(p), alpha=-lr)
        self._step_inner()
        return loss


def _is_matrix(param: nn.Parameter) -> bool:
    return param.ndim >= 2


# --------------------------------------------------------------------------------------------
# Parameter schemas
# --------------------------------------------------------------------------------------------


def _lr(default: float, what: str = "of the matrix groups") -> Param:
    return lr_param(default, f"Learning rate η {what}.", low=1e-6)


def _momentum_param() -> Param:
    return momentum_param(0.95, "Momentum μ: B ← μB + (1 − μ)G.")


NESTEROV = Param("nesterov", "bool", True, "Use the Nesterov look-ahead (1 − μ)G + μB.")
WEIGHT_DECAY = decay_param("λ of the decoupled decay W ← W(1 − ηλ) of the matrix groups.")


def _ns_steps(default: int, help_text: str) -> Param:
    return Param("ns_steps", "int", default, help_text, low=1, high=99)


def _adjust(default: str) -> Param:
    return Param(
        "adjust_lr_fn",
        "choice",
        default,
        "Step scale by shape (A×B): original √max(1, A/B) (Keller Jordan), match_rms_adamw "
        "0.2·√max(A, B) (Moonshot), none 1.",
        choices=SHAPE_SCALES,
    )


ADAMW_PARAMS = adamw_params(
    "Learning rate of the AdamW groups (everything but the rule's matrices)."
)


def _gamma(default: float, help_text: str) -> Param:
    return Param("gamma", "float", default, help_text, low=1e-3, high=10.0, log=True)


# --------------------------------------------------------------------------------------------
# Builders: one rule on the hidden matrices, AdamW on the rest
# --------------------------------------------------------------------------------------------


def _single_rule(algorithm: str, schema: tuple[Param, ...]) -> Callable[..., LayerwiseWithAdamW]:
    """A `build` that puts the hidden matrices in one group of `algorithm`, the rest in AdamW."""
    own = [p.name for p in schema if not p.name.startswith("adamw_")]

    def build(
        named_params: list[tuple[str, nn.Parameter]],
        roles: dict[str, Role],
        hyper: dict[str, Any],
    ) -> LayerwiseWithAdamW:
        values = {**defaults(schema), **hyper}
        hidden, rest = split_hidden(named_params, roles, _is_matrix)
        group = {"params": hidden, "algorithm": algorithm} | {name: values[name] for name in own}
        return LayerwiseWithAdamW([group], rest, adamw_kwargs(values))

    return build


ORTHO_SVD_PARAMS = (
    _lr(0.02),
    _momentum_param(),
    NESTEROV,
    WEIGHT_DECAY,
    _adjust("original"),
    *ADAMW_PARAMS,
)

SWAN_PARAMS = (
    _lr(0.02),
    _ns_steps(
        10,
        "Cubic Newton–Schulz iterations of the whitening; each multiplies the smallest "
        "normalised singular value by about 1.5 until it nears 1.",
    ),
    WEIGHT_DECAY,
    _adjust("original"),
    *ADAMW_PARAMS,
)

AUON_PARAMS = (
    _lr(0.08),
    _momentum_param(),
    NESTEROV,
    WEIGHT_DECAY,
    _gamma(1.5, "γ inside cosh(γ·M/‖M‖_F) (1.5 in the public code)."),
    _adjust("none"),
    *ADAMW_PARAMS,
)

AUON_PAPER_PARAMS = (
    _lr(0.08),
    _momentum_param(),
    NESTEROV,
    WEIGHT_DECAY,
    _gamma(1.0, "γ inside cosh(γ·M/‖M‖_F); the written formula has none, i.e. 1."),
    _adjust("original"),
    *ADAMW_PARAMS,
)


# --------------------------------------------------------------------------------------------
# The symmetry-compatible stack
# --------------------------------------------------------------------------------------------

BLOCK_UPDATES = ("row-norm", "spectral", "hybrid")

SYMMETRIC_PARAMS = (
    _lr(0.02, "of the hidden matrices (orthogonalised momentum)"),
    Param(
        "embedding_lr",
        "float",
        5e-3,
        "Learning rate of the embedding tables.",
        low=1e-6,
        high=10.0,
        log=True,
    ),
    Param(
        "head_lr",
        "float",
        5e-3,
        "Learning rate of the output head.",
        low=1e-6,
        high=10.0,
        log=True,
    ),
    Param(
        "embedding_update",
        "choice",
        "row-norm",
        "Update of the embedding tables: row-norm (each vocabulary row of the momentum divided "
        "by its ℓ2 norm), spectral (one-sided: ν·M(MᵀM)^(−1/2), ν = ‖M‖_*) or hybrid (the "
        "one-sided polar factor, then row-norm).",
        choices=BLOCK_UPDATES,
    ),
    Param(
        "head_update",
        "choice",
        "row-norm",
        "Update of the output head, with the same choices as the embeddings.",
        choices=BLOCK_UPDATES,
    ),
    _momentum_param(),
    Param(
        "nesterov",
        "bool",
        True,
        "Nesterov look-ahead for the hidden matrices (embedding and head use the momentum itself).",
    ),
    _ns_steps(5, "Newton–Schulz iterations (Muon's coefficients) on the hidden matrices."),
    WEIGHT_DECAY,
    _adjust("original"),
    *ADAMW_PARAMS,
)


def build_symmetric(
    named_params: list[tuple[str, nn.Parameter]],
    roles: dict[str, Role],
    hyper: dict[str, Any],
) -> LayerwiseWithAdamW:
    """Hidden matrices → Newton–Schulz; embedding/head matrices → their chosen block update;
    biases, norms, other parameters (and non-matrix embeddings or heads) → AdamW."""
    values = {**defaults(SYMMETRIC_PARAMS), **hyper}
    shared = {"momentum": values["momentum"], "weight_decay": values["weight_decay"]}
    blocks: dict[str, dict[str, Any]] = {
        "hidden": {
            "algorithm": "newton-schulz",
            "lr": values["lr"],
            "nesterov": values["nesterov"],
            "ns_steps": values["ns_steps"],
            "adjust_lr_fn": values["adjust_lr_fn"],
        },
        "embedding": {
            "algorithm": values["embedding_update"],
            "lr": values["embedding_lr"],
            SCHEMA_NAMES: {"embedding_lr": "lr"},
        },
        "head": {
            "algorithm": values["head_update"],
            "lr": values["head_lr"],
            SCHEMA_NAMES: {"head_lr": "lr"},
        },
    }
    members: dict[str, list[nn.Parameter]] = {role: [] for role in blocks}
    rest: list[nn.Parameter] = []
    for name, param in named_params:
        role = roles.get(name, "other")
        (members[role] if role in blocks and _is_matrix(param) else rest).append(param)
    groups = [
        {"params": members[role], "role": role, **shared, **block} for role, block in blocks.items()
    ]
    return LayerwiseWithAdamW(groups, rest, adamw_kwargs(values))


# --------------------------------------------------------------------------------------------
# SPECTRA: spectral clipping of any base optimizer's update
# --------------------------------------------------------------------------------------------

_CLIPS: dict[str, Callable[[Tensor, float], Tensor]] = {
    "hard": spectral_clip_hard,
    "soft": spectral_clip_soft,
}


class SpectralClipping(torch.optim.Optimizer):
    """A base optimizer whose update of every matrix is spectrally clipped after its step.

    For each parameter with two or more dimensions (kernels as out × rest) the base's update
    U = θ_after − θ_before is replaced by clip(U, η·c): hard P·min(S, ηc)·Qᵀ or soft
    U(I + UᵀU/(ηc)²)^(−1/2), η the group's learning rate. Clipping at ηc is clipping the update
    per unit rate U/η at c, so c does not change with the rate, and η = 0 still gives no step.
    With pre-clipping, each raw matrix gradient is first clipped at `spectra_pre_clip_threshold`
    (re-evaluations by a closure included), before the base sees it.

    `param_groups` and `state` are the base's own objects, so a live edit of a group reaches the
    base, and `state_dict`/`load_state_dict` are the base's.
    """

    def __init__(self, base: torch.optim.Optimizer) -> None:
        self._base = base
        super().__init__(base.param_groups, defaults={})
        self._share()

    def _share(self) -> None:
        self.param_groups = self._base.param_groups
        self.state = self._base.state

    def _pre_clip(self) -> None:
        for group in self.param_groups:
            if not group["spectra_pre_clip"]:
                continue
            clip = _CLIPS[group["spectra_mode"]]
            for p in group["params"]:
                if p.grad is not None and _is_matrix(p):
                    g = p.grad.reshape(p.shape[0], -1)
                    p.grad.copy_(clip(g, group["spectra_pre_clip_threshold"]).view_as(p))

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Pre-clip, let the base step (with the closure, if given), then clip its updates."""
        self._pre_clip()
        before = {
            p: p.detach().clone()
            for group in self.param_groups
            for p in group["params"]
            if _is_matrix(p)
        }
        if closure is None:
            loss = self._base.step()
        else:

            def clipped_closure() -> Any:
                value = closure()
                with torch.no_grad():
                    self._pre_clip()
                return value

            loss = self._base.step(clipped_closure)
        for group in self.param_groups:
            clip, tau = _CLIPS[group["spectra_mode"]], group["spectra_clip"] * group["lr"]
            for p in group["params"]:
                if p not in before:
                    continue
                update = (p - before[p]).reshape(p.shape[0], -1)
                p.copy_(before[p] + clip(update, tau).view_as(p))
        return loss

    def state_dict(self) -> dict[str, Any]:
        return self._base.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load into the base (which may re-share its own inner optimizers), then share again."""
        self._base.load_state_dict(state_dict)
        self._share()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """The base's own `zero_grad` (a composite base may clear more than its groups)."""
        self._base.zero_grad(set_to_none=set_to_none)

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_base": self._base}


SPECTRA_PARAMS = (
    Param(
        "base",
        "str",
        "adamw",
        "Id of the catalogue optimizer whose update is clipped (its other hyperparameters keep "
        "their defaults).",
    ),
    lr_param(
        None, "Learning rate η given to the base; not set: the base's default.", nullable=True
    ),
    Param(
        "clip",
        "float",
        1.0,
        "c: the spectral norm of the update per unit learning rate is held to c (‖Δθ‖₂ ≤ ηc).",
        low=1e-6,
        high=1e6,
        log=True,
    ),
    Param(
        "mode",
        "choice",
        "soft",
        "hard: P·min(S, ηc)·Qᵀ by SVD; soft: σ ↦ σ/√(1 + σ²/(ηc)²), smooth and never above ηc.",
        choices=("hard", "soft"),
    ),
    Param("pre_clip", "bool", False, "Also clip each raw matrix gradient before the base sees it."),
    Param(
        "pre_clip_threshold",
        "float",
        1.0,
        "Spectral threshold of the pre-clipping of gradients (same mode as the update's).",
        low=1e-6,
        high=1e6,
        log=True,
    ),
)

_UNSUPPORTED_NEEDS = ("create_graph", "batch", "train_eval")


def build_spectra(
    named_params: list[tuple[str, nn.Parameter]],
    roles: dict[str, Role],
    hyper: dict[str, Any],
) -> SpectralClipping:
    """Build the base by id from the registry, tag its groups with the clipping settings."""
    from descentlab.engine.registry import plugins  # the registry loads this module

    values = {**defaults(SPECTRA_PARAMS), **hyper}
    catalogue = plugins("optimizers")
    base_id = values["base"]
    if base_id not in catalogue or base_id == "spectra":
        known = [pid for pid in catalogue if pid != "spectra"]
        raise ValueError(
            f"base {base_id!r} is not a catalogue optimizer to wrap; known ids include "
            f"{', '.join(known[:12])}, … ({len(known)} in all, `descentlab list optimizers`)"
        )
    base = catalogue[base_id]
    needs = [need for need in _UNSUPPORTED_NEEDS if getattr(base.needs, need)]
    if needs:
        raise ValueError(
            f"base {base_id!r} needs {', '.join(needs)}, which spectra does not pass on; "
            "choose a base that needs at most a closure and roles"
        )
    base_hyper = defaults(base.params)
    if values["lr"] is not None:
        if "lr" not in base_hyper:
            raise ValueError(f"base {base_id!r} has no 'lr' to forward the lr to")
        base_hyper["lr"] = values["lr"]
    inner = base.build(named_params, roles, base_hyper)
    for group in inner.param_groups:
        group["spectra_clip"] = values["clip"]
        group["spectra_mode"] = values["mode"]
        group["spectra_pre_clip"] = values["pre_clip"]
        group["spectra_pre_clip_threshold"] = values["pre_clip_threshold"]
    return SpectralClipping(inner)


# --------------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------------

_MUON_REF = (
    "Jordan et al., Muon: An optimizer for hidden layers in neural networks, 2024, "
    "https://kellerjordan.github.io/posts/muon/"
)
_AUON_REF = (
    "Maity, AuON: A Linear-time Alternative to Semi-Orthogonal Momentum Updates, "
    "arXiv:2509.24320, 2025"
)

PLUGINS: list[OptimizerPlugin] = [
    OptimizerPlugin(
        id="ortho-svd",
        title="Orthogonalised momentum by SVD (exact Muon)",
        summary="Muon with the exact polar factor: B ← μB + (1 − μ)G, M = (1 − μ)G + μB "
        "(Nesterov) or B, then W ← W(1 − ηλ) − η·s·UVᵀ where M = USVᵀ is a full SVD and s the "
        "shape scale (√max(1, A/B) by default). Directions with zero singular value are dropped, "
        "so a zero gradient gives no step. It is the ground truth against which Newton–Schulz "
        "methods (muon, the symmetric stack, swan) can be measured: their singular values "
        "scatter around 1, these are exactly 1. Hidden matrices only (kernels reshaped to "
        "out × rest); embeddings, head, biases, norms and role-less parameters use AdamW.",
        params=ORTHO_SVD_PARAMS,
        build=_single_rule("ortho-svd", ORTHO_SVD_PARAMS),
        family="orthogonal",
        reference=_MUON_REF + "; Bernstein & Newhouse, Old Optimizer, New Norm: An Anthology, "
        "arXiv:2409.20325, 2024.",
        needs=Needs(roles=True),
    ),
    OptimizerPlugin(
        id="swan",
        title="SWAN (SGD with normalisation and whitening)",
        summary="Stateless on the hidden matrices: each row of the gradient is standardised, "
        "G̃ = (G − ḡ1ᵀ)/s (row mean and std over the inputs), then whitened, X = (G̃G̃ᵀ)^(−1/2)G̃, "
        "by the cubic Newton–Schulz iteration X ← (3X − XXᵀX)/2 (the coupled Newton–Schulz "
        "inverse square root written on X; for tall matrices it gives the polar factor, the "
        "pseudo-inverse whitening). SGD step W ← W − η·s·X with the module's shape scale s; the "
        "paper's optional rescaling to ‖G̃‖_F is not applied. No optimizer state for these "
        "matrices. As in the paper, which keeps Adam for parameters SWAN does not process, "
        "embeddings, the head, biases and norms use AdamW (the only state kept).",
        params=SWAN_PARAMS,
        build=_single_rule("swan", SWAN_PARAMS),
        family="orthogonal",
        reference="Ma, Gong, Scetbon & Meeds, SWAN: SGD with Normalization and Whitening Enables "
        "Stateless LLM Training, ICML 2025, arXiv:2412.13148.",
        needs=Needs(roles=True),
    ),
    OptimizerPlugin(
        id="spectra",
        title="SPECTRA (spectral clipping of any optimizer)",
        summary="Wraps a catalogue optimizer (base, AdamW by default) and clips the spectrum of "
        "its update of every matrix: U = θ_after − θ_before = PSQᵀ becomes P·min(S, ηc)·Qᵀ "
        "(hard, by SVD) or U(I + UᵀU/(ηc)²)^(−1/2), σ ↦ σ/√(1 + σ²/(ηc)²) (soft, exact through "
        "an eigendecomposition of the small Gram matrix; the paper approximates it by "
        "Newton–Schulz). Clipping at ηc keeps ‖U/η‖₂ ≤ c whatever the rate. Optional "
        "pre-clipping of the raw gradient against spectral spikes. Vectors pass unclipped. "
        "The wrapper's param_groups are the base's own dicts (with the clip settings added), "
        "so live edits reach the base; closures are passed through, bases that need a graph, "
        "the batch or train/eval switching are refused. A base that remembers its own steps "
        "(L-BFGS's curvature pairs) is told of a step that clipping then changed, and can "
        "misbehave unless c is large.",
        params=SPECTRA_PARAMS,
        build=build_spectra,
        family="wrapper",
        reference="Enhancing LLM Training via Spectral Clipping (SPECTRA), 2026 (seed abstract: "
        "post-spectral clipping as a composite Frank–Wolfe method, soft clipping via "
        "Newton–Schulz).",
        needs=Needs(roles=True, closure=True),
    ),
    OptimizerPlugin(
        id="symmetric",
        title="Symmetry-compatible layerwise stack",
        summary="Each block's update is equivariant under that block's symmetry group. Hidden "
        "matrices (bi-orthogonal symmetry): momentum orthogonalised by Newton–Schulz, as Muon. "
        "Embedding tables and the output head (rows permute, columns rotate): row-norm (each "
        "row of the momentum divided by its ℓ2 norm), one-sided spectral ν·M(MᵀM)^(−1/2) with "
        "ν = ⟨M, M(MᵀM)^(−1/2)⟩ = ‖M‖_* (the authors' right polar gradient) or the hybrid, "
        "the one-sided polar factor followed by row-norm (the authors' code, 'polar then row'); "
        "embeddings and head use the plain momentum B, hidden matrices the Nesterov mix. "
        "Biases, norms and other parameters use AdamW. The paper's SwiGLU row-/column-aware "
        "and MoE-router (centred row-norm, left-spectral) updates are not offered: the lab's "
        "tasks have no role for those blocks.",
        params=SYMMETRIC_PARAMS,
        build=build_symmetric,
        family="orthogonal",
        reference="Lau & Su, Symmetry-Compatible Principle for Optimizer Design: Embeddings, "
        "LM Heads, SwiGLU MLPs, and MoE Routers, arXiv:2605.18106, 2026; code "
        "github.com/timlautk/equivariant_optimizers.",
        needs=Needs(roles=True),
    ),
    OptimizerPlugin(
        id="auon",
        title="AuON (as publicly coded)",
        summary="The public code's rule on hidden matrices: B ← μB + (1 − μ)G, "
        "M = (1 − μ)G + μB, r = √mean(cosh(γM/‖M‖_F)²), W ← W(1 − ηλ) − η·M/(r + 1e-8), "
        "γ = 1.5, no shape scale by default. Since the entries of M/‖M‖_F are about 1/√(AB), "
        "r ≈ √(1 + γ²/(AB)) ≈ 1: the coded rule is close to Nesterov SGD, unlike the paper's "
        "unit-norm update (auon-paper). The rest uses AdamW.",
        params=AUON_PARAMS,
        build=_single_rule("auon", AUON_PARAMS),
        family="orthogonal",
        reference=_AUON_REF + "; code github.com/ryyzn9/AuON (auon/optimizer.py).",
        needs=Needs(roles=True),
    ),
    OptimizerPlugin(
        id="auon-paper",
        title="AuON (unit-norm, as written)",
        summary="AuON with the Frobenius-normalised momentum as the update: "
        "M as in auon, X = M/(‖M‖_F + 1e-7), r = √mean(cosh(γX)²), "
        "W ← W(1 − ηλ) − η·s·X/(r + 1e-8) with s = √max(1, A/B), γ = 1. Every step then has "
        "‖ΔW‖_F ≤ η·s, inside a spectral-norm trust region, as the paper's abstract describes. "
        "Source: the paper's own text could not be consulted; this follows the formula of a "
        "third-party write-up of the paper (junaidaliop.github.io/zij/math/auon), which agrees "
        "with the abstract's unit-norm claim. The rest uses AdamW.",
        params=AUON_PAPER_PARAMS,
        build=_single_rule("auon-paper", AUON_PAPER_PARAMS),
        family="orthogonal",
        reference=_AUON_REF + ".",
        needs=Needs(roles=True),
    ),
]
