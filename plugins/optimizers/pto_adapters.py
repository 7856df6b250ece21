"""Adapters that make pytorch-optimizer's classes fit the lab's loop and checkpoints.

Each is a mixin (or, for one library bug, a subclass) applied by `adapted` to the library class,
so state dicts and hooks stay the library's. Each optimizer's record (`pto_records.py`) says which
it gets; this module knows nothing about the catalogue. Importing it imports pytorch-optimizer.
"""

from __future__ import annotations

import functools
import random
from typing import Any

import numpy as np
import pytorch_optimizer as pto
import torch
from torch import nn

from descentlab.plugins.optimizers.common import evaluate


def get_random_state() -> dict[str, Any]:
    """The global torch, NumPy and Python generator states, as tensors and plain numbers only
    (so that a state dict holding it loads with `torch.load(weights_only=True)`)."""
    _, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_rest": (int(position), int(has_gauss), float(cached)),
        "python": torch.tensor(internal, dtype=torch.int64),
        "python_rest": (version, gauss_next),
    }


def set_random_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    position, has_gauss, cached = state["numpy_rest"]
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, position, has_gauss, cached))
    version, gauss_next = state["python_rest"]
    random.setstate((version, tuple(state["python"].tolist()), gauss_next))


class _OwnRandomState:
    """Mixin: the optimizer draws its random numbers from a state of its own.

    The library draws from the global torch, NumPy and Python generators. Each step runs with
    those set to this optimizer's saved state (seeded by `seed`) and saves them back after,
    restoring the global ones, so other runs, the data order and the round trip of
    `state_dict()` (which carries the saved state) are unaffected and exact.
    """

    def _seed_random_state(self, seed: int) -> None:
        saved = get_random_state()
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        self._random_state = get_random_state()
        set_random_state(saved)

    def step(self, closure: Any = None) -> Any:
        saved = get_random_state()
        set_random_state(self._random_state)
        try:
            return super().step(closure)  # type: ignore[misc]
        finally:
            self._random_state = get_random_state()
            set_random_state(saved)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "random_state": self._random_state}  # type: ignore[misc]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        random_state = state_dict.pop("random_state")
        super().load_state_dict(state_dict)  # type: ignore[misc]
        self._random_state = {
            k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in random_state.items()
        }


class _GradientsFirst:
    """Mixin for optimizers that expect `.grad` at θ before `step(closure)` is called.

    The SAM family perturbs θ along the gradient already in `.grad`, then calls the closure at
    the perturbed point. The lab's closure contract is that `step(closure)` evaluates what it
    needs, so the step first calls the closure at θ (in the Runner that call returns the loss
    and gradients already computed) and returns that loss.
    """

    def step(self, closure: Any = None) -> Any:
        if closure is None:
            raise ValueError(f"{type(self).__name__} needs step(closure): it re-evaluates the loss")
        with torch.enable_grad():
            loss = closure()
        super().step(closure)  # type: ignore[misc]
        return loss


class _SetModel:
    """Mixin for WSAM, whose constructor wants the model (to pause BatchNorm statistics).

    Built with an empty module; the loop's `set_batch` hands over the run's model before each
    step.
    """

    def set_batch(self, model: nn.Module, criterion: Any, batch: Any) -> None:
        self.model = model


class _EvalBeforeFirstStep:
    """Mixin for SPlus, whose `eval()` reads its EMA of the weights, made at the first step.

    Before any step the evaluation point is θ itself, so `eval()` has nothing to do.
    """

    def eval(self) -> None:
        params = [p for group in self.param_groups for p in group["params"]]  # type: ignore[attr-defined]
        if all("ema" in self.state[p] for p in params):  # type: ignore[attr-defined]
            super().eval()  # type: ignore[misc]


@functools.cache
def adapted(
    cls: type, own_random: bool, gradients_first: bool, set_model: bool, eval_guard: bool
) -> type:
    """`cls` with the mixins it needs, as a subclass (state dicts and hooks stay the library's)."""
    mixins: list[type] = []
    if eval_guard:
        mixins.append(_EvalBeforeFirstStep)
    if set_model:
        mixins.append(_SetModel)
    if gradients_first:
        mixins.append(_GradientsFirst)
    if own_random:
        mixins.append(_OwnRandomState)
    if not mixins:
        return cls
    return type(cls.__name__, (*mixins, cls), {"__module__": __name__, "__doc__": cls.__doc__})


def keep_state_dtypes(optimizer: torch.optim.Optimizer) -> None:
    """Make `load_state_dict` keep the saved dtype of every state tensor.

    torch casts loaded floating-point state to its parameter's dtype (pytorch#75224), but
    several library optimizers keep state in a dtype of their own (Kron's float32
    preconditioners, NAdam's scalar products, bfloat16 moments): after the cast a float64 run
    would fail or drift from the original. `torch_optim._keep_scalar_state_dtypes` does this
    for 0-dim tensors only; it could move to a shared helper covering both.
    """
    saved: dict[tuple[int, str], torch.dtype] = {}

    def remember(_: torch.optim.Optimizer, state_dict: dict[str, Any]) -> None:
        saved.clear()
        for index, state in state_dict["state"].items():
            if not isinstance(state, dict):  # some keep scalars or tensors beside param states
                continue
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    saved[index, key] = value.dtype

    def restore(opt: torch.optim.Optimizer) -> None:
        params = [p for group in opt.param_groups for p in group["params"]]
        for (index, key), dtype in saved.items():
            if isinstance(index, int) and index < len(params):
                state = opt.state[params[index]]
                state[key] = state[key].to(dtype)

    if hasattr(optimizer, "_optimizer_load_state_dict_pre_hooks"):  # wrappers have no hooks
        optimizer.register_load_state_dict_pre_hook(remember)
        optimizer.register_load_state_dict_post_hook(restore)


class StableShampoo(pto.Shampoo):
    """pytorch-optimizer's Shampoo whose inverse roots stay finite in float32.

    Since pytorch-optimizer 4.0 every Kronecker factor accumulates the raw gradient's
    statistics, L_d = ε·I + Σ_t G_(d) G_(d)ᵀ (3.x fed factors d ≥ 1 the already preconditioned
    gradient). The factor of a wide unfolding (an (out, in) matrix's in × in factor, rank ≤ out)
    keeps eigenvalues at exactly ε = matrix_eps while the largest grows with every step; once
    their ratio passes float32's resolution (about 10⁷) `compute_power_svd` returns singular
    values of 0, s^(−1/2k) = inf, and the next SVD fails on NaN. In exact arithmetic every
    singular value is at least ε, so clamping them there before the root changes only rounding
    error. This step is the library's 4.1 step with that clamp; nothing else differs.
    """

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = evaluate(closure)
        for group in self.param_groups:
            self.init_group(group)
            group["step"] += 1
            momentum = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                self.maximize_gradient(grad, maximize=self.maximize)
                state = self.state[p]
                if momentum > 0.0:
                    grad.lerp_(state["momentum_buffer"], weight=momentum)
                self.apply_weight_decay(
                    p=p,
                    grad=grad,
                    lr=group["lr"],
                    weight_decay=group["weight_decay"],
                    weight_decouple=group["weight_decouple"],
                    fixed_decay=group["fixed_decay"],
                )
                order, original_size, statistics = grad.ndimension(), grad.size(), grad
                for dim_id, dim in enumerate(grad.size()):
                    pre_cond = state[f"pre_cond_{dim_id}"]
                    inv_pre_cond = state[f"inv_pre_cond_{dim_id}"]
                    unfolded = statistics.movedim(dim_id, 0).reshape(dim, -1)
                    pre_cond.addmm_(unfolded, unfolded.t())
                    grad = grad.transpose_(0, dim_id).contiguous()
                    transposed_size = grad.size()
                    grad = grad.view(dim, -1)
                    if group["step"] % self.preconditioning_compute_steps == 0:
                        inv_pre_cond.copy_(inverse_root(pre_cond, 2 * order, group["matrix_eps"]))
                    if dim_id == order - 1:
                        grad = (grad.t() @ inv_pre_cond).view(original_size)
                    else:
                        grad = (inv_pre_cond @ grad).view(transposed_size)
                state["momentum_buffer"] = grad
                p.add_(grad, alpha=-group["lr"])
        return loss


def inverse_root(matrix: torch.Tensor, power: int, floor: float) -> torch.Tensor:
    """M^(−1/power) of a symmetric positive definite M whose eigenvalues are at least `floor`,
    by SVD (in float64 for float64 input, else float32) with the singular values clamped there."""
    dtype = torch.float64 if matrix.dtype == torch.float64 else torch.float32
    u, s, vh = torch.linalg.svd(matrix.to(dtype), full_matrices=False)
    s = s.clamp_min(floor).pow_(-1.0 / power)
    return ((u * s.unsqueeze(-2)) @ vh).to(matrix.dtype)


FIXED: dict[str, type] = {"shampoo": StableShampoo}
"""Library classes replaced by a subclass that fixes a bug the lab meets, by library name."""
