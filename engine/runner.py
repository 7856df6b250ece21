"""The Runner: trains every run of an experiment in lockstep and feeds a sink with records.

Runs share the initial weights and the batch order, so their differences come from the
optimizer alone. One step of one run is: loss and gradients on the shared batch, the
diagnostics that are due (they see θ_t and its gradients before any optimizer can overwrite
`.grad`), then `optimizer.step()`. The hot path does nothing else unless asked: gradients are
read in place, and parameters are copied only before a step whose successor has a diagnostic
that needs the update Δθ.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from descentlab.engine import checkpoints, live_hyper, registry
from descentlab.engine.checkpoints import Checkpoint, Tree
from descentlab.engine.commands import (
    Command,
    CommandSource,
    Fork,
    Pause,
    Resume,
    SetHyper,
    StepN,
    Stop,
)
from descentlab.engine.params import Problems
from descentlab.engine.plugin import (
    Batch,
    Diagnostic,
    OptimizerPlugin,
    Output,
    SetupContext,
    StepContext,
    Task,
)
from descentlab.engine.schedules import Multiplier, multiplier
from descentlab.engine.sink import RunHeader, Sink
from descentlab.engine.spec import (
    DiagnosticSpec,
    ExperimentSpec,
    RunSpec,
    SpecError,
    check_fork,
)
from descentlab.engine.stepping import build_optimizer, take_step

BASE_SERIES = (Output("train/loss", "scalar"), Output("train/lr", "scalar"))


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when there is one; asking for a device that is absent is a spec error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SpecError(
                [
                    f"device: {name!r} requested, but this machine has no CUDA device; "
                    "allowed here: auto, cpu"
                ]
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SpecError(
                [
                    f"device: {name!r} does not exist; this machine has "
                    f"{torch.cuda.device_count()} CUDA device(s)"
                ]
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SpecError([f"device: {name!r} requested, but MPS is not available here"])
    return device


@dataclass
class RunState:
    """One run: its model, optimizer, schedule, diagnostics and progress."""

    spec: RunSpec
    plugin: OptimizerPlugin
    model: nn.Module
    optimizer: torch.optim.Optimizer
    named: dict[str, nn.Parameter]
    init: dict[str, Tensor]
    base_lrs: list[float]
    factor: Multiplier | None
    diagnostics: list[tuple[DiagnosticSpec, Diagnostic]]
    outputs: list[Output]
    parent: str = ""
    fork_step: int = -1
    status: str = "running"
    error: str = ""
    last_loss: float = math.nan
    steps_done: int = 0
    seconds: float = 0.0
    previous: dict[str, Tensor] | None = None
    declared: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def steps_per_second(self) -> float:
        return self.steps_done / self.seconds if self.seconds > 0 else 0.0


def _to_record(value: Any) -> float | np.ndarray:
    if isinstance(value, Tensor):
        value = value.detach().to("cpu", torch.float64).numpy()
    if isinstance(value, np.ndarray):
        return value.astype(np.float64, copy=False) if value.ndim else float(value)
    return float(value)


class Runner:
    """Trains the runs of one experiment.

    Args:
        spec: a validated experiment spec.
        poll_interval: seconds between two looks at the command source while running; a
            shorter interval answers faster and costs a system call more often.
    Raises:
        SpecError: when the task or an optimizer cannot be built from the spec, or the device
            is not there; nothing has been written then.
    """

    def __init__(self, spec: ExperimentSpec, poll_interval: float = 0.05) -> None:
        self.spec = spec
        self.poll_interval = poll_interval
        self.device = resolve_device(spec.device)
        self.dtype = torch.float64 if spec.dtype == "float64" else torch.float32
        task_plugin = registry.plugins("tasks")[spec.task.id]
        try:
            self.task: Task = task_plugin.build(
                dict(spec.task.params), spec.seed, self.device, self.dtype
            )
        except (ValueError, TypeError) as exc:
            raise SpecError([f"task ({spec.task.id}): {exc}"]) from None
        self.generator = torch.Generator().manual_seed(spec.seed)
        self._batches = self.task.batches(self.generator)
        self.step = 0
        self.paused = False
        self.stopped = False
        self._budget: int | None = None
        self._next_poll = 0.0
        self.sink: Sink | None = None
        self.runs: dict[str, RunState] = {}
        self._pending_errors: list[tuple[str, str]] = []
        self._running = 0  # runs still training; the loop ends when none is left
        problems = Problems()
        for i, run_spec in enumerate(spec.runs):
            try:
                self.runs[run_spec.name] = self._make_run(run_spec, self.task.model)
            except (ValueError, TypeError, RuntimeError) as exc:
                problems.add(f"runs[{i}].optimizer ({run_spec.optimizer.id})", str(exc))
        if problems:
            raise SpecError(problems.items)
        self._running = len(self.runs)

    # -- building -------------------------------------------------------------------------

    def _make_run(
        self, run_spec: RunSpec, source: nn.Module, init: dict[str, Tensor] | None = None
    ) -> RunState:
        model = copy.deepcopy(source)
        named = dict(model.named_parameters())
        plugin = registry.plugins("optimizers")[run_spec.optimizer.id]
        optimizer = build_optimizer(
            plugin, list(named.items()), self.task.roles, dict(run_spec.optimizer.params)
        )
        sched = run_spec.schedule
        factor = None
        if sched.id != "constant" or sched.params.get("warmup_steps", 0) > 0:
            factor = multiplier(sched.id, sched.params, self.spec.steps)
        diagnostics = []
        for dspec in self.spec.diagnostics:
            if dspec.runs is None or run_spec.name in dspec.runs:
                plugin_d = registry.plugins("diagnostics")[dspec.id]
                diagnostics.append((dspec, plugin_d.create(dict(dspec.params))))
        state = RunState(
            spec=run_spec,
            plugin=plugin,
            model=model,
            optimizer=optimizer,
            named=named,
            init=init if init is not None else {k: p.detach().clone() for k, p in named.items()},
            base_lrs=[g.get("lr", 0.0) for g in optimizer.param_groups],
            factor=factor,
            diagnostics=diagnostics,
            outputs=[],
        )
        state.outputs = self._outputs(state)
        state.declared = {o.name for o in state.outputs}
        return state

    def _outputs(self, run: RunState) -> list[Output]:
        outputs = list(BASE_SERIES)
        if self.task.step_series is not None:
            for name, value in self.task.step_series(run.model).items():
                outputs.append(
                    Output(
                        name,
                        "points2d" if np.shape(value) == (2,) else "vector",
                        tuple(np.shape(value)),
                    )
                )
        declared, errors = declare_diagnostics(run, self.task)
        self._pending_errors.extend((run.name, message) for message in errors)
        return outputs + declared

    def _config(self, run: RunState) -> dict[str, Any]:
        return {
            **run.spec.to_dict(),
            "task": self.spec.task.to_dict(),
            "seed": self.spec.seed,
            "device": str(self.device),
            "dtype": self.spec.dtype,
            "parameters": sum(p.numel() for p in run.named.values()),
            "diagnostics": [d.to_dict() for d, _ in run.diagnostics],
        }

    # -- the loop -------------------------------------------------------------------------

    def run(
        self,
        sink: Sink,
        commands: CommandSource | None = None,
        on_progress: Callable[[Runner], None] | None = None,
        progress_interval: float = 0.2,
        start_paused: bool = False,
    ) -> None:
        """Train until every run has ended, `steps` is reached, or a Stop command.

        The sink gets every run before the first step, then records; it is flushed but not
        closed (the caller owns it).
        """
        self.sink = sink
        self.paused = start_paused
        for run in self.runs.values():
            sink.add_run(
                RunHeader(run.name, self._config(run), run.outputs, run.parent, run.fork_step)
            )
        sink.start_live()
        for run_name, message in self._pending_errors:
            sink.event(run_name, 0, "diagnostic_error", message)
        self._pending_errors.clear()
        next_progress = 0.0
        while not self.stopped and self.step < self.spec.steps and self._running:
            if commands is not None:
                self._commands(commands)
                if self.stopped:
                    break
            batch = next(self._batches)
            if self.task.step_series is not None:
                self._record_step_series()
            for run in list(self.runs.values()):
                if run.status == "running":
                    self._train_step(run, batch)
            self.step += 1
            every = self.spec.checkpoint_every
            if every and self.step % every == 0 and self.step < self.spec.steps:
                self._checkpoint_running()
            if self._budget is not None:
                self._budget -= 1
                if self._budget == 0:
                    self._budget = None
                    self.paused = True
            sink.flush()
            if on_progress is not None and time.monotonic() >= next_progress:
                next_progress = time.monotonic() + progress_interval
                on_progress(self)
        self._finish()
        if on_progress is not None:
            on_progress(self)

    def _finish(self) -> None:
        assert self.sink is not None
        final = "stopped" if self.stopped else "finished"
        if self.task.step_series is not None:
            self._record_step_series()
        self._checkpoint_running()
        for run in self.runs.values():
            if run.status == "running":
                run.status = final
                self.sink.end_run(run.name, final, self.step)
        self.sink.flush(force=True)

    def _checkpoint_running(self) -> None:
        """Checkpoint every running run at θ_step; an unstorable optimizer state is noted in the
        run's events and the parameters are stored alone."""
        assert self.sink is not None
        for run in self.runs.values():
            if run.status != "running":
                continue
            try:
                state: Tree | None = checkpoints.encode(run.optimizer.state_dict())
            except checkpoints.CheckpointError as exc:
                state = None
                self.sink.event(
                    run.name, self.step, "checkpoint", f"optimizer state not kept: {exc}"
                )
            self.sink.checkpoint(run.name, self.step, checkpoints.parameters(run.named), state)

    def _end(self, run: RunState, status: str, error: str = "") -> None:
        assert self.sink is not None
        run.status, run.error = status, error
        run.previous = None
        self._running -= 1
        self.sink.end_run(run.name, status, self.step, error)

    def _train_step(self, run: RunState, batch: Batch) -> None:
        sink, step, task = self.sink, self.step, self.task
        assert sink is not None
        model, optimizer, needs = run.model, run.optimizer, run.plugin.needs
        started = time.perf_counter()
        try:
            if run.factor is not None:
                f = run.factor(step)
                for group, base in zip(optimizer.param_groups, run.base_lrs, strict=True):
                    group["lr"] = base * f

            def before_step(loss: Tensor) -> bool:
                """Record the loss, end a diverged run, run the diagnostics that are due."""
                value = loss.item()
                run.last_loss = value
                sink.append(run.name, "train/loss", step, value)
                sink.append(
                    run.name, "train/lr", step, optimizer.param_groups[0].get("lr", math.nan)
                )
                if not math.isfinite(value):
                    sink.event(run.name, step, "diverged", f"loss is {value}")
                    self._end(run, "diverged")
                    return False
                if run.diagnostics:
                    if needs.train_eval:
                        optimizer.eval()  # type: ignore[attr-defined]
                    diagnose(run, step, value, self.task, sink)
                    if needs.train_eval:
                        optimizer.train()  # type: ignore[attr-defined]
                return True

            take_step(optimizer, needs, model, task.criterion, batch, before_step)
            if run.status != "running":
                return
        except torch.OutOfMemoryError as exc:
            self._end(run, "failed", f"out of memory: {str(exc).splitlines()[0]}")
            return
        except Exception as exc:  # an optimizer that raises ends its run, not the experiment
            self._end(run, "failed", f"{type(exc).__name__}: {exc}")
            return
        run.steps_done += 1
        run.seconds += time.perf_counter() - started
        if run.steps_done % 64 == 0 and not _finite(list(run.named.values())):
            sink.event(run.name, step + 1, "diverged", "parameters hold NaN or inf")
            self._end(run, "diverged")

    def _record_step_series(self) -> None:
        """Per-step series of the task (a 2-D point) at θ_t, so a path runs from start to end."""
        assert self.sink is not None and self.task.step_series is not None
        for run in self.runs.values():
            if run.status == "running":
                for name, value in self.task.step_series(run.model).items():
                    self.sink.append(run.name, name, self.step, value)

    # -- commands -------------------------------------------------------------------------

    def _commands(self, source: CommandSource) -> None:
        now = time.monotonic()
        if not self.paused and now < self._next_poll:
            return
        self._next_poll = now + self.poll_interval
        for command in source.poll(0.0):
            self.apply(command)
        while self.paused and not self.stopped:
            assert self.sink is not None
            self.sink.flush(force=True)
            for command in source.poll(0.1):
                self.apply(command)

    def _log_all(self, kind: str, detail: str = "") -> None:
        assert self.sink is not None
        for run in self.runs.values():
            if run.status == "running":
                self.sink.event(run.name, self.step, kind, detail)

    def apply(self, command: Command) -> None:
        """Apply one command; a bad one is logged as a `command_error` event, never raised."""
        assert self.sink is not None
        try:
            if isinstance(command, Pause):
                if not self.paused:
                    self.paused = True
                    self._log_all("pause")
            elif isinstance(command, Resume):
                if self.paused:
                    self.paused = False
                    self._budget = None
                    self._log_all("resume")
            elif isinstance(command, StepN):
                if command.n < 1:
                    raise ValueError(f"step count {command.n} must be at least 1")
                self.paused = False
                self._budget = command.n
            elif isinstance(command, Stop):
                if command.run is None:
                    self.stopped = True
                    self._log_all("stop")
                else:
                    run = self._run(command.run)
                    if run.status == "running":
                        self.sink.event(run.name, self.step, "stop")
                        self._end(run, "stopped")
            elif isinstance(command, SetHyper):
                self._set_hyper(command)
            elif isinstance(command, Fork):
                self._fork(command)
            else:
                raise ValueError(f"unknown command {command!r}")
        except (ValueError, KeyError, TypeError, SpecError) as exc:
            run_name = getattr(command, "run", None)
            targets = [run_name] if run_name in self.runs else list(self.runs)
            message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
            for name in targets:
                self.sink.event(name, self.step, "command_error", f"{command!r}: {message}")

    def _run(self, name: str) -> RunState:
        if name not in self.runs:
            raise KeyError(f"no run named {name!r}; runs: {', '.join(self.runs)}")
        return self.runs[name]

    def _set_hyper(self, command: SetHyper) -> None:
        """Set the schema hyperparameter `command.name` in the groups and keys it governs
        (`live_hyper.governed`), after the schema's own check; a learning rate sets the base
        rate of its groups, which the schedule scales from this step on."""
        assert self.sink is not None
        run = self._run(command.run)
        groups = run.optimizer.param_groups
        schema = {p.name: p for p in run.plugin.params}
        targets = live_hyper.governed(groups, command.name) if command.name in schema else []
        if not targets:
            live = live_hyper.live_names(groups, run.plugin.params)
            raise ValueError(
                f"{command.name!r} is not a live hyperparameter of {run.plugin.id}; "
                f"live: {', '.join(live) or 'none'}"
            )
        if command.group is not None:
            governed = sorted({i for i, _ in targets})
            if command.group not in governed:
                raise ValueError(
                    f"{command.name} does not set group {command.group}; it sets group(s) "
                    f"{', '.join(str(i) for i in governed)}"
                )
            targets = [(i, key) for i, key in targets if i == command.group]
        value = live_hyper.check_live(schema[command.name], command.value)
        first, first_key = targets[0]
        old = run.base_lrs[first] if first_key == "lr" else groups[first][first_key]
        factor = run.factor(self.step) if run.factor is not None else 1.0
        for i, key in targets:
            if key == "lr":
                run.base_lrs[i] = value
                groups[i]["lr"] = value * factor
            else:  # containers keep their type: torch's own optimizers hold betas as tuples
                groups[i][key] = tuple(value) if isinstance(groups[i][key], tuple) else value
        new = run.base_lrs[first] if first_key == "lr" else groups[first][first_key]
        detail = live_hyper.describe(
            command.name, old, new, sorted({i for i, _ in targets}), len(groups)
        )
        self.sink.event(run.name, self.step, "hyper", detail)

    def start_from(self, checkpoint: Checkpoint, parent: RunSpec) -> None:
        """Start this Runner's only run from a checkpoint of `parent`, before `run()`.

        The batch stream is advanced to the checkpoint's step, so the run sees the batches the
        parent saw next; with the parent's optimizer the state is loaded too, which makes a fork
        with the parent's settings continue exactly as the parent did.
        """
        if len(self.runs) != 1 or self.step != 0:
            raise RuntimeError("start_from needs a fresh Runner with exactly one run")
        (run,) = self.runs.values()
        missing = sorted(set(run.named) - set(checkpoint.params))
        if missing:
            raise ValueError(f"the checkpoint lacks parameters {', '.join(missing)}")
        for _ in range(checkpoint.step):
            next(self._batches)
        self.step = checkpoint.step
        with torch.no_grad():
            for name, p in run.named.items():
                p.copy_(torch.from_numpy(checkpoint.params[name]))
        state = checkpoint.optimizer_state
        if run.spec.optimizer.id == parent.optimizer.id and state is not None:
            self._carry_state(run, state)
        run.parent, run.fork_step = parent.name, checkpoint.step

    @staticmethod
    def _carry_state(run: RunState, state: dict[str, Any]) -> None:
        """Load an optimizer state, keeping the run's own hyperparameters in its groups."""
        groups = [dict(g) for g in run.optimizer.param_groups]
        run.optimizer.load_state_dict(state)
        for live, wanted in zip(run.optimizer.param_groups, groups, strict=True):
            live.update({k: v for k, v in wanted.items() if k != "params"})
        run.base_lrs = [g.get("lr", 0.0) for g in run.optimizer.param_groups]

    def _fork(self, command: Fork) -> None:
        assert self.sink is not None
        parent = self._run(command.run)
        if command.name in self.runs:
            raise ValueError(f"a run named {command.name!r} exists already")
        run_spec = check_fork(parent.spec, command.name, command.optimizer, command.schedule)
        child = self._make_run(run_spec, parent.model, init=parent.init)
        if run_spec.optimizer.id == parent.spec.optimizer.id:
            self._carry_state(child, copy.deepcopy(parent.optimizer.state_dict()))
        child.parent, child.fork_step = parent.name, self.step
        self.runs[child.name] = child
        self._running += 1
        self.sink.add_run(
            RunHeader(child.name, self._config(child), child.outputs, parent.name, self.step)
        )
        self.sink.start_live()
        self.sink.event(parent.name, self.step, "fork", f"forked as {child.name}")
        self.sink.event(
            child.name, self.step, "fork", f"forked from {parent.name} at step {self.step}"
        )


def _finite(params: list[Tensor]) -> bool:
    """Whether every parameter is finite, in one fused call: a norm is NaN/inf if any entry is."""
    with torch.no_grad():
        return bool(torch.isfinite(torch.stack(torch._foreach_norm(params))).all())


# -- diagnostics, shared with the Recorder (engine/recorder.py) ------------------------------


def declare_diagnostics(run: RunState, task: Task) -> tuple[list[Output], list[str]]:
    """The series `run.diagnostics` declare, and an error message for each one that could not
    declare them; those are dropped from `run.diagnostics` (the caller logs the messages once
    the sink is attached)."""
    ctx = SetupContext(run.model, run.named, task, run.optimizer)
    outputs: list[Output] = []
    errors: list[str] = []
    kept = []
    for dspec, diag in run.diagnostics:
        try:
            plugin = registry.plugins("diagnostics")[dspec.id]
            outputs.extend(plugin.declared(diag.outputs(ctx)))
            kept.append((dspec, diag))
        except Exception as exc:
            errors.append(f"{dspec.id}: {type(exc).__name__}: {exc}")
    run.diagnostics = kept
    return outputs, errors


def diagnose(run: RunState, step: int, loss: float, task: Task, sink: Sink) -> None:
    """Run the diagnostics of `run` due at `step`, and keep θ when the next step needs Δθ.

    θ is copied here only when a diagnostic that reads the update is due at `step + 1`; there
    `update` = θ (then) − θ (now). A diagnostic that raises is switched off for the run with a
    `diagnostic_error` event; the run goes on.
    """
    due = [(s, d) for s, d in run.diagnostics if step % s.every == 0]
    if due:
        ctx = StepContext(
            step=step,
            model=run.model,
            named_params=run.named,
            grads={k: p.grad for k, p in run.named.items() if p.grad is not None},
            update=_update(run),
            init_params=run.init,
            optimizer=run.optimizer,
            lr=float(run.optimizer.param_groups[0].get("lr", math.nan)),
            loss=loss,
            task=task,
        )
        for dspec, diag in due:
            _compute(run, dspec, diag, ctx, sink)
    if any(d.needs_update and (step + 1) % s.every == 0 for s, d in run.diagnostics):
        run.previous = {k: p.detach().clone() for k, p in run.named.items()}
    else:
        run.previous = None


def _update(run: RunState) -> dict[str, Tensor] | None:
    if run.previous is None:
        return None
    names = list(run.named)
    with torch.no_grad():
        deltas = torch._foreach_sub([run.named[k] for k in names], [run.previous[k] for k in names])
    return dict(zip(names, deltas, strict=True))


def _compute(
    run: RunState, dspec: DiagnosticSpec, diag: Diagnostic, ctx: StepContext, sink: Sink
) -> None:
    try:
        records = {name: _to_record(v) for name, v in diag.compute(ctx).items()}
        unknown = sorted(set(records) - run.declared)
        if unknown:
            raise ValueError(f"wrote undeclared series {', '.join(unknown)}")
    except torch.OutOfMemoryError:
        raise
    except Exception as exc:
        run.diagnostics = [(s, d) for s, d in run.diagnostics if d is not diag]
        sink.event(
            run.name,
            ctx.step,
            "diagnostic_error",
            f"{dspec.id} switched off: {type(exc).__name__}: {exc}",
        )
        return
    for name, value in records.items():
        sink.append(run.name, name, ctx.step, value)
