"""Per-step time and optimizer-state memory of every catalogue optimizer on digits-mlp, vs Adam.

Each optimizer trains the task's default MLP (batch 64) with its default hyperparameters, in the
loop the Runner uses (closures, create_graph, batches and roles honoured). Its steps are timed in
blocks that alternate with blocks of Adam on an identical model, so that drifts of the machine hit
both alike; the time figure is the ratio of the two medians. State memory is the bytes of every
distinct tensor the optimizer keeps in `state` after the timed steps, over Adam's.

    python benchmarks/optimizer_catalogue.py [--blocks 5] [--steps 10] [--only id,id]
        [--hidden 128 128] > table.md
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from descentlab.engine import registry
from descentlab.engine.params import defaults
from descentlab.engine.plugin import Batch, OptimizerPlugin, Task
from descentlab.engine.stepping import build_optimizer, take_step


def _tensors(value: Any) -> Iterator[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the distinct storages the optimizer's state holds (shared ones counted once)."""
    seen: dict[int, int] = {}
    for t in _tensors(dict(optimizer.state)):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


class Trainer:
    """One model and optimizer, stepping through the task's batches the way the Runner does."""

    def __init__(self, task: Task, plugin: OptimizerPlugin) -> None:
        self.task, self.plugin = task, plugin
        self.model = copy.deepcopy(task.model)
        named = list(self.model.named_parameters())
        self.optimizer = build_optimizer(plugin, named, task.roles, defaults(plugin.params))
        self.batches = task.batches(torch.Generator().manual_seed(0))

    def step(self) -> None:
        batch: Batch = next(self.batches)
        take_step(self.optimizer, self.plugin.needs, self.model, self.task.criterion, batch)

    def timed(self, steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            self.step()
        return (time.perf_counter() - started) / steps


def measure(
    task: Task, plugin: OptimizerPlugin, adam: OptimizerPlugin, blocks: int, steps: int
) -> tuple[float, float, float]:
    """(seconds per step, time ratio to Adam, state-memory ratio to Adam)."""
    subject, reference = Trainer(task, plugin), Trainer(task, adam)
    subject.timed(3)
    reference.timed(3)
    mine, theirs = [], []
    for _ in range(blocks):
        mine.append(subject.timed(steps))
        theirs.append(reference.timed(steps))
    own = statistics.median(mine)
    memory = state_bytes(subject.optimizer) / state_bytes(reference.optimizer)
    return own, own / statistics.median(theirs), memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--only", help="comma-separated optimizer ids")
    parser.add_argument(
        "--hidden", type=int, nargs="+", default=[128, 128], help="MLP widths (default 128 128)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    task_plugin = registry.plugins("tasks")["digits-mlp"]
    task = task_plugin.build(
        defaults(task_plugin.params) | {"batch_size": 64, "hidden": args.hidden},
        0,
        torch.device("cpu"),
        torch.float32,
    )
    optimizers = registry.plugins("optimizers")
    ids = args.only.split(",") if args.only else list(optimizers)
    parameters = sum(p.numel() for p in task.model.parameters())
    print(f"digits-mlp (hidden {args.hidden}, {parameters:,} parameters, batch 64), 1 thread, ")
    print(f"torch {torch.__version__}, ")
    print(
        f"{platform.processor() or platform.machine()}; {args.blocks} blocks × {args.steps} steps"
    )
    print()
    print("| optimizer | family | ms/step | time ÷ Adam | state memory ÷ Adam |")
    print("|---|---|---|---|---|")
    for pid in ids:
        plugin = optimizers[pid]
        try:
            seconds, ratio, memory = measure(
                task, plugin, optimizers["adam"], args.blocks, args.steps
            )
        except Exception as exc:  # an optimizer that cannot run here is listed with the reason
            reason = str(exc).splitlines()[0][:90]
            print(f"| {pid} | {plugin.family} | — | cannot run: {reason} | — |")
            print(f"{pid}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        print(f"| {pid} | {plugin.family} | {seconds * 1e3:.2f} | {ratio:.2f} | {memory:.2f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
