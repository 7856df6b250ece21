"""Live hyperparameters: a schema name sets the groups and keys it governs, checked by the schema.

Issues 11 and 12: a live `lr` on Muon-style optimizers used to set every group (the AdamW part
jumped to Muon's rate), and live values skipped the schema's bounds.
"""

from __future__ import annotations

import pytest
import torch
from engine_helpers import muon_spec, run
from torch import nn

from descentlab.engine import live_hyper, registry
from descentlab.engine.commands import SetHyper
from descentlab.engine.memory import MemorySink
from descentlab.engine.params import Param, check_one
from descentlab.engine.plugin import Role
from descentlab.engine.spec import SpecError, parse_toml

MUON = muon_spec(8, 'schedule = { id = "cosine" }')


def hypers(sink: MemorySink, run: str) -> list[tuple[int, str]]:
    return [(s, d) for s, k, d in sink.runs[run].events if k == "hyper"]


def errors(sink: MemorySink, run: str) -> list[str]:
    return [d for _, k, d in sink.runs[run].events if k == "command_error"]


# -- which groups a name governs ---------------------------------------------------------------


def test_muon_adamw_lr_sets_the_adamw_groups_base_rate_only() -> None:
    runner, sink = run(MUON, [(3, SetHyper("m", "adamw_lr", 5e-4))])
    state = runner.runs["m"]
    muon, adamw = state.optimizer.param_groups
    assert (muon["algorithm"], adamw["algorithm"]) == ("muon", "adamw")
    assert state.base_lrs == [0.02, 5e-4]
    assert state.factor is not None
    last = state.factor(7)  # the cosine factor of the last step taken
    assert muon["lr"] == pytest.approx(0.02 * last, rel=1e-12)
    assert adamw["lr"] == pytest.approx(5e-4 * last, rel=1e-12)
    assert hypers(sink, "m") == [(3, "adamw_lr: 0.001 -> 0.0005 (group 1 of 2)")]


def test_muon_lr_and_weight_decay_leave_the_adamw_groups_alone() -> None:
    runner, sink = run(
        MUON,
        [
            (2, SetHyper("m", "lr", 0.01)),
            (3, SetHyper("m", "weight_decay", 0.1)),
            (4, SetHyper("m", "adamw_weight_decay", 0.2)),
            (5, SetHyper("m", "adamw_betas", [0.8, 0.9])),
        ],
    )
    state = runner.runs["m"]
    muon, adamw = state.optimizer.param_groups
    assert state.base_lrs == [0.01, 1e-3]
    assert (muon["weight_decay"], adamw["weight_decay"]) == (0.1, 0.2)
    assert adamw["betas"] == (0.8, 0.9)  # a tuple, as torch's AdamW keeps it
    assert hypers(sink, "m") == [
        (2, "lr: 0.02 -> 0.01 (group 0 of 2)"),
        (3, "weight_decay: 0.0 -> 0.1 (group 0 of 2)"),
        (4, "adamw_weight_decay: 0.01 -> 0.2 (group 1 of 2)"),
        (5, "adamw_betas: (0.9, 0.999) -> (0.8, 0.9) (group 1 of 2)"),
    ]


def test_a_name_must_be_in_the_schema_and_kept_in_the_groups() -> None:
    _, sink = run(
        MUON,
        [
            (1, SetHyper("m", "maximize", True)),  # a group key, but no schema name
            (1, SetHyper("m", "adamw_lr", 1e-3, group=0)),
        ],
    )
    assert errors(sink, "m") == [
        "SetHyper(run='m', name='maximize', value=True, group=None): 'maximize' is not a live "
        "hyperparameter of muon; live: lr, momentum, nesterov, ns_steps, weight_decay, "
        "adjust_lr_fn, adamw_lr, adamw_betas, adamw_eps, adamw_weight_decay",
        "SetHyper(run='m', name='adamw_lr', value=0.001, group=0): adamw_lr does not set "
        "group 0; it sets group(s) 1",
    ]


def _model() -> tuple[list[tuple[str, nn.Parameter]], dict[str, Role]]:
    """An embedding, a hidden matrix with its bias and a head: every role a split looks at."""
    torch.manual_seed(0)
    model = nn.ModuleDict(
        {"embed": nn.Embedding(5, 4), "hidden": nn.Linear(4, 4), "head": nn.Linear(4, 3)}
    )
    roles: dict[str, Role] = {
        "embed.weight": "embedding",
        "hidden.weight": "hidden",
        "hidden.bias": "bias",
        "head.weight": "head",
        "head.bias": "bias",
    }
    return list(model.named_parameters()), roles


MULTI_RATE = sorted(
    pid
    for pid, plugin in registry.plugins("optimizers").items()
    if len(live_hyper.rate_names(plugin.params)) > 1 and "live-lr" not in plugin.exempt
)


def test_every_optimizer_pairing_a_matrix_rule_with_adamw_is_checked() -> None:
    expected = {"muon", "ortho-svd", "swan", "auon", "auon-paper", "symmetric", "pto-muon"}
    assert expected <= set(MULTI_RATE)


@pytest.mark.parametrize("pid", MULTI_RATE)
def test_each_named_rate_sets_exactly_the_groups_built_with_it(pid: str) -> None:
    """Built with a distinct value per named rate, every group's `lr` is governed by exactly
    one name, and each name governs only values it was built with."""
    plugin = registry.plugins("optimizers")[pid]
    rates = live_hyper.rate_names(plugin.params)
    values = {name: 1e-3 * (i + 2) for i, name in enumerate(rates)}
    named, roles = _model()
    optimizer = plugin.build(named, roles, dict(values))
    groups = optimizer.param_groups
    owners: dict[int, list[str]] = {}
    for name in rates:
        for index, key in live_hyper.governed(groups, name):
            assert groups[index][key] == pytest.approx(values[name]), (name, index, key)
            if key == "lr":
                owners.setdefault(index, []).append(name)
    assert all(len(names) == 1 for names in owners.values()), owners
    with_lr = {i for i, g in enumerate(groups) if "lr" in g}
    assert set(owners) == with_lr


def test_a_wrapper_over_muon_keeps_the_adamw_group_out_of_its_lr() -> None:
    plugin = registry.plugins("optimizers")["lookahead"]
    named, roles = _model()
    optimizer = plugin.build(named, roles, {"base": "muon", "lr": 0.03})
    groups = optimizer.param_groups
    assert [(i, groups[i]["algorithm"]) for i, _ in live_hyper.governed(groups, "lr")] == [
        (0, "muon")
    ]


def test_symmetric_rates_each_set_their_block() -> None:
    plugin = registry.plugins("optimizers")["symmetric"]
    named, roles = _model()
    groups = plugin.build(named, roles, {}).param_groups
    blocks = {
        name: [
            groups[i].get("role", groups[i]["algorithm"])
            for i, _ in live_hyper.governed(groups, name)
        ]
        for name in ("lr", "embedding_lr", "head_lr", "adamw_lr", "momentum")
    }
    assert blocks == {
        "lr": ["hidden"],
        "embedding_lr": ["embedding"],
        "head_lr": ["head"],
        "adamw_lr": ["adamw"],
        "momentum": ["hidden", "embedding", "head"],
    }


def test_a_plain_optimizers_lr_sets_every_group() -> None:
    groups = [{"params": [], "lr": 0.1}, {"params": [], "lr": 0.2, "momentum": 0.9}]
    assert live_hyper.governed(groups, "lr") == [(0, "lr"), (1, "lr")]
    assert live_hyper.governed(groups, "momentum") == [(1, "momentum")]
    assert live_hyper.governed(groups, "params") == []


# -- one validation --------------------------------------------------------------------------

QUAD = """
steps = 10
[task]
id = "quadratic"
[[runs]]
name = "a"
optimizer = { id = "sgd", lr = 0.005, momentum = 0.9 }
"""


def test_the_engine_refuses_out_of_range_values_and_the_run_goes_on_unchanged() -> None:
    _, sink = run(
        QUAD,
        [
            (2, SetHyper("a", "momentum", 5.0)),
            (3, SetHyper("a", "lr", -1.0)),
            (4, SetHyper("a", "lr", None)),
        ],
    )
    assert [e.split(": ", 1)[1] for e in errors(sink, "a")] == [
        "momentum: 5.0 is out of range; allowed: a number in [0, 0.9999]",
        "lr: -1.0 is out of range; allowed: a number in [1e-08, 10]",
        "lr: a value is required for a live change; allowed: a number in [1e-08, 10]",
    ]
    assert hypers(sink, "a") == []
    _, plain = run(QUAD, [])
    assert sink.runs["a"].series("train/loss")[1].tolist() == (
        plain.runs["a"].series("train/loss")[1].tolist()
    )
    assert sink.runs["a"].status == "finished"


def test_the_spec_and_a_live_edit_give_the_same_verdict() -> None:
    """lr = 0 where the schema allows it (DoG) passes both; momentum 5 fails both, in the same
    words."""
    dog = registry.plugins("optimizers")["dog"].params
    lr = next(p for p in dog if p.name == "lr")
    assert check_one(lr, 0) == 0.0
    parse_toml(QUAD.replace('{ id = "sgd", lr = 0.005, momentum = 0.9 }', '{ id = "dog", lr = 0 }'))
    momentum = next(p for p in registry.plugins("optimizers")["sgd"].params if p.name == "momentum")
    with pytest.raises(ValueError) as live:
        check_one(momentum, 5)
    with pytest.raises(SpecError) as spec:
        parse_toml(QUAD.replace("momentum = 0.9", "momentum = 5"))
    assert str(live.value) == "momentum: 5 is out of range; allowed: a number in [0, 0.9999]"
    assert "runs[0].optimizer." + str(live.value) in str(spec.value)


def test_check_one_converts_like_the_spec() -> None:
    betas = Param("betas", "floats", (0.9, 0.999), "β", low=0.0, high=1.0, length=2)
    assert check_one(betas, (0, 1)) == [0.0, 1.0]
    with pytest.raises(ValueError, match=r"betas: \[0.5\] has 1 items; allowed: a list of 2"):
        check_one(betas, [0.5])


# -- the event's detail, written and read back -------------------------------------------------


@pytest.mark.parametrize(
    ("detail", "parsed"),
    [
        ("lr: 0.005 -> 0.001", ("lr", 0.001)),
        ("adamw_lr: 0.001 -> 0.0005 (group 1 of 2)", ("adamw_lr", 0.0005)),
        ("momentum: 0.0 -> 0.5 (groups 0, 2 of 3)", ("momentum", 0.5)),
        ("adamw_betas: (0.9, 0.999) -> [0.8, 0.9]", ("adamw_betas", [0.8, 0.9])),
        ("adjust_lr_fn: 'original' -> 'match_rms_adamw'", ("adjust_lr_fn", "match_rms_adamw")),
        ("lr: 0.1", None),
        ("something else entirely", None),
    ],
)
def test_parse_reads_what_describe_writes(detail: str, parsed: tuple | None) -> None:
    assert live_hyper.parse(detail) == parsed


def test_describe_names_the_groups_when_not_all_change() -> None:
    assert live_hyper.describe("lr", 0.1, 0.2, [0, 1], 2) == "lr: 0.1 -> 0.2"
    assert live_hyper.describe("lr", 0.1, 0.2, [0, 2], 3) == "lr: 0.1 -> 0.2 (groups 0, 2 of 3)"


def test_a_riemannian_manifold_is_not_live() -> None:
    """Its groups hold `manifold` as a build-time choice; a live edit would put the Euclidean
    group (biases) on the Stiefel manifold."""
    plugin = registry.plugins("optimizers")["riemannian-sgd"]
    named, roles = _model()
    groups = plugin.build(named, roles, {"manifold": "stiefel"}).param_groups
    assert [g["manifold"] for g in groups] == ["stiefel", "euclidean"]
    assert live_hyper.governed(groups, "manifold") == []
    assert live_hyper.governed(groups, "lr") == [(0, "lr"), (1, "lr")]
    assert "manifold" not in live_hyper.live_names(groups, plugin.params)
