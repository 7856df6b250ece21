"""Evaluation diagnostic: loss and accuracy on the held-out set and on the whole training set.

The training loss recorded every step is that of one mini-batch; this diagnostic measures the
model on all of the data, in eval mode (dropout off, normalisation on running statistics) and
without a graph, so that generalisation gaps and full-batch progress can be read off directly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

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

LOSS = "eval/loss"
ACCURACY = "eval/accuracy"
TRAIN_LOSS = "eval/train_loss"
TRAIN_ACCURACY = "eval/train_accuracy"

PARAMS = (
    Param(
        "chunk_size",
        "int",
        4096,
        "Examples per forward pass: bounds the memory of an evaluation, not its result.",
        low=1,
        high=1 << 20,
    ),
)


@torch.no_grad()
def evaluate(
    model: nn.Module, task: Task, batch: Batch, chunk_size: int
) -> tuple[float, float | None]:
    """(mean loss, accuracy or None) of `model` over all of `batch`, `chunk_size` rows at a time.

    `task.criterion` returns a mean, so each chunk's loss is weighted by its number of rows.
    Accuracy is over every target entry (every token of a sequence task), with predictions the
    argmax over the last dimension of the outputs. The model's training mode is restored after.
    """
    inputs, targets = batch
    n = inputs.shape[0]
    loss_sum = torch.zeros((), dtype=torch.float64, device=inputs.device)
    correct = torch.zeros((), dtype=torch.float64, device=inputs.device)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, n, chunk_size):
            x, y = inputs[start : start + chunk_size], targets[start : start + chunk_size]
            outputs = model(x)
            loss_sum += task.criterion(outputs, y).double() * x.shape[0]
            if task.classification:
                correct += (outputs.argmax(dim=-1) == y).sum()
    finally:
        model.train(was_training)
    loss, hits = torch.stack([loss_sum / n, correct / targets.numel()]).tolist()  # one sync
    return loss, hits if task.classification else None


def _datasets(task: Task) -> list[tuple[Batch, str, str]]:
    """(data, loss series, accuracy series) for each of held-out and train that the task has."""
    found = []
    if task.held_out is not None:
        found.append((task.held_out, LOSS, ACCURACY))
    if task.train is not None:
        found.append((task.train, TRAIN_LOSS, TRAIN_ACCURACY))
    return found


class EvalDiagnostic(Diagnostic):
    """Full-data loss (and accuracy for classification) of the current weights."""

    def outputs(self, ctx: SetupContext) -> list[Output]:
        outputs = []
        for _, loss_name, accuracy_name in _datasets(ctx.task):
            outputs.append(Output(loss_name, "scalar"))
            if ctx.task.classification:
                outputs.append(Output(accuracy_name, "scalar", unit="fraction"))
        return outputs

    def compute(self, ctx: StepContext) -> dict[str, Any]:
        records: dict[str, Any] = {}
        for batch, loss_name, accuracy_name in _datasets(ctx.task):
            loss, accuracy = evaluate(ctx.model, ctx.task, batch, self.params["chunk_size"])
            records[loss_name] = loss
            if accuracy is not None:
                records[accuracy_name] = accuracy
        return records


PLUGIN = DiagnosticPlugin(
    id="eval",
    title="Evaluation",
    summary="Loss on the whole held-out set (eval/loss) and on the whole training set "
    "(eval/train_loss), plus accuracy for classification tasks (argmax of the outputs against "
    "the targets), in eval mode and without gradients. Tasks without data (2-D functions, "
    "quadratics) have nothing to evaluate and record nothing.",
    params=PARAMS,
    create=EvalDiagnostic,
    outputs=(
        Output(
            LOSS,
            "scalar",
            display=Display(
                "Loss on all data: held-out and train", "Eval loss", "loss", log_y=True, order=40
            ),
        ),
        Output(
            ACCURACY,
            "scalar",
            unit="fraction",
            display=Display(
                "Accuracy on all data: held-out and train", "Accuracy", "accuracy", order=41
            ),
        ),
        Output(TRAIN_LOSS, "scalar", display=Display(label="loss", group=LOSS, order=40)),
        Output(
            TRAIN_ACCURACY,
            "scalar",
            unit="fraction",
            display=Display(label="accuracy", group=ACCURACY, order=41),
        ),
    ),
    cost="cheap",
    every=50,
)
