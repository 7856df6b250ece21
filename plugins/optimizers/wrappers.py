"""Wrappers around any catalogue optimizer: gradient noise, Lookahead, Cautious and EMA.

A wrapper is a composition, not a copy (optax, HeavyBall): it builds the base optimizer named by
its `base` hyperparameter through the registry, with the same parameters and roles, and changes
what goes into or comes out of the base's step. Three things make it one optimizer to the rest of
the lab:

- its `param_groups` are the base's group dicts themselves (as in `muon.py`), with the wrapper's
  live hyperparameters added to them, so a live edit of `lr` is what the base reads at its next
  step, and its `state` is the base's state, so diagnostics that read Adam's second moments find
  them;
- `state_dict()` holds the base's own state dict (whatever its format), the base's id and the
  wrapper's state, and `load_state_dict` restores all three and shares the new groups again;
- needs are static: the wrappers declare a closure, roles and the batch, and forward each to the
  base (the closure to `base.step`, `set_batch` when the base needs it). Bases that need
  `create_graph` (which would make every wrapped run keep its backward graph) or train/eval
  switching (whose two points leave it ambiguous what a wrapper should average or compare) are
  refused with a message saying so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn

from descentlab.engine import registry
from descentlab.engine.compat import tomllib
from descentlab.engine.params import Param, Problems, check_params, check_value, defaults
from descentlab.engine.plugin import Needs, OptimizerPlugin, Role
from descentlab.plugins.optimizers.common import (
    gaussian,
    generator_state,
    lr_param,
    restore_generator,
    seed_param,
)

Closure = Callable[[], Tensor]

UNSUPPORTED_NEEDS = ("create_graph", "train_eval")
"""Needs of a base optimizer that the wrappers refuse (see the module docstring)."""


class Wrapper(torch.optim.Optimizer):
    """A base optimizer seen through a wrapper; subclasses define `step`.

    `inner` is the object whose `step`/`state_dict` drive the base: the base itself, or a
    library wrapper around it (Lookahead). `own` is the wrapper's state: numbers, tensors, and
    per-parameter lists of tensors in the order of `self.params`.
    """

    def __init__(
        self,
        base: torch.optim.Optimizer,
        base_id: str,
        hyper: dict[str, Any],
        forward_batch: bool,
    ) -> None:
        self.base = base
        self.inner: torch.optim.Optimizer = base
        self.base_id = base_id
        self.forward_batch = forward_batch
        # Adds the wrapper's live hyperparameters to the base's group dicts (same objects).
        super().__init__(base.param_groups, hyper)
        self.params: list[nn.Parameter] = [p for g in base.param_groups for p in g["params"]]
        self.own: dict[str, Any] = {}
        self._share()

    def _share(self) -> None:
        """Point this optimizer at the base's current group list and state.

        `load_state_dict` replaces both objects in the base, so this runs again after it.
        """
        self.param_groups = self.inner.param_groups
        self.state = self.base.state

    def set_batch(self, model: nn.Module, criterion: Any, batch: Any) -> None:
        """Hand the batch on to a base that needs it (`Needs.batch`)."""
        if self.forward_batch:
            self.base.set_batch(model, criterion, batch)  # type: ignore[attr-defined]

    def state_dict(self) -> dict[str, Any]:
        return {"base_id": self.base_id, "base": self.inner.state_dict(), "wrapper": self.own}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the base's state and the wrapper's, casting tensors like torch does."""
        if state_dict.get("base_id") != self.base_id:
            raise ValueError(
                f"the saved state is of a wrapper over {state_dict.get('base_id')!r}, "
                f"not over {self.base_id!r}"
            )
        self.inner.load_state_dict(state_dict["base"])
        self._share()
        self.own = {key: self._restore(value) for key, value in state_dict["wrapper"].items()}

    def _restore(self, value: Any) -> Any:
        if isinstance(value, list) and len(value) == len(self.params):
            return [
                v.to(device=p.device, dtype=p.dtype).clone()
                for v, p in zip(value, self.params, strict=True)
            ]
        return value.clone() if isinstance(value, Tensor) else value

    def __getstate__(self) -> dict[str, Any]:
        # The base class pickles only defaults, state and groups; the base, the wrapper's own
        # state and the rest must travel too (deep copies keep the groups shared).
        return dict(self.__dict__)

    def _step_inner(self, closure: Closure | None) -> Any:
        """Step the base; its closure evaluations run with gradients on, the base itself under
        the wrapper's `no_grad` (so bases that update in place without a decorator work)."""
        if closure is None:
            return self.inner.step()

        def with_grad() -> Tensor:
            with torch.enable_grad():
                return closure()

        # torch types a closure as returning float; optimizers return what it returns (a tensor)
        return self.inner.step(cast("Callable[[], float]", with_grad))


# --------------------------------------------------------------------------------------------
# Gradient noise
# --------------------------------------------------------------------------------------------


class GradientNoise(Wrapper):
    """g ← g + N(0, σ_t²·I) with σ_t² = η/(1 + t)^γ, t = steps taken so far (Neelakantan et al.).

    With a closure, the noise is added after each of its evaluations, so every gradient the base
    reads is noisy (SAM-type bases evaluate more than one); without, once before the base's step.
    """

    def __init__(
        self,
        base: torch.optim.Optimizer,
        base_id: str,
        forward_batch: bool,
        *,
        noise_eta: float,
        noise_gamma: float,
        seed: int,
    ) -> None:
        hyper = {"noise_eta": noise_eta, "noise_gamma": noise_gamma}
        super().__init__(base, base_id, hyper, forward_batch)
        self.own = {"step": 0, "rng_state": generator_state(seed, self.params[0].device)}

    def sigma(self, group: dict[str, Any]) -> float:
        """σ_t of a group at the current step."""
        return math.sqrt(group["noise_eta"] / (1 + self.own["step"]) ** group["noise_gamma"])

    @torch.no_grad()
    def _add_noise(self) -> None:
        generator = restore_generator(self.own["rng_state"], self.params[0].device)
        for group in self.param_groups:
            sigma = self.sigma(group)
            for p in group["params"]:
                if p.grad is not None and sigma > 0:
                    p.grad.add_(gaussian(p, generator), alpha=sigma)
        self.own["rng_state"] = generator.get_state()

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Any:
        if closure is None:
            self._add_noise()
            loss = self._step_inner(None)
        else:

            def noisy() -> Tensor:
                loss = closure()
                self._add_noise()
                return loss

            loss = self._step_inner(noisy)
        self.own["step"] += 1
        return loss


# --------------------------------------------------------------------------------------------
# Lookahead
# --------------------------------------------------------------------------------------------


def _library_lookahead() -> Any:
    """pytorch-optimizer's `Lookahead`, made deep-copyable.

    Imported here, not at module import, so that listing the catalogue stays light. Its
    `__getstate__` leaves out `defaults`, which `Optimizer.__setstate__` needs, so a deep copy
    fails; pickling its whole `__dict__` fixes that.
    """
    from pytorch_optimizer.optimizer.lookahead import Lookahead

    class CopyableLookahead(Lookahead):
        def __getstate__(self) -> dict[str, Any]:
            return dict(self.__dict__)

    return CopyableLookahead


class LookaheadWrapper(Wrapper):
    """pytorch-optimizer's `Lookahead` over the base: k fast steps, then φ ← φ + α(θ − φ), θ ← φ.

    The library keeps the slow weights φ in its own state and a step counter in each group; its
    `state_dict` already holds the base's, so it is the `inner` optimizer here.
    """

    def __init__(
        self,
        base: torch.optim.Optimizer,
        base_id: str,
        forward_batch: bool,
        *,
        k: int,
        alpha: float,
    ) -> None:
        super().__init__(base, base_id, {}, forward_batch)
        self.inner = _library_lookahead()(base, k=k, alpha=alpha)
        self._share()

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Any:
        return self._step_inner(closure)


# --------------------------------------------------------------------------------------------
# Cautious
# --------------------------------------------------------------------------------------------


class Cautious(Wrapper):
    """Keep only the coordinates of the base's step that go downhill (Liang et al. 2024).

    With u = θ_after − θ_before the step the base took and g the gradient at θ_before, the mask
    m = [u·g < 0] keeps the coordinates where −u agrees in sign with g, and per tensor
    θ ← θ_before + u·m·numel/(Σm + 1). g is the gradient of the closure's first evaluation (the
    one at θ_before), or `.grad` at entry without a closure. Whatever the base folds into its
    step (decoupled weight decay included) is masked with it.
    """

    def __init__(self, base: torch.optim.Optimizer, base_id: str, forward_batch: bool) -> None:
        super().__init__(base, base_id, {}, forward_batch)

    def _gradients(self) -> list[Tensor | None]:
        return [None if p.grad is None else p.grad.detach().clone() for p in self.params]

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Any:
        before = [p.detach().clone() for p in self.params]
        grads: list[list[Tensor | None]] = []
        if closure is None:
            grads.append(self._gradients())
            loss = self._step_inner(None)
        else:

            def capturing() -> Tensor:
                loss = closure()
                if not grads:
                    grads.append(self._gradients())
                return loss

            loss = self._step_inner(capturing)
            if not grads:  # a base that did not call the closure stepped on `.grad` as it was
                grads.append(self._gradients())
        for p, theta, g in zip(self.params, before, grads[0], strict=True):
            if g is None:
                continue
            u = p - theta
            keep = (u * g < 0).to(u.dtype)
            p.copy_(theta + u * keep * (keep.numel() / (keep.sum() + 1)))
        return loss


# --------------------------------------------------------------------------------------------
# EMA
# --------------------------------------------------------------------------------------------


class EMA(Wrapper):
    """w̄ ← β·w̄ + (1 − β)·w after each base step (β = `ema_decay`, α = 1 − β), w̄₀ = θ₀.

    The average uses `torch.optim.swa_utils.get_ema_multi_avg_fn`. `eval()` puts w̄ into the
    model, keeping the training weights aside, and `train()` brings them back; the weights kept
    aside are not part of `state_dict`, so checkpoints are taken in training mode (the Runner
    switches to evaluation only around diagnostics).
    """

    def __init__(
        self, base: torch.optim.Optimizer, base_id: str, forward_batch: bool, *, ema_decay: float
    ) -> None:
        super().__init__(base, base_id, {"ema_decay": ema_decay}, forward_batch)
        self.own = {"average": [p.detach().clone() for p in self.params]}
        self.training_weights: list[Tensor] | None = None

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Any:
        if self.training_weights is not None:
            raise RuntimeError("ema: step() in evaluation mode; call train() first")
        loss = self._step_inner(closure)
        average = dict(zip(self.params, self.own["average"], strict=True))
        for group in self.param_groups:
            update = torch.optim.swa_utils.get_ema_multi_avg_fn(group["ema_decay"])
            update([average[p] for p in group["params"]], list(group["params"]), None)
        return loss

    @torch.no_grad()
    def eval(self) -> None:
        """Put the average w̄ into the model (idempotent)."""
        if self.training_weights is None:
            self.training_weights = [p.detach().clone() for p in self.params]
            for p, average in zip(self.params, self.own["average"], strict=True):
                p.copy_(average)

    @torch.no_grad()
    def train(self) -> None:
        """Bring the training weights back into the model (idempotent)."""
        if self.training_weights is not None:
            for p, weights in zip(self.params, self.training_weights, strict=True):
                p.copy_(weights)
            self.training_weights = None


# --------------------------------------------------------------------------------------------
# Descriptors and the shared build
# --------------------------------------------------------------------------------------------


COMMON = (
    Param(
        "base",
        "str",
        "adam",
        "Id of the catalogue optimizer to wrap (`descentlab list optimizers`).",
    ),
    lr_param(
        None,
        "Learning rate of the base optimizer; unset: the base's default.",
        low=1e-10,
        high=100.0,
        nullable=True,
    ),
    Param(
        "base_params",
        "str",
        "",
        "Other hyperparameters of the base, as the body of a TOML inline table, e.g. "
        "`betas = [0.9, 0.99], eps = 1e-8`.",
    ),
)


def parse_base_params(text: str) -> dict[str, Any]:
    """The table written in `base_params` (the body of a TOML inline table)."""
    try:
        return tomllib.loads("x = {" + text + "}")["x"]
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(
            f"base_params: {text!r} is not the body of a TOML inline table "
            f"(such as `betas = [0.9, 0.99], eps = 1e-8`): {exc}"
        ) from None


def resolve_base(
    wrapper_id: str, base_id: str, lr: float | None, base_params: str
) -> tuple[OptimizerPlugin, dict[str, Any]]:
    """The base's plugin and its validated hyperparameters; ValueError naming the field."""
    if base_id == wrapper_id:
        raise ValueError(f"base: the {wrapper_id} wrapper cannot wrap itself")
    catalogue = registry.plugins("optimizers")
    if base_id not in catalogue:
        some = ", ".join(i for i in ("adam", "adamw", "sgd", "lion", "muon") if i in catalogue)
        raise ValueError(
            f"base: unknown optimizer {base_id!r}; known ids include {some} "
            f"({len(catalogue)} in all, see `descentlab list optimizers`)"
        )
    plugin = catalogue[base_id]
    refused = [need for need in UNSUPPORTED_NEEDS if getattr(plugin.needs, need)]
    if refused:
        raise ValueError(
            f"base: {base_id!r} needs {' and '.join(refused)}, which the wrappers do not "
            "support; they take optimizers whose needs are at most a closure, parameter "
            "roles and the batch"
        )
    table = parse_base_params(base_params)
    if "lr" in table:
        raise ValueError("base_params.lr: set the learning rate with the wrapper's lr")
    problems = Problems()
    hyper = check_params(plugin.params, table, "base_params", problems)
    if lr is not None:
        schema = {p.name: p for p in plugin.params}
        if "lr" not in schema:
            problems.add("lr", f"{base_id!r} has no learning rate; leave lr unset")
        else:
            hyper["lr"] = check_value(schema["lr"], "lr", lr, problems)
    if problems:
        raise ValueError("; ".join(problems.items))
    return plugin, hyper


def _builder(
    wrapper_id: str,
    params: tuple[Param, ...],
    wrapper: Callable[..., Wrapper],
) -> Callable[[list[tuple[str, nn.Parameter]], dict[str, Role], dict[str, Any]], Wrapper]:
    """The `build` of a wrapper: resolve and build the base, then wrap it as
    `wrapper(base, base_id, forward_batch, **own hyperparameters)`."""

    def build(
        named_params: list[tuple[str, nn.Parameter]],
        roles: dict[str, Role],
        hyper: dict[str, Any],
    ) -> Wrapper:
        h = {**defaults(params), **hyper}
        plugin, base_hyper = resolve_base(wrapper_id, h["base"], h["lr"], h["base_params"])
        base = plugin.build(named_params, roles, base_hyper)
        own = {k: v for k, v in h.items() if k not in ("base", "lr", "base_params")}
        return wrapper(base, plugin.id, plugin.needs.batch, **own)

    return build


NEEDS = Needs(closure=True, roles=True, batch=True)

NOISE_PARAMS = (
    *COMMON,
    Param(
        "noise_eta",
        "float",
        0.01,
        "η of the noise variance σ_t² = η/(1 + t)^γ (the paper tries 0.01, 0.3 and 1).",
        low=0.0,
        high=100.0,
        log=True,
    ),
    Param(
        "noise_gamma",
        "float",
        0.55,
        "Decay exponent γ of the noise variance (the paper's 0.55).",
        low=0.0,
        high=10.0,
    ),
    seed_param("Seed of the noise."),
)
LOOKAHEAD_PARAMS = (
    *COMMON,
    Param("k", "int", 5, "Fast (base) steps between two syncs.", low=1, high=10000),
    Param(
        "alpha",
        "float",
        0.5,
        "Step α of the slow weights towards the fast ones at each sync.",
        low=0.0,
        high=1.0,
    ),
)
EMA_PARAMS = (
    *COMMON,
    Param(
        "ema_decay",
        "float",
        0.99,
        "Decay β of the average w̄ ← βw̄ + (1 − β)w; it spans about 1/(1 − β) steps.",
        low=0.0,
        high=1.0,
    ),
)

_BASE_NOTE = (
    " The base is any catalogue optimizer (`base`, default Adam) with its own hyperparameters "
    "(`lr`, `base_params`); bases that need create_graph or train/eval switching are refused."
)

NOISE = OptimizerPlugin(
    id="noise",
    title="Gradient noise (wrapper)",
    summary="Adds annealed Gaussian noise to every gradient before the base optimizer reads it: "
    "g ← g + N(0, σ_t²·I) with σ_t² = η/(1 + t)^γ, t the step. The noise helps very deep or "
    "badly initialised networks escape plateaus and saddles early, and fades away as training "
    "goes on." + _BASE_NOTE,
    params=NOISE_PARAMS,
    build=_builder("noise", NOISE_PARAMS, GradientNoise),
    family="wrapper",
    reference="Neelakantan et al., Adding Gradient Noise Improves Learning for Very Deep "
    "Networks, arXiv:1511.06807, 2015.",
    needs=NEEDS,
)

LOOKAHEAD = OptimizerPlugin(
    id="lookahead",
    title="Lookahead (wrapper)",
    summary="The base optimizer takes k fast steps from the slow weights φ; then the slow weights "
    "move part of the way towards where the fast ones ended, φ ← φ + α(θ − φ), and the fast "
    "weights restart from there, θ ← φ. The interpolation damps the base's oscillations across "
    "a valley and makes it less sensitive to its learning rate. pytorch-optimizer's Lookahead. "
    "At a sync step θ moves even with lr = 0." + _BASE_NOTE,
    params=LOOKAHEAD_PARAMS,
    build=_builder("lookahead", LOOKAHEAD_PARAMS, LookaheadWrapper),
    family="wrapper",
    reference="Zhang, Lucas, Hinton & Ba, Lookahead Optimizer: k steps forward, 1 step back, "
    "NeurIPS 2019, arXiv:1907.08610.",
    needs=NEEDS,
)

CAUTIOUS = OptimizerPlugin(
    id="cautious",
    title="Cautious (wrapper)",
    summary="Keeps only the coordinates of the base optimizer's step u that go downhill, where "
    "−u and the gradient g agree in sign, and rescales them by numel/(kept + 1) per tensor so "
    "the step keeps its size: θ ← θ + u·[u·g < 0]·numel/(Σ[u·g < 0] + 1). For momentum methods "
    "this drops the components where momentum still pushes against the current gradient; the "
    "paper shows that the mask keeps the base's Hamiltonian (Lyapunov) descent, and so its "
    "convergence." + _BASE_NOTE,
    params=COMMON,
    build=_builder("cautious", COMMON, Cautious),
    family="wrapper",
    reference="Liang, Chen, Liu & Liu, Cautious Optimizers: Improving Training with One Line of "
    "Code, arXiv:2411.16085, 2024.",
    needs=NEEDS,
)

EMA_PLUGIN = OptimizerPlugin(
    id="ema",
    title="EMA of the weights (wrapper)",
    summary="Trains with the base optimizer and keeps an exponential moving average of its "
    "weights, w̄ ← βw̄ + (1 − β)w after every step (w̄₀ = θ₀), the average that is evaluated: "
    "diagnostics and evaluation losses see w̄, the training loss the raw weights. Averaging "
    "cancels much of the noise of the last steps, like a decayed learning rate would." + _BASE_NOTE,
    params=EMA_PARAMS,
    build=_builder("ema", EMA_PARAMS, EMA),
    family="wrapper",
    reference="Polyak & Juditsky, Acceleration of Stochastic Approximation by Averaging, SIAM J. "
    "Control Optim. 30(4), 1992; Morales-Brotons, Vogels & Hendrikx, Exponential Moving Average "
    "of Weights in Deep Learning: Dynamics and Benefits, TMLR 2024.",
    needs=Needs(closure=True, roles=True, batch=True, train_eval=True),
)

PLUGINS = [NOISE, LOOKAHEAD, CAUTIOUS, EMA_PLUGIN]
