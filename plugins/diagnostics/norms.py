"""Norms diagnostic: ‖g‖, ‖Δθ‖ and ‖θ‖ per layer and in total, and the distance travelled from θ₀.

It runs every step, so it is written to cost a handful of kernel launches and one device-to-host
copy whatever the number of layers: `torch._foreach_norm` takes the norms of a whole list of
tensors at once (it is what `torch.nn.utils.clip_grad_norm_` uses), the totals are norms of those
norms (‖x‖² = Σ_layers ‖x_layer‖²), and every number is moved to the host in one `.tolist()`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from descentlab.engine.plugin import (
    Diagnostic,
    DiagnosticPlugin,
    Display,
    Output,
    SetupContext,
    StepContext,
)

QUANTITIES = ("grad", "update", "weight")
DISTANCE = "norms/distance_from_init"


def _layer_series(quantity: str, layer: str) -> str:
    return f"norms/{quantity}/{layer}"


def _total_series(quantity: str) -> str:
    # Not `norms/grad/total`: a parameter may well be named "total".
    return f"norms/{quantity}_total"


def _total(norms: Tensor) -> Tensor:
    """‖x‖ from the norms of x's parts, as a 1-element vector ready to concatenate."""
    return torch.linalg.vector_norm(norms).reshape(1)


class NormsDiagnostic(Diagnostic):
    """Euclidean norms of gradients, updates and weights; each layer is one named parameter."""

    needs_update = True

    def outputs(self, ctx: SetupContext) -> list[Output]:
        outputs = [
            Output(_layer_series(quantity, name), "per_layer", layer=name)
            for quantity in QUANTITIES
            for name in ctx.named_params
        ]
        outputs += [Output(_total_series(quantity), "scalar") for quantity in QUANTITIES]
        outputs.append(Output(DISTANCE, "scalar"))
        return outputs

    @torch.no_grad()
    def compute(self, ctx: StepContext) -> dict[str, Any]:
        """Norms at this step; update norms are absent when there is no update yet (step 0).

        Gradients and updates are looked up by parameter name, so a parameter that got no
        gradient this step simply has no gradient record.
        """
        params = ctx.named_params
        tensors: dict[str, dict[str, Tensor]] = {
            "grad": {n: ctx.grads[n] for n in params if n in ctx.grads},
            "update": {n: ctx.update[n] for n in params if n in ctx.update} if ctx.update else {},
            "weight": dict(params),
        }
        # One vector: each quantity's per-layer norms followed by their total, then the distance.
        pieces: list[Tensor] = []
        for quantity in QUANTITIES:
            if tensors[quantity]:
                norms = torch.stack(torch._foreach_norm(list(tensors[quantity].values())))
                pieces += [norms, _total(norms)]
        moved = torch._foreach_sub(list(params.values()), [ctx.init_params[n] for n in params])
        pieces.append(_total(torch.stack(torch._foreach_norm(moved))))
        numbers = torch.cat(pieces).tolist()  # the only device-to-host sync

        records: dict[str, Any] = {}
        offset = 0
        for quantity in QUANTITIES:
            names = list(tensors[quantity])
            if not names:
                continue
            layer_norms = numbers[offset : offset + len(names)]
            for name, value in zip(names, layer_norms, strict=True):
                records[_layer_series(quantity, name)] = value
            records[_total_series(quantity)] = numbers[offset + len(names)]
            offset += len(names) + 1
        records[DISTANCE] = numbers[offset]
        return records


PLUGIN = DiagnosticPlugin(
    id="norms",
    title="Norms per layer",
    summary="Euclidean norms, for every named parameter, of its gradient ‖g‖ (as captured "
    "before the optimizer step), of its last update ‖Δθ‖ = ‖θ_t − θ_{t−1}‖ and of its weights "
    "‖θ‖, with their totals over all parameters (norms/grad_total, …) and the distance "
    "‖θ − θ₀‖ from the initial weights. The ratio ‖Δθ‖/‖θ‖ per layer shows which layers an "
    "optimizer actually moves.",
    params=(),
    create=NormsDiagnostic,
    outputs=(
        Output(
            "norms/grad/<layer>",
            "per_layer",
            display=Display("Gradient norm ‖g‖", "‖g‖", "‖g‖", log_y=True, order=60),
        ),
        Output(
            "norms/update/<layer>",
            "per_layer",
            display=Display("Update norm ‖Δθ‖", "‖Δθ‖", "‖Δθ‖", log_y=True, order=61),
        ),
        Output(
            "norms/weight/<layer>",
            "per_layer",
            display=Display("Weight norm ‖θ‖", "‖θ‖", "‖θ‖", order=62),
        ),
        Output("norms/grad_total", "scalar", display=Display(group="norms/grad", role="total")),
        Output("norms/update_total", "scalar", display=Display(group="norms/update", role="total")),
        Output("norms/weight_total", "scalar", display=Display(group="norms/weight", role="total")),
        Output(
            DISTANCE,
            "scalar",
            display=Display("Distance from init ‖θ − θ₀‖", "‖θ − θ₀‖", "‖θ − θ₀‖", order=63),
        ),
    ),
    cost="cheap",
    every=1,
)
