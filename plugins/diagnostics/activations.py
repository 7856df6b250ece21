"""Activation spectra: the covariance spectrum of the representation every layer receives.

A forward pass on the task's probe batch hooks every `nn.Linear` and `nn.Conv2d` and records the
module's *input*, i.e. the representation that layer is handed (post-activation of the layer
before, a LayerNorm's output, the embedding stream...), not its pre-activation output. Features
are the last dimension for a Linear (every other dimension, batch and positions, counts as
samples) and the channels for a convolution (batch × height × width samples). With X the n × d
sample-by-feature matrix and X̄ its column means, the covariance is C = (X − X̄)ᵀ(X − X̄)/n
(population normalisation) and its eigenvalues λ₁ ≥ … ≥ λ_d are computed in float64 on the CPU
(from the n × n Gram matrix when n < d).

Per layer:

- `activations/covariance_spectrum/<layer>`: the largest min(d, MAX_FEATURES) eigenvalues.
- `activations/entropy/<layer>`: the entropy effective rank exp(H(p)), p = √λ/Σ√λ, i.e. the
  Roy–Vetterli effective rank of the centred feature matrix (its singular values are √(nλ)), the
  same definition as `spectra/effective_rank`, over the full spectrum.
- `activations/mp_outliers/<layer>`: eigenvalues above the Marchenko–Pastur edge
  s²(1 + √(d/n))² of d features × n samples, with s² = tr C / d (the mean feature variance).

For the penultimate features, the input of the head (the module whose weight has role "head" in
`task.roles`, else the last Linear): `activations/penultimate_effective_rank` (as above) and
`activations/penultimate_nuclear_norm` = Σ√λ_i = ‖X − X̄‖_* / √n, the nuclear norm of the centred
features per √sample (so it does not grow with the probe size).

Hooks live only during the diagnostic's own forward pass and no graph is built.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch import Tensor, nn

from descentlab.engine import spectral
from descentlab.engine.plugin import (
    Diagnostic,
    DiagnosticPlugin,
    Display,
    Output,
    SetupContext,
    StepContext,
    Task,
)

MAX_FEATURES = 256
"""Longest covariance spectrum recorded per layer (the largest eigenvalues)."""

PENULTIMATE_RANK = "activations/penultimate_effective_rank"
PENULTIMATE_NUCLEAR = "activations/penultimate_nuclear_norm"


def _series(quantity: str, layer: str) -> str:
    return f"activations/{quantity}/{layer}"


def hooked_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Every Linear and Conv2d of the model, by module name."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, (nn.Linear, nn.Conv2d))
    }


def head_module(task: Task, modules: dict[str, nn.Module]) -> str | None:
    """Name of the module whose weight is the head, else the last Linear, else None."""
    for name in modules:
        if task.roles.get(f"{name}.weight") == "head":
            return name
    linears = [name for name, m in modules.items() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def features(module: nn.Module, inputs: Tensor) -> Tensor:
    """The module's input as float64 CPU samples × features (channels for a convolution)."""
    x = inputs.detach()
    if isinstance(module, nn.Conv2d):
        x = x.movedim(-3, -1)  # (…, C, H, W) → (…, H, W, C); works batched or not
    return x.reshape(-1, x.shape[-1]).to("cpu", torch.float64)


def capture_inputs(
    model: nn.Module, modules: dict[str, nn.Module], inputs: Tensor
) -> dict[str, Tensor]:
    """Run `model(inputs)` once without a graph and return each module's input features.

    A module called several times in one pass (shared weights) gets all its calls' samples.
    """
    captured: dict[str, list[Tensor]] = defaultdict(list)

    def hook(name: str):
        def record(module: nn.Module, args: tuple[Any, ...]) -> None:
            captured[name].append(features(module, args[0]))

        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in modules.items()]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return {name: torch.cat(parts) for name, parts in captured.items()}


def covariance_spectrum(x: Tensor) -> Tensor:
    """Eigenvalues of the population covariance of the rows of `x`, descending, clamped ≥ 0.

    With fewer samples n than features d, the d × d covariance has the same nonzero eigenvalues
    as the n × n Gram matrix (X − X̄)(X − X̄)ᵀ/n, which is the one decomposed; zeros fill the rest.
    """
    centred = x - x.mean(dim=0)
    samples, width = x.shape
    if samples < width:
        small = torch.linalg.eigvalsh(centred @ centred.T / samples)
        eigenvalues = torch.cat([small.new_zeros(width - samples), small])
    else:
        eigenvalues = torch.linalg.eigvalsh(centred.T @ centred / samples)
    return eigenvalues.flip(0).clamp_min(0.0)


class ActivationsDiagnostic(Diagnostic):
    """Covariance spectra of every Linear/Conv2d input on the probe batch."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.layers: dict[str, int] = {}
        self.head: str | None = None

    def outputs(self, ctx: SetupContext) -> list[Output]:
        modules = hooked_modules(ctx.model)
        if not modules:
            return []
        # A dry pass fixes the feature counts; modules the probe never reaches are left out.
        captured = capture_inputs(ctx.model, modules, ctx.task.probe[0])
        self.layers = {name: x.shape[1] for name, x in captured.items()}
        head = head_module(ctx.task, modules)
        self.head = head if head in self.layers else None
        outputs = []
        for name, width in self.layers.items():
            outputs += [
                Output(
                    _series("covariance_spectrum", name),
                    "vector",
                    (min(width, MAX_FEATURES),),
                    layer=name,
                ),
                Output(_series("entropy", name), "per_layer", layer=name),
                Output(_series("mp_outliers", name), "per_layer", layer=name),
            ]
        if self.head is not None:
            outputs += [Output(PENULTIMATE_RANK, "scalar"), Output(PENULTIMATE_NUCLEAR, "scalar")]
        return outputs

    @torch.no_grad()
    def compute(self, ctx: StepContext) -> dict[str, Any]:
        if not self.layers:
            return {}
        modules = {name: m for name, m in hooked_modules(ctx.model).items() if name in self.layers}
        captured = capture_inputs(ctx.model, modules, ctx.task.probe[0])
        records: dict[str, Any] = {}
        for name, x in captured.items():
            eigenvalues = covariance_spectrum(x)
            samples, width = x.shape
            singular = eigenvalues.sqrt()
            records[_series("covariance_spectrum", name)] = eigenvalues[:MAX_FEATURES].numpy()
            records[_series("entropy", name)] = spectral.effective_rank(singular)
            bulk = spectral.marchenko_pastur_outliers(
                eigenvalues, float(eigenvalues.sum()) / width, width, samples
            )
            records[_series("mp_outliers", name)] = float(bulk.outliers)
            if name == self.head:
                records[PENULTIMATE_RANK] = records[_series("entropy", name)]
                records[PENULTIMATE_NUCLEAR] = float(singular.sum())
        return records


PLUGIN = DiagnosticPlugin(
    id="activations",
    title="Activation spectra",
    summary="Eigenvalues of the covariance of the representation each Linear or Conv2d layer "
    "receives (its input features on the probe batch; channels for convolutions), with the "
    "entropy effective rank exp(H(√λ/Σ√λ)) and the count of eigenvalues above the "
    "Marchenko–Pastur edge of uncorrelated features. For the head's input (the penultimate "
    "features) its effective rank and nuclear norm ‖X − X̄‖_*/√n. Collapsing representations show "
    "as a falling effective rank; neural collapse drives the penultimate rank towards the number "
    "of classes − 1.",
    params=(),
    create=ActivationsDiagnostic,
    outputs=(
        Output(
            "activations/covariance_spectrum/<layer>",
            "vector",
            display=Display(
                "Activation covariance spectrum", "Act. spectrum", "λ", symbol="λ", log_y=True
            ),
        ),
        Output(
            "activations/entropy/<layer>",
            "per_layer",
            display=Display("Activation effective rank", "Act. rank", "exp H"),
        ),
        Output(
            "activations/mp_outliers/<layer>",
            "per_layer",
            display=Display("Activation eigenvalues above the MP edge", "Act. outliers", "count"),
        ),
        Output(
            PENULTIMATE_RANK,
            "scalar",
            display=Display("Penultimate features: effective rank", "Feature rank", "exp H"),
        ),
        Output(
            PENULTIMATE_NUCLEAR,
            "scalar",
            display=Display("Penultimate features: nuclear norm", "Feature ‖·‖*", "‖F‖*"),
        ),
    ),
    cost="cheap",
    every=50,
    reference="Roy & Vetterli (2007), The effective rank; Papyan, Han & Donoho (2020), "
    "Prevalence of neural collapse during the terminal phase of deep learning training, PNAS; "
    "Garrido et al. (2023), RankMe.",
)
