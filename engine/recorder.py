"""The Recorder: the lab's diagnostics in a training loop the user already has (docs/recorder.md).

    rec = Recorder("run.h5", model, loss_fn=loss_fn, probe=(x, y), optimizer=opt,
                   diagnostics={"norms": {}, "hessian": {"every": 100}})
    for x, y in loader:
        opt.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); opt.step()
        rec.step(loss)
    rec.close()

It writes the session `descentlab run` writes (one run, SWMR, so `descentlab gui run.h5` follows
it live) through `SessionWriter`, and runs the diagnostics with the Runner's own machinery
(`runner.diagnose`). What differs is the moment: the Runner diagnoses after backward and before
`optimizer.step()`, the Recorder when `rec.step(loss)` is called, after `opt.step()`. The record
of call t (t = 0, 1, …, the step of the optimizer step just taken) therefore holds

- `train/loss`: the loss passed in, L(θ_t) on the step's batch, as in the Runner;
- `train/lr`: the learning rate of the optimizer's first group, as it is now;
- gradients (`grads`): what `.grad` holds, i.e. g_t, the gradients the step used, unless the
  optimizer overwrote them (most do not);
- the update Δθ_t = θ_{t+1} − θ_t: the parameters now less those at the previous call (at t = 0,
  those when the Recorder was made), so it pairs with g_t of the same step;
- everything evaluated on the parameters (weights, spectra, Hessian and curvature on the probe):
  θ_{t+1}, the parameters after the step; the Runner's record t sees θ_t.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import TracebackType
from typing import Any

import tomli_w
import torch
from torch import Tensor, nn

from descentlab.engine import registry
from descentlab.engine.params import Problems
from descentlab.engine.plugin import Batch, OptimizerPlugin, Output, Task
from descentlab.engine.runner import (
    BASE_SERIES,
    RunState,
    declare_diagnostics,
    diagnose,
)
from descentlab.engine.session.writer import SessionWriter
from descentlab.engine.sink import RunHeader
from descentlab.engine.spec import (
    RUN_NAME_PATTERN,
    DiagnosticSpec,
    PluginRef,
    RunSpec,
    SpecError,
    parse_diagnostics,
)

TASK_ID = "user-loop"
"""The task id in a recorded session's spec: the model and data are the user's own, so the lab
cannot rebuild them (a recorded session is replayed and compared, not re-run or forked)."""

SOURCE = "Recorder(diagnostics=…)"
"""What a SpecError from the Recorder's diagnostics names as the invalid thing."""

OPTIMIZER_ONLY = {"optimizer-state": "it reads the optimizer's state"}
"""Diagnostics that cannot run at all without the optimizer, with the reason."""

OPTIMIZER_PARTS = {"sharpness": ("preconditioned", "stability")}
"""Parts of diagnostics that need the optimizer (its state, its learning rate); switched off
without one, the rest of the diagnostic runs."""


class _NoOptimizer(torch.optim.Optimizer):
    """Stands in for the optimizer the user did not give: no state, a learning rate of NaN."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        super().__init__(params, {"lr": math.nan})

    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        raise RuntimeError("the Recorder was given no optimizer; it never steps one")


def _unbuildable(*_: Any) -> torch.optim.Optimizer:
    raise RuntimeError("a Recorder's optimizer is the user's own; the lab cannot build it")


def _hyperparameters(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The first group's plain settings (lr, betas, …) for the spec and the run's config."""
    out: dict[str, Any] = {}
    for key, value in optimizer.param_groups[0].items():
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (bool, int, float, str)) and key != "params":
            out[key] = value
        elif (
            isinstance(value, (tuple, list))
            and value
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        ):
            out[key] = list(value)
    return out


def _diagnostic_tables(diagnostics: dict[str, dict[str, Any]] | None) -> list[dict[str, Any]]:
    """`{"hessian": {"every": 100}}` as spec tables `[{"id": "hessian", "every": 100}]`, or a
    SpecError naming each entry that is not a table of parameters."""
    if diagnostics is None:
        return []
    if not isinstance(diagnostics, dict):
        raise SpecError([f"diagnostics: {diagnostics!r} is not a dict of id → parameters"], SOURCE)
    problems = Problems()
    tables = []
    for did, params in diagnostics.items():
        if not isinstance(params, dict):
            problems.add(f"diagnostics[{did!r}]", f"{params!r} is not a dict of parameters")
        else:
            tables.append({"id": did, **params})
    if problems:
        raise SpecError(problems.items, SOURCE)
    return tables


def _parse_diagnostics(diagnostics: dict[str, dict[str, Any]] | None) -> list[DiagnosticSpec]:
    """The validated diagnostics; the spec's messages, each naming its entry by id
    (`diagnostics['hessian'].every: …`) rather than by position in a list the user never wrote."""
    tables = _diagnostic_tables(diagnostics)
    try:
        return parse_diagnostics(tables, SOURCE)
    except SpecError as exc:
        ids = [table["id"] for table in tables]
        problems = [
            re.sub(r"^diagnostics\[(\d+)\]", lambda m: f"diagnostics[{ids[int(m[1])]!r}]", p)
            for p in exc.problems
        ]
        raise SpecError(problems, SOURCE) from None


def _check_probe(
    model: nn.Module, loss_fn: Any, probe: Any, what: str, device: torch.device
) -> Batch:
    """The batch `probe` (or `held_out`) as a pair of tensors on the model's device on which
    `loss_fn(model(x), y)` is a scalar; a ValueError naming `what` otherwise."""
    if (
        not isinstance(probe, (tuple, list))
        or len(probe) != 2
        or not all(isinstance(t, Tensor) for t in probe)
    ):
        raise ValueError(f"{what}: expected a pair of tensors (inputs, targets), got {probe!r:.80}")
    x, y = probe
    for tensor in (x, y):
        if tensor.device != device:
            raise ValueError(
                f"{what}: the batch is on {tensor.device} but the model is on {device}; "
                f"move it with .to({str(device)!r})"
            )
    training = model.training
    model.eval()  # no side effects on the user's model (batch-norm statistics, dropout draws)
    try:
        with torch.no_grad():
            loss = loss_fn(model(x), y)
    except Exception as exc:
        raise ValueError(
            f"{what}: loss_fn(model(x), y) fails on it: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        model.train(training)
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        raise ValueError(f"{what}: loss_fn(model(x), y) must return a scalar tensor, got {loss!r}")
    return x, y


class Recorder:
    """Records a user's own training loop into a Descent Lab session, diagnostics included.

    Make it before the first step (θ at that moment is θ₀, the origin of `distance_from_init`
    and of the first update), call `step(loss)` once after every `optimizer.step()`, and
    `close()` at the end, or use it as a context manager.

    Args:
        path: the session file to create; it must not exist yet.
        model: the network being trained.
        loss_fn: `loss_fn(model(x), y)` → the mean loss, as in the loop.
        probe: a fixed batch `(x, y)` on the model's device; curvature diagnostics evaluate
            the loss on it.
        optimizer: the loop's optimizer; without it there is no `train/lr`, and what needs its
            state or learning rate (`optimizer-state`, sharpness' preconditioned and stability
            parts) is skipped, with one `diagnostics_skipped` event.
        diagnostics: diagnostic id → parameters, as in a spec's `[[diagnostics]]` (`every`
            included), e.g. `{"norms": {}, "hessian": {"every": 100, "top_k": 3}}`.
        held_out: an optional held-out batch `(x, y)`, which the `eval` diagnostic scores.
        run: the run's name in the session.
        flush_interval: seconds between two writes to the file at most; what a killed script
            loses, and how far behind the window follows.
    Raises:
        SpecError: an unknown diagnostic id or a bad parameter, with the spec's messages.
        ValueError: a probe that is not a pair of tensors on the model's device, or on which
            `loss_fn(model(x), y)` is not a scalar; a model without parameters.
        FileExistsError: `path` exists.
    """

    def __init__(
        self,
        path: str | Path,
        model: nn.Module,
        *,
        loss_fn: Any,
        probe: Batch,
        optimizer: torch.optim.Optimizer | None = None,
        diagnostics: dict[str, dict[str, Any]] | None = None,
        held_out: Batch | None = None,
        run: str = "run",
        flush_interval: float = 0.5,
    ) -> None:
        specs = _parse_diagnostics(diagnostics)
        if not isinstance(model, nn.Module):
            raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        named = dict(model.named_parameters())
        if not named:
            raise ValueError("model: it has no parameters to record")
        if not callable(loss_fn):
            raise ValueError(f"loss_fn: {loss_fn!r} is not callable")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(
                f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        first = next(iter(named.values()))
        probe = _check_probe(model, loss_fn, probe, "probe", first.device)
        if held_out is not None:
            held_out = _check_probe(model, loss_fn, held_out, "held_out", first.device)
        if not isinstance(run, str) or not RUN_NAME_PATTERN.match(run):
            raise ValueError(
                f"run: {run!r} is not a valid run name; allowed: letters, digits and _ . + - "
                "(no spaces or slashes), starting with a letter or digit"
            )
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path}: exists already; a session is never overwritten")
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"{self.path}: the folder {self.path.parent} does not exist")

        self.task = Task(
            model=model,
            criterion=loss_fn,
            probe=probe,
            held_out=held_out,
            batch_size=int(probe[0].shape[0]) if probe[0].dim() else 0,
            classification=not probe[1].is_floating_point(),
        )
        skipped: list[str] = []
        created = []
        for dspec in specs:
            if optimizer is None and dspec.id in OPTIMIZER_ONLY:
                skipped.append(f"{dspec.id} ({OPTIMIZER_ONLY[dspec.id]})")
                continue
            if optimizer is None:
                for part in OPTIMIZER_PARTS.get(dspec.id, ()):
                    if dspec.params.get(part):
                        dspec.params[part] = False
                        skipped.append(f"{dspec.id}.{part}")
            plugin = registry.plugins("diagnostics")[dspec.id]
            created.append((dspec, plugin.create(dict(dspec.params))))

        hyper = _hyperparameters(optimizer) if optimizer is not None else {}
        kind = type(optimizer) if optimizer is not None else None
        optimizer_id = f"{kind.__module__}.{kind.__qualname__}" if kind is not None else "none"
        state = RunState(
            spec=RunSpec(run, PluginRef(optimizer_id, hyper)),
            plugin=OptimizerPlugin(
                id=optimizer_id,
                title=kind.__name__ if kind is not None else "none",
                summary="The user's own optimizer, recorded by a Recorder.",
                params=(),
                build=_unbuildable,
            ),
            model=model,
            optimizer=optimizer if optimizer is not None else _NoOptimizer(list(named.values())),
            named=named,
            init={k: p.detach().clone() for k, p in named.items()},
            base_lrs=[],
            factor=None,
            diagnostics=created,
            outputs=[],
        )
        declared, errors = declare_diagnostics(state, self.task)
        base = [o for o in BASE_SERIES if optimizer is not None or o.name != "train/lr"]
        state.outputs = base + declared
        state.declared = {o.name for o in state.outputs}
        if any(d.needs_update for _, d in state.diagnostics):
            state.previous = state.init  # the first record's Δθ_0 = θ_1 − θ_0
        self._run = state
        self._has_optimizer = optimizer is not None
        self.steps = 0
        """Records so far: the step the next `step(loss)` records."""
        self._diverged = False
        self._closed = False

        dtype = str(first.dtype).removeprefix("torch.")
        parameters = sum(p.numel() for p in named.values())
        task = {
            "id": TASK_ID,
            "model": type(model).__name__,
            "parameters": parameters,
            "probe_size": self.task.batch_size,
        }
        tables = [d.to_dict() for d, _ in state.diagnostics]
        spec = {
            "name": self.path.stem,
            "device": str(first.device),
            "dtype": dtype,
            "task": task,
            "runs": [state.spec.to_dict()],
            "diagnostics": tables,
        }
        config = {
            **state.spec.to_dict(),
            "task": task,
            "device": str(first.device),
            "dtype": dtype,
            "parameters": parameters,
            "diagnostics": tables,
        }
        self._writer = SessionWriter(self.path, tomli_w.dumps(spec), flush_interval)
        self._writer.add_run(RunHeader(run, config, state.outputs))
        self._writer.start_live()
        if skipped:
            self._writer.event(
                run,
                0,
                "diagnostics_skipped",
                "no optimizer given: skipped " + ", ".join(skipped),
            )
        for message in errors:
            self._writer.event(run, 0, "diagnostic_error", message)
        self._writer.flush(force=True)

    @property
    def outputs(self) -> list[Output]:
        """Every series this recorder writes."""
        return list(self._run.outputs)

    def step(self, loss: Tensor | float) -> None:
        """Record the step just taken: its loss, the learning rate and the diagnostics due.

        Args:
            loss: the step's loss, L(θ_t) on its batch (a scalar tensor or a number); reading a
                tensor's value waits for the device, as `loss.item()` does.
        """
        if self._closed:
            raise RuntimeError(f"{self.path}: the Recorder is closed; no more steps are recorded")
        if isinstance(loss, Tensor):
            if loss.numel() != 1:
                raise ValueError(f"loss: expected a scalar, got a tensor of shape {loss.shape}")
            value = float(loss.detach())
        else:
            value = float(loss)
        run, writer, step = self._run, self._writer, self.steps
        writer.append(run.name, "train/loss", step, value)
        if self._has_optimizer:
            lr = float(run.optimizer.param_groups[0].get("lr", math.nan))  # a tensor, too
            writer.append(run.name, "train/lr", step, lr)
        if not math.isfinite(value) and not self._diverged:
            self._diverged = True
            writer.event(run.name, step, "diverged", f"loss is {value}")
        if run.diagnostics and not self._diverged:
            diagnose(run, step, value, self.task, writer)
        self.steps += 1
        writer.flush()

    def close(self, status: str = "", error: str = "") -> None:
        """End the run and close the file; it is then a finished session. Closing twice is
        harmless.

        Args:
            status: the run's final status; by default `finished`, or `diverged` after a
                non-finite loss.
            error: the reason, for a `failed` status.
        """
        if self._closed:
            return
        self._closed = True
        final = status or ("diverged" if self._diverged else "finished")
        self._writer.end_run(self._run.name, final, self.steps, error)
        self._writer.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """A loop interrupted by the user is `stopped`, one that raised `failed` with its error."""
        if kind is None:
            self.close()
        elif issubclass(kind, KeyboardInterrupt):
            self.close("stopped")
        else:
            self.close("failed", f"{kind.__name__}: {exc}")
