"""The race behind the 2-D playground, without Qt: catalogue optimizers on a `function2d` surface.

The race runs the lab's own optimizers (`OptimizerPlugin.build`), in process, on one 2-element
parameter each, so what the playground shows is what a `function2d` experiment would record —
only without a worker, a session file or diagnostics. `tune_learning_rates` gives each racer its
best rate on the function by a log-spaced search, so that a race compares optimizers, not one
shared learning rate that suits only some of them.

Speed is the point of a playground: 500 steps × 4 optimizers must run in well under a tenth of
a second. `torch.optim`'s per-step overhead dominates on 2 numbers, so the loop keeps everything
else small: the points are stacked, the objective and its closed-form gradient
(`Function2D.gradient`) are evaluated for all of them in one numpy call, each optimizer's `.grad`
is a row of it, and nothing else is allocated per step.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from descentlab.engine import registry
from descentlab.engine.params import Problems, check_params
from descentlab.engine.plugin import OptimizerPlugin
from descentlab.plugins.tasks.function2d import FUNCTIONS, Function2D, Objective

MAX_STEPS = 500
SECOND_MOMENT_DECAY = {"rmsprop": "alpha", "pto-rmsprop": "alpha"}
"""Optimizers whose decay of the running g² average is not `betas[1]` but another parameter."""


@dataclass(frozen=True)
class Racer:
    """One slot of the race: a catalogue optimizer, with or without the momentum slider's μ.

    With `momentum`, the slider's μ goes to the optimizer's `momentum` parameter, or to β₁ of
    optimizers with `betas`; without it, that parameter is 0 (SGD, not heavy ball; Adam with
    β₁ = 0, which is RMSprop with bias correction). `lr` is this slot's own learning rate; None
    takes the race's shared one (`RaceSettings.lr`). One rate for all is unfair by construction:
    at SGD's best rate on Rosenbrock, Adam and RMSprop barely leave the start.
    """

    optimizer: str
    momentum: bool = False
    lr: float | None = None

    @property
    def label(self) -> str:
        return f"{self.optimizer} + momentum" if self.momentum else self.optimizer


DEFAULT_RACERS = (
    Racer("sgd"),
    Racer("sgd", momentum=True),
    Racer("adam", momentum=True),
    Racer("rmsprop"),
)


@dataclass(frozen=True)
class RaceSettings:
    """Everything the race depends on besides its racers."""

    function: str = "rosenbrock"
    start: tuple[float, float] | None = None
    """None: the function's classic start."""
    lr: float = 2e-3
    momentum: float = 0.9
    beta2: float = 0.999
    steps: int = MAX_STEPS

    @property
    def start_point(self) -> tuple[float, float]:
        return self.start if self.start is not None else FUNCTIONS[self.function].start

    def task_params(self) -> dict[str, Any]:
        """The `function2d` task's parameters (its defaults, e.g. quadratic2d's condition)."""
        task = registry.plugins("tasks")["function2d"]
        values = {p.name: p.default for p in task.params}
        return {**values, "function": self.function, "start": list(self.start_point)}


@dataclass
class Lane:
    """One racer's result: its path (k + 1 points, the start first) and the loss at each."""

    racer: Racer
    path: np.ndarray
    losses: np.ndarray
    error: str = ""
    """Why the lane stopped early (the optimizer failed, or the point diverged); "" if it ran."""

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1]) if len(self.losses) else math.nan


@dataclass
class Race:
    """The lanes of one race and how long it took to run (seconds, not counting drawing)."""

    settings: RaceSettings
    lanes: list[Lane] = field(default_factory=list)
    seconds: float = 0.0


@functools.cache
def race_optimizers() -> tuple[str, ...]:
    """Ids of the catalogue optimizers a 2-D point can be trained with here.

    Excluded are those that need more of the loop than gradients and an optional closure
    (Hessian-vector products through the graph, the batch and model, train/eval switching).
    """
    return tuple(
        plugin.id
        for plugin in registry.plugins("optimizers").values()
        if not (plugin.needs.create_graph or plugin.needs.batch or plugin.needs.train_eval)
    )


def hyperparameters(
    plugin: OptimizerPlugin, settings: RaceSettings, racer: Racer
) -> dict[str, Any]:
    """The optimizer's validated hyperparameters with the sliders' values in place (and the
    racer's own learning rate, where it has one).

    Raises:
        ValueError: a slider value outside what the optimizer accepts, naming the parameter.
    """
    by_name = {p.name: p for p in plugin.params}
    values: dict[str, Any] = {}
    if "lr" in by_name:
        values["lr"] = settings.lr if racer.lr is None else racer.lr
    mu = settings.momentum if racer.momentum else 0.0
    betas = list(by_name["betas"].default) if "betas" in by_name else None
    if "momentum" in by_name:
        values["momentum"] = mu
    elif betas is not None:
        betas[0] = mu
    if betas is not None and len(betas) > 1:
        betas[1] = settings.beta2
    if betas is not None:
        values["betas"] = betas
    decay = SECOND_MOMENT_DECAY.get(plugin.id)
    if decay is not None:
        values[decay] = settings.beta2
    problems = Problems()
    hyper = check_params(plugin.params, values, plugin.id, problems)
    if problems:
        raise ValueError("; ".join(problems.items))
    return hyper


_Running = list[tuple[int, nn.Parameter, torch.optim.Optimizer, Callable[[], Tensor] | None]]
"""A running lane: its index, its point, its optimizer and its closure (if it needs one)."""


def run_race(settings: RaceSettings, racers: tuple[Racer, ...]) -> Race:
    """Train one 2-D point per racer for `settings.steps` steps from the same start.

    Each step evaluates the objective and its closed-form gradient at all points still running
    in one call, then steps each optimizer with its row of the gradient (optimizers that need a
    closure get one that evaluates their own point, through autograd). A lane stops early when
    its optimizer raises or its point leaves the finite numbers; `Lane.error` says which.
    """
    if not 1 <= settings.steps <= MAX_STEPS:
        raise ValueError(f"steps: {settings.steps} is out of range; allowed: 1 to {MAX_STEPS}")
    if settings.function not in FUNCTIONS:
        raise ValueError(f"function: {settings.function!r} is not one of {', '.join(FUNCTIONS)}")
    began = time.perf_counter()
    objective = FUNCTIONS[settings.function].objective
    task_params = settings.task_params()
    start = torch.tensor(settings.start_point, dtype=torch.float64)
    catalogue = registry.plugins("optimizers")
    race = Race(settings)
    running: _Running = []
    for index, racer in enumerate(racers):
        lane = Lane(
            racer, np.full((settings.steps + 1, 2), np.nan), np.full(settings.steps + 1, np.nan)
        )
        race.lanes.append(lane)
        try:
            plugin = catalogue[racer.optimizer]
            point = nn.Parameter(start.clone())
            optimizer = plugin.build(
                [("point", point)], {"point": "other"}, hyperparameters(plugin, settings, racer)
            )
        except Exception as exc:  # an unknown id, a slider value it refuses, a failing build
            lane.error = _reason(exc)
            continue
        closure = (
            _closure(objective, task_params, point, optimizer) if plugin.needs.closure else None
        )
        running.append((index, point, optimizer, closure))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # optimizers drawing from torch's generator draw alike each race
        _steps(race, running, FUNCTIONS[settings.function], task_params)
    for lane in race.lanes:
        kept = np.isfinite(lane.losses)
        lane.path, lane.losses = lane.path[kept], lane.losses[kept]
    race.seconds = time.perf_counter() - began
    return race


def _steps(race: Race, running: _Running, function: Function2D, params: dict[str, Any]) -> None:
    """The race loop: record every running point and its loss, then step its optimizer.

    The losses of all lanes come from the task's own objective in one call, their gradients
    from the function's closed form (`Function2D.gradient`, checked against autograd): autograd
    would cost more than all four optimizers' steps together. torch.optim's own optimizers are
    stepped without the profiling and hook wrapper of `step()` (no hooks are registered here).
    Paths and losses are written straight into the lanes' preallocated arrays.
    """
    steps = race.settings.steps
    paths = np.stack([lane.path for lane in race.lanes], axis=1)  # (steps + 1, lanes, 2)
    losses = np.stack([lane.losses for lane in race.lanes], axis=1)
    steppers = {index: _bare_step(optimizer) for index, _, optimizer, _ in running}
    rows: list[int] = []
    for step in range(steps + 1):
        if not running:
            break
        if len(rows) != len(running):
            rows = [index for index, _, _, _ in running]
        xy = np.stack([point.detach().numpy() for _, point, _, _ in running])
        x, y = xy[:, 0], xy[:, 1]
        with torch.no_grad():
            loss = function.objective(torch.from_numpy(x), torch.from_numpy(y), params).numpy()
        paths[step, rows], losses[step, rows] = xy, loss
        finite = (np.isfinite(loss) & np.isfinite(xy).all(axis=1)).tolist()
        if step == steps:  # the last point's loss; no step follows
            for row, (index, _, _, _) in enumerate(running):
                if not finite[row]:
                    race.lanes[index].error = f"diverged at step {step}"
            break
        with np.errstate(all="ignore"):  # a diverging lane overflows; it is dropped below
            grads = torch.from_numpy(np.stack(function.gradient(x, y, params), axis=1)).unbind()
        still: _Running = []
        for row, entry in enumerate(running):
            index, point, optimizer, closure = entry
            if not finite[row]:
                race.lanes[index].error = f"diverged at step {step}"
                continue
            point.grad = grads[row]
            try:
                steppers[index]() if closure is None else optimizer.step(closure)
            except Exception as exc:  # a third-party optimizer that cannot handle a 2-vector
                race.lanes[index].error = f"step {step}: {_reason(exc)}"
                continue
            still.append(entry)
        running = still
    for index, lane in enumerate(race.lanes):
        lane.path, lane.losses = paths[:, index], losses[:, index]


def _bare_step(optimizer: torch.optim.Optimizer) -> Callable[[], object]:
    """`optimizer.step` itself for torch.optim's classes, under no_grad: `step()` wraps it in
    profiling and hook calls that cost about as much as a 2-D step; other libraries' steps are
    called as they are (their decorators may do real work)."""
    if not type(optimizer).__module__.startswith("torch.optim."):
        return optimizer.step
    step = type(optimizer).step
    while hasattr(step, "__wrapped__"):
        step = step.__wrapped__

    def bare() -> object:
        with torch.no_grad():
            return step(optimizer)

    return bare


def _closure(
    objective: Objective,
    params: dict[str, Any],
    point: nn.Parameter,
    optimizer: torch.optim.Optimizer,
) -> Callable[[], torch.Tensor]:
    """The loss of this point with fresh gradients, for optimizers that re-evaluate it."""

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = objective(point[0], point[1], params)
        loss.backward()
        return loss

    return closure


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) < 160 else text[:157] + "…"


LR_RANGE = (1e-5, 1.0)
"""The learning rates the playground offers (its slider's range), and the search's range."""


def tune_learning_rates(
    settings: RaceSettings,
    racers: tuple[Racer, ...],
    points: int = 20,
    low: float = LR_RANGE[0],
    high: float = LR_RANGE[1],
) -> tuple[Racer, ...]:
    """Each racer with the learning rate that ends its race lowest on `settings`' function.

    The candidates are `points` rates log-spaced over [low, high] and each racer's current rate
    (so tuning never ends worse than where it began); each candidate is one race of all racers
    at that rate (lanes are independent, so a lane's result is its own). A lane that diverges or
    fails scores +inf. Racers whose optimizer has no `lr` are returned as they are. Twenty
    points cost twenty races, a second or two for four racers × 500 steps.

    Args:
        settings: the function, start, shared hyperparameters and steps of the race.
        racers: the slots to tune.
        points: candidates on the log grid; more finds a rate closer to the best, linearly slower.
        low, high: the grid's ends.

    Returns:
        The racers, each with `lr` set to its best candidate.
    """
    if points < 2 or not 0 < low < high:
        raise ValueError(
            f"tuning needs points >= 2 and 0 < low < high; got {points}, {low}, {high}"
        )
    catalogue = registry.plugins("optimizers")
    tunable = [
        racer.optimizer in catalogue
        and any(p.name == "lr" for p in catalogue[racer.optimizer].params)
        for racer in racers
    ]
    current = [settings.lr if racer.lr is None else racer.lr for racer in racers]
    grid = [float(f"{lr:.3g}") for lr in np.geomspace(low, high, points)]  # as the UI shows them
    best = [(math.inf, lr) for lr in current]
    for candidate in [None, *grid]:  # None: every racer at its current rate
        lanes = run_race(
            settings,
            tuple(
                replace(racer, lr=lr if candidate is None else candidate)
                for racer, lr in zip(racers, current, strict=True)
            ),
        ).lanes
        for index, lane in enumerate(lanes):
            score = (
                lane.final_loss if not lane.error and math.isfinite(lane.final_loss) else math.inf
            )
            if score < best[index][0]:
                best[index] = (score, lane.racer.lr)
    return tuple(
        replace(racer, lr=lr) if ok else racer
        for racer, ok, (_, lr) in zip(racers, tunable, best, strict=True)
    )
