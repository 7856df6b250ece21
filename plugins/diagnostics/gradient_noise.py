"""Gradient-noise diagnostic: per-example gradients on the probe batch, their spread and signal.

Every row of the probe inputs is one example (for the character transformer one text window,
whose loss is the mean over its positions), and its gradient g_i comes from
`torch.func.vmap(torch.func.grad(...))` over a functional call of the model, a chunk of examples
at a time so that at most `chunk` copies of the parameters' gradients are alive at once. Chunks
are merged by Chan et al.'s parallel update of the mean and of the sum of squared deviations
M2 = Σ_i (g_i − ḡ)², which avoids the cancellation of Σg² − n ḡ². From those:

- tr Σ = mean_i ‖g_i − ḡ‖² = Σ_coordinates M2 / n (the population covariance of the n examples);
- the simple noise scale B_simple = tr Σ / ‖ḡ‖² (McCandlish et al. 2018): about the batch size
  beyond which larger batches stop paying off;
- the gradient signal-to-noise ratio per coordinate, (E g)² / Var g (Liu et al. 2020), with
  Var g = M2 / n, averaged over the coordinates of each named parameter. Coordinates whose
  variance is zero up to rounding (an embedding row no example uses: 0/0; a gradient identical
  for every example) have no finite ratio and are left out of the average (NaN if all are);
- the cosine between ḡ on the probe (training examples) and the gradient of the mean loss on the
  first n held-out examples, when the task has a held-out set.

Tasks whose probe is no batch of examples (2-D functions, quadratics: 0 or 1 rows) declare
no outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from descentlab.engine.params import Param
from descentlab.engine.plugin import (
    Batch,
    Diagnostic,
    DiagnosticPlugin,
    Display,
    Output,
    SetupContext,
    StepContext,
    Task,
)

TRACE = "gradient_noise/trace_covariance"
NOISE_SCALE = "gradient_noise/noise_scale"
SNR = "gradient_noise/snr"
COSINE = "gradient_noise/train_heldout_cosine"

PARAMS = (
    Param(
        "chunk",
        "int",
        64,
        "Examples whose gradients are computed at once (bounds memory: chunk × parameters).",
        low=1,
        high=65536,
    ),
)


def _snr_series(layer: str) -> str:
    return f"{SNR}/{layer}"


def has_examples(task: Task) -> bool:
    """Whether the probe is a batch of at least two examples (rows of its inputs)."""
    inputs = task.probe[0]
    return inputs.dim() > 0 and inputs.shape[0] >= 2


def _trainable(named_params: dict[str, nn.Parameter]) -> list[str]:
    return [name for name, p in named_params.items() if p.requires_grad]


def _batch_loss(
    model: nn.Module, criterion: Callable[[Tensor, Tensor], Tensor], constants: dict[str, Tensor]
) -> Callable[[dict[str, Tensor], Tensor, Tensor], Tensor]:
    """loss(params, inputs, targets) = criterion(model(inputs), targets) at `params`."""

    def loss(params: dict[str, Tensor], inputs: Tensor, targets: Tensor) -> Tensor:
        return criterion(functional_call(model, {**constants, **params}, (inputs,)), targets)

    return loss


class Moments:
    """Running mean and sum of squared deviations M2 per coordinate, merged chunk by chunk."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: dict[str, Tensor] = {}
        self.m2: dict[str, Tensor] = {}

    def add(self, grads: dict[str, Tensor]) -> None:
        """Merge a chunk of per-example gradients (each of shape (c, *parameter shape))."""
        for name, g in grads.items():
            c = g.shape[0]
            chunk_mean = g.mean(dim=0)
            chunk_m2 = (g - chunk_mean).square().sum(dim=0)
            if self.n == 0:
                self.mean[name], self.m2[name] = chunk_mean, chunk_m2
                continue
            total = self.n + c
            delta = chunk_mean - self.mean[name]
            self.mean[name] = self.mean[name] + delta * (c / total)
            self.m2[name] = self.m2[name] + chunk_m2 + delta.square() * (self.n * c / total)
        self.n += next(iter(grads.values())).shape[0] if grads else 0


def per_example_moments(
    model: nn.Module,
    criterion: Callable[[Tensor, Tensor], Tensor],
    named_params: dict[str, nn.Parameter],
    batch: Batch,
    chunk: int,
) -> Moments:
    """Mean and M2 of the per-example gradients of `criterion` over the rows of `batch`."""
    names = _trainable(named_params)
    params = {n: named_params[n].detach() for n in names}
    constants = {n: p.detach() for n, p in model.named_parameters() if n not in params}
    constants.update({n: b.detach() for n, b in model.named_buffers()})
    loss = _batch_loss(model, criterion, constants)

    def example_loss(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return loss(p, x.unsqueeze(0), y.unsqueeze(0))

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))
    inputs, targets = batch
    moments = Moments()
    for start in range(0, inputs.shape[0], chunk):
        grads = per_example(params, inputs[start : start + chunk], targets[start : start + chunk])
        moments.add(grads)
        del grads
    return moments


def mean_gradient(
    model: nn.Module,
    criterion: Callable[[Tensor, Tensor], Tensor],
    named_params: dict[str, nn.Parameter],
    batch: Batch,
) -> dict[str, Tensor]:
    """Gradient of the mean loss on `batch`, without touching `.grad` or the model's records."""
    names = _trainable(named_params)
    params = {n: named_params[n].detach() for n in names}
    constants = {n: p.detach() for n, p in model.named_parameters() if n not in params}
    constants.update({n: b.detach() for n, b in model.named_buffers()})
    return grad(_batch_loss(model, criterion, constants))(params, *batch)


def _flat(tensors: dict[str, Tensor], names: list[str]) -> Tensor:
    return torch.cat([tensors[n].reshape(-1) for n in names])


class GradientNoiseDiagnostic(Diagnostic):
    """tr Σ, the simple noise scale, GSNR per layer and the train/held-out gradient cosine."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.chunk = int(params.get("chunk", 64))

    def outputs(self, ctx: SetupContext) -> list[Output]:
        if not has_examples(ctx.task):
            return []
        outputs = [Output(TRACE, "scalar"), Output(NOISE_SCALE, "scalar")]
        outputs += [
            Output(_snr_series(name), "per_layer", layer=name)
            for name in _trainable(ctx.named_params)
        ]
        if ctx.task.held_out is not None and ctx.task.held_out[0].shape[0] > 0:
            outputs.append(Output(COSINE, "scalar"))
        return outputs

    def compute(self, ctx: StepContext) -> dict[str, Any]:
        task = ctx.task
        if not has_examples(task):
            return {}
        names = _trainable(ctx.named_params)
        moments = per_example_moments(
            ctx.model, task.criterion, ctx.named_params, task.probe, self.chunk
        )
        n = moments.n
        with torch.no_grad():
            pieces: list[Tensor] = []
            traces = torch.stack([moments.m2[name].sum() / n for name in names])
            mean_sq = torch.stack([moments.mean[name].square().sum() for name in names])
            pieces += [traces.sum().reshape(1), mean_sq.sum().reshape(1)]
            for name in names:
                mean, var = moments.mean[name], moments.m2[name] / n
                # Below this the variance is rounding noise of a constant gradient (or 0/0).
                eps = torch.finfo(var.dtype).eps
                valid = var > (n * eps) ** 2 * mean.square()
                valid &= var > 0
                ratio = mean.square()[valid] / var[valid]
                pieces.append(
                    ratio.mean().reshape(1) if ratio.numel() else var.new_full((1,), math.nan)
                )
            has_cosine = task.held_out is not None and task.held_out[0].shape[0] > 0
            if has_cosine:
                assert task.held_out is not None
                held = (task.held_out[0][:n], task.held_out[1][:n])
                with torch.enable_grad():
                    g_held = mean_gradient(ctx.model, task.criterion, ctx.named_params, held)
                a, b = _flat(moments.mean, names), _flat(g_held, names)
                pieces.append(torch.nn.functional.cosine_similarity(a, b, dim=0, eps=0.0)[None])
            numbers = torch.cat([p.to(torch.float64) for p in pieces]).tolist()  # one sync

        trace, norm_sq = numbers[0], numbers[1]
        records: dict[str, Any] = {
            TRACE: trace,
            NOISE_SCALE: trace / norm_sq if norm_sq > 0 else math.nan,
        }
        for name, value in zip(names, numbers[2 : 2 + len(names)], strict=True):
            records[_snr_series(name)] = value
        if has_cosine:
            records[COSINE] = numbers[2 + len(names)]
        return records


PLUGIN = DiagnosticPlugin(
    id="gradient-noise",
    title="Gradient noise",
    summary="Per-example gradients g_i on the probe batch (torch.func vmap of grad, one example "
    "per row of the probe, a text window for the character transformer), and from them: the "
    "trace of their covariance tr Σ = mean ‖g_i − ḡ‖², the simple noise scale tr Σ/‖ḡ‖² "
    "(roughly the critical batch size: above it, larger batches stop helping), the gradient "
    "signal-to-noise ratio (E g)²/Var g per coordinate averaged over each layer, and the cosine "
    "between the mean gradient on the probe and on as many held-out examples (a falling cosine "
    "means the training gradient no longer points where the held-out loss falls). Tasks without "
    "a batch of examples (2-D functions, quadratics) get no outputs.",
    params=PARAMS,
    create=GradientNoiseDiagnostic,
    outputs=(
        Output(
            TRACE,
            "scalar",
            display=Display("Gradient noise tr Σ", "Noise tr Σ", "tr Σ", log_y=True),
        ),
        Output(
            NOISE_SCALE,
            "scalar",
            display=Display("Simple noise scale tr Σ / ‖ḡ‖²", "Noise scale", "B_simple"),
        ),
        Output(
            f"{SNR}/<layer>",
            "per_layer",
            display=Display("Gradient signal-to-noise ratio", "Gradient SNR", "SNR"),
        ),
        Output(
            COSINE,
            "scalar",
            display=Display("cos(train gradient, held-out gradient)", "Train/held-out cos", "cos"),
        ),
    ),
    cost="heavy",
    every=50,
    reference="McCandlish, Kaplan, Amodei et al., An Empirical Model of Large-Batch Training, "
    "2018; Liu, Mao, Wang et al., Understanding Why Neural Networks Generalize Well Through "
    "GSNR of Parameters, ICLR 2020.",
)
