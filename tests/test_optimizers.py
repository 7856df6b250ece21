"""The torch.optim plugins and Muon: schemas follow torch's signatures, every one trains and
checkpoints exactly, and Muon matches its update rule. (Every catalogue entry, whatever its source,
also goes through `test_optimizer_conformance.py`.)"""

from __future__ import annotations

import copy
import inspect
import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from descentlab.engine.params import Problems, check_value, defaults
from descentlab.engine.plugin import OptimizerPlugin, Role
from descentlab.engine.registry import load_failures, plugins
from descentlab.engine.stepping import take_step
from descentlab.plugins.optimizers import muon, torch_optim
from descentlab.plugins.optimizers.torch_optim import NOT_HYPERPARAMETERS

OPTIMIZERS = {
    pid: plugin
    for pid, plugin in plugins("optimizers").items()
    if plugin in [*torch_optim.PLUGINS, muon.PLUGIN]
}
RUNNABLE = [pid for pid in OPTIMIZERS if pid != "sparse-adam"]
ROLES: dict[str, Role] = {
    "0.weight": "hidden",
    "0.bias": "bias",
    "2.weight": "head",
    "2.bias": "bias",
}


def _torch_optimizer_classes() -> dict[str, type[torch.optim.Optimizer]]:
    return {
        name: cls
        for name, cls in vars(torch.optim).items()
        if inspect.isclass(cls)
        and issubclass(cls, torch.optim.Optimizer)
        and cls is not torch.optim.Optimizer
    }


def _data() -> tuple[Tensor, Tensor]:
    """64 points in 10-D, labelled by a random hyperplane: two separable classes."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, 10, generator=generator, dtype=torch.float64)
    direction = torch.randn(10, generator=generator, dtype=torch.float64)
    return inputs, (inputs @ direction > 0).long()


def _model() -> nn.Sequential:
    """A one-hidden-layer classifier, so that Muon has a hidden matrix to orthogonalise."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 2)).double()


def _build(plugin: OptimizerPlugin, model: nn.Module) -> torch.optim.Optimizer:
    return plugin.build(list(model.named_parameters()), ROLES, defaults(plugin.params))


def _loss(model: nn.Module) -> Tensor:
    inputs, targets = _data()
    return F.cross_entropy(model(inputs), targets)


def _train(
    plugin: OptimizerPlugin, model: nn.Module, opt: torch.optim.Optimizer, steps: int
) -> None:
    """Full-batch steps as the Runner takes them, with a closure when the optimizer needs one."""
    for _ in range(steps):
        take_step(opt, plugin.needs, model, F.cross_entropy, _data())


def test_registry_lists_every_torch_optimizer_without_failures() -> None:
    assert load_failures("optimizers") == ()
    expected = {name.lower() for name in _torch_optimizer_classes()} - {"sparseadam"}
    assert set(OPTIMIZERS) == expected | {"sparse-adam"}
    assert OPTIMIZERS["lbfgs"].needs.closure
    assert OPTIMIZERS["muon"].needs.roles


@pytest.mark.parametrize("name", sorted(set(_torch_optimizer_classes()) - {"Muon"}))
def test_schema_covers_every_constructor_hyperparameter(name: str) -> None:
    cls = _torch_optimizer_classes()[name]
    plugin = OPTIMIZERS["sparse-adam" if name == "SparseAdam" else name.lower()]
    arguments = set(inspect.signature(cls).parameters) - NOT_HYPERPARAMETERS
    exposed = {p.name for p in plugin.params}
    if name == "Adafactor":  # its (eps1, eps2) tuple may hold None: two parameters
        assert {"eps1", "eps2"} <= exposed
        arguments -= {"eps"}
    assert arguments <= exposed


@pytest.mark.parametrize("pid", list(OPTIMIZERS))
def test_schema_defaults_are_admissible_and_documented(pid: str) -> None:
    for p in OPTIMIZERS[pid].params:
        problems = Problems()
        value = list(p.default) if isinstance(p.default, tuple) else p.default
        check_value(p, p.name, value, problems)
        assert not problems, problems.items
        assert p.help and not p.help.startswith("`"), f"{pid}.{p.name} has no curated help"
    for p in OPTIMIZERS[pid].params:
        if p.name in ("lr", "eps", "weight_decay"):
            assert p.log, f"{pid}.{p.name} should be on a log scale"


def test_sgd_defaults_are_useful() -> None:
    by_name = {p.name: p for p in OPTIMIZERS["sgd"].params}
    assert by_name["lr"].default == 0.1
    assert by_name["momentum"].default == 0.0


@pytest.mark.parametrize("pid", RUNNABLE)
def test_defaults_decrease_the_loss_in_50_steps(pid: str) -> None:
    plugin = OPTIMIZERS[pid]
    model = _model()
    opt = _build(plugin, model)
    before = _loss(model).item()
    _train(plugin, model, opt, 50)
    after = _loss(model).item()
    assert after < 0.98 * before, (before, after)


@pytest.mark.parametrize("pid", RUNNABLE)
def test_every_hyperparameter_is_live_in_param_groups(pid: str) -> None:
    plugin = OPTIMIZERS[pid]
    opt = _build(plugin, _model())
    keys = set().union(*(group.keys() for group in opt.param_groups))
    own = {p.name for p in plugin.params} - {"eps1", "eps2"}  # Adafactor's (eps1, eps2) → eps
    own = {name.removeprefix("adamw_") for name in own}
    assert own <= keys


@pytest.mark.parametrize("pid", RUNNABLE)
def test_state_dict_round_trip_continues_bit_identically(pid: str) -> None:
    """In float64, NAdam's float32 `mu_product` must survive loading (pytorch#75224)."""
    plugin = OPTIMIZERS[pid]
    model = _model()
    opt = _build(plugin, model)
    _train(plugin, model, opt, 10)

    saved = io.BytesIO()  # as a checkpoint does: no tensor shared with the live optimizer
    torch.save(opt.state_dict(), saved)
    saved.seek(0)
    model_copy = copy.deepcopy(model)
    opt_copy = _build(plugin, model_copy)
    opt_copy.load_state_dict(torch.load(saved, weights_only=True))

    _train(plugin, model, opt, 5)
    _train(plugin, model_copy, opt_copy, 5)
    for (name, p), q in zip(model.named_parameters(), model_copy.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_lbfgs_defaults_leave_the_line_search_room_to_work() -> None:
    """With max_iter = 1, torch's default max_eval (1) would leave the line search no trial:
    every step from this start would then be refused (t = 0) and L-BFGS would never move."""
    plugin = OPTIMIZERS["lbfgs"]
    point = nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
    opt = plugin.build([("point", point)], {"point": "other"}, defaults(plugin.params))

    def rosenbrock() -> Tensor:
        opt.zero_grad()
        loss = (1 - point[0]) ** 2 + 100 * (point[1] - point[0] ** 2) ** 2
        loss.backward()
        return loss

    for _ in range(50):
        opt.step(rosenbrock)
    torch.testing.assert_close(
        point.detach(), torch.ones(2, dtype=torch.float64), atol=1e-4, rtol=0
    )


def test_sparse_adam_refuses_dense_parameters_with_a_reason() -> None:
    plugin = OPTIMIZERS["sparse-adam"]
    with pytest.raises(ValueError, match=r"sparse layout.*dense gradients.*'adam'"):
        _build(plugin, _model())


# --------------------------------------------------------------------------------------------
# Muon
# --------------------------------------------------------------------------------------------

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def _newton_schulz(update: Tensor, steps: int = 5) -> Tensor:
    """The quintic Newton–Schulz iteration of Muon, in float64 (SCIENCE.md)."""
    a, b, c = NS_COEFFICIENTS
    tall = update.shape[0] > update.shape[1]
    x = update.T if tall else update
    x = x / torch.linalg.matrix_norm(x)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def _muon_lr_ratio(adjust_lr_fn: str, shape: tuple[int, int]) -> float:
    """torch.optim._muon._adjust_lr: how torch scales η by the matrix shape (A, B)."""
    rows, cols = shape
    if adjust_lr_fn == "original":
        return math.sqrt(max(1.0, rows / cols))
    return 0.2 * math.sqrt(max(rows, cols))


def test_muon_splits_parameters_by_role_and_dimension() -> None:
    shapes = {
        "hidden": (8, 4),
        "conv": (4, 2, 3, 3),
        "embedding": (10, 4),
        "head": (3, 8),
        "bias": (8,),
        "no_role": (5, 5),
    }
    named = [(n, nn.Parameter(torch.zeros(s))) for n, s in shapes.items()]
    roles: dict[str, Role] = {
        "hidden": "hidden",
        "conv": "hidden",
        "embedding": "embedding",
        "head": "head",
        "bias": "bias",
    }
    opt = OPTIMIZERS["muon"].build(named, roles, {})
    by_algorithm = {g["algorithm"]: [id(p) for p in g["params"]] for g in opt.param_groups}
    params = dict(named)
    assert [g["algorithm"] for g in opt.param_groups] == ["muon", "adamw"]
    assert by_algorithm["muon"] == [id(params["hidden"])]
    assert by_algorithm["adamw"] == [id(params[n]) for n in shapes if n != "hidden"]
    assert opt.param_groups[0]["lr"] == 0.02
    assert opt.param_groups[1]["lr"] == 1e-3


def test_muon_without_hidden_matrices_is_adamw() -> None:
    point = nn.Parameter(torch.tensor([1.0, -1.0], dtype=torch.float64))
    opt = OPTIMIZERS["muon"].build([("point", point)], {"point": "other"}, {})
    assert [g["algorithm"] for g in opt.param_groups] == ["adamw"]
    twin = nn.Parameter(point.detach().clone())
    reference = torch.optim.AdamW([twin], lr=1e-3, weight_decay=0.01)
    for _ in range(3):
        for p in (point, twin):
            p.grad = 2 * p.detach()  # gradient of ‖p‖²
        opt.step()
        reference.step()
    assert torch.equal(point, twin)


@pytest.mark.parametrize("adjust_lr_fn", ["original", "match_rms_adamw"])
@pytest.mark.parametrize("shape", [(12, 6), (6, 12)])
def test_muon_step_matches_the_hand_written_rule(shape: tuple[int, int], adjust_lr_fn: str) -> None:
    """Momentum exactly; the orthogonalised step to bfloat16 accuracy.

    torch's `_single_tensor_muon` keeps B ← μB + (1 − μ)G (`lerp_`, not the B ← μB + G of its
    docstring), orthogonalises the Nesterov mix (1 − μ)G + μB, decays W by (1 − ηλ) with the
    plain η, then steps by η·ratio(shape). Its Newton–Schulz runs in bfloat16
    (`_zeropower_via_newtonschulz` casts), hence a few percent of difference to float64.
    """
    lr, mu, wd = 0.02, 0.95, 0.1
    generator = torch.Generator().manual_seed(1)
    weight = nn.Parameter(torch.randn(shape, generator=generator, dtype=torch.float64))
    opt = OPTIMIZERS["muon"].build(
        [("w", weight)],
        {"w": "hidden"},
        {"lr": lr, "momentum": mu, "weight_decay": wd, "adjust_lr_fn": adjust_lr_fn},
    )
    buffer = torch.zeros(shape, dtype=torch.float64)
    step_size = lr * _muon_lr_ratio(adjust_lr_fn, shape)
    for _ in range(3):
        grad = torch.randn(shape, generator=generator, dtype=torch.float64)
        before = weight.detach().clone()
        weight.grad = grad.clone()
        opt.step()

        buffer = mu * buffer + (1 - mu) * grad
        expected = _newton_schulz((1 - mu) * grad + mu * buffer)
        taken = (before * (1 - lr * wd) - weight.detach()) / step_size
        torch.testing.assert_close(opt.state[weight]["momentum_buffer"], buffer)
        relative = torch.linalg.matrix_norm(taken - expected) / torch.linalg.matrix_norm(expected)
        assert relative < 0.06


def test_newton_schulz_is_near_the_polar_factor() -> None:
    """Five quintic steps give U·S'·Vᵀ with S' in about [0.7, 1.2], not UVᵀ itself."""
    generator = torch.Generator().manual_seed(2)
    grad = torch.randn(8, 32, generator=generator, dtype=torch.float64)
    u, _, vh = torch.linalg.svd(grad, full_matrices=False)

    ours = _newton_schulz(grad)
    weight = nn.Parameter(torch.zeros(8, 32, dtype=torch.float64))
    opt = OPTIMIZERS["muon"].build([("w", weight)], {"w": "hidden"}, {})
    weight.grad = grad
    opt.step()  # first step from a zero buffer: the update orthogonalises (1 − μ²)·G
    theirs = -weight.detach() / opt.param_groups[0]["lr"]

    for orthogonalised, tolerance in ((ours, 1e-10), (theirs, 0.05)):
        core = u.T @ orthogonalised @ vh.T  # diagonal when the singular vectors are G's
        diagonal = torch.diagonal(core)
        off_diagonal = core - torch.diag(diagonal)
        assert torch.linalg.matrix_norm(off_diagonal) < tolerance * math.sqrt(8)
        assert diagonal.min() > 0.65
        assert diagonal.max() < 1.2
    # SVD's polar factor UVᵀ is the exact answer the iteration approximates.
    polar = u @ vh
    assert torch.linalg.matrix_norm(theirs - polar, ord=2) < 0.4


def test_muon_live_lr_change_takes_effect_after_loading_and_copying() -> None:
    plugin = OPTIMIZERS["muon"]
    model = _model()
    opt = _build(plugin, model)
    _train(plugin, model, opt, 3)

    fresh_model = copy.deepcopy(model)
    loaded = _build(plugin, fresh_model)
    loaded.load_state_dict(opt.state_dict())
    copied_model, copied = copy.deepcopy((model, opt))
    for m, o in ((model, opt), (fresh_model, loaded), (copied_model, copied)):
        (muon_group,) = (g for g in o.param_groups if g["algorithm"] == "muon")
        muon_group["lr"] = 0.0  # weight decay is 0 by default: Muon parameters must not move
        hidden, head = m[0].weight.detach().clone(), m[2].weight.detach().clone()
        _train(plugin, m, o, 1)
        assert torch.equal(m[0].weight, hidden)
        assert not torch.equal(m[2].weight, head)


def test_muon_copy_continues_identically() -> None:
    plugin = OPTIMIZERS["muon"]
    model = _model()
    opt = _build(plugin, model)
    _train(plugin, model, opt, 3)
    copied_model, copied = copy.deepcopy((model, opt))
    _train(plugin, model, opt, 3)
    _train(plugin, copied_model, copied, 3)
    for p, q in zip(model.parameters(), copied_model.parameters(), strict=True):
        assert torch.equal(p, q)
