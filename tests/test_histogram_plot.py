"""The histogram view against the model's buffers: grouping, heatmap, latest curves, selectors,
replay and exports (offscreen Qt, pytest-qt)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from helpers import shown
from PySide6.QtGui import QImage

from descentlab.app.plots.factory import make_view
from descentlab.app.plots.histogram_plot import HistogramPlot, bin_edges
from descentlab.app.plots.layout import plot_groups
from descentlab.app.session_model import SessionModel
from descentlab.engine.plugin import Output
from descentlab.engine.sink import RunHeader

HIST = "optimizer_state/effective_step_histogram"
BINS = 6
EDGES = np.logspace(-10, 1, BINS + 1)


def histograms(records: int, seed: int) -> np.ndarray:
    counts = np.random.default_rng(seed).random((records, BINS))
    return counts / counts.sum(axis=1, keepdims=True)


def session() -> SessionModel:
    model = SessionModel()
    outputs = [
        Output("train/loss", "scalar"),
        Output(HIST, "histogram", (BINS,), attrs={"edges": EDGES.tolist(), "log10": True}),
        *(Output(f"probe/hist/{layer}", "histogram", (3,), layer=layer) for layer in ("a", "b")),
    ]
    for run, records in (("sgd", 5), ("adam", 3)):
        model.add_run(RunHeader(run, {}, outputs))
        steps = np.arange(records) * 10
        model.extend(run, HIST, steps, histograms(records, len(run)))
        for i, layer in enumerate(("a", "b")):
            model.extend(run, f"probe/hist/{layer}", steps, np.full((records, 3), i + 1.0))
    return model


def test_histogram_outputs_get_a_histogram_group_per_family() -> None:
    model = session()
    groups = {g.key: g for g in plot_groups(model.runs["sgd"].outputs.values())}
    assert groups[HIST].view == "histogram" and groups[HIST].series == (HIST,)
    assert groups[HIST].layers == ()
    layered = groups["probe/hist"]
    assert layered.view == "histogram" and layered.layers == ("a", "b")
    assert layered.series == ("probe/hist/a", "probe/hist/b")


def test_heatmap_is_records_by_bins_and_latest_curves_are_the_last_records(qtbot) -> None:
    model = session()
    group = next(g for g in plot_groups(model.runs["sgd"].outputs.values()) if g.key == HIST)
    view = shown(qtbot, make_view(group, model))
    assert isinstance(view, HistogramPlot)
    _, sgd = model.runs["sgd"].series[HIST].view()
    assert view.image.image.shape == (5, BINS)
    np.testing.assert_array_equal(view.image.image, sgd)
    for run in ("sgd", "adam"):
        x, y = view.latest_item(run).xData, view.latest_item(run).yData
        np.testing.assert_allclose(x, np.log10(EDGES))
        np.testing.assert_array_equal(y, model.runs[run].series[HIST].view()[1][-1])
    rect = view.image.mapRectToView(view.image.boundingRect())
    assert rect.top() == np.log10(EDGES[0]) and rect.bottom() == np.log10(EDGES[-1])

    view.run_box.setCurrentText("adam")
    np.testing.assert_array_equal(view.image.image, model.runs["adam"].series[HIST].view()[1])
    view.set_step_limit(10)
    assert view.image.image.shape == (2, BINS)
    np.testing.assert_array_equal(view.latest_item("sgd").yData, sgd[1])

    # New records are drawn on the next refresh.
    view.set_step_limit(None)
    model.extend("adam", HIST, np.array([30]), histograms(1, 7))
    view.refresh()
    assert view.image.image.shape == (4, BINS)
    np.testing.assert_array_equal(view.latest_item("adam").yData, histograms(1, 7)[0])


def test_layer_selector_exports_and_edges_without_attrs(qtbot, tmp_path: Path) -> None:
    model = session()
    group = next(
        g for g in plot_groups(model.runs["sgd"].outputs.values()) if g.key == "probe/hist"
    )
    view = shown(qtbot, make_view(group, model))
    np.testing.assert_array_equal(view.latest_item("sgd").xData, np.arange(4))  # bin indices
    np.testing.assert_array_equal(view.latest_item("sgd").yData, np.ones(3))
    view.layer_box.setCurrentText("b")
    np.testing.assert_array_equal(view.latest_item("sgd").yData, np.full(3, 2.0))
    np.testing.assert_array_equal(view.image.image, np.full((5, 3), 2.0))

    view.export_csv(tmp_path / "h.csv")
    with open(tmp_path / "h.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["run", "series", "step", "value"]
    assert len(rows) == 1 + (5 + 3) * 3
    assert rows[1] == ["sgd", "probe/hist/b[0]", "0", "2.0"]
    view.export_png(tmp_path / "h.png")
    assert not QImage(str(tmp_path / "h.png")).isNull()

    edges, label = bin_edges({"edges": [1.0, 2.0, 4.0]}, 2)
    assert edges.tolist() == [1.0, 2.0, 4.0] and label == "value"
    assert bin_edges({"edges": [0.0, 1.0, 2.0], "log10": True}, 2)[1] == "bin"
