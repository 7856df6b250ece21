"""Diagnostics declare how their series are shown; the app draws what they declare.

The plugin's `outputs` is the one declaration (checked against what the instance writes), the
layout reads titles, groups, references and scales from it, a session whose diagnostic is not
installed still opens as plain line plots, and the Adam stability threshold on the plot is the
series the sharpness diagnostic recorded (issue 11), not one the view recomputes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from engine_helpers import Script
from helpers import shown

from descentlab.app.plots.factory import make_view
from descentlab.app.plots.layout import display_of, plot_groups
from descentlab.app.plots.line_plot import step_line
from descentlab.app.session_model import SessionModel
from descentlab.engine import registry
from descentlab.engine.commands import SetHyper
from descentlab.engine.memory import MemorySink
from descentlab.engine.params import Param
from descentlab.engine.plugin import (
    Diagnostic,
    DiagnosticPlugin,
    Display,
    OptimizerPlugin,
    Output,
    SetupContext,
    StepContext,
)
from descentlab.engine.runner import Runner
from descentlab.engine.sink import RunHeader
from descentlab.engine.spec import parse_toml

PRECONDITIONED = "sharpness/preconditioned"
THRESHOLD = "sharpness/adam_threshold"


class _Probe(Diagnostic):
    """Writes what its `params["write"]` says, to test the declaration check."""

    def outputs(self, ctx: SetupContext) -> list[Output]:
        return list(self.params["write"])

    def compute(self, ctx: StepContext) -> dict[str, Any]:
        return {"probe/value": 1.0}


PROBE = DiagnosticPlugin(
    "probe",
    "Probe",
    "for tests",
    (),
    _Probe,
    outputs=(
        Output("probe/value", "scalar", unit="m", display=Display("Probe value", "Probe", "v")),
        Output("probe/norm/<layer>", "per_layer", display=Display("Probe norm", log_y=True)),
    ),
)


def test_the_declaration_gives_each_series_its_display_and_unit() -> None:
    written = [
        Output("probe/value", "scalar"),
        Output("probe/norm/fc.weight", "per_layer", layer="fc.weight"),
    ]
    value, norm = PROBE.declared(written)
    assert value.display == Display("Probe value", "Probe", "v") and value.unit == "m"
    assert norm.display.log_y and norm.layer == "fc.weight" and norm.family == "probe/norm"


@pytest.mark.parametrize(
    ("written", "message"),
    [
        (Output("probe/other", "scalar"), "writes 'probe/other', which its plugin does not"),
        (Output("probe/value", "vector", (3,)), "is a vector but is declared a scalar"),
        (Output("probe/norm/fc", "per_layer"), "writes 'probe/norm/fc'"),  # no layer given
        (Output("probe/value", "scalar", display=Display("Else")), "a display of its own"),
        (Output("probe/value", "scalar", unit="s"), "a unit of its own"),
    ],
)
def test_an_instance_that_disagrees_with_its_declaration_fails_loudly(
    written: Output, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PROBE.declared([written])


def test_plain_name_kind_pairs_still_declare_outputs() -> None:
    legacy = DiagnosticPlugin("old", "Old", "", (), _Probe, outputs=(("old/x", "scalar"),))
    assert legacy.outputs == (Output("old/x", "scalar"),)


def as_model(sink: MemorySink) -> SessionModel:
    """The window's model of what a run wrote (the Runner's own sink also takes events)."""
    model = SessionModel()
    for name, run in sink.runs.items():
        model.add_run(RunHeader(name, run.config, list(run.outputs.values())))
        for series in run.records:
            model.extend(name, series, *run.series(series))
    return model


@pytest.fixture
def registered() -> Iterator[dict[str, Any]]:
    """Plugins added without packaging (`registry.register`) for one test, then removed."""
    added: list[Any] = []

    def add(kind: str, plugin: Any) -> None:
        assert registry.kind_of(plugin) == kind
        registry.register(plugin)
        added.append(plugin)

    yield {"add": add}
    for plugin in reversed(added):
        registry.unregister(plugin)


def test_the_runner_switches_off_a_diagnostic_that_writes_undeclared_series(
    registered: dict[str, Any],
) -> None:
    plugin = DiagnosticPlugin(
        "probe",
        "Probe",
        "",
        (),
        lambda params: _Probe({"write": [Output("probe/undeclared", "scalar")]}),
        outputs=PROBE.outputs,
    )
    registered["add"]("diagnostics", plugin)
    sink = MemorySink()
    spec = 'steps = 3\ndevice = "cpu"\n[task]\nid = "quadratic"\n[[runs]]\nname = "a"\n'
    spec += 'optimizer = { id = "sgd", lr = 0.01 }\n[[diagnostics]]\nid = "probe"\n'
    Runner(parse_toml(spec), poll_interval=0.0).run(sink)
    errors = [detail for _, kind, detail in sink.runs["a"].events if kind == "diagnostic_error"]
    assert len(errors) == 1 and "'probe/undeclared', which its plugin does not declare" in errors[0]
    assert sink.runs["a"].status == "finished" and "probe/undeclared" not in sink.runs["a"].outputs


def test_replayed_series_take_the_display_of_the_installed_plugin_or_a_plain_one() -> None:
    # A session file stores no display: replay finds it by series name, or falls back.
    assert display_of(Output("hessian/top_eigenvalues", "vector", (3,))).symbol == "λ"
    assert display_of(Output("norms/grad/fc.weight", "per_layer", layer="fc.weight")).log_y
    unknown = plot_groups([Output("elsewhere/thing", "scalar")])
    assert [(g.key, g.title, g.view, g.tab_title, g.log_y) for g in unknown] == [
        ("elsewhere/thing", "elsewhere/thing", "lines", "elsewhere/thing", False)
    ]


def test_tabs_get_short_titles_and_the_plot_the_full_one() -> None:
    outputs = [
        Output("hessian/top_eigenvalues", "vector", (3,)),
        Output("hessian/min_eigenvalue", "scalar"),
        Output("update_spectra/singular_values/fc", "vector", (4,), layer="fc"),
        Output("sharpness/lambda_max_over_two_over_lr", "scalar"),
    ]
    groups = {g.key: g for g in plot_groups(outputs)}
    for group in groups.values():
        assert len(group.tab_title) <= 14 < len(group.title), group
    assert groups["hessian/min_eigenvalue"].title == "Smallest Hessian eigenvalue λmin"
    assert groups["hessian/min_eigenvalue"].tab_title == "λmin(Hessian)"


def test_every_built_in_declaration_is_well_formed() -> None:
    for plugin in registry.plugins("diagnostics").values():
        families = {o.family for o in plugin.outputs}
        for output in plugin.outputs:
            display = output.display
            if display.role == "data" and not display.group:
                assert display.title and display.short_title, output.name
            else:  # joins another plot of the same plugin
                assert display.group in families, output.name


# -- the Adam threshold is the diagnostic's series --------------------------------------------

SPEC = """
seed = 0
steps = 20
device = "cpu"
[task]
id = "gaussian-mixture"
[[runs]]
name = "sgd"
optimizer = { id = "sgd", lr = 0.1 }
[[runs]]
name = "mine"
optimizer = { id = "my-adam", lr = 0.01 }
[[diagnostics]]
id = "hessian"
every = 5
top_k = 1
iterations = 6
trace = false
frobenius = false
[[diagnostics]]
id = "sharpness"
every = 5
stability = false
batch = false
overlap = false
batch_iterations = 6
"""


def _adam(named: list, roles: dict, hyper: dict[str, Any]) -> torch.optim.Optimizer:
    return torch.optim.Adam([p for _, p in named], lr=hyper["lr"], betas=tuple(hyper["betas"]))


def test_the_threshold_drawn_is_the_one_the_diagnostic_recorded(
    qtbot, registered: dict[str, Any]
) -> None:
    # An Adam variant under an id no list in the app knows, whose β₁ changes while it runs.
    registered["add"](
        "optimizers",
        OptimizerPlugin(
            "my-adam",
            "My Adam",
            "torch Adam under another id",
            (
                Param("lr", "float", 0.01, ""),
                Param("betas", "floats", (0.8, 0.999), "", low=0.0, high=0.99999, length=2),
            ),
            _adam,
            family="adaptive",
        ),
    )
    sink = MemorySink()
    runner = Runner(parse_toml(SPEC), poll_interval=0.0)
    runner.run(sink, commands=Script(runner, [(8, SetHyper("mine", "betas", [0.5, 0.999]))]))
    assert [d for _, k, d in sink.runs["mine"].events if k == "hyper"] == [
        "betas: (0.8, 0.999) -> (0.5, 0.999)"
    ]
    model = as_model(sink)

    steps, threshold = model.runs["mine"].series[THRESHOLD].view()
    assert steps.tolist() == [5, 10, 15]  # at step 0 Adam has no state to precondition by
    # (2 + 2β₁)/((1 − β₁)η): β₁ = 0.8 before the live change at step 8, 0.5 after it
    np.testing.assert_allclose(threshold, [3.6 / 0.2 / 0.01] + [3.0 / 0.5 / 0.01] * 2)
    assert THRESHOLD not in model.runs["sgd"].series  # not preconditioned: no threshold

    outputs = [o for run in model.runs.values() for o in run.outputs.values()]
    groups = {g.key: g for g in plot_groups(outputs)}
    assert groups[PRECONDITIONED].references == (THRESHOLD,)
    assert groups["hessian/top_eigenvalues"].references == ("hessian/two_over_lr",)
    view = shown(qtbot, make_view(groups[PRECONDITIONED], model))
    drawn = view.reference_items("mine")[THRESHOLD]
    x, y = step_line(steps, threshold)
    np.testing.assert_array_equal(drawn.xData, x)
    np.testing.assert_array_equal(drawn.yData, y)
    assert view.reference_items("sgd") == {}
    labels = [label.text for _, label in view.plot.legend.items]
    assert "mine: (2 + 2β₁)/((1 − β₁)η)" in labels


# -- the third-party diagnostic of docs/plugins.md ---------------------------------------------


def docs_diagnostic() -> DiagnosticPlugin:
    """The `PLUGIN` of the Python block under docs/plugins.md's "A diagnostic", executed."""
    text = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = text.split("## A diagnostic\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/plugins.md", "exec"), namespace)
    return namespace["PLUGIN"]


def test_the_documented_third_party_diagnostic_gets_its_plots_without_app_changes(
    qtbot, registered: dict[str, Any]
) -> None:
    # Registered with registry.register, as docs/plugins.md says (no packaging, no entry point).
    registered["add"]("diagnostics", docs_diagnostic())
    spec = """
seed = 0
steps = 6
device = "cpu"
[task]
id = "gaussian-mixture"
hidden = [8]
[[runs]]
name = "sgd"
optimizer = { id = "sgd", lr = 0.1 }
[[diagnostics]]
id = "gradcos"
every = 1
"""
    sink = MemorySink()
    Runner(parse_toml(spec), poll_interval=0.0).run(sink)
    run = sink.runs["sgd"]
    assert not [d for _, k, d in run.events if k == "diagnostic_error"]
    model = as_model(sink)
    outputs = list(model.runs["sgd"].outputs.values())
    groups = {g.key: g for g in plot_groups(outputs)}
    cosine, ratio = groups["gradcos/cosine"], groups["gradcos/ratio"]
    assert "gradcos/rule_of_thumb" not in groups  # drawn on the ratio plot, not alone
    assert (cosine.title, cosine.tab_title, cosine.value_label, cosine.log_y) == (
        "Cosine of the gradient and the last update",
        "cos(g, Δθ)",
        "cos(g, Δθ)",
        False,
    )
    assert list(groups) == ["train/loss", "gradcos/cosine", "train/lr", "gradcos/ratio"]
    layers = ("0.weight", "0.bias", "2.weight", "2.bias")
    assert ratio.layers == layers and ratio.log_y and ratio.tab_title == "‖Δθ‖/‖θ‖"
    assert ratio.references == ("gradcos/rule_of_thumb",)

    view = shown(qtbot, make_view(ratio, model))
    assert view.log_y.isChecked()
    steps, values = model.runs["sgd"].series["gradcos/ratio/0.weight"].view()
    assert steps.tolist() == [1, 2, 3, 4, 5] and np.all(values > 0)
    np.testing.assert_array_equal(
        view.curve_items("sgd", "gradcos/ratio/0.weight")[0].yData, values
    )
    rule = view.reference_items("sgd")["gradcos/rule_of_thumb"]
    np.testing.assert_allclose(rule.yData, 1e-3)
    assert view.plot.getAxis("left").labelText == "‖Δθ‖/‖θ‖"
    assert view.plot.titleLabel.text == "Update-to-weight ratio ‖Δθ‖/‖θ‖ per layer"
    assert "sgd: 10⁻³ rule of thumb" in [label.text for _, label in view.plot.legend.items]
