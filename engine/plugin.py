"""The plugin contracts: optimizers, diagnostics and tasks, and what each promises the Runner.

A plugin is a descriptor (readable without running anything: id, title, summary, reference,
parameter schema) plus one factory. Built-in plugins and third-party ones are registered the same
way, through the entry-point groups `descentlab.optimizers`, `descentlab.diagnostics` and
`descentlab.tasks`; each entry point names a plugin object or a list of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from descentlab.engine.params import Param

Batch = tuple[Tensor, Tensor]
"""Inputs and targets. Tasks without data (2-D functions, quadratics) use placeholder tensors."""

Role = Literal["hidden", "embedding", "head", "bias", "norm", "other"]
"""What a parameter is to the network; Muon-style optimizers treat each role differently."""

OutputKind = Literal["scalar", "vector", "per_layer", "histogram", "grid2d", "points2d"]
Cost = Literal["free", "cheap", "heavy"]


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


@dataclass
class Task:
    """A model with its data and loss, built from a seed; shared by every run of an experiment.

    `criterion(outputs, targets)` returns the mean loss, so `loss(model, batch)` is
    `criterion(model(inputs), targets)` for every task, data-free ones included. `train` is None
    for tasks that draw their batches from `sample_batch` (noise for a stochastic quadratic) or
    have none (a deterministic 2-D function: every batch is `probe`).
    """

    model: nn.Module
    criterion: Callable[[Tensor, Tensor], Tensor]
    probe: Batch
    train: Batch | None = None
    held_out: Batch | None = None
    batch_size: int = 0
    classification: bool = False
    roles: dict[str, Role] = field(default_factory=dict)
    sample_batch: Callable[[torch.Generator], Batch] | None = None
    step_series: Callable[[nn.Module], dict[str, np.ndarray]] | None = None
    """Per-step series the task records itself, e.g. `trajectory/params` on 2-D functions."""

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        inputs, targets = batch
        return self.criterion(model(inputs), targets)

    def batches(self, generator: torch.Generator) -> Iterator[Batch]:
        """Endless training batches in an order fixed by `generator` (shared by all runs).

        Mini-batches are drawn without replacement within an epoch; `batch_size` 0 (or one
        at least the data size) means full-batch training.
        """
        if self.sample_batch is not None:
            while True:
                yield self.sample_batch(generator)
        if self.train is None:
            while True:
                yield self.probe
        inputs, targets = self.train
        n = inputs.shape[0]
        if self.batch_size <= 0 or self.batch_size >= n:
            while True:
                yield inputs, targets
        while True:
            order = torch.randperm(n, generator=generator).to(inputs.device)
            for start in range(0, n - self.batch_size + 1, self.batch_size):
                idx = order[start : start + self.batch_size]
                yield inputs[idx], targets[idx]


@dataclass(frozen=True)
class TaskPlugin:
    """Descriptor and factory of a task: `build(params, seed, device, dtype) -> Task`."""

    id: str
    title: str
    summary: str
    params: tuple[Param, ...]
    build: Callable[[dict[str, Any], int, torch.device, torch.dtype], Task]
    reference: str = ""


# --------------------------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------------------------


FAMILIES: dict[str, str] = {
    "sgd": "Gradient descent and its momentum variants",
    "adaptive": "Per-coordinate adaptive step sizes (Adam and its relatives)",
    "sign": "Sign-based updates (signSGD, Lion, Rprop)",
    "orthogonal": "Orthogonalised or whitened matrix updates (Muon, SWAN, Scion)",
    "second-order": "Curvature-aware steps: Newton, Gauss–Newton, quasi-Newton, Shampoo, PSGD",
    "sharpness-aware": "Steps that look for flat regions (SAM and its family, Entropy-SGD)",
    "schedule-free": "Schedule-free methods that train at one point and evaluate at another",
    "lr-free": "Learning-rate-free methods that set their own step size (DoG, Prodigy, D-Adapt)",
    "memory-efficient": "Optimizers that save state memory (factored, low-rank, sketched)",
    "riemannian": "Optimization on manifolds (Stiefel, sphere)",
    "zeroth-order": "Gradient-free methods from loss evaluations only (SPSA, MeZO)",
    "wrapper": "Wrappers that modify any base optimizer (Lookahead, EMA, Cautious, clipping)",
    "other": "Everything else",
}
"""The optimizer families the catalogue groups by, with a one-line description each."""


@dataclass(frozen=True)
class Needs:
    """What an optimizer requires of the training loop beyond `loss.backward(); opt.step()`.

    closure: `step(closure)` re-evaluates the loss (L-BFGS, SAM); the closure zeroes grads,
        computes the loss on the current batch, backpropagates and returns the loss.
    create_graph: backward keeps the graph for Hessian-vector products (AdaHessian, Sophia-H).
    roles: `build` receives each parameter's role (Muon: hidden matrices vs the rest).
    batch: before every `step()` the loop calls `optimizer.set_batch(model, criterion, batch)`
        with the run's model, the task's mean-loss criterion and the current training batch, so
        that the optimizer can evaluate what gradients alone cannot give: Jacobians and per-example
        gradients (Gauss–Newton, natural gradient), Hessian-vector products (Newton, FOSI).
    train_eval: the optimizer trains at one point and evaluates at another (schedule-free
        methods): the loop calls `optimizer.train()` once it is built and brackets diagnostics with
        `optimizer.eval()` … `optimizer.train()`, so diagnostics and Δθ see the evaluation point
        (their `grads` stay those of the training point, the ones the optimizer used).
    """

    closure: bool = False
    create_graph: bool = False
    roles: bool = False
    batch: bool = False
    train_eval: bool = False


CONFORMANCE_CHECKS = (
    "decreases-logistic",
    "decreases-quadratic",
    "state-dict",
    "float64",
    "runner",
    "live-lr",
)
"""The checks every catalogue optimizer passes unless its descriptor says why it cannot
(`OptimizerPlugin.exempt`): default hyperparameters decrease a small logistic regression and the
`quadratic` task; a `state_dict` round trip mid-run continues identically; float64 works; it runs
through the Runner with its needs; a live change of the learning rate takes effect."""


@dataclass(frozen=True)
class OptimizerPlugin:
    """Descriptor and factory of an optimizer.

    `build(named_params, roles, hyper)` returns a `torch.optim.Optimizer` whose `param_groups`
    carry the live hyperparameters (`lr`, momentum, ...), so they can be changed mid-run.
    """

    id: str
    title: str
    summary: str
    params: tuple[Param, ...]
    build: Callable[
        [list[tuple[str, nn.Parameter]], dict[str, Role], dict[str, Any]], torch.optim.Optimizer
    ]
    family: str = "other"
    reference: str = ""
    needs: Needs = Needs()
    exempt: dict[str, str] = field(default_factory=dict)
    """Conformance checks (`CONFORMANCE_CHECKS`) this optimizer cannot meet, each with the reason;
    the conformance suite expects them to fail and says so."""


# --------------------------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------------------------


SeriesRole = Literal["data", "reference", "total", "part"]
"""What a series is to the plot it joins: a curve of its own (data), a step line drawn over the
plot's data (reference: 2/η, the Adam threshold), the sum over a per-layer family offered as one
more layer (total), or a piece the plot's view draws in its own way (part: a landscape's path)."""

ViewKind = Literal["", "lines", "spectrum", "path", "histogram", "landscape"]
"""A plot's view; "" lets the output's kind choose (scalars and vectors as lines, histograms as
heatmaps, grid2d as a landscape, points2d as a path)."""

LAYER = "<layer>"
"""Placeholder ending a declared per-layer series name: `norms/grad/<layer>`."""


@dataclass(frozen=True)
class Display:
    """How a series is shown: the quantity describes itself and any view can draw it.

    title: the plot's full title, also the tooltip of its tab ("" → the series' family name).
    short_title: the tab's title, two or three words ("" → the title).
    label: what the value axis shows (`loss`, `λ`, `‖g‖`); the output's unit is appended.
    symbol: the name of a vector's components (`λ` → λ1, λ2 …), also on a spectrum's index axis.
    log_y: start on a log value axis (quantities spanning decades). The app keeps it off for a
        series that holds values ≤ 0, which a log axis cannot show.
    group: the family of the plot this series joins ("" → a plot of its own). A reference or a
        total whose plot is missing gets a plot of its own.
    role: see `SeriesRole`.
    view: the view, when the kind's default is not wanted (per-head lines instead of a spectrum).
    order: position among the plots, smaller first; the first four fill the window's 2×2 grid
        (the built-ins: training loss 0, trajectory 10, landscape 20–30, evaluation 40,
        curvature 50, norms 60, spectra 70, everything else 100).
    """

    title: str = ""
    short_title: str = ""
    label: str = ""
    symbol: str = ""
    log_y: bool = False
    group: str = ""
    role: SeriesRole = "data"
    view: ViewKind = ""
    order: int = 100


@dataclass(frozen=True)
class Output:
    """One series a diagnostic writes; its kind picks both the storage and the default view.

    `name` is the full series name (`hessian/top_eigenvalues`, `norms/grad/<layer>`); `shape`
    is the shape of one record (() for a scalar). `attrs` go to the series' HDF5 attributes
    (axes and grids as JSON-able values). `display` says how it is shown; it comes from the
    plugin's declaration (`DiagnosticPlugin.outputs`), not from the per-run instance.
    """

    name: str
    kind: OutputKind
    shape: tuple[int, ...] = ()
    unit: str = ""
    layer: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    display: Display = Display()

    @property
    def family(self) -> str:
        """The name less its layer: `norms/grad/fc.weight` → `norms/grad` (one plot per family)."""
        if self.name.endswith("/" + LAYER):
            return self.name[: -len(LAYER) - 1]
        suffix = "/" + self.layer
        if self.layer and self.name.endswith(suffix):
            return self.name[: -len(suffix)]
        return self.name

    def matches(self, declared: Output) -> bool:
        """Whether this concrete series is the one `declared` (a name, or `family/<layer>`)."""
        if declared.name.endswith("/" + LAYER):
            return bool(self.layer) and self.name == f"{declared.family}/{self.layer}"
        return self.name == declared.name


CORE_OUTPUTS = (
    Output(
        "train/loss",
        "scalar",
        display=Display("Training loss (mini-batch)", "Loss", "loss", log_y=True, order=0),
    ),
    Output("train/lr", "scalar", display=Display("Learning rate η", "η", "η")),
    Output(
        "trajectory/params",
        "points2d",
        (2,),
        display=Display("Trajectory in the plane", "Path", order=10),
    ),
)
"""Series the Runner writes itself (every step) or a 2-D task records, with their display."""


@dataclass
class SetupContext:
    """What a diagnostic may look at to declare its outputs, before the first step."""

    model: nn.Module
    named_params: dict[str, nn.Parameter]
    task: Task
    optimizer: torch.optim.Optimizer


@dataclass
class StepContext:
    """Read-only view of one run at one step, handed to diagnostics.

    Diagnostics run after backward and before `optimizer.step()`, at parameters θ_t:
    `grads` are the gradients of the training batch at θ_t (before any optimizer can overwrite
    `.grad`), `update` is the last update Δθ_{t−1} = θ_t − θ_{t−1} (None at step 0 or when no
    diagnostic declared it needed), `init_params` are θ_0.
    """

    step: int
    model: nn.Module
    named_params: dict[str, nn.Parameter]
    grads: dict[str, Tensor]
    update: dict[str, Tensor] | None
    init_params: dict[str, Tensor]
    optimizer: torch.optim.Optimizer
    lr: float
    loss: float
    task: Task

    def probe_loss(self) -> Tensor:
        """Loss on the task's fixed probe batch, with a graph (for Hessian-vector products)."""
        return self.task.loss(self.model, self.task.probe)


class Diagnostic:
    """A live instance of a diagnostic for one run; may keep state between calls (warm starts).

    Subclasses set `needs_update` when they read `StepContext.update`, declare their outputs in
    `outputs`, and return `{series name: value}` from `compute` (floats, arrays or tensors).
    """

    needs_update: bool = False

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def outputs(self, ctx: SetupContext) -> list[Output]:
        raise NotImplementedError

    def compute(self, ctx: StepContext) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class DiagnosticPlugin:
    """Descriptor of a diagnostic; `create(params)` makes its per-run instance.

    `outputs` declares every series the diagnostic can write, once: name (per-layer ones end
    with `/<layer>`), kind, unit and `Display`. The instance's `outputs(ctx)` says which of them
    a run writes, with shapes, layers and attrs; `declared(...)` checks the two agree and gives
    each series its declared display. (Plain `(name, kind)` pairs are still accepted.)
    `every` is the default schedule (a record every that many steps) and `cost` its class.
    """

    id: str
    title: str
    summary: str
    params: tuple[Param, ...]
    create: Callable[[dict[str, Any]], Diagnostic]
    outputs: tuple[Output, ...] = ()
    cost: Cost = "cheap"
    every: int = 10
    reference: str = ""

    def __post_init__(self) -> None:
        outputs = tuple(o if isinstance(o, Output) else Output(*o) for o in self.outputs)
        object.__setattr__(self, "outputs", outputs)

    def declaration(self, output: Output) -> Output | None:
        """The declared output that `output` (a concrete series) is, if any."""
        return next((d for d in self.outputs if output.matches(d)), None)

    def declared(self, outputs: list[Output]) -> list[Output]:
        """The instance's `outputs`, each with its declared unit and display.

        Raises ValueError, naming the series, when one is not declared, has another kind than
        declared, or carries a display or unit of its own that differs from the declaration:
        the declaration is the one source of truth. A plugin that declares nothing is not
        checked (its series get plain plots).
        """
        if not self.outputs:
            return outputs
        checked = []
        for output in outputs:
            declared = self.declaration(output)
            if declared is None:
                names = ", ".join(d.name for d in self.outputs)
                raise ValueError(
                    f"diagnostic {self.id!r} writes {output.name!r}, which its plugin does not "
                    f"declare in `outputs` (declared: {names})"
                )
            if output.kind != declared.kind:
                raise ValueError(
                    f"diagnostic {self.id!r}: series {output.name!r} is a {output.kind} but is "
                    f"declared a {declared.kind}"
                )
            for what in ("display", "unit"):
                own = getattr(output, what)
                if own != getattr(Output("", "scalar"), what) and own != getattr(declared, what):
                    raise ValueError(
                        f"diagnostic {self.id!r}: series {output.name!r} has a {what} of its "
                        f"own that differs from its plugin's declaration; declare it once, in "
                        f"the plugin's `outputs`"
                    )
            checked.append(replace(output, unit=declared.unit, display=declared.display))
        return checked


Plugin = TaskPlugin | OptimizerPlugin | DiagnosticPlugin
