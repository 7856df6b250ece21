"""Loss-landscape diagnostic: a plane (or line) of losses around θ, the path on it, and more.

Every `refresh` steps a new slice around the current parameters is started along the chosen
directions (filter-normalised random, top Hessian eigenvectors, PCA of the recent trajectory, or
θ − θ₀; see `engine/landscape.py`) and evaluated on the fixed probe batch. A 41×41 plane is
1681 forward passes, far more than one training step, so it is not computed at once: the
centre and directions are copied when it starts, and `rows_per_step` rows are evaluated at each
of the following steps on a private copy of the model, so no step stalls for the whole plane.
The plane is written (`landscape/plane`, with `landscape/center_step` saying whose θ is its
centre) when its last row is done. A frozen plane is computed once; its surface never changes
(same centre, directions and probe batch), so only the path goes on being updated.

The trajectory is sampled every `trajectory_every` steps (the last `history` samples); each
sample step writes `landscape/path`, the samples and the current θ projected on the latest
plane by least squares, so the current point moves over the contour between two planes. PCA
directions come from the same samples, with `landscape/explained_variance`.

With the plane come quantities at the same centre: the interpolation θ₀ → θ with its barrier
height, the roughness of K random 1-D slices, and SAM-style first- versus zeroth-order flatness.
They are spread over steps like the plane's rows (one unit each, K for the roughness).

The diagnostic must see every step to spread the work and sample the path, so its default
schedule is `every = 1`; most calls do nothing but a comparison of step numbers. `refresh` is
the period of the pictures.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from descentlab.engine import landscape as ls
from descentlab.engine.curvature.operators import flatten, unflatten
from descentlab.engine.params import Param
from descentlab.engine.plugin import (
    Diagnostic,
    DiagnosticPlugin,
    Display,
    Output,
    SetupContext,
    StepContext,
)

PLANE = "landscape/plane"
LINE = "landscape/line"
PATH = "landscape/path"
CENTER_STEP = "landscape/center_step"
EXPLAINED = "landscape/explained_variance"
INTERPOLATION = "landscape/interpolation"
BARRIER = "landscape/barrier"
ROUGHNESS = "landscape/roughness"
FLATNESS_FIRST = "landscape/flatness_first"
FLATNESS_ZEROTH = "landscape/flatness_zeroth"

DIRECTIONS = ("random", "hessian", "pca", "init")
AXIS_LABELS = {
    "random": ("a along d₁ (filter-normalised)", "b along d₂ (filter-normalised)"),
    "hessian": ("a along v₁ (top Hessian eigenvector)", "b along v₂"),
    "pca": ("a along PC₁ of the path (±span: its extent)", "b along PC₂ (±span: its extent)"),
    "init": ("a along θ − θ₀ (−1: θ₀)", "b along a random direction ⟂, as long"),
}

PARAMS = (
    Param(
        "directions",
        "choice",
        "random",
        "Axes of the slice: filter-normalised Gaussian directions, the top Hessian "
        "eigenvectors, PCA of the recent trajectory (scaled so that ±span covers the path), or "
        "θ − θ₀ (with a random second axis).",
        choices=DIRECTIONS,
    ),
    Param("dims", "int", 2, "1 draws a line, 2 a plane.", low=1, high=2),
    Param(
        "span",
        "float",
        1.0,
        "Coordinates run over [−span, span] times each direction (random: filter norms of θ; "
        "init: the distance from θ₀; hessian and pca: unit vectors).",
        low=1e-6,
        high=1e3,
        log=True,
    ),
    Param("resolution", "int", 41, "Points per side of the grid.", low=3, high=401),
    Param(
        "plane",
        "choice",
        "recentred",
        "recentred: a new slice around θ every refresh; frozen: the first one kept, the path "
        "followed on it.",
        choices=("recentred", "frozen"),
    ),
    Param("refresh", "int", 100, "Steps between the starts of two slices.", low=1),
    Param(
        "rows_per_step",
        "int",
        1,
        "Grid rows evaluated per training step while a slice is being computed (a row is "
        "`resolution` forward passes on the probe batch, about 6 ms on digits-mlp and 55 ms on "
        "digits-cnn here); the slice is written when complete.",
        low=1,
        high=401,
    ),
    Param(
        "ignore_bias_norm",
        "bool",
        True,
        "Random directions leave biases and normalisation parameters out (zero there).",
    ),
    Param("trajectory_every", "int", 10, "Steps between two samples of the path.", low=1),
    Param("history", "int", 100, "Path samples kept (and used by PCA).", low=3, high=10_000),
    Param("interpolation", "bool", True, "Interpolate θ₀ → θ and record the barrier height."),
    Param("interpolation_points", "int", 21, "Points t ∈ [0, 1] of the interpolation.", 3, 401),
    Param("roughness", "bool", True, "Roughness of random 1-D slices (0 for a quadratic)."),
    Param("roughness_directions", "int", 4, "Random directions of the roughness.", 1, 64),
    Param("flatness", "bool", True, "First- and zeroth-order flatness at radius rho."),
    Param("rho", "float", 0.05, "Radius ρ of the flatness probe.", low=1e-8, high=10.0, log=True),
    Param(
        "hessian_iterations", "int", 30, "Lanczos products for Hessian directions.", low=2, high=500
    ),
    Param(
        "method",
        "choice",
        "auto",
        "How a grid is evaluated: auto (vmap on a GPU, the affine first layer for MLPs on the "
        "CPU, else a loop) or one of them forced.",
        choices=ls.METHODS,
    ),
    Param("seed", "int", 0, "Seed of the random directions.", low=0, high=2**31 - 1),
)


def _generator(seed: int, stream: int) -> torch.Generator:
    mixed = np.random.SeedSequence([seed, stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed))


@dataclass(frozen=True)
class Slice:
    """A completed slice: its centre and directions, flat, for projecting the path on it."""

    step: int
    center: Tensor
    directions: Tensor
    """(k, n)."""


Job = Generator[None, None, dict[str, Any]]
"""One slice's work: each `next()` does one unit (a grid row or the like); returns records."""


class LandscapeDiagnostic(Diagnostic):
    """One run's landscape: the slice being computed, the latest complete one, path samples."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.samples: deque[Tensor] = deque(maxlen=params["history"])
        self.last_sample: int | None = None
        self.last_start: int | None = None
        self.job: Job | None = None
        self.slice: Slice | None = None
        self.pending: Slice | None = None
        self.names: list[str] = []
        self.ignore: set[str] = set()

    def outputs(self, ctx: SetupContext) -> list[Output]:
        p = self.params
        self.names = list(ctx.named_params)
        if p["ignore_bias_norm"]:
            self.ignore = ls.ignored_names(ctx.named_params, ctx.task.roles)
        device = next(iter(ctx.named_params.values())).device
        ls.resolve_method(p["method"], ctx.model, device)  # a forced method that cannot work
        res, span = p["resolution"], p["span"]
        x_label, y_label = AXIS_LABELS[p["directions"]]
        coords = [-span, span, res]
        out = [Output(CENTER_STEP, "scalar")]
        if p["dims"] == 2:
            out.append(
                Output(
                    PLANE,
                    "grid2d",
                    (res, res),
                    attrs={
                        "x": coords,
                        "y": coords,
                        "x_label": x_label,
                        "y_label": y_label,
                        "directions": p["directions"],
                    },
                )
            )
            out.append(Output(PATH, "points2d", (p["history"] + 1, 2)))
        else:
            out.append(Output(LINE, "vector", (res,), attrs={"x": coords, "x_label": x_label}))
        if p["directions"] == "pca":
            out.append(Output(EXPLAINED, "vector", (p["dims"],)))
        if p["interpolation"]:
            t = [0.0, 1.0, p["interpolation_points"]]
            out += [
                Output(INTERPOLATION, "vector", (p["interpolation_points"],), attrs={"t": t}),
                Output(BARRIER, "scalar"),
            ]
        if p["roughness"]:
            out.append(Output(ROUGHNESS, "scalar"))
        if p["flatness"]:
            out += [Output(FLATNESS_FIRST, "scalar"), Output(FLATNESS_ZEROTH, "scalar")]
        return out

    # -- per step -----------------------------------------------------------------------------

    def compute(self, ctx: StepContext) -> dict[str, Any]:
        """Sample the path when due, start a slice when due, advance the one in progress."""
        p = self.params
        records: dict[str, Any] = {}
        step = ctx.step
        point = {n: t.detach() for n, t in ctx.named_params.items()}
        sampled = self.last_sample is None or step - self.last_sample >= p["trajectory_every"]
        if sampled:
            self.samples.append(flatten([point[n] for n in self.names]).clone())
            self.last_sample = step
        if self.job is None and (self.last_start is None or step - self.last_start >= p["refresh"]):
            self.job = self._start(ctx, point)
        completed = False
        if self.job is not None:
            for _ in range(p["rows_per_step"]):
                try:
                    next(self.job)
                except StopIteration as done:
                    records.update(done.value)
                    self.job = None
                    if self.pending is not None:
                        self.slice, self.pending = self.pending, None
                        completed = True
                    break
        if p["dims"] == 2 and self.slice is not None and (sampled or completed):
            records[PATH] = self._path(point)
        return records

    def _start(self, ctx: StepContext, point: dict[str, Tensor]) -> Job | None:
        """A job for a slice centred at θ_t, or None while its directions are undefined."""
        p = self.params
        frozen_done = p["plane"] == "frozen" and self.slice is not None
        directions: list[dict[str, Tensor]] = []
        explained = None
        if not frozen_done:
            try:
                directions, explained = self._directions(ctx, point)
            except ls.NotReady:
                return None
        elif not (p["interpolation"] or p["roughness"] or p["flatness"]):
            return None
        self.last_start = ctx.step
        center = {n: t.clone() for n, t in point.items()}
        return self._job(ctx, center, directions, explained)

    def _directions(
        self, ctx: StepContext, point: dict[str, Tensor]
    ) -> tuple[list[dict[str, Tensor]], np.ndarray | None]:
        p = self.params
        k, kind = p["dims"], p["directions"]
        if kind == "random":
            gen = _generator(p["seed"], 0)
            return [ls.filter_normalized(point, gen, self.ignore) for _ in range(k)], None
        if kind == "hessian":
            vectors, _ = ls.hessian_directions(
                ctx.model,
                ctx.task.criterion,
                ctx.task.probe,
                point,
                k,
                p["hessian_iterations"],
                _generator(p["seed"], ctx.step),
            )
            return vectors, None
        if kind == "init":
            return ls.init_plane(point, ctx.init_params, _generator(p["seed"], 0), self.ignore)[
                :k
            ], None
        like = [point[n] for n in self.names]
        samples, center = torch.stack(list(self.samples)), flatten(like)
        pca = ls.pca_directions(samples, center, k)
        # Unit directions would put a path many units long far outside a ±span plane: scale
        # each so that ±span covers the path's extent along it, with a margin.
        extent = ((samples - center) @ pca.directions.T).abs().amax(dim=0)
        scaled = pca.directions * (1.2 * extent / p["span"]).clamp_min(1e-12)[:, None]
        vectors = [dict(zip(self.names, unflatten(row, like), strict=True)) for row in scaled]
        return vectors, pca.explained

    def _job(
        self,
        ctx: StepContext,
        center: dict[str, Tensor],
        directions: list[dict[str, Tensor]],
        explained: np.ndarray | None,
    ) -> Job:
        p = self.params
        task, model = ctx.task, ctx.model
        init = {n: t.detach().clone() for n, t in ctx.init_params.items()}
        step = ctx.step
        records: dict[str, Any] = {}
        res = p["resolution"]
        alphas = ls.axis(p["span"], res)
        if directions:
            family = ls.AffineFamily(
                model, task.criterion, task.probe, center, directions, p["method"]
            )
            if p["dims"] == 2:
                grid = np.empty((res, res))
                for i, beta in enumerate(alphas):
                    yield
                    grid[i] = ls.plane_row(family, alphas, float(beta))
                records[PLANE] = grid
            else:
                yield
                records[LINE] = family.losses(alphas[:, None])
            records[CENTER_STEP] = float(step)
            if explained is not None:
                records[EXPLAINED] = explained
            like = [center[n] for n in self.names]
            self.pending = Slice(
                step,
                flatten(like),
                torch.stack([flatten([d[n] for n in self.names]) for d in directions]),
            )
        if p["interpolation"]:
            yield
            result = ls.interpolate(
                model,
                task.criterion,
                task.probe,
                init,
                center,
                p["interpolation_points"],
                p["method"],
            )
            records[INTERPOLATION] = result.losses
            records[BARRIER] = result.barrier
        if p["roughness"]:
            gen = _generator(p["seed"], 1)
            lines = []
            for _ in range(p["roughness_directions"]):
                yield
                d = ls.filter_normalized(center, gen, self.ignore)
                family = ls.AffineFamily(
                    model, task.criterion, task.probe, center, [d], p["method"]
                )
                lines.append(family.losses(alphas[:, None]))
            records[ROUGHNESS] = ls.roughness(np.stack(lines), alphas)
        if p["flatness"]:
            yield
            result_f = ls.flatness(model, task.criterion, task.probe, center, p["rho"])
            records[FLATNESS_FIRST] = result_f.first
            records[FLATNESS_ZEROTH] = result_f.zeroth
        return records

    def _path(self, point: dict[str, Tensor]) -> np.ndarray:
        """Samples then θ_t projected on the latest slice, NaN-padded to `history` + 1 rows."""
        assert self.slice is not None
        current = flatten([point[n] for n in self.names])
        points = torch.stack([*self.samples, current])
        coords = ls.project(points, self.slice.center, self.slice.directions)
        path = np.full((self.params["history"] + 1, 2), np.nan)
        path[: len(coords)] = coords
        return path


PLUGINS = [
    DiagnosticPlugin(
        id="landscape",
        title="Loss landscape",
        summary=(
            "A plane (or line) of probe-batch losses around the current parameters along "
            "filter-normalised random directions, the top Hessian eigenvectors, PCA of the "
            "recent trajectory or θ − θ₀, re-centred every refresh or frozen, with the "
            "optimizer's path projected on it; the interpolation from initialisation with its "
            "barrier height, the roughness of random slices and SAM-style first- versus "
            "zeroth-order flatness. The grid is computed a few rows per step so that training "
            "never stalls."
        ),
        params=PARAMS,
        create=LandscapeDiagnostic,
        outputs=(
            Output(
                PLANE,
                "grid2d",
                display=Display(
                    "Loss landscape around θ, with the projected path",
                    "Landscape",
                    "loss",
                    order=20,
                ),
            ),
            Output(PATH, "points2d", display=Display(group=PLANE, role="part")),
            Output(CENTER_STEP, "scalar", display=Display(group=PLANE, role="part")),
            Output(
                LINE,
                "vector",
                display=Display("Loss along a direction through θ", "Loss line", "loss", order=30),
            ),
            Output(
                EXPLAINED,
                "vector",
                unit="fraction",
                display=Display(
                    "Share of the path along each PCA direction", "PCA share", "share", "PC"
                ),
            ),
            Output(
                INTERPOLATION,
                "vector",
                display=Display("Loss from θ₀ (t = 0) to θ (t = 1)", "θ₀ → θ", "loss"),
            ),
            Output(BARRIER, "scalar", display=Display("Barrier height θ₀ → θ", "Barrier", "ΔL")),
            Output(
                ROUGHNESS,
                "scalar",
                display=Display(
                    "Roughness of random 1-D slices (0: quadratic)", "Roughness", "roughness"
                ),
            ),
            Output(
                FLATNESS_FIRST,
                "scalar",
                display=Display("First-order flatness ρ‖∇L(θ̂)‖", "Flatness (1st)", "ρ‖∇L‖"),
            ),
            Output(
                FLATNESS_ZEROTH,
                "scalar",
                display=Display("Zeroth-order flatness L(θ̂) − L(θ)", "Flatness (0th)", "ΔL"),
            ),
        ),
        cost="heavy",
        every=1,
        reference=(
            "Li, Xu, Taylor, Studer & Goldstein, Visualizing the Loss Landscape of Neural Nets "
            "(NeurIPS 2018); Goodfellow, Vinyals & Saxe (ICLR 2015); Entezari, Sedghi, Saukh & "
            "Neyshabur (ICLR 2022); Foret et al., SAM (ICLR 2021); Zhang et al., Gradient Norm "
            "Aware Minimization Seeks First-Order Flatness (CVPR 2023)"
        ),
    )
]
