"""Every optimizer of `torch.optim` as a plugin, its schema read from the constructor's signature.

Each constructor argument that is a hyperparameter becomes a `Param` of the matching type (numbers,
booleans, tuples of floats such as Adam's betas) with torch's default, so the schema cannot drift
from the code that reads it. What a signature cannot say is curated here: title, family, summary,
paper, ranges, log scales, help, and the few defaults the lab changes on purpose (SGD's lr,
L-BFGS's iterations and evaluations per step). Arguments that pick an implementation rather than
an algorithm (`foreach`, `fused`, `capturable`, `differentiable`) are not exposed, nor is
`maximize`: every task here is a loss to minimise. Muon, which splits the parameters by role,
lives in `muon.py`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from descentlab.engine.params import Param, defaults
from descentlab.engine.plugin import CONFORMANCE_CHECKS, Needs, OptimizerPlugin, Role

NOT_HYPERPARAMETERS = frozenset(
    {"params", "foreach", "fused", "capturable", "differentiable", "maximize"}
)
"""Constructor arguments that are not exposed: implementation switches, and `maximize`."""

_HELP: dict[str, str] = {
    "lr": "Learning rate η.",
    "betas": "(β₁, β₂): decay rates of the running averages of the gradient and its square.",
    "eps": "ε added to the denominator, so that tiny second moments cannot blow up a step.",
    "weight_decay": "λ of the L2 penalty: λθ is added to the gradient before the update.",
    "amsgrad": "Divide by the running maximum of the second moment (AMSGrad), so that the "
    "per-coordinate step size never grows.",
    "decoupled_weight_decay": "Decay the weights directly, θ ← θ(1 − ηλ), as AdamW does, instead "
    "of adding λθ to the gradient (where the adaptive denominator would rescale it).",
    "momentum": "Momentum factor μ.",
}
"""Help shared by every optimizer with an argument of that name; entries may override it."""

_RANGES: dict[str, dict[str, Any]] = {
    "lr": {"low": 1e-8, "high": 10.0, "log": True},
    "eps": {"low": 1e-16, "high": 1.0, "log": True},
    # Log scale with 0 allowed: 0 (the usual default) means "off", the GUI shows it as such.
    "weight_decay": {"low": 0.0, "high": 10.0, "log": True},
    # β = 1 would divide by zero in the bias corrections.
    "betas": {"low": 0.0, "high": 0.99999},
    "momentum": {"low": 0.0, "high": 0.9999},
}
"""Ranges shared by every optimizer with an argument of that name."""


@dataclass(frozen=True)
class _Entry:
    """What the lab adds to one `torch.optim` class: its descriptor and any argument overrides.

    `overrides` maps an argument name to `Param` fields that replace the derived ones (help,
    ranges, a different default). `replaces` maps an argument the signature cannot type (a tuple
    with None in it) to the parameters that stand for it, and `adapt` turns the validated
    hyperparameters back into the constructor's keyword arguments.
    """

    cls: str
    id: str
    title: str
    family: str
    summary: str
    reference: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    replaces: dict[str, tuple[Param, ...]] = field(default_factory=dict)
    adapt: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    needs: Needs = field(default_factory=Needs)
    exempt: dict[str, str] = field(default_factory=dict)


def _adafactor_kwargs(hyper: dict[str, Any]) -> dict[str, Any]:
    """Adafactor takes its two epsilons as one tuple, whose first entry may be None."""
    kwargs = dict(hyper)
    kwargs["eps"] = (kwargs.pop("eps1"), kwargs.pop("eps2"))
    return kwargs


def _lbfgs_kwargs(hyper: dict[str, Any]) -> dict[str, Any]:
    """TOML has no null, so "no line search" is spelled "none" in the schema."""
    kwargs = dict(hyper)
    if kwargs["line_search_fn"] == "none":
        kwargs["line_search_fn"] = None
    return kwargs


_ADAPTIVE_DENOMINATOR = "θ ← θ − η·m̂/(√v̂ + ε)"

_ENTRIES: tuple[_Entry, ...] = (
    _Entry(
        cls="SGD",
        id="sgd",
        title="SGD (momentum, Nesterov)",
        family="sgd",
        summary="Stochastic gradient descent, θ ← θ − η·g. With momentum μ torch keeps a velocity "
        "v ← μv + (1 − dampening)·g and steps θ ← θ − η·v (Nesterov: θ ← θ − η·(g + μv)). "
        "Plain SGD (μ = 0) on the full batch is gradient descent, the reference for stability "
        "plots: the sharpness λ_max rises to about 2/η and hovers there (edge of stability).",
        reference="Robbins & Monro, A Stochastic Approximation Method, Ann. Math. Statist. 22(3), "
        "1951; momentum: Polyak, 1964; Nesterov momentum in the form of Sutskever et al., On the "
        "importance of initialization and momentum in deep learning, ICML 2013.",
        overrides={
            # torch's 1e-3 barely moves plain SGD on the lab's small tasks.
            "lr": {"default": 0.1},
            "dampening": {
                "help": "Fraction of the gradient left out of the velocity: "
                "v ← μv + (1 − dampening)·g.",
                "low": 0.0,
                "high": 1.0,
            },
            "nesterov": {
                "help": "Nesterov momentum: step along g + μv (needs μ > 0 and no dampening)."
            },
        },
    ),
    _Entry(
        cls="ASGD",
        id="asgd",
        title="Averaged SGD",
        family="sgd",
        summary="SGD with a decaying step η_t = η/(1 + λ·η·t)^α, θ ← θ(1 − λη_t) − η_t·g, and "
        "Polyak–Ruppert averaging of the iterates from step t0 on. torch keeps the average in "
        "the optimizer's state (`ax`): the model's weights, and so every loss the lab records, "
        "are the plain SGD iterates, not their average.",
        reference="Polyak & Juditsky, Acceleration of Stochastic Approximation by Averaging, "
        "SIAM J. Control Optim. 30(4), 1992.",
        overrides={
            "lambd": {
                "help": "λ: decay term of the step size and of the weights.",
                "low": 0.0,
                "high": 1.0,
                "log": True,
            },
            "alpha": {"help": "Power α of the step-size decay.", "low": 0.0, "high": 1.0},
            "t0": {
                "help": "Step from which the iterates are averaged.",
                "low": 0.0,
                "high": 1e9,
                "log": True,
            },
        },
        exempt={
            "live-lr": "torch's ASGD steps with the rate η_t it computed at the end of the "
            "previous step from that step's lr, so an lr change takes effect one step late."
        },
    ),
    _Entry(
        cls="Adam",
        id="adam",
        title="Adam",
        family="adaptive",
        summary="Adaptive moment estimation: m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g², "
        f"{_ADAPTIVE_DENOMINATOR} with bias-corrected m̂, v̂. Each coordinate's step is about η "
        "whatever the gradient's scale. weight_decay is an L2 penalty added to g unless "
        "decoupled_weight_decay is set, which makes it AdamW; amsgrad divides by the running "
        "maximum of v̂ instead. Its stability threshold on the preconditioned sharpness is "
        "(2 + 2β₁)/((1 − β₁)η), 38/η for β₁ = 0.9.",
        reference="Kingma & Ba, Adam: A Method for Stochastic Optimization, ICLR 2015; AMSGrad: "
        "Reddi, Kale & Kumar, On the Convergence of Adam and Beyond, ICLR 2018.",
    ),
    _Entry(
        cls="AdamW",
        id="adamw",
        title="AdamW",
        family="adaptive",
        summary="Adam with decoupled weight decay: the weights shrink as θ ← θ(1 − ηλ) before the "
        f"Adam step {_ADAPTIVE_DENOMINATOR}, so the decay is not rescaled by the adaptive "
        "denominator as an L2 penalty in the gradient would be. The default optimizer of "
        "transformer training.",
        reference="Loshchilov & Hutter, Decoupled Weight Decay Regularization, ICLR 2019.",
        overrides={
            "weight_decay": {"help": "λ of the decoupled decay θ ← θ(1 − ηλ)."},
        },
    ),
    _Entry(
        cls="Adamax",
        id="adamax",
        title="Adamax",
        family="adaptive",
        summary="Adam's infinity-norm variant: the second moment is replaced by an exponentially "
        "weighted maximum, u ← max(β₂u, |g| + ε), and θ ← θ − η/(1 − β₁ᵗ)·m/u. No bias "
        "correction of u is needed, and the step is bounded by η.",
        reference="Kingma & Ba, Adam: A Method for Stochastic Optimization, ICLR 2015, §7.1.",
    ),
    _Entry(
        cls="NAdam",
        id="nadam",
        title="NAdam",
        family="adaptive",
        summary="Adam with Nesterov momentum: the step uses the look-ahead mix of the next "
        "momentum and the current gradient, μ_{t+1}·m̂ + (1 − μ_t)·ĝ, over √v̂ + ε, with a "
        "momentum schedule μ_t = β₁(1 − ½·0.96^(t·ψ)) that warms β₁ up (ψ = momentum_decay).",
        reference="Dozat, Incorporating Nesterov Momentum into Adam, ICLR 2016 Workshop.",
        overrides={
            "momentum_decay": {
                "help": "ψ of the momentum schedule μ_t = β₁(1 − ½·0.96^(t·ψ)).",
                "low": 0.0,
                "high": 1.0,
            },
        },
    ),
    _Entry(
        cls="RAdam",
        id="radam",
        title="RAdam",
        family="adaptive",
        summary="Rectified Adam: in the first steps the variance of the adaptive learning rate "
        "is too large to trust (ρ_t ≤ 5), so RAdam takes bias-corrected momentum-SGD steps; "
        "afterwards Adam steps multiplied by the rectification r_t, which grows to 1. A warm-up "
        "derived rather than scheduled.",
        reference="Liu et al., On the Variance of the Adaptive Learning Rate and Beyond, "
        "ICLR 2020.",
    ),
    _Entry(
        cls="Adagrad",
        id="adagrad",
        title="Adagrad",
        family="adaptive",
        summary="Per-coordinate steps θ ← θ − η·g/(√Σg² + ε) over the sum of all past squared "
        "gradients. The sum never decays, so step sizes only shrink: good for sparse features "
        "and convex problems, too slow late in deep-network training (which RMSprop and Adam "
        "fix with running averages).",
        reference="Duchi, Hazan & Singer, Adaptive Subgradient Methods for Online Learning and "
        "Stochastic Optimization, JMLR 12, 2011.",
        overrides={
            "lr_decay": {
                "help": "η is divided by 1 + (t − 1)·lr_decay.",
                "low": 0.0,
                "high": 1.0,
            },
            "initial_accumulator_value": {
                "help": "Starting value of the sum of squared gradients (damps the first steps).",
                "low": 0.0,
                "high": 10.0,
            },
        },
    ),
    _Entry(
        cls="Adadelta",
        id="adadelta",
        title="Adadelta",
        family="adaptive",
        summary="v ← ρv + (1 − ρ)g², Δ = √(u + ε)/√(v + ε)·g, u ← ρu + (1 − ρ)Δ², θ ← θ − η·Δ: "
        "the step is the ratio of the RMS of past updates to the RMS of gradients, so it has "
        "the units of θ and was meant to need no learning rate (hence η = 1). Slow to start, "
        "since the first updates are of size about √ε.",
        reference="Zeiler, ADADELTA: An Adaptive Learning Rate Method, arXiv:1212.5701, 2012.",
        overrides={
            "lr": {"help": "Scale η of the update (1 in the paper)."},
            "rho": {
                "help": "ρ: decay rate of the running averages of g² and Δ².",
                "low": 0.0,
                "high": 1.0,
            },
        },
    ),
    _Entry(
        cls="RMSprop",
        id="rmsprop",
        title="RMSprop",
        family="adaptive",
        summary="Divide the gradient by a running RMS: v ← αv + (1 − α)g², θ ← θ − η·g/(√v + ε). "
        "centered subtracts the squared running mean of g (a variance instead of a second "
        "moment); momentum adds heavy-ball momentum on the scaled step.",
        reference="Tieleman & Hinton, Lecture 6.5, COURSERA: Neural Networks for Machine "
        "Learning, 2012; centered: Graves, Generating Sequences With Recurrent Neural Networks, "
        "arXiv:1308.0850, 2013.",
        overrides={
            "alpha": {
                "help": "α: decay rate of the running average of g².",
                "low": 0.0,
                "high": 0.9999,
            },
            "centered": {"help": "Normalise by the running variance of g instead of E[g²]."},
        },
    ),
    _Entry(
        cls="Rprop",
        id="rprop",
        exempt={
            "live-lr": "Rprop's lr is only the initial per-coordinate step size; later steps grow "
            "or shrink from the previous ones by the signs of the gradient, so changing lr after "
            "the first step has no effect."
        },
        title="Rprop",
        family="sign",
        summary="Resilient backpropagation uses only the sign of each gradient coordinate. Each "
        "coordinate has its own step size, multiplied by etaplus while the sign holds and by "
        "etaminus when it flips (that coordinate then skips one update), clipped to "
        "step_sizes; lr is the initial step size. Made for full-batch training: mini-batch "
        "noise flips signs at random.",
        reference="Riedmiller & Braun, A direct adaptive method for faster backpropagation "
        "learning: the RPROP algorithm, IEEE ICNN 1993.",
        overrides={
            "lr": {"help": "Initial per-coordinate step size."},
            "etas": {
                "help": "(etaminus, etaplus): step-size factors on a sign flip (< 1) and while "
                "the sign holds (> 1).",
                "low": 0.0,
                "high": 10.0,
            },
            "step_sizes": {
                "help": "(minimal, maximal) per-coordinate step size.",
                "low": 0.0,
                "high": 1e3,
            },
        },
    ),
    _Entry(
        cls="LBFGS",
        id="lbfgs",
        exempt={
            "live-lr": "with lr = 0 torch's strong-Wolfe line search interpolates between two "
            "trial points at the same place and divides by zero; any lr > 0 is read live."
        },
        title="L-BFGS",
        family="second-order",
        summary="Limited-memory BFGS: an inverse-Hessian approximation built from the last "
        "history_size pairs of parameter and gradient differences gives a quasi-Newton "
        "direction, searched along with a strong-Wolfe line search (by default here). It "
        "re-evaluates the loss through a closure: each lab step runs up to max_iter iterations "
        "(1 by default here, so that a step is one quasi-Newton iteration; torch's default is "
        "20) and up to max_eval loss evaluations, line-search trials included. Meant for the "
        "full batch: mini-batch noise corrupts the curvature pairs, and it can stall.",
        reference="Liu & Nocedal, On the limited memory BFGS method for large scale "
        "optimization, Math. Programming 45, 1989.",
        overrides={
            "lr": {"help": "Step length before the line search (the full step without one)."},
            "max_iter": {
                "default": 1,
                "help": "L-BFGS iterations per lab step.",
                "low": 1,
                "high": 1000,
            },
            # torch's default, 1.25 × max_iter, also bounds the line search's trials: with
            # max_iter = 1 it would leave none, and the first step would be refused for good.
            "max_eval": {
                "default": 25,
                "nullable": False,
                "help": "Most loss evaluations per lab step, line-search trials included.",
                "low": 2,
                "high": 10_000,
            },
            "tolerance_grad": {
                "help": "A step stops when the largest gradient entry is below this.",
                "low": 0.0,
                "high": 1.0,
                "log": True,
            },
            "tolerance_change": {
                "help": "A step stops when the loss or the parameters change less than this.",
                "low": 0.0,
                "high": 1.0,
                "log": True,
            },
            "history_size": {
                "help": "Number of curvature pairs kept.",
                "low": 1,
                "high": 1000,
            },
        },
        replaces={
            "line_search_fn": (
                Param(
                    "line_search_fn",
                    "choice",
                    "strong_wolfe",
                    "Line search along the quasi-Newton direction; none takes the step lr·d "
                    "as is and can diverge.",
                    choices=("strong_wolfe", "none"),
                ),
            ),
        },
        adapt=_lbfgs_kwargs,
        needs=Needs(closure=True),
    ),
    _Entry(
        cls="Adafactor",
        id="adafactor",
        title="Adafactor",
        family="adaptive",
        summary="Adam-like second moments stored factored for matrices (row and column sums, "
        "O(m + n) memory instead of O(mn)), no first moment, β₂ rising as 1 − t^beta2_decay, "
        "updates clipped to RMS d, and a relative step: each step moves θ by about "
        "min(η, 1/√t)·max(ε₂, RMS(θ)). torch's version uses lr as the cap of the relative "
        "step and places ε₁ differently from the paper.",
        reference="Shazeer & Stern, Adafactor: Adaptive Learning Rates with Sublinear Memory "
        "Cost, ICML 2018.",
        overrides={
            "lr": {"help": "Cap of the relative step size min(η, 1/√t), and scale of the decay."},
            "beta2_decay": {
                "help": "τ of the second-moment decay rate β₂ = 1 − t^τ.",
                "low": -1.0,
                "high": 0.0,
            },
            "d": {"help": "Clipping threshold on the update's RMS.", "low": 0.0, "high": 100.0},
            "weight_decay": {"help": "λ of the decoupled decay θ ← θ(1 − ηλ)."},
        },
        replaces={
            "eps": (
                Param(
                    "eps1",
                    "float",
                    None,
                    "ε₁ in the denominator of the update; unset: the machine epsilon of the "
                    "parameters' dtype.",
                    low=0.0,
                    high=1.0,
                    log=True,
                    nullable=True,
                ),
                Param(
                    "eps2",
                    "float",
                    1e-3,
                    "ε₂: floor of RMS(θ) in the relative step, so that zero weights still move.",
                    low=0.0,
                    high=1.0,
                    log=True,
                ),
            ),
        },
        adapt=_adafactor_kwargs,
    ),
    _Entry(
        cls="SparseAdam",
        id="sparse-adam",
        title="SparseAdam (needs sparse gradients)",
        family="adaptive",
        summary="Lazy Adam for gradients in sparse layout, as nn.Embedding(sparse=True) produces: "
        "moments and weights are updated only where the gradient has entries. It cannot run "
        "in this lab: every task produces dense gradients, which torch.optim.SparseAdam "
        "rejects. On dense gradients its rule is Adam's (up to where ε enters): use adam.",
        reference="Kingma & Ba, Adam: A Method for Stochastic Optimization, ICLR 2015 (lazy "
        "variant of torch.optim).",
        exempt={
            check: "it refuses to build: torch.optim.SparseAdam accepts only sparse gradients, "
            "and every task here produces dense ones."
            for check in CONFORMANCE_CHECKS
        },
    ),
)


def _is_int(annotation: Any) -> bool:
    """Whether an annotation says int (`int`, `int | None`) rather than float."""
    if annotation is int:
        return True
    args = typing.get_args(annotation)
    return int in args and float not in args


def _derive(arg: inspect.Parameter) -> Param | None:
    """The parameter a constructor argument implies, or None where its type cannot be told."""
    default = arg.default
    name = arg.name
    help_text = _HELP.get(name, f"`{name}` of the torch optimizer.")
    if isinstance(default, bool):
        return Param(name, "bool", default, help_text)
    if isinstance(default, tuple):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in default):
            return None
        values = tuple(float(v) for v in default)
        return Param(name, "floats", values, help_text, length=len(default))
    if isinstance(default, (int, float)):
        if _is_int(arg.annotation):
            return Param(name, "int", int(default), help_text)
        return Param(name, "float", float(default), help_text)
    if default is None and (_is_int(arg.annotation) or float in typing.get_args(arg.annotation)):
        if _is_int(arg.annotation):
            return Param(name, "int", None, help_text, nullable=True)
        return Param(name, "float", None, help_text, nullable=True)
    return None


def schema(cls: type[torch.optim.Optimizer], entry: _Entry) -> tuple[Param, ...]:
    """The parameters of `cls` in signature order: derived, then ranged and curated by `entry`.

    Arguments whose type cannot be derived and that `entry` does not replace are left out, so
    torch keeps its default for them (tests check that none of today's arguments is).
    """
    params: list[Param] = []
    for arg in inspect.signature(cls).parameters.values():
        if arg.name in NOT_HYPERPARAMETERS:
            continue
        if arg.name in entry.replaces:
            params.extend(entry.replaces[arg.name])
            continue
        derived = _derive(arg)
        if derived is None:
            continue
        changes = {**_RANGES.get(arg.name, {}), **entry.overrides.get(arg.name, {})}
        params.append(dataclasses.replace(derived, **changes))
    return tuple(params)


def _build(
    cls: type[torch.optim.Optimizer],
    params: tuple[Param, ...],
    adapt: Callable[[dict[str, Any]], dict[str, Any]] | None,
    named_params: list[tuple[str, nn.Parameter]],
    roles: dict[str, Role],
    hyper: dict[str, Any],
) -> torch.optim.Optimizer:
    """`cls` over all parameters in one group, with every hyperparameter in that group.

    Unset hyperparameters take the schema's defaults; lists (validated TOML arrays) become the
    tuples torch documents.
    """
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in hyper.items()}
    kwargs = {**defaults(params), **kwargs}
    if adapt is not None:
        kwargs = adapt(kwargs)
    optimizer = cls([p for _, p in named_params], **kwargs)
    _keep_scalar_state_dtypes(optimizer)
    return optimizer


def _keep_scalar_state_dtypes(optimizer: torch.optim.Optimizer) -> None:
    """Make `load_state_dict` keep the saved dtype of 0-dim state tensors (pytorch#75224).

    torch casts every loaded floating-point state tensor to its parameter's dtype, `step` alone
    excepted; but NAdam's `mu_product` (and ASGD's `eta`, `mu`) are scalars kept in the default
    dtype while training. In a float64 run the cast changes NAdam's arithmetic, and a run
    resumed or forked from a state dict would drift from the original.
    """
    saved: dict[tuple[int, str], torch.dtype] = {}

    def remember(_: torch.optim.Optimizer, state_dict: dict[str, Any]) -> None:
        saved.clear()
        for index, state in state_dict["state"].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.ndim == 0:
                    saved[index, key] = value.dtype

    def restore(opt: torch.optim.Optimizer) -> None:
        params = [p for group in opt.param_groups for p in group["params"]]
        for (index, key), dtype in saved.items():
            state = opt.state[params[index]]
            state[key] = state[key].to(dtype)

    optimizer.register_load_state_dict_pre_hook(remember)
    optimizer.register_load_state_dict_post_hook(restore)


def _refuse_dense(
    named_params: list[tuple[str, nn.Parameter]],
    roles: dict[str, Role],
    hyper: dict[str, Any],
) -> torch.optim.Optimizer:
    """SparseAdam would fail at its first step; say why at build time instead."""
    raise ValueError(
        "sparse-adam cannot run here: torch.optim.SparseAdam only accepts gradients in sparse "
        "layout (from modules such as nn.Embedding(sparse=True)), and every task in Descent Lab "
        "produces dense gradients. On dense gradients its update is Adam's: use 'adam' instead."
    )


def _plugin(entry: _Entry) -> OptimizerPlugin | None:
    cls = getattr(torch.optim, entry.cls, None)
    if cls is None:  # an older torch (the project allows >= 2.4) may lack e.g. Adafactor
        return None
    params = schema(cls, entry)
    build = (
        _refuse_dense
        if entry.cls == "SparseAdam"
        else functools.partial(_build, cls, params, entry.adapt)
    )
    return OptimizerPlugin(
        id=entry.id,
        title=entry.title,
        summary=entry.summary,
        params=params,
        build=build,
        family=entry.family,
        reference=entry.reference,
        needs=entry.needs,
        exempt=entry.exempt,
    )


PLUGINS: list[OptimizerPlugin] = [p for p in map(_plugin, _ENTRIES) if p is not None]
"""One plugin per optimizer class of the installed torch (Muon: see `muon.py`)."""
