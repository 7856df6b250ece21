"""Helpers the engine tests share, without Qt (imported as `engine_helpers`)."""

from __future__ import annotations

import torch

from descentlab.engine.commands import Command
from descentlab.engine.memory import MemorySink
from descentlab.engine.plugin import SetupContext, StepContext, Task
from descentlab.engine.runner import Runner
from descentlab.engine.spec import parse_toml


def seeded(seed: int) -> torch.Generator:
    """A generator of its own for one draw, so tests never depend on the global RNG's state."""
    return torch.Generator().manual_seed(seed)


def contexts(task: Task, lr: float, step: int = 0) -> tuple[SetupContext, StepContext]:
    """A diagnostic's setup and step contexts for `task` at its current parameters (SGD at
    rate `lr`, no gradients or update recorded)."""
    named = dict(task.model.named_parameters())
    optimizer = torch.optim.SGD(named.values(), lr=lr)
    setup = SetupContext(model=task.model, named_params=named, task=task, optimizer=optimizer)
    step_ctx = StepContext(
        step=step,
        model=task.model,
        named_params=named,
        grads={},
        update=None,
        init_params={name: p.detach().clone() for name, p in named.items()},
        optimizer=optimizer,
        lr=lr,
        loss=0.0,
        task=task,
    )
    return setup, step_ctx


class Script:
    """A command source that hands over commands when the runner reaches given steps."""

    def __init__(self, runner: Runner, plan: list[tuple[int, Command]]) -> None:
        self.runner = runner
        self.plan = list(plan)

    def poll(self, timeout: float) -> list[Command]:
        due = [c for s, c in self.plan if s <= self.runner.step]
        self.plan = [(s, c) for s, c in self.plan if s > self.runner.step]
        if not due and self.runner.paused and not self.plan:
            raise AssertionError("paused with no command left: the test would hang")
        return due


def run(text: str, plan: list[tuple[int, Command]] | None = None) -> tuple[Runner, MemorySink]:
    """The spec `text` run to its end in memory, with `plan`'s commands at their steps."""
    runner = Runner(parse_toml(text), poll_interval=0.0)
    sink = MemorySink()
    runner.run(sink, commands=Script(runner, plan or []))
    return runner, sink


def muon_spec(steps: int, run_table: str = "") -> str:
    """A Muon run `m` on a small Gaussian mixture: its hidden matrix is Muon's group, the rest
    its AdamW group, the smallest task on which the two groups' rates differ. `run_table` adds
    lines to the run's table (a schedule)."""
    return f"""
steps = {steps}
device = "cpu"
[task]
id = "gaussian-mixture"
samples = 64
hidden = [8]
[[runs]]
name = "m"
optimizer = {{ id = "muon" }}
{run_table}"""
