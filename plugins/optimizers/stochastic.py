"""Optimizers that are random on purpose: Entropy-SGD, MeZO (SPSA) and Langevin dynamics.

Each one owns its randomness: a `torch.Generator` seeded from the `seed` hyperparameter, whose
state lives in the optimizer state (`state[first parameter]["rng_state"]`) and is restored before
every draw and written back after it. The state is then the only source of truth, so
`state_dict`/`load_state_dict` and deep copies continue with the very same noise, and the global
RNG (shared with data order and other runs) is never touched.

Global settings of an algorithm (MeZO's ε, Entropy-SGD's number of Langevin steps L) are read
from the first parameter group; the plugins build a single group.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from descentlab.engine.params import Param
from descentlab.engine.plugin import Needs, OptimizerPlugin
from descentlab.plugins.optimizers.common import (
    builder,
    evaluate,
    gaussian,
    generator_state,
    lr_param,
    momentum_param,
    restore_generator,
    seed_param,
)

RNG_STATE = "rng_state"
"""State key of a generator's state (a CPU or device `uint8` tensor, see `restore_generator`)."""


class SeededOptimizer(torch.optim.Optimizer):
    """An optimizer with a generator kept in its state, and a global step counter next to it."""

    def __init__(self, params: list[nn.Parameter], hyper: dict[str, Any], seed: int) -> None:
        super().__init__(params, hyper)
        holder = self.state[self._first()]
        holder[RNG_STATE] = generator_state(seed, self._first().device)
        holder["step"] = 0

    def _first(self) -> nn.Parameter:
        return self.param_groups[0]["params"][0]

    def _params(self) -> list[tuple[dict[str, Any], nn.Parameter]]:
        return [(group, p) for group in self.param_groups for p in group["params"]]

    def _generator(self) -> torch.Generator:
        first = self._first()
        return restore_generator(self.state[first][RNG_STATE], first.device)

    def _keep(self, generator: torch.Generator) -> None:
        self.state[self._first()][RNG_STATE] = generator.get_state()

    def _count_step(self) -> int:
        """Advance and return the number of steps taken (1 after the first)."""
        holder = self.state[self._first()]
        holder["step"] += 1
        return holder["step"]


def _evaluate(closure: Callable[[], Tensor] | None, who: str) -> Tensor:
    if closure is None:
        raise RuntimeError(f"{who} evaluates the loss itself: step() needs a closure")
    with torch.enable_grad():
        return closure()


# --------------------------------------------------------------------------------------------
# MeZO / SPSA
# --------------------------------------------------------------------------------------------


class MeZO(SeededOptimizer):
    """SPSA with MeZO's seed trick (Malladi et al. 2023; Spall 1992).

    Per step: a step seed s from the optimizer's generator; z ~ N(0, I) from s;
    p = (L(θ + εz) − L(θ − εz)) / (2ε); θ ← θ − η·p·z. z is never stored: it is regenerated
    from s for each use, so the state is the generator, the step count, and (for inspection)
    the last s and p. Only loss values are read; `.grad` is never looked at. θ is restored
    after the two evaluations from a copy rather than by undoing εz, so that the step is exact
    (η = 0 leaves θ bit-identical); the copy costs one parameter-sized buffer the paper saves.
    """

    def __init__(self, params: list[nn.Parameter], lr: float, eps: float, seed: int) -> None:
        super().__init__(params, {"lr": lr, "eps": eps}, seed)

    def _add_direction(self, seed: int, scale: Callable[[dict[str, Any]], float]) -> None:
        """θ ← θ + scale(group)·z, with z regenerated from the step seed."""
        generator = torch.Generator(device=self._first().device).manual_seed(seed)
        for group, p in self._params():
            p.add_(gaussian(p, generator), alpha=scale(group))

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:
        """One SPSA step; returns the loss at θ (the closure's first evaluation).

        The closure is called at θ first: the Runner's closure hands back the loss it already
        computed there on its first call, and only later calls re-evaluate.
        """
        loss = _evaluate(closure, "mezo")
        eps = self.param_groups[0]["eps"]
        generator = self._generator()
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        self._keep(generator)
        saved = [p.clone() for _, p in self._params()]

        def restore() -> None:
            for (_, p), theta in zip(self._params(), saved, strict=True):
                p.copy_(theta)

        self._add_direction(seed, lambda _: eps)
        plus = float(_evaluate(closure, "mezo"))
        restore()
        self._add_direction(seed, lambda _: -eps)
        minus = float(_evaluate(closure, "mezo"))
        restore()
        projected = (plus - minus) / (2 * eps)
        self._add_direction(seed, lambda group: -group["lr"] * projected)
        self._count_step()
        holder = self.state[self._first()]
        holder["step_seed"] = seed
        holder["projected_grad"] = projected
        return loss


MEZO_PARAMS = (
    lr_param(1e-3, low=1e-10),
    Param(
        "eps",
        "float",
        1e-3,
        "Perturbation scale ε of the two loss evaluations (the paper's 1e-3).",
        low=1e-8,
        high=1.0,
        log=True,
    ),
    seed_param("Seed of the perturbation directions."),
)


MEZO = OptimizerPlugin(
    id="mezo",
    title="MeZO (zeroth-order SPSA)",
    summary="Memory-efficient zeroth-order SGD: per step a seed s gives a Gaussian direction z, "
    "the loss is evaluated at θ ± εz, and θ ← θ − η·p·z with the projected gradient "
    "p = (L(θ + εz) − L(θ − εz))/(2ε), an unbiased estimate of the directional derivative "
    "along z (E[p·z] ≈ ∇L). z is regenerated from s instead of stored, so a step is described "
    "by (s, p) alone — the paper's 'one scalar per step'. Gradients are never read: the "
    "closure's backward pass (the Runner always backpropagates) is wasted work, not input. "
    "Expect a rate about d times smaller than SGD's on d parameters.",
    params=MEZO_PARAMS,
    build=builder(MeZO, MEZO_PARAMS),
    family="zeroth-order",
    reference="Malladi et al., Fine-Tuning Language Models with Just Forward Passes, NeurIPS "
    "2023, arXiv:2305.17333; Spall, Multivariate Stochastic Approximation Using a Simultaneous "
    "Perturbation Gradient Approximation, IEEE Trans. Autom. Control 37(3), 1992.",
    needs=Needs(closure=True),
)


# --------------------------------------------------------------------------------------------
# Entropy-SGD
# --------------------------------------------------------------------------------------------


class EntropySGD(SeededOptimizer):
    """Entropy-SGD, Algorithm 1 of Chaudhari et al. (ICLR 2017), with optional outer momentum.

    From θ' = μ = θ, L Langevin steps on the batch's loss coupled to θ:
        θ' ← θ' − η'[∇f(θ') − γ(θ − θ')] + √η'·ε·ξ,   ξ ~ N(0, I),
        μ ← (1 − α)μ + αθ',
    then the outer step along the local-entropy gradient d = γ(θ − μ):
        v ← m·v + d;  θ ← θ − η·(d + m·v if Nesterov else v)   (v ≡ d when m = 0).
    Every Langevin step evaluates the closure at θ' (the first one at θ'= θ); the model ends at
    the outer iterate. All L steps use the step's batch (the paper samples one per step).
    """

    def __init__(
        self,
        params: list[nn.Parameter],
        *,
        lr: float,
        gamma: float,
        inner_lr: float,
        inner_steps: int,
        noise: float,
        alpha: float,
        momentum: float,
        nesterov: bool,
        seed: int,
    ) -> None:
        hyper = {
            "lr": lr,
            "gamma": gamma,
            "inner_lr": inner_lr,
            "inner_steps": inner_steps,
            "noise": noise,
            "alpha": alpha,
            "momentum": momentum,
            "nesterov": nesterov,
        }
        super().__init__(params, hyper, seed)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:
        """One outer step (L closure evaluations); returns the loss at θ."""
        params = self._params()
        outer = [p.clone() for _, p in params]
        mean = [p.clone() for _, p in params]
        generator = self._generator()
        loss = None
        for _ in range(self.param_groups[0]["inner_steps"]):
            value = _evaluate(closure, "entropy-sgd")
            loss = value if loss is None else loss
            for (group, p), theta, mu in zip(params, outer, mean, strict=True):
                if p.grad is None:
                    continue
                drift = p.grad - group["gamma"] * (theta - p)
                p.add_(drift, alpha=-group["inner_lr"])
                if group["noise"] > 0:
                    scale = math.sqrt(group["inner_lr"]) * group["noise"]
                    p.add_(gaussian(p, generator), alpha=scale)
                mu.lerp_(p, group["alpha"])
        self._keep(generator)
        for (group, p), theta, mu in zip(params, outer, mean, strict=True):
            direction = group["gamma"] * (theta - mu)
            if group["momentum"] > 0:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                velocity = state["momentum_buffer"]
                velocity.mul_(group["momentum"]).add_(direction)
                direction = (
                    direction.add(velocity, alpha=group["momentum"])
                    if group["nesterov"]
                    else velocity
                )
            p.copy_(theta).add_(direction, alpha=-group["lr"])
        self._count_step()
        assert loss is not None
        return loss


ENTROPY_PARAMS = (
    lr_param(
        1.0,
        "Outer learning rate η; ηγ = 1 moves θ all the way to μ (the reference code's step).",
        low=1e-6,
        high=100.0,
    ),
    Param(
        "gamma",
        "float",
        1.0,
        "Scope γ: strength of the coupling of the Langevin chain to θ; small γ averages the "
        "loss over a wide neighbourhood (the paper scopes γ up during training).",
        low=1e-6,
        high=100.0,
        log=True,
    ),
    Param("inner_lr", "float", 0.1, "Langevin step size η'.", low=1e-6, high=10.0, log=True),
    Param(
        "inner_steps",
        "int",
        5,
        "Langevin steps L per outer step (each one a forward and backward pass).",
        low=1,
        high=100,
    ),
    Param(
        "noise",
        "float",
        1e-4,
        "Thermal noise ε of the Langevin steps (the paper's 1e-4); 0 makes them deterministic.",
        low=0.0,
        high=1.0,
        log=True,
    ),
    Param(
        "alpha",
        "float",
        0.75,
        "Weight α of the newest Langevin iterate in the running mean μ (the paper's 0.75).",
        low=0.0,
        high=1.0,
    ),
    momentum_param(0.0, "Momentum m of the outer step."),
    Param("nesterov", "bool", False, "Nesterov form of the outer momentum."),
    seed_param("Seed of the Langevin noise."),
)


ENTROPY_SGD = OptimizerPlugin(
    id="entropy-sgd",
    title="Entropy-SGD",
    summary="Gradient descent on the local entropy F_γ(θ) = log ∫ exp(−f(θ') − γ‖θ − θ'‖²/2) "
    "dθ', which is large in wide valleys and small in sharp ones. Its gradient −γ(θ − ⟨θ'⟩) "
    "needs the mean of the Gibbs measure around θ, estimated by L steps of Langevin dynamics "
    "θ' ← θ' − η'[∇f(θ') − γ(θ − θ')] + √η'·ε·N(0, I) with a running mean "
    "μ ← (1 − α)μ + αθ'; then θ ← θ − ηγ(θ − μ) (optionally with momentum). Each step costs L "
    "forward and backward passes on the step's batch.",
    params=ENTROPY_PARAMS,
    build=builder(EntropySGD, ENTROPY_PARAMS),
    family="sharpness-aware",
    reference="Chaudhari et al., Entropy-SGD: Biasing Gradient Descent Into Wide Valleys, ICLR "
    "2017, arXiv:1611.01838.",
    needs=Needs(closure=True),
)


# --------------------------------------------------------------------------------------------
# Langevin dynamics with iterate averaging
# --------------------------------------------------------------------------------------------


class Langevin(SeededOptimizer):
    """SGLD: θ ← θ − η·g + √(2ηT)·ξ, ξ ~ N(0, I), with the running mean of the iterates.

    The mean of θ_{b+1}, …, θ_t (b = `burn_in`; before that, the current iterate) is kept in
    `state[p]["average"]`. `eval()` puts it into the model (keeping the training iterate aside)
    and `train()` brings the training iterate back, so that diagnostics see the average.
    """

    def __init__(
        self, params: list[nn.Parameter], lr: float, temperature: float, burn_in: int, seed: int
    ) -> None:
        super().__init__(params, {"lr": lr, "temperature": temperature, "burn_in": burn_in}, seed)
        first = self.state[self._first()]
        first["averaged"] = 0
        for _, p in self._params():
            self.state[p]["average"] = p.detach().clone()

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One Langevin step on the gradients in `.grad`, then the average's update."""
        if any("train_iterate" in self.state[p] for _, p in self._params()):
            raise RuntimeError("langevin: step() in evaluation mode; call train() first")
        loss = evaluate(closure)
        generator = self._generator()
        for group, p in self._params():
            if p.grad is None:
                continue
            p.add_(p.grad, alpha=-group["lr"])
            if group["temperature"] > 0:
                scale = math.sqrt(2 * group["lr"] * group["temperature"])
                p.add_(gaussian(p, generator), alpha=scale)
        self._keep(generator)
        step = self._count_step()
        first = self.state[self._first()]
        if step > self.param_groups[0]["burn_in"]:
            first["averaged"] += 1
        count = first["averaged"]
        for _, p in self._params():
            average = self.state[p]["average"]
            if count <= 1:
                average.copy_(p)
            else:
                average.add_(p - average, alpha=1 / count)
        return loss

    @torch.no_grad()
    def eval(self) -> None:
        """Put the average of the iterates into the model (idempotent)."""
        for _, p in self._params():
            state = self.state[p]
            if "train_iterate" not in state:
                state["train_iterate"] = p.detach().clone()
                p.copy_(state["average"])

    @torch.no_grad()
    def train(self) -> None:
        """Bring the training iterate back into the model (idempotent)."""
        for _, p in self._params():
            state = self.state[p]
            if "train_iterate" in state:
                p.copy_(state.pop("train_iterate"))


LANGEVIN_PARAMS = (
    lr_param(0.1),
    Param(
        "temperature",
        "float",
        1e-4,
        "Temperature T of the Gaussian noise √(2ηT)·N(0, I); 0 is plain SGD, and T = 1 on a "
        "summed (not mean) loss samples the Bayesian posterior.",
        low=0.0,
        high=10.0,
        log=True,
    ),
    Param(
        "burn_in",
        "int",
        0,
        "Steps whose iterates are left out of the average.",
        low=0,
        high=10**9,
    ),
    seed_param("Seed of the noise."),
)


LANGEVIN = OptimizerPlugin(
    id="langevin",
    title="Langevin dynamics (SGLD) + averaging",
    summary="Stochastic gradient Langevin dynamics: θ ← θ − η·g + √(2ηT)·N(0, I), gradient "
    "descent plus Gaussian noise at temperature T. Its iterates wander around minima instead "
    "of settling (at T = 1 on a summed loss they sample the posterior exp(−L)); their running "
    "mean (after an optional burn-in) is the estimate the lab evaluates: diagnostics and "
    "evaluation losses see the average, the training loss the current iterate.",
    params=LANGEVIN_PARAMS,
    build=builder(Langevin, LANGEVIN_PARAMS),
    family="sgd",
    reference="Welling & Teh, Bayesian Learning via Stochastic Gradient Langevin Dynamics, ICML "
    "2011.",
    needs=Needs(train_eval=True),
)

PLUGINS = [ENTROPY_SGD, MEZO, LANGEVIN]
