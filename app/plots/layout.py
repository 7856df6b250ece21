"""Which plots a session needs: its runs' declared outputs grouped into plot groups.

One dock per output would bury the window (norms alone write three series per parameter), so
outputs are grouped by family: `norms/grad/<layer>` for every layer is one plot with a layer
selector, `spectra/weights/<layer>` one spectrum view, `eval/loss` with `eval/train_loss` one
plot. `hessian/two_over_lr` is no plot of its own but the 2/η stability line drawn on the
sharpness plot it belongs to. The order puts what people look at first at the top: the training
loss, then evaluation, curvature, norms, spectra, and everything else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from descentlab.engine.plugin import Output

View = Literal["lines", "spectrum", "path", "histogram"]

SHARPNESS = "hessian/top_eigenvalues"
TWO_OVER_LR = "hessian/two_over_lr"

TOTALS = {
    "norms/grad": "norms/grad_total",
    "norms/update": "norms/update_total",
    "norms/weight": "norms/weight_total",
}
"""Per-layer norm families and the total over all layers, offered as one more 'layer'."""

TOTAL_LAYER = "(all layers: total)"
"""Selector entry of a total; parenthesised so that no parameter name can collide with it."""

EVAL_PAIRS = {
    "eval/loss": ("eval/loss", "eval/train_loss"),
    "eval/train_loss": ("eval/loss", "eval/train_loss"),
    "eval/accuracy": ("eval/accuracy", "eval/train_accuracy"),
    "eval/train_accuracy": ("eval/accuracy", "eval/train_accuracy"),
}
"""Held-out and training-set figures of one kind share a plot, so the gap is read at a glance."""

TITLES = {
    "train/loss": "Training loss (mini-batch)",
    "train/lr": "Learning rate η",
    "eval/loss": "Loss on all data: held-out and train",
    "eval/accuracy": "Accuracy on all data: held-out and train",
    SHARPNESS: "Sharpness: top Hessian eigenvalues λ(H) vs 2/η",
    "hessian/min_eigenvalue": "Smallest Hessian eigenvalue",
    "hessian/trace": "Hessian trace tr H",
    "hessian/frobenius": "Hessian Frobenius norm ‖H‖_F",
    "norms/grad": "Gradient norm ‖g‖",
    "norms/update": "Update norm ‖Δθ‖",
    "norms/weight": "Weight norm ‖θ‖",
    "norms/distance_from_init": "Distance from init ‖θ − θ₀‖",
    "spectra/weights": "Singular values of weights σ",
    "spectra/stable_rank": "Stable rank Σσ²/σ₁²",
    "spectra/spectral_norm": "Spectral norm σ₁",
    "trajectory/params": "Trajectory in the plane",
    "optimizer_state/effective_step_histogram": "Adam effective step sizes η/(√v̂ + ε)",
}

_SECTIONS = ("train/loss", "eval/", "hessian/", "norms/", "spectra/")
"""Sort order by prefix; whatever matches none comes last."""


@dataclass(frozen=True)
class PlotGroup:
    """One plot: what it shows and how.

    `series` are full series names. For a per-layer family `layers` is parallel to `series`
    (the view offers them in a selector); otherwise it is empty and all series are drawn.
    `reference` names a series drawn as a reference line rather than as data (2/η).
    """

    key: str
    title: str
    view: View
    series: tuple[str, ...]
    layers: tuple[str, ...] = ()
    reference: str = ""
    log_y: bool = False
    """Suggested initial y scale: losses span decades; on the sharpness plot λmax, 2/η and the
    preconditioned threshold can be orders of magnitude apart, and the log scale shows λ/(2/η)
    as a distance."""

    def series_for(self, layer: str) -> str:
        return self.series[self.layers.index(layer)]


def _family(output: Output) -> str:
    """`norms/grad/fc.weight` → `norms/grad`: the name less its layer suffix."""
    suffix = "/" + output.layer
    if output.layer and output.name.endswith(suffix):
        return output.name[: -len(suffix)]
    return output.name


def _rank(key: str) -> int:
    return next((i for i, p in enumerate(_SECTIONS) if key.startswith(p)), len(_SECTIONS))


def plot_groups(outputs: Iterable[Output]) -> list[PlotGroup]:
    """The plots for `outputs`, which may be the outputs of several runs chained together.

    Outputs are deduplicated by name (runs mostly share them). Kinds without a view here
    (grid2d) get no group.
    """
    by_name = {o.name: o for o in outputs}
    names = set(by_name)
    families: dict[str, list[Output]] = {}
    for output in by_name.values():
        families.setdefault(_family(output), []).append(output)

    absorbed = {total for family, total in TOTALS.items() if family in families}
    if SHARPNESS in names:
        absorbed.add(TWO_OVER_LR)
    for pair in set(EVAL_PAIRS.values()):
        absorbed.update([s for s in pair if s in names][1:])  # all but the group's first

    groups: list[PlotGroup] = []
    for family, members in families.items():
        first = members[0]
        if family in absorbed:
            continue
        title = TITLES.get(family, family)
        if first.kind == "points2d":
            groups.append(PlotGroup(family, title, "path", (first.name,)))
        elif first.kind == "histogram":
            layers = tuple(o.layer for o in members) if first.layer else ()
            series = tuple(o.name for o in members) if first.layer else (first.name,)
            groups.append(PlotGroup(family, title, "histogram", series, layers))
        elif first.layer:
            layers = tuple(o.layer for o in members)
            series = tuple(o.name for o in members)
            if TOTALS.get(family) in names:
                layers, series = (TOTAL_LAYER, *layers), (TOTALS[family], *series)
            view: View = "spectrum" if first.kind == "vector" else "lines"
            groups.append(PlotGroup(family, title, view, series, layers))
        elif first.kind in ("scalar", "vector"):
            series = tuple(s for s in EVAL_PAIRS.get(family, (family,)) if s in names)
            reference = TWO_OVER_LR if family == SHARPNESS and TWO_OVER_LR in names else ""
            groups.append(
                PlotGroup(
                    family,
                    title,
                    "lines",
                    series,
                    reference=reference,
                    log_y=family.endswith("loss") or family == SHARPNESS,
                )
            )
    groups.sort(key=lambda g: _rank(g.key))  # stable: first appearance within a section
    return groups
