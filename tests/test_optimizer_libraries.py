"""The optimizers taken from libraries: pytorch-optimizer's, wrapped one plugin per name, and
geoopt's Riemannian SGD and Adam with hidden matrices on the Stiefel manifold or a sphere.

Wrapped optimizers must step exactly as the library class does in a plain loop; the Riemannian
ones must keep their matrices on the manifold, follow the closed forms of one step, and leave
the other parameters to Euclidean SGD and Adam. (Every catalogue entry also goes through
`test_optimizer_conformance.py`.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import geoopt
import pytest
import pytorch_optimizer as pto
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from descentlab.engine.params import Problems, check_value, defaults
from descentlab.engine.plugin import CONFORMANCE_CHECKS, OptimizerPlugin, Role
from descentlab.engine.registry import plugins
from descentlab.engine.stepping import build_optimizer, take_step
from descentlab.plugins.optimizers import pto_adapters, pytorch_optimizer_lib, riemannian

OPTIMIZERS = plugins("optimizers")
LIBRARY = {p.id: p for p in pytorch_optimizer_lib.PLUGINS}
ROLES: dict[str, Role] = {
    "0.weight": "hidden",
    "0.bias": "bias",
    "2.weight": "hidden",
    "2.bias": "bias",
    "4.weight": "head",
    "4.bias": "bias",
}


def _data() -> tuple[Tensor, Tensor]:
    """48 points in 6-D with 3 classes from a random linear teacher."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(48, 6, generator=generator, dtype=torch.float64)
    teacher = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    return inputs, (inputs @ teacher).argmax(dim=1)


def _model() -> nn.Sequential:
    """Hidden matrices of both shapes: (8, 6) is tall, (4, 8) is wide."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4), nn.Tanh(), nn.Linear(4, 3)
    ).double()


def _loss(model: nn.Module) -> Tensor:
    inputs, targets = _data()
    return F.cross_entropy(model(inputs), targets)


def _train(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    steps: int,
    *,
    closure: bool = False,
    create_graph: bool = False,
) -> None:
    """Plain full-batch steps as the library expects them: backward, then `step()`, or
    `step(closure)` with a closure that recomputes at every call (raw SAM reads `.grad` first)."""

    def evaluate() -> Tensor:
        opt.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = _loss(model)
            loss.backward(create_graph=create_graph)
        return loss

    for _ in range(steps):
        evaluate()
        opt.step(evaluate) if closure else opt.step()


def _build(pid: str, model: nn.Module, **hyper: Any) -> torch.optim.Optimizer:
    plugin = OPTIMIZERS[pid]
    named = list(model.named_parameters())
    return plugin.build(named, ROLES, defaults(plugin.params) | hyper)


def _run_plugin(pid: str, steps: int) -> list[Tensor]:
    """θ after `steps` lab steps, the loop honouring the plugin's needs (as the Runner does)."""
    plugin: OptimizerPlugin = OPTIMIZERS[pid]
    model = _model()
    opt = build_optimizer(plugin, list(model.named_parameters()), ROLES, defaults(plugin.params))
    for _ in range(steps):
        take_step(opt, plugin.needs, model, F.cross_entropy, _data())
    if plugin.needs.train_eval:
        opt.eval()  # type: ignore[attr-defined]
    return [p.detach().clone() for p in model.parameters()]


# -- pytorch-optimizer ------------------------------------------------------------------------


def test_every_library_optimizer_is_in_the_catalogue_exactly_once() -> None:
    ids = [p.id for p in pytorch_optimizer_lib.PLUGINS]
    assert len(ids) == len(set(ids))
    for name in pto.get_supported_optimizers():
        found = [pid for pid in ids if pid in (name, f"pto-{name}")]
        assert len(found) == 1, f"{name}: {found}"
        assert OPTIMIZERS[found[0]] is LIBRARY[found[0]], f"{found[0]} is shadowed"


@pytest.mark.parametrize("pid", sorted(LIBRARY))
def test_schema_defaults_are_admissible_and_documented(pid: str) -> None:
    for p in LIBRARY[pid].params:
        problems = Problems()
        value = list(p.default) if isinstance(p.default, tuple) else p.default
        check_value(p, p.name, value, problems)
        assert not problems, problems.items
        assert p.help, f"{pid}.{p.name} has no help"


def _plain(cls: type, **kwargs: Any) -> Callable[[nn.Module], torch.optim.Optimizer]:
    return lambda model: cls(model.parameters(), **kwargs)


def _muon_groups(model: nn.Module) -> list[dict[str, Any]]:
    """The library's documented groups, by hand: hidden matrices with Muon, the rest AdamW."""
    named = dict(model.named_parameters())
    hidden = [named[name] for name, role in ROLES.items() if role == "hidden"]
    rest = [named[name] for name, role in ROLES.items() if role != "hidden"]
    return [{"params": hidden, "use_muon": True}, {"params": rest, "use_muon": False}]


REFERENCES: dict[str, Callable[[nn.Module], torch.optim.Optimizer]] = {
    "adabelief": _plain(pto.AdaBelief),
    "lion": _plain(pto.Lion),
    "adopt": _plain(pto.ADOPT),
    "sam": lambda model: pto.SAM(
        model.parameters(), base_optimizer=torch.optim.SGD, lr=0.05, weight_decay=0.0
    ),
    "adahessian": _plain(pto.AdaHessian),
    "pto-muon": lambda model: pto.Muon(_muon_groups(model)),
    "adamuon": lambda model: pto.AdaMuon(_muon_groups(model)),
    "schedulefreeadamw": _plain(pto.ScheduleFreeAdamW),
}
"""The library class used directly, at its defaults (SAM: the lab's default base, plain SGD)."""


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
@pytest.mark.parametrize("pid", list(REFERENCES))
def test_wrapped_optimizer_steps_as_the_library_does(pid: str) -> None:
    plugin = OPTIMIZERS[pid]
    steps = 4
    got = _run_plugin(pid, steps)

    model = _model()
    torch.manual_seed(0)  # AdaHessian's probes: the plugin's own generator starts from seed 0
    opt = REFERENCES[pid](model)
    if plugin.needs.train_eval:
        opt.train()  # type: ignore[attr-defined]
    _train(model, opt, steps, closure=plugin.needs.closure, create_graph=plugin.needs.create_graph)
    if plugin.needs.train_eval:
        opt.eval()  # type: ignore[attr-defined]
    for (name, want), have in zip(model.named_parameters(), got, strict=True):
        assert torch.equal(want.detach(), have), f"{pid}: {name} differs from the library's"
    assert not torch.equal(got[0], next(_model().parameters())), "nothing moved"


def test_needs_match_how_the_library_steps() -> None:
    assert OPTIMIZERS["sam"].needs.closure
    assert OPTIMIZERS["adahessian"].needs.create_graph
    assert OPTIMIZERS["pto-muon"].needs.roles and OPTIMIZERS["adamuon"].needs.roles
    assert OPTIMIZERS["schedulefreeadamw"].needs.train_eval


@pytest.mark.parametrize("name", sorted(pytorch_optimizer_lib.UNRUNNABLE))
def test_unrunnable_optimizers_refuse_to_build_and_say_why(name: str) -> None:
    pid = pytorch_optimizer_lib.plugin_id(name, pytorch_optimizer_lib._TAKEN)
    plugin = LIBRARY[pid]
    reason = pytorch_optimizer_lib.UNRUNNABLE[name]
    with pytest.raises(ValueError) as raised:
        _build(pid, _model())
    assert str(raised.value) == f"{pid} cannot run here: {reason}"
    assert set(plugin.exempt) == set(CONFORMANCE_CHECKS)


# -- geoopt: Riemannian SGD and Adam ----------------------------------------------------------

RIEMANNIAN = ("riemannian-sgd", "riemannian-adam")


def _stiefel_error(w: Tensor) -> float:
    """max |WᵀW − I| (tall) or |WWᵀ − I| (wide) of the matrix of a kernel."""
    w = w.detach().reshape(w.shape[0], -1)
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    return float((gram - torch.eye(gram.shape[0], dtype=w.dtype)).abs().max())


@pytest.mark.parametrize("pid", RIEMANNIAN)
def test_stiefel_starts_at_the_polar_factor_and_stays_orthonormal(pid: str) -> None:
    model = _model()
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    opt = _build(pid, model, manifold="stiefel")
    named = dict(model.named_parameters())
    polar = {}
    for name in ("0.weight", "2.weight"):  # W₀ = UP with U orthonormal (rows, if wide)
        polar[name] = torch.from_numpy(scipy.linalg.polar(start[name].numpy(), side="right")[0])
        torch.testing.assert_close(named[name].detach(), polar[name], rtol=0, atol=1e-12)
    assert torch.equal(named["4.weight"], start["4.weight"])
    before = _loss(model).item()
    _train(model, opt, 30)
    assert _loss(model).item() < 0.99 * before
    for name, w in polar.items():
        assert _stiefel_error(named[name]) < 1e-12, name
        assert not torch.allclose(named[name], w), f"{name} did not move"
    assert _stiefel_error(named["4.weight"]) > 0.1, "the head is not constrained"


@pytest.mark.parametrize("pid", RIEMANNIAN)
def test_sphere_keeps_the_initial_frobenius_norm(pid: str) -> None:
    model = _model()
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    opt = _build(pid, model, manifold="sphere")
    for name, p in model.named_parameters():  # the run starts from the initialisation itself
        assert torch.equal(p, start[name])
    before = _loss(model).item()
    _train(model, opt, 30)
    assert _loss(model).item() < 0.99 * before
    for name, p in model.named_parameters():
        if ROLES[name] == "hidden":
            assert abs(float(p.detach().norm()) - float(start[name].norm())) < 1e-12, name
            assert not torch.allclose(p, start[name]), name


@pytest.mark.parametrize("pid", RIEMANNIAN)
def test_convolution_kernels_are_constrained_as_flattened_filters(pid: str) -> None:
    """A (4, 2, 3) kernel is the wide matrix (4, 6): its flattened filters are orthonormal."""
    torch.manual_seed(0)
    kernel = nn.Parameter(torch.randn(4, 2, 3, dtype=torch.float64))
    target = torch.randn(4, 2, 3, dtype=torch.float64)
    plugin = OPTIMIZERS[pid]
    opt = plugin.build([("k", kernel)], {"k": "hidden"}, defaults(plugin.params))
    for _ in range(10):
        opt.zero_grad()
        ((kernel - target) ** 2).sum().backward()
        opt.step()
    assert _stiefel_error(kernel) < 1e-12


def test_sphere_step_is_the_projected_gradient_step_renormalised() -> None:
    """W₁ = r·(W₀ − ηPG)/‖W₀ − ηPG‖ with PG = G − ⟨W₀, G⟩W₀/r², r = ‖W₀‖ (whole matrix)."""
    w0 = torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    plugin = OPTIMIZERS["riemannian-sgd"]
    w = nn.Parameter(w0.clone())
    opt = plugin.build(
        [("w", w)], {"w": "hidden"}, defaults(plugin.params) | {"manifold": "sphere", "lr": 0.3}
    )
    grad = torch.cos(3.0 * w0)
    w.grad = grad.clone()
    opt.step()
    r2 = (w0 * w0).sum()
    projected = grad - (w0 * grad).sum() / r2 * w0
    moved = w0 - 0.3 * projected
    expected = moved * r2.sqrt() / moved.norm()
    torch.testing.assert_close(w.detach(), expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("shape", [(5, 3), (3, 5)])
def test_stiefel_step_is_the_cayley_transform(shape: tuple[int, int]) -> None:
    """Tall W (orthonormal columns): W₁ = (I − A/2)⁻¹(I + A/2)W with A = UWᵀ − WUᵀ and
    U = −η(G − WGᵀW), the canonical-metric gradient; a wide W follows the same rule on Wᵀ."""
    generator = torch.Generator().manual_seed(2)
    w0 = torch.randn(*shape, generator=generator, dtype=torch.float64)
    polar, _ = scipy.linalg.polar(w0.numpy(), side="right")
    x = torch.from_numpy(polar)
    grad = torch.randn(*shape, generator=generator, dtype=torch.float64)
    plugin = OPTIMIZERS["riemannian-sgd"]
    w = nn.Parameter(w0.clone())
    opt = plugin.build([("w", w)], {"w": "hidden"}, defaults(plugin.params) | {"lr": 0.2})
    w.grad = grad.clone()
    opt.step()
    wide = shape[0] < shape[1]
    x, g = (x.T, grad.T) if wide else (x, grad)
    u = -0.2 * (g - x @ g.T @ x)
    a = u @ x.T - x @ u.T
    eye = torch.eye(a.shape[0], dtype=torch.float64)
    expected = torch.linalg.solve(eye - a / 2, (eye + a / 2) @ x)
    torch.testing.assert_close(w.detach(), expected.T if wide else expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize(
    ("pid", "reference", "hyper"),
    [
        ("riemannian-adam", torch.optim.Adam, {"lr": 1e-3}),
        ("riemannian-sgd", torch.optim.SGD, {"lr": 0.1}),
    ],
)
def test_other_parameters_step_like_euclidean_adam_and_sgd(
    pid: str, reference: type[torch.optim.Optimizer], hyper: dict[str, float]
) -> None:
    model = _model()
    opt = _build(pid, model)
    bias = model[0].bias
    twin = nn.Parameter(bias.detach().clone())
    torch_opt = reference([twin], **hyper)
    for _ in range(3):
        _train(model, opt, 1)
        twin.grad = bias.grad.clone()
        torch_opt.step()
        torch.testing.assert_close(bias.detach(), twin.detach(), rtol=1e-12, atol=1e-15)


def test_geoopt_sgd_momentum_first_step_is_one_plus_mu_gradients() -> None:
    """What the summary warns of: geoopt's buffer starts at g and g is added again."""
    model = _model()
    opt = _build("riemannian-sgd", model, momentum=0.9, lr=0.1)
    bias = model[4].bias
    start = bias.detach().clone()
    _train(model, opt, 1)
    torch.testing.assert_close(bias.detach(), start - 0.1 * 1.9 * bias.grad, rtol=0, atol=1e-15)


def test_adam_second_moment_is_one_number_per_matrix() -> None:
    model = _model()
    opt = _build("riemannian-adam", model)
    _train(model, opt, 2)
    hidden = opt.state[model[0].weight]["exp_avg_sq"]
    assert torch.all(hidden == hidden.flatten()[0])
    free = opt.state[model[4].weight]["exp_avg_sq"]
    assert free.unique().numel() > 1


def test_matrices_already_on_the_manifold_are_left_bit_identical() -> None:
    """So that a run resumed from a checkpoint continues from exactly where it was."""
    model = _model()
    _build("riemannian-adam", model)
    on_manifold = [p.detach().clone() for p in model.parameters()]
    _build("riemannian-adam", model)
    for before, after in zip(on_manifold, model.parameters(), strict=True):
        assert torch.equal(before, after)


@pytest.mark.parametrize("manifold", ["stiefel", "sphere"])
def test_a_matrix_put_off_the_manifold_is_projected_back_before_the_step(manifold: str) -> None:
    """As in a fork that loads another optimizer's weights: the Cayley retraction alone would
    keep WᵀW as it is, never orthonormal."""
    model = _model()
    opt = _build("riemannian-adam", model, manifold=manifold)
    weight = model[0].weight
    norm = float(weight.detach().norm())
    with torch.no_grad():
        weight.mul_(1.5)
    _train(model, opt, 1)
    if manifold == "stiefel":
        assert _stiefel_error(weight) < 1e-12
    else:
        assert abs(float(weight.detach().norm()) - norm) < 1e-12


@pytest.mark.parametrize("stabilize", [None, 1])
def test_stabilize_removes_drift_below_the_projection_threshold(stabilize: int | None) -> None:
    """A drift of WᵀW by 2·10⁻¹⁰ (under √ε) survives the Cayley steps unless `stabilize`
    projects every step."""
    model = _model()
    opt = _build("riemannian-sgd", model, momentum=0.5, stabilize=stabilize)
    with torch.no_grad():
        model[0].weight.mul_(1 + 1e-10)
    _train(model, opt, 2)
    drift = _stiefel_error(model[0].weight)
    if stabilize is None:
        assert 1e-10 < drift < 1e-9
    else:
        assert drift < 1e-14


def test_sphere_refuses_a_zero_matrix() -> None:
    model = _model()
    with torch.no_grad():
        model[0].weight.zero_()
    with pytest.raises(ValueError, match=r"'0\.weight' is zero"):
        _build("riemannian-sgd", model, manifold="sphere")


def test_euclidean_manifold_constrains_nothing() -> None:
    model = _model()
    opt = _build("riemannian-sgd", model, manifold="euclidean")
    assert [g["manifold"] for g in opt.param_groups] == ["euclidean"]
    assert riemannian.MANIFOLDS == ("stiefel", "sphere", "euclidean")


def test_riemannian_sgd_schema_read_from_torch_matches_geoopt() -> None:
    """The descriptor reads torch.optim.SGD's signature so that listing needs no geoopt; geoopt's
    RiemannianSGD must give the same schema (its lr has no default: the override supplies it)."""
    names = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
    overrides = {
        "lr": {"default": 0.1, "help": "Learning rate η (geoopt has no default; 0.1 as for sgd)."},
        "dampening": {"low": 0.0, "high": 1.0},
    }
    from_geoopt = riemannian._schema(geoopt.optim.RiemannianSGD, names, overrides)
    assert from_geoopt == riemannian.SGD_PARAMS


def _shampoo_step(cls: type, gradient: Tensor) -> Tensor:
    """θ after one step of `cls` from θ = 0 with the given gradient, at pytorch-optimizer's
    defaults (lr 10⁻³, matrix_eps 10⁻⁶, inverse roots every step)."""
    weight = nn.Parameter(torch.zeros_like(gradient))
    weight.grad = gradient.clone()
    cls([weight]).step()
    return weight.detach()


def _logistic_shampoo(cls: type, steps: int) -> list[float]:
    """Losses of `cls` (library defaults) over full-batch steps on the float32 logistic
    regression of the conformance suite: 96 points, 8 features, 3 classes, one (3, 8) matrix."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(96, 8, generator=generator, dtype=torch.float64)
    targets = (inputs @ torch.randn(8, 3, generator=generator, dtype=torch.float64)).argmax(1)
    torch.manual_seed(0)
    model = nn.Linear(8, 3)
    opt = cls(model.parameters())
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(inputs.float()), targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_shampoo_inverse_roots_stay_finite_where_the_library_fails() -> None:
    """The (8, 8) factor ε·I + Σ GᵀG of the (3, 8) matrix has rank-3 statistics: five
    eigenvalues stay at ε = 10⁻⁶ while three grow past float32's resolution of them, and the
    library's SVD root turns inf, then NaN (about step 32). The lab's Shampoo clamps the
    singular values at ε and keeps training."""
    with pytest.raises(torch.linalg.LinAlgError, match="non-finite"):
        _logistic_shampoo(pto.Shampoo, 50)
    losses = _logistic_shampoo(pto_adapters.StableShampoo, 200)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.99 * losses[0]


def test_stable_shampoo_takes_the_exact_step() -> None:
    """One step from θ = 0 with a (3, 8) gradient is θ = −η·L^(−1/4)·G·R^(−1/4),
    L = ε·I + GGᵀ, R = ε·I + GᵀG, as computed in float64 by eigendecomposition."""
    gradient = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    got = _shampoo_step(pto_adapters.StableShampoo, gradient)
    g, eps = gradient.double(), 1e-6

    def root(m: Tensor) -> Tensor:
        values, vectors = torch.linalg.eigh(m)
        return vectors @ torch.diag(values ** (-1 / 4)) @ vectors.T

    want = -1e-3 * root(eps * torch.eye(3) + g @ g.T) @ g @ root(eps * torch.eye(8) + g.T @ g)
    assert torch.allclose(got.double(), want, rtol=1e-3, atol=1e-7)


def test_shampoo_is_the_fixed_class() -> None:
    opt = OPTIMIZERS["shampoo"].build(list(_model().named_parameters()), ROLES, {})
    assert isinstance(opt, pto_adapters.StableShampoo)
