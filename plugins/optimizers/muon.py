"""Muon on the hidden matrices, AdamW on everything else, as one `torch.optim.Optimizer`.

`torch.optim.Muon` orthogonalises the momentum of 2-D parameters only, and its authors leave
embeddings, output heads, biases and norms to AdamW. `MuonWithAdamW` runs one of each over its
share of the parameters but exposes a single optimizer: its `param_groups` are the two inner
optimizers' group dicts themselves (Muon's first), each tagged `group["algorithm"]`, so a live
edit of a group is what the inner optimizer reads at its next step, and its `state` is shared with
both, so `state_dict`/`load_state_dict` and deep copies cover the whole of it. The AdamW group
answers to the `adamw_*` names of the schema (`live_hyper.SCHEMA_NAMES`), so a live `lr` or
`weight_decay` sets the Muon group alone and `adamw_lr` the AdamW group alone.
"""

from __future__ import annotations

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
    adamw_params,
    decay_param,
    evaluate,
    lr_param,
    momentum_param,
    split_hidden,
)

if not hasattr(torch.optim, "Muon"):  # the project accepts torch >= 2.4; Muon came later
    raise ImportError(
        f"the muon plugin needs torch.optim.Muon, which torch {torch.__version__} lacks"
    )

MUON = "muon"


class MuonWithAdamW(SharedGroupsOptimizer):
    """`torch.optim.Muon` over `muon_params` and `torch.optim.AdamW` over `adamw_params`.

    Either list may be empty (then that optimizer is not made). Keyword arguments prefixed
    `adamw_` go to AdamW, the others to Muon.
    """

    def __init__(
        self,
        muon_params: list[nn.Parameter],
        adamw_params: list[nn.Parameter],
        *,
        lr: float,
        momentum: float,
        nesterov: bool,
        ns_steps: int,
        weight_decay: float,
        adjust_lr_fn: str,
        adamw_lr: float,
        adamw_betas: tuple[float, float],
        adamw_eps: float,
        adamw_weight_decay: float,
    ) -> None:
        inner: dict[str, torch.optim.Optimizer] = {}
        if muon_params:
            inner[MUON] = torch.optim.Muon(
                [{"params": muon_params, "algorithm": MUON}],
                lr=lr,
                momentum=momentum,
                nesterov=nesterov,
                ns_steps=ns_steps,
                weight_decay=weight_decay,
                adjust_lr_fn=adjust_lr_fn,
            )
        if adamw_params:
            inner[ADAMW] = torch.optim.AdamW(
                [{"params": adamw_params, "algorithm": ADAMW, SCHEMA_NAMES: dict(ADAMW_NAMES)}],
                lr=adamw_lr,
                betas=adamw_betas,
                eps=adamw_eps,
                weight_decay=adamw_weight_decay,
            )
        super().__init__([], inner)

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Tensor | None:
        """One Muon step and one AdamW step on the gradients in `.grad`.

        A closure (not needed by either) is evaluated once, before both steps.
        """
        loss = evaluate(closure)
        self._step_inner()
        return loss


def split(
    named_params: list[tuple[str, nn.Parameter]], roles: dict[str, Role]
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(Muon's, AdamW's) parameters: Muon takes the 2-D parameters whose role is "hidden".

    A parameter without a role counts as "other". Hidden kernels with more than two dimensions
    (convolutions) go to AdamW, since `torch.optim.Muon` rejects anything but matrices.
    """
    return split_hidden(named_params, roles, lambda param: param.ndim == 2)


PARAMS = (
    lr_param(0.02, "Learning rate η of the Muon groups.", low=1e-6),
    momentum_param(0.95, "Momentum μ of the Muon groups."),
    Param("nesterov", "bool", True, "Orthogonalise the Nesterov look-ahead (1 − μ)g + μB."),
    Param(
        "ns_steps",
        "int",
        5,
        "Newton–Schulz iterations per step; more bring the singular values closer to 1.",
        low=1,
        high=99,
    ),
    decay_param(
        "λ of the decoupled decay W ← W(1 − ηλ) of the Muon groups (0 as in Keller Jordan's "
        "reference; torch's default, 0.1, goes with its lr of 1e-3)."
    ),
    Param(
        "adjust_lr_fn",
        "choice",
        "original",
        "Scaling of η by shape (A×B): original √max(1, A/B) (Keller Jordan), match_rms_adamw "
        "0.2·√max(A, B), for an update RMS like AdamW's (Moonshot).",
        choices=("original", "match_rms_adamw"),
    ),
    *adamw_params("Learning rate of the AdamW groups (the adamw optimizer's default)."),
)


def build(
    named_params: list[tuple[str, nn.Parameter]],
    roles: dict[str, Role],
    hyper: dict[str, Any],
) -> MuonWithAdamW:
    """A `MuonWithAdamW` over the split of `named_params` by role; unset hyperparameters default."""
    kwargs = {**defaults(PARAMS), **hyper}
    kwargs["adamw_betas"] = tuple(kwargs["adamw_betas"])
    return MuonWithAdamW(*split(named_params, roles), **kwargs)


PLUGIN = OptimizerPlugin(
    id="muon",
    title="Muon (+ AdamW)",
    summary="MomentUm Orthogonalized by Newton–Schulz, torch.optim.Muon on hidden matrices: "
    "B ← μB + (1 − μ)G, then the Nesterov mix (1 − μ)G + μB is orthogonalised by five "
    "Newton–Schulz iterations X ← aX + (bXXᵀ + c(XXᵀ)²)X from G/‖G‖_F, which push every singular "
    "value to roughly [0.7, 1.2] (≈ UVᵀ), and W ← W(1 − ηλ) − η·√max(1, A/B)·X. Every step "
    "thus moves all directions of a matrix alike. Only 2-D parameters whose task role is "
    "'hidden' use Muon; embeddings, the head, biases, norms, convolution kernels (torch's Muon "
    "takes matrices only) and parameters without a role use AdamW, with its own adamw_* "
    "settings. A task without hidden matrices (2-D functions, quadratics) is thus trained by "
    "AdamW alone. Groups are tagged group['algorithm'] = 'muon' / 'adamw', Muon's first. "
    "torch runs Newton–Schulz in bfloat16, so Muon's steps have bfloat16 precision even in a "
    "float64 run.",
    params=PARAMS,
    build=build,
    family="orthogonal",
    reference="Jordan et al., Muon: An optimizer for hidden layers in neural networks, 2024, "
    "https://kellerjordan.github.io/posts/muon/; Liu et al., Muon is Scalable for LLM Training, "
    "arXiv:2502.16982, 2025.",
    needs=Needs(roles=True),
)
