"""No catalogue optimizer takes a slow path: every entry that runs on the digits MLP steps within
a stated multiple of Adam's step time there.

Catches what a fresh install can get wrong without any test of correctness failing: PSGD Kron
without `opt_einsum` contracts its Kronecker factors left to right in `torch.einsum` and takes
about 20 s a step on this 26k-parameter MLP instead of about 10 ms (1,000× Adam). Each entry's
steps are timed one by one, alternating with steps of Adam on an identical model, and the
medians are compared, so a busy machine slows both alike; a step within `FLOOR_S` always
passes, so that a very fast Adam does not make the bound tight.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Iterator

import pytest
import torch

from descentlab.engine.params import defaults
from descentlab.engine.plugin import Batch, OptimizerPlugin, Task
from descentlab.engine.registry import plugins
from descentlab.engine.stepping import build_optimizer, take_step

MULTIPLE = 200.0
"""A step may take this many times Adam's (median against median)."""

FLOOR_S = 0.25
"""A step this short always passes, whatever Adam's time."""

HEAVY: dict[str, tuple[float, str]] = {
    "egn": (
        2000.0,
        "EGN forms the per-example Jacobian (64 × 26,122) and solves a batch-sized system every "
        "step: about 170× Adam by design.",
    ),
}
"""Entries allowed a larger multiple, with the reason."""

TOO_LARGE = {
    "newton": "refuses models above max_params = 3000 (a dense Hessian)",
    "lazy-newton": "refuses models above max_params = 3000 (a dense Hessian)",
}
"""Entries that refuse the digits MLP by design, besides those exempt from every check."""

TIMED_STEPS = 3
CONFIRM_STEPS = 9
NEAR = 3.0
"""An entry found slower than its bound by at most this factor gets a second, longer look
(`CONFIRM_STEPS`): a burst of load on a shared machine can slow three steps past the bound, while
a real slow path (PSGD Kron without opt_einsum: about 1,000×) is far beyond it and fails at once."""


def _task() -> Task:
    plugin = plugins("tasks")["digits-mlp"]
    params = defaults(plugin.params) | {"batch_size": 64, "hidden": [128, 128]}
    return plugin.build(params, 0, torch.device("cpu"), torch.float32)


class _Stepper:
    """One copy of the task's model with its optimizer, stepping through the task's batches."""

    def __init__(self, task: Task, plugin: OptimizerPlugin) -> None:
        self.task, self.needs = task, plugin.needs
        self.model = copy.deepcopy(task.model)
        named = list(self.model.named_parameters())
        self.optimizer = build_optimizer(plugin, named, task.roles, defaults(plugin.params))
        self.batches: Iterator[Batch] = task.batches(torch.Generator().manual_seed(0))

    def seconds(self) -> float:
        """Wall time of one step."""
        batch = next(self.batches)
        started = time.perf_counter()
        take_step(self.optimizer, self.needs, self.model, self.task.criterion, batch)
        return time.perf_counter() - started


def _medians(subject: _Stepper, adam: _Stepper, steps: int) -> tuple[float, float]:
    """Median step times of `subject` and of Adam, their steps alternating."""
    mine, theirs = [], []
    for _ in range(steps):
        mine.append(subject.seconds())
        theirs.append(adam.seconds())
    return statistics.median(mine), statistics.median(theirs)


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_every_runnable_optimizer_steps_within_a_multiple_of_adam() -> None:
    task = _task()
    optimizers = plugins("optimizers")
    adam = _Stepper(task, optimizers["adam"])
    adam.seconds()
    slow: list[tuple[float, str]] = []
    refused: set[str] = set()
    for pid, plugin in optimizers.items():
        try:
            subject = _Stepper(task, plugin)
        except ValueError:  # "cannot run here", or a size guard
            refused.add(pid)
            continue
        subject.seconds()  # first steps allocate state and compile nothing twice
        multiple = HEAVY.get(pid, (MULTIPLE, ""))[0]
        own, reference = _medians(subject, adam, TIMED_STEPS)
        if 1 < own / max(multiple * reference, FLOOR_S) <= NEAR:  # load, or slow? look again
            own, reference = _medians(subject, adam, CONFIRM_STEPS)
        if own > max(multiple * reference, FLOOR_S):
            slow.append(
                (own / reference, f"{pid}: {own * 1e3:.0f} ms/step, {own / reference:.0f}×")
            )
    slow.sort(reverse=True)
    assert not slow, (
        f"slower than {MULTIPLE:.0f}× Adam's step (or {FLOOR_S} s) on digits-mlp: "
        + "; ".join(text for _, text in slow)
        + " (PSGD Kron is this slow when opt_einsum is missing: "
        "torch.backends.opt_einsum.is_available() must be True)"
    )
    unrunnable = {pid for pid, p in optimizers.items() if "runner" in p.exempt}
    assert refused - unrunnable == set(TOO_LARGE), "refused the digits MLP unexpectedly"


def test_opt_einsum_is_installed_for_torch_einsum() -> None:
    """Declared in pyproject.toml: without it torch.einsum ignores contraction order."""
    assert torch.backends.opt_einsum.is_available()
    assert torch.backends.opt_einsum.enabled
