"""What the optimizers written in this package share: schema factories, builds, seeded
generators and one optimizer made of several.

Not a plugin module (no entry point reads it). The optimizer modules repeat the same pieces: the
same learning-rate, momentum, decay and seed parameters with their own defaults and help, a
`build` that fills in defaults and calls a constructor, a generator whose state lives in the
optimizer state, and (Muon and the orthogonal rules) one optimizer whose groups are shared with
inner `torch.optim` optimizers. Keeping one copy here keeps their bounds and mechanics alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from descentlab.engine.params import Param, defaults
from descentlab.engine.plugin import Role

Closure = Callable[[], Tensor]
NamedParams = list[tuple[str, nn.Parameter]]
Build = Callable[[NamedParams, dict[str, Role], dict[str, Any]], torch.optim.Optimizer]


def evaluate(closure: Closure | None) -> Tensor | None:
    """The loss of an optional closure, evaluated with gradients on (as torch's optimizers do)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


# --------------------------------------------------------------------------------------------
# Parameter schemas
# --------------------------------------------------------------------------------------------


def lr_param(
    default: float | None,
    help_text: str = "Learning rate η.",
    *,
    low: float = 1e-8,
    high: float = 10.0,
    nullable: bool = False,
) -> Param:
    """The learning rate `lr`, on a log scale."""
    return Param("lr", "float", default, help_text, low=low, high=high, log=True, nullable=nullable)


def momentum_param(default: float, help_text: str) -> Param:
    """A momentum factor `momentum` in [0, 0.9999]."""
    return Param("momentum", "float", default, help_text, low=0.0, high=0.9999)


def decay_param(help_text: str, default: float = 0.0, name: str = "weight_decay") -> Param:
    """A weight-decay coefficient λ in [0, 10], on a log scale."""
    return Param(name, "float", default, help_text, low=0.0, high=10.0, log=True)


def seed_param(help_text: str, high: int = 2**31 - 1) -> Param:
    """The `seed` of an optimizer's own generator."""
    return Param("seed", "int", 0, help_text, low=0, high=high)


ADAMW = "adamw"
"""The `algorithm` tag of the AdamW groups that Muon and the matrix rules hand to torch's AdamW."""


def adamw_params(lr_help: str) -> tuple[Param, ...]:
    """`adamw_lr`, `adamw_betas`, `adamw_eps`, `adamw_weight_decay`: the AdamW that updates
    what a matrix rule leaves (see `adamw_kwargs`)."""
    return (
        Param("adamw_lr", "float", 1e-3, lr_help, low=1e-8, high=10.0, log=True),
        Param(
            "adamw_betas",
            "floats",
            (0.9, 0.999),
            "(β₁, β₂) of the AdamW groups.",
            low=0.0,
            high=0.99999,
            length=2,
        ),
        Param("adamw_eps", "float", 1e-8, "ε of the AdamW groups.", low=1e-16, high=1.0, log=True),
        decay_param("λ of the decoupled decay of the AdamW groups.", 0.01, "adamw_weight_decay"),
    )


ADAMW_NAMES = {
    "adamw_lr": "lr",
    "adamw_betas": "betas",
    "adamw_eps": "eps",
    "adamw_weight_decay": "weight_decay",
}
"""The AdamW groups' keys by the schema names `adamw_params` gives them: the groups' tag
`group[live_hyper.SCHEMA_NAMES]`, so that a live `adamw_lr` sets those groups alone."""


def adamw_kwargs(hyper: dict[str, Any]) -> dict[str, Any]:
    """`torch.optim.AdamW`'s keyword arguments from the `adamw_params` values in `hyper`."""
    kwargs = {key: hyper[name] for name, key in ADAMW_NAMES.items()}
    return kwargs | {"betas": tuple(kwargs["betas"])}


# --------------------------------------------------------------------------------------------
# Builds
# --------------------------------------------------------------------------------------------


def builder(
    optimizer: Callable[..., torch.optim.Optimizer],
    schema: tuple[Param, ...],
    *,
    named: bool = False,
    **fixed: Any,
) -> Build:
    """The `build` that calls `optimizer(params, **fixed, **hyperparameters)`, unset ones at
    their `schema` defaults; `params` are the parameters, or their (name, parameter) pairs if
    `named`. Roles are not used."""

    def build(
        named_params: NamedParams, roles: dict[str, Role], hyper: dict[str, Any]
    ) -> torch.optim.Optimizer:
        params = named_params if named else [p for _, p in named_params]
        return optimizer(params, **fixed, **{**defaults(schema), **hyper})

    return build


def split_hidden(
    named_params: NamedParams, roles: dict[str, Role], shape_ok: Callable[[nn.Parameter], bool]
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(the parameters whose role is "hidden" and whose shape passes `shape_ok`, the rest).

    A parameter without a role counts as "other".
    """
    hidden: list[nn.Parameter] = []
    rest: list[nn.Parameter] = []
    for name, param in named_params:
        is_hidden = roles.get(name, "other") == "hidden" and shape_ok(param)
        (hidden if is_hidden else rest).append(param)
    return hidden, rest


# --------------------------------------------------------------------------------------------
# Seeded generators kept in the optimizer state
# --------------------------------------------------------------------------------------------


def generator_state(seed: int, device: torch.device | str = "cpu") -> Tensor:
    """The state of a fresh generator on `device` seeded with `seed`."""
    return torch.Generator(device=device).manual_seed(seed).get_state()


def restore_generator(state: Tensor, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on `device` in `state`.

    `Optimizer.load_state_dict` casts every state tensor to its parameter's dtype and device;
    the bytes 0–255 survive any float dtype exactly, so casting back to CPU `uint8` (which
    `set_state` requires) restores them.
    """
    generator = torch.Generator(device=device)
    generator.set_state(state.to(device="cpu", dtype=torch.uint8))
    return generator


def gaussian(like: Tensor, generator: torch.Generator) -> Tensor:
    """N(0, I) shaped and typed like `like`, drawn on the generator's device."""
    return torch.randn(
        like.shape, generator=generator, device=generator.device, dtype=like.dtype
    ).to(like.device)


# --------------------------------------------------------------------------------------------
# One optimizer over inner optimizers
# --------------------------------------------------------------------------------------------


class SharedGroupsOptimizer(torch.optim.Optimizer):
    """One optimizer whose groups are shared with inner `torch.optim` optimizers.

    `inner` maps a tag to an optimizer whose groups all carry `group["algorithm"]` = that tag;
    `groups` (first) are groups the subclass steps itself. `param_groups` holds the very group
    dicts the inner optimizers read, so a live edit of a group reaches them at their next step,
    and `state` is shared with them, so `state_dict`/`load_state_dict` and deep copies cover
    all of it. `Optimizer.load_state_dict` replaces both objects, so they are shared again after.
    """

    def __init__(
        self, groups: list[dict[str, Any]], inner: dict[str, torch.optim.Optimizer]
    ) -> None:
        self._inner = inner
        shared = [group for optimizer in inner.values() for group in optimizer.param_groups]
        super().__init__([*groups, *shared], defaults={})
        self._share()

    def _share(self) -> None:
        """Point the inner optimizers at this optimizer's group dicts and state."""
        for algorithm, optimizer in self._inner.items():
            optimizer.param_groups = [g for g in self.param_groups if g["algorithm"] == algorithm]
            optimizer.state = self.state

    def _own_groups(self) -> list[dict[str, Any]]:
        """The groups no inner optimizer reads."""
        return [g for g in self.param_groups if g.get("algorithm") not in self._inner]

    def _step_inner(self) -> None:
        """One step of every inner optimizer on the gradients in `.grad`."""
        for optimizer in self._inner.values():
            optimizer.step()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load as any optimizer does, then share the new group dicts and state again."""
        super().load_state_dict(state_dict)
        self._share()

    def __getstate__(self) -> dict[str, Any]:
        # The base class pickles only defaults, state and groups; the inner optimizers must
        # travel too (deepcopy keeps them sharing the copied groups and state).
        return {**super().__getstate__(), "_inner": self._inner}
