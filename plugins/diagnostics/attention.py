"""Attention diagnostic: entropy of the attention maps and the spectral norm of their logits.

It looks for modules that keep their last attention probabilities in `last_attention`
((B, heads, T, T) after a plain forward; the char-transformer's `CausalSelfAttention`), runs the
model once on the probe batch and records, per such module and head:

- `attention/entropy/<layer>` (heads,): the mean over probe windows and queries i of
  −Σ_j A_ij log A_ij (nats; 0·log 0 = 0, so masked positions count for nothing). Query i of a
  causal layer sees i + 1 keys, so its entropy lies in [0, log(i + 1)]; the first query's is 0.
- `attention/logit_norm/<layer>` (heads,): the spectral norm of the T × T logit matrix
  S = QKᵀ/√d_head, averaged over the probe windows. The logits are exact: the module's own
  `scores(x)` recomputes them from its q/k projections for the input x captured by a pre-hook,
  not the row-centred log A (softmax forgets a per-row constant, and the spectral norm depends on
  it; underflowed probabilities would also give −∞). Future positions, which `scores` marks −∞
  and the softmax never sees, are set to 0: the matrix is the causal (lower-triangular) logit
  matrix, and every logit the softmax uses is bounded by its norm, |S_ij| ≤ ‖S‖₂, which is what
  ties entropy collapse to large logit norms (Zhai et al. 2023). Modules without a `scores`
  method get the entropy only.

Tasks without such modules declare no outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from descentlab.engine.plugin import (
    Diagnostic,
    DiagnosticPlugin,
    Display,
    Output,
    SetupContext,
    StepContext,
)


def _series(quantity: str, layer: str) -> str:
    return f"attention/{quantity}/{layer}"


def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Modules that keep their attention probabilities, by module name."""
    return {
        name: module for name, module in model.named_modules() if hasattr(module, "last_attention")
    }


def row_entropy(attention: Tensor) -> Tensor:
    """−Σ_j A_ij log A_ij over the last dimension (nats), with 0·log 0 = 0."""
    return torch.special.entr(attention).sum(dim=-1)


def logit_spectral_norm(scores: Tensor) -> Tensor:
    """Spectral norm of each T × T logit matrix, −∞ (masked) entries read as 0."""
    finite = scores.masked_fill(torch.isneginf(scores), 0.0)
    return torch.linalg.matrix_norm(finite.to("cpu", torch.float64), ord=2)


class AttentionDiagnostic(Diagnostic):
    """Per-head attention entropy and logit spectral norm on the probe batch."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.layers: list[str] = []
        self.with_logits: set[str] = set()

    def _forward(
        self, model: nn.Module, inputs: Tensor
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Attention maps and (for modules with `scores`) logits of one pass on `inputs`."""
        modules = attention_modules(model)
        maps: dict[str, Tensor] = {}
        kept_inputs: dict[str, tuple[Callable[[Tensor], Tensor], Tensor]] = {}

        def hook(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
            def record(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
                attention = module.last_attention
                if isinstance(attention, Tensor):
                    maps[name] = attention
                scores = getattr(module, "scores", None)
                if callable(scores):
                    kept_inputs[name] = (scores, args[0].detach())

            return record

        handles = [module.register_forward_hook(hook(n)) for n, module in modules.items()]
        try:
            with torch.no_grad():
                model(inputs)
                logits = {n: scores(x) for n, (scores, x) in kept_inputs.items()}
        finally:
            for handle in handles:
                handle.remove()
        return maps, logits

    def outputs(self, ctx: SetupContext) -> list[Output]:
        if not attention_modules(ctx.model):
            return []
        maps, logits = self._forward(ctx.model, ctx.task.probe[0])
        self.layers = list(maps)
        self.with_logits = set(logits) & set(maps)
        outputs = []
        for name in self.layers:
            heads = maps[name].shape[1]
            outputs.append(
                Output(_series("entropy", name), "vector", (heads,), unit="nats", layer=name)
            )
            if name in self.with_logits:
                outputs.append(Output(_series("logit_norm", name), "vector", (heads,), layer=name))
        return outputs

    @torch.no_grad()
    def compute(self, ctx: StepContext) -> dict[str, Any]:
        if not self.layers:
            return {}
        maps, logits = self._forward(ctx.model, ctx.task.probe[0])
        records: dict[str, Any] = {}
        for name in self.layers:
            attention = maps[name].to("cpu", torch.float64)
            # (B, heads, T) → mean over windows and queries → (heads,)
            records[_series("entropy", name)] = row_entropy(attention).mean(dim=(0, 2)).numpy()
            if name in self.with_logits:
                norms = logit_spectral_norm(logits[name])  # (B, heads)
                records[_series("logit_norm", name)] = norms.mean(dim=0).numpy()
        return records


PLUGIN = DiagnosticPlugin(
    id="attention",
    title="Attention entropy",
    summary="Per layer and head, on the probe batch: the entropy −Σ_j A_ij log A_ij of the "
    "attention probabilities averaged over queries, and the spectral norm of the (causal) "
    "pre-softmax logit matrix QKᵀ/√d. Attention entropy collapse, low entropy with growing logit "
    "norms, tends to come with loss spikes and unstable training. Only models whose attention "
    "modules keep `last_attention` (the character transformer) have these outputs.",
    params=(),
    create=AttentionDiagnostic,
    outputs=(
        Output(
            "attention/entropy/<layer>",
            "vector",
            unit="nats",
            display=Display(
                "Attention entropy per head", "Attn entropy", "entropy", "head ", view="lines"
            ),
        ),
        Output(
            "attention/logit_norm/<layer>",
            "vector",
            display=Display(
                "Attention logit spectral norm per head",
                "Attn logits",
                "‖QKᵀ‖₂",
                "head ",
                view="lines",
            ),
        ),
    ),
    cost="cheap",
    every=50,
    reference="Zhai et al. (2023), Stabilizing transformer training by preventing attention "
    "entropy collapse, ICML.",
)
