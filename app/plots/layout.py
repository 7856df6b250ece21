"""Which plots a session needs: its runs' declared outputs grouped into plot groups.

Every output says how it is shown (`engine.plugin.Display`: title, short title, value label,
log scale, the plot it joins and its role there, its order), so this module knows no series by
name: a third-party diagnostic gets the same treatment as a built-in one. One plot per family
(a per-layer family is one plot with a layer selector); a series that joins another family's
plot is drawn there as a second curve (held-out beside training loss), a reference line (2/η),
the 'all layers' total, or a part of the view (a landscape's path). A series without display
metadata (a session whose diagnostic is not installed) gets a plain plot titled by its name.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from descentlab.engine import registry
from descentlab.engine.plugin import CORE_OUTPUTS, Display, Output, ViewKind

View = ViewKind

TOTAL_LAYER = "(all layers: total)"
"""Selector entry of a total; parenthesised so that no parameter name can collide with it."""

MAX_LINES = 8
"""A vector longer than this, with no layers, is a spectrum rather than a few named curves."""

PLAIN = Display()


@functools.cache
def _declarations() -> tuple[Output, ...]:
    """Every output declared by the Runner, the tasks and the registered diagnostics."""
    declared = list(CORE_OUTPUTS)
    for plugin in registry.plugins("diagnostics").values():
        declared.extend(plugin.outputs)
    return tuple(declared)


def _declared_rank(output: Output) -> int:
    """Where `output` is declared (series that join a plot come in their plugin's order)."""
    declared = _declarations()
    return next((i for i, d in enumerate(declared) if output.matches(d)), len(declared))


def display_of(output: Output) -> Display:
    """How `output` is shown: its own display (live runs carry their plugin's), else the
    declaration of a registered plugin with its name (replay), else a plain line plot."""
    if output.display != PLAIN:
        return output.display
    found = next((d for d in _declarations() if output.matches(d)), None)
    return found.display if found is not None else PLAIN


@dataclass(frozen=True)
class PlotGroup:
    """One plot: what it shows and how.

    `series` are full series names. For a per-layer family `layers` is parallel to `series`
    (the view offers them in a selector); otherwise it is empty and all series are drawn.
    `references` are series drawn as reference lines rather than as data (2/η), with their
    legend labels in `reference_labels`.
    """

    key: str
    title: str
    view: View
    series: tuple[str, ...]
    layers: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    reference_labels: tuple[str, ...] = ()
    log_y: bool = False
    """Suggested initial y scale: losses span decades; on the sharpness plot λmax and 2/η can be
    orders of magnitude apart, and the log scale shows λ/(2/η) as a distance."""
    short_title: str = ""
    """The dock's tab title (the full title is its tooltip and the plot's own title)."""
    value_label: str = ""
    """What the value axis shows, with its unit ("" when the declaration says nothing)."""
    symbol: str = ""
    """The name of a vector's components (λ → λ1, λ2 …); '#' when undeclared."""

    @property
    def tab_title(self) -> str:
        return self.short_title or self.title

    def series_for(self, layer: str) -> str:
        return self.series[self.layers.index(layer)] if self.layers else self.series[0]


def _value_label(display: Display, unit: str) -> str:
    label = display.label
    return f"{label} ({unit})" if label and unit else label or (f"({unit})" if unit else "")


def _default_view(output: Output) -> View:
    """The kind's default view: lines for scalars and vectors, a heatmap for histograms, a
    contour image for a grid2d, a path for points2d."""
    if output.kind == "grid2d":
        return "landscape"
    if output.kind == "points2d":
        return "path"
    if output.kind == "histogram":
        return "histogram"
    if output.kind == "vector" and (output.layer or (output.shape and output.shape[0] > MAX_LINES)):
        return "spectrum"
    return "lines"


def plot_groups(outputs: Iterable[Output]) -> list[PlotGroup]:
    """The plots for `outputs`, which may be the outputs of several runs chained together.

    Outputs are deduplicated by name (runs mostly share them), grouped by family, and sorted by
    their declared order (stable: first appearance among equals).
    """
    by_name = {o.name: o for o in outputs}
    families: dict[str, list[Output]] = {}
    for output in by_name.values():
        families.setdefault(output.family, []).append(output)
    shown = {family: display_of(members[0]) for family, members in families.items()}

    def host(family: str) -> str:
        """The family whose plot this family's series join (itself when none is there)."""
        group = shown[family].group
        return group if group and group != family and group in families else family

    joined: dict[str, list[str]] = {}
    for family in sorted(families, key=lambda f: _declared_rank(families[f][0])):
        if host(family) != family:
            joined.setdefault(host(family), []).append(family)

    groups: list[tuple[int, PlotGroup]] = []
    for family, members in families.items():
        if host(family) != family:
            continue
        first, display = members[0], shown[family]
        guests = joined.get(family, [])
        by_role = {
            role: [g for g in guests if shown[g].role == role]
            for role in ("data", "reference", "total", "part")
        }
        view = display.view or _default_view(first)
        if first.layer:
            layers = tuple(o.layer for o in members)
            series = tuple(o.name for o in members)
            totals = [families[g][0].name for g in by_role["total"]]
            if totals:
                layers, series = (TOTAL_LAYER, *layers), (totals[0], *series)
        else:
            layers = ()
            joins = (*by_role["data"], *by_role["part"])
            series = (first.name, *(families[g][0].name for g in joins))
        references = tuple(families[g][0].name for g in by_role["reference"])
        group = PlotGroup(
            key=family,
            title=display.title or family,
            view=view,
            series=series,
            layers=layers,
            references=references,
            reference_labels=tuple(shown[g].label or g for g in by_role["reference"]),
            log_y=display.log_y,
            short_title=display.short_title,
            value_label=_value_label(display, first.unit),
            symbol=display.symbol,
        )
        groups.append((display.order, group))
    groups.sort(key=lambda pair: pair[0])  # stable: first appearance among equal orders
    return [group for _, group in groups]
