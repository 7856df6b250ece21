"""GGN, empirical Fisher, block operators, SLQ densities and dense spectra, against ground truth.

Ground truth is built independently of the operators: Jacobians from `torch.func.jacrev`, the
criterion's output Hessian and the loss Hessian from `torch.func.hessian`, per-example gradients
from a Python loop of `torch.autograd.grad`, and `torch.linalg.eigvalsh` of dense matrices.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from engine_helpers import contexts, seeded
from torch import Tensor, nn

from descentlab.engine.curvature.dense import dense_matrix, dense_spectrum
from descentlab.engine.curvature.operators import (
    EmpiricalFisherOperator,
    GGNOperator,
    HessianOperator,
    flatten,
    per_example_gradients,
    unflatten,
)
from descentlab.engine.curvature.slq import slq
from descentlab.engine.params import defaults
from descentlab.engine.plugin import Task
from descentlab.plugins.diagnostics import fisher, ggn, hessian

DTYPE = torch.float64


def mse(outputs: Tensor, targets: Tensor) -> Tensor:
    return F.mse_loss(outputs, targets)


def sequence_cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean token cross-entropy of (B, T, V) logits against (B, T) targets, as the char task."""
    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))


class TinySequenceModel(nn.Module):
    """(B, T) tokens ↦ (B, T, V) logits: embedding, tanh, and a head."""

    def __init__(self, vocab: int = 5, width: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(torch.tanh(self.embed(tokens)))


def make_case(kind: str) -> Task:
    """A small float64 task: an MLP with cross-entropy or MSE, or a (B, T, V) sequence model."""
    torch.manual_seed(0)
    generator = seeded(8)
    if kind == "sequence":
        model = TinySequenceModel().to(DTYPE)
        inputs = torch.randint(0, 5, (6, 3), generator=generator)
        targets = torch.randint(0, 5, (6, 3), generator=generator)
        return Task(model=model, criterion=sequence_cross_entropy, probe=(inputs, targets))
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(DTYPE)
    inputs = torch.randn(24, 5, generator=generator, dtype=DTYPE)
    if kind == "cross_entropy":
        targets = torch.randint(0, 3, (24,), generator=generator)
        return Task(model=model, criterion=F.cross_entropy, probe=(inputs, targets))
    targets = torch.randn(24, 3, generator=generator, dtype=DTYPE)
    return Task(model=model, criterion=mse, probe=(inputs, targets))


def flat_function(model: nn.Module):
    names = [name for name, _ in model.named_parameters()]
    like = [p.detach() for p in model.parameters()]

    def outputs_of(flat: Tensor) -> Tensor:
        params = dict(zip(names, unflatten(flat, like), strict=True))
        return torch.func.functional_call(model, params, (inputs_of[0],))

    inputs_of: list[Tensor] = []
    return names, like, outputs_of, inputs_of


def dense_ggn(task: Task) -> Tensor:
    """Jᵀ H_out J from jacrev of the outputs and the criterion's Hessian at fixed outputs."""
    inputs, targets = task.probe
    _, like, outputs_of, holder = flat_function(task.model)
    holder.append(inputs)
    theta = flatten(like)
    outputs = outputs_of(theta)
    jacobian = torch.func.jacrev(outputs_of)(theta).reshape(outputs.numel(), -1)
    h_out = torch.func.hessian(lambda z: task.criterion(z, targets))(outputs)
    h_out = h_out.reshape(outputs.numel(), outputs.numel())
    return jacobian.T @ h_out @ jacobian


def dense_hessian(task: Task) -> Tensor:
    inputs, targets = task.probe
    _, like, outputs_of, holder = flat_function(task.model)
    holder.append(inputs)
    return torch.func.hessian(lambda flat: task.criterion(outputs_of(flat), targets))(flatten(like))


def dense_fisher(task: Task) -> Tensor:
    """(1/B) Σ g_i g_iᵀ with each g_i from its own backward pass."""
    inputs, targets = task.probe
    params = list(task.model.parameters())
    rows = []
    for i in range(inputs.shape[0]):
        loss = task.criterion(task.model(inputs[i : i + 1]), targets[i : i + 1])
        rows.append(flatten(torch.autograd.grad(loss, params)))
    g = torch.stack(rows)
    return g.T @ g / inputs.shape[0]


def ggn_operator(task: Task, params: list[Tensor] | None = None) -> GGNOperator:
    inputs, targets = task.probe
    params = list(task.model.parameters()) if params is None else params
    return GGNOperator(task.model(inputs), targets, task.criterion, params)


@pytest.mark.parametrize("kind", ["cross_entropy", "mse", "sequence"])
def test_ggn_operator_equals_the_dense_gauss_newton(kind: str) -> None:
    task = make_case(kind)
    dense = dense_ggn(task)
    op = ggn_operator(task)
    v = torch.randn(dense.shape[0], 3, generator=seeded(1), dtype=DTYPE)
    torch.testing.assert_close(op @ v, dense @ v, rtol=1e-10, atol=1e-12)
    assert op.matvecs == 3
    assert torch.linalg.eigvalsh(dense)[0] > -1e-12  # convex criteria: G is PSD
    assert all(p.grad is None for p in task.model.parameters())


def test_ggn_of_softmax_cross_entropy_uses_diag_p_minus_ppt() -> None:
    """The autograd H_out is the textbook (diag(p) − ppᵀ)/B of mean cross-entropy."""
    task = make_case("cross_entropy")
    inputs, _ = task.probe
    op = ggn_operator(task)
    logits = task.model(inputs).detach()
    p = logits.softmax(dim=1)
    w = torch.randn(logits.shape, generator=seeded(2), dtype=DTYPE)
    textbook = (p * w - p * (p * w).sum(dim=1, keepdim=True)) / inputs.shape[0]
    torch.testing.assert_close(op.output_hvp(w), textbook, rtol=1e-12, atol=1e-14)


def test_ggn_equals_the_hessian_for_a_linear_model_with_mse() -> None:
    model = nn.Linear(4, 2).to(DTYPE)
    inputs = torch.randn(16, 4, generator=seeded(3), dtype=DTYPE)
    task = Task(model=model, criterion=mse, probe=(inputs, torch.randn(16, 2, dtype=DTYPE)))
    hessian_dense = dense_hessian(task)
    torch.testing.assert_close(
        dense_matrix(ggn_operator(task)), hessian_dense, rtol=1e-12, atol=1e-13
    )
    loss = task.loss(model, task.probe)
    hop = HessianOperator(loss, list(model.parameters()))
    torch.testing.assert_close(dense_matrix(hop), hessian_dense, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", ["cross_entropy", "sequence"])
def test_fisher_operator_equals_the_loop_over_examples(kind: str) -> None:
    task = make_case(kind)
    dense = dense_fisher(task)
    names = [name for name, _ in task.model.named_parameters()]
    rows, losses = per_example_gradients(task.model, task.criterion, task.probe, names)
    assert losses.mean().item() == pytest.approx(task.loss(task.model, task.probe).item())
    op = EmpiricalFisherOperator(rows)
    v = torch.randn(dense.shape[0], 3, generator=seeded(4), dtype=DTYPE)
    torch.testing.assert_close(op @ v, dense @ v, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(op @ v[:, 0], dense @ v[:, 0], rtol=1e-10, atol=1e-13)
    # The mean of the per-example gradients is the batch gradient.
    grad = flatten(torch.autograd.grad(task.loss(task.model, task.probe), task.model.parameters()))
    torch.testing.assert_close(rows.mean(dim=0), grad, rtol=1e-10, atol=1e-13)


def test_block_operators_are_the_diagonal_blocks() -> None:
    task = make_case("cross_entropy")
    named = dict(task.model.named_parameters())
    dense = {"hessian": dense_hessian(task), "ggn": dense_ggn(task)}
    offsets, begin = {}, 0
    for name, p in named.items():
        offsets[name] = slice(begin, begin + p.numel())
        begin += p.numel()
    loss = task.loss(task.model, task.probe)
    for name, p in named.items():
        block = offsets[name]
        ops = {"hessian": HessianOperator(loss, [p]), "ggn": ggn_operator(task, [p])}
        for which, op in ops.items():
            torch.testing.assert_close(
                dense_matrix(op), dense[which][block, block], rtol=1e-10, atol=1e-12
            )


# --------------------------------------------------------------------------------------------
# Dense spectra and stochastic Lanczos quadrature
# --------------------------------------------------------------------------------------------


def test_dense_spectrum_equals_eigvalsh_and_refuses_large_operators() -> None:
    task = make_case("cross_entropy")
    dense = dense_hessian(task)
    loss = task.loss(task.model, task.probe)
    op = HessianOperator(loss, list(task.model.parameters()))
    torch.testing.assert_close(dense_spectrum(op), torch.linalg.eigvalsh(dense), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"75×75.*up to 50 parameters"):
        dense_spectrum(op, max_size=50)


def wasserstein_1(x: Tensor, wx: Tensor, y: Tensor, wy: Tensor) -> float:
    """W1 between two discrete measures on the line: ∫|F_x(t) − F_y(t)| dt over merged nodes."""
    nodes = torch.cat([x, y])
    order = nodes.argsort()
    jumps = torch.cat([wx, -wy])[order]
    cdf_gap = jumps.cumsum(0)[:-1]
    return (cdf_gap.abs() * nodes[order].diff()).sum().item()


def test_wasserstein_of_two_point_masses() -> None:
    one = torch.ones(1, dtype=DTYPE)
    assert wasserstein_1(torch.tensor([0.0]), one, torch.tensor([2.5]), one) == pytest.approx(2.5)


def test_slq_measure_is_close_to_the_exact_spectrum_of_a_quadratic() -> None:
    """200-d quadratic: a bulk on [0, 1] and five outliers in [4, 12].

    W1(μ_SLQ, μ) for 20 starts × 40 steps, measured over 200 other seeds: mean 0.031, worst
    0.099 (the error is mostly the outliers' weights, (qᵀu_k)² per start, at distance ~10
    from the bulk); the bound 0.15 is 1.5× that worst case. Wrong measures are far off: the
    same Ritz nodes with equal weights are at W1 ≥ 0.75, a point mass at the mean eigenvalue
    at 0.42.
    """
    generator = seeded(5)
    eigenvalues = torch.cat(
        [
            torch.rand(195, generator=generator, dtype=DTYPE),
            torch.tensor([4.0, 5.5, 7.0, 9.0, 12.0], dtype=DTYPE),
        ]
    )
    q, _ = torch.linalg.qr(torch.randn(200, 200, generator=generator, dtype=DTYPE))
    a = q @ torch.diag(eigenvalues) @ q.T
    a = 0.5 * (a + a.T)
    quadrature = slq(a, runs=20, steps=40, generator=seeded(6))
    assert quadrature.matvecs == 800
    torch.testing.assert_close(quadrature.weights.sum(dim=1), torch.ones(20, dtype=DTYPE))
    nodes, weights = quadrature.measure()
    uniform = torch.full((200,), 1 / 200, dtype=DTYPE)
    distance = wasserstein_1(nodes, weights, eigenvalues, uniform)
    assert distance < 0.15
    equal = torch.full_like(weights, 1 / weights.numel())
    assert wasserstein_1(nodes, equal, eigenvalues, uniform) > 0.6
    mean = eigenvalues.mean().reshape(1)
    assert wasserstein_1(mean, torch.ones(1, dtype=DTYPE), eigenvalues, uniform) > 0.4
    # The extreme Ritz values are the extreme eigenvalues; the broadened density integrates to 1.
    assert quadrature.nodes.max().item() == pytest.approx(12.0, rel=1e-8)
    grid = torch.linspace(-1.0, 13.0, 1401, dtype=DTYPE)
    density = quadrature.density(-1.0, 13.0, 1401, width=0.05)
    assert torch.trapezoid(density, grid).item() == pytest.approx(1.0, abs=1e-6)
    # 97.5% of the mass in the bulk, as in the exact spectrum (the outliers' total weight has
    # sd ≈ √10/200/√20 ≈ 0.0035 over 20 starts: 0.015 is over 4 sd).
    bulk = grid <= 2.0
    assert torch.trapezoid(density[bulk], grid[bulk]).item() == pytest.approx(0.975, abs=0.015)


def test_slq_stops_at_an_invariant_subspace() -> None:
    a = torch.diag(torch.tensor([3.0, 3.0, 1.0, 1.0, 1.0], dtype=DTYPE))
    quadrature = slq(a, runs=2, steps=5, generator=seeded(7))
    assert quadrature.matvecs == 4  # two distinct eigenvalues: two steps per start
    nodes, weights = quadrature.measure()
    assert (weights * nodes).sum().item() == pytest.approx(a.trace().item() / 5, rel=0.5)
    assert set(np.round(nodes[weights > 0].numpy(), 10)) == {1.0, 3.0}


# --------------------------------------------------------------------------------------------
# The three diagnostics through their public contract
# --------------------------------------------------------------------------------------------


DENSE = {"hessian": dense_hessian, "ggn": dense_ggn, "fisher": dense_fisher}
PLUGINS = {"hessian": hessian.PLUGIN, "ggn": ggn.PLUGIN, "fisher": fisher.PLUGIN}


@pytest.mark.parametrize("which", ["hessian", "ggn", "fisher"])
def test_diagnostic_matches_the_dense_matrix(which: str) -> None:
    task = make_case("cross_entropy")
    dense = DENSE[which](task)
    truth = torch.linalg.eigvalsh(dense)
    plugin = PLUGINS[which]
    assert plugin.id == which and plugin.cost == "heavy" and plugin.every == 50
    params = defaults(plugin.params) | {
        "iterations": 75,
        "trace_samples": 120,
        "min_eigenvalue": True,
        "exact": True,
        "per_layer": True,
        "density": True,
    }
    diagnostic = plugin.create(params)
    setup, ctx = contexts(task, lr=0.05)
    declared = {out.name: out for out in diagnostic.outputs(setup)}
    names = [name for name, _ in task.model.named_parameters()]
    expected = {
        f"{which}/{series}"
        for series in (
            "top_eigenvalues",
            "min_eigenvalue",
            "trace",
            "frobenius",
            "two_over_lr",
            "density",
            "exact_spectrum",
        )
    }
    expected |= {f"{which}/layer_{s}/{name}" for s in ("top_eigenvalue", "trace") for name in names}
    assert set(declared) == expected
    assert declared[f"{which}/exact_spectrum"].shape == (75,)
    density_out = declared[f"{which}/density"]
    assert density_out.kind == "histogram" and density_out.shape == (201,)
    lo, hi, points = density_out.attrs["grid"]
    assert points == 201 and lo < truth[0].item() and hi > truth[-1].item()
    layer_out = declared[f"{which}/layer_trace/0.weight"]
    assert layer_out.kind == "per_layer" and layer_out.layer == "0.weight"

    values = diagnostic.compute(ctx)
    assert set(values) == expected
    np.testing.assert_allclose(values[f"{which}/top_eigenvalues"], truth.flip(0)[:3], rtol=1e-6)
    assert values[f"{which}/min_eigenvalue"] == pytest.approx(
        truth[0].item(), abs=1e-6 * truth[-1].item()
    )
    np.testing.assert_allclose(values[f"{which}/exact_spectrum"], truth.flip(0).numpy(), atol=1e-12)
    # Hutch++ with 120 products: a sketch of 40, then 40 probes on the deflated rest, whose sd
    # is at most √(2‖A‖_F²/40); each draw is within 4 of them.
    sd = math.sqrt(2 * dense.square().sum().item() / 40)
    assert abs(values[f"{which}/trace"] - dense.trace().item()) < 4 * sd
    density = values[f"{which}/density"]
    grid = np.linspace(lo, hi, points)
    assert density.shape == (201,) and np.trapezoid(density, grid) == pytest.approx(1.0, abs=0.02)
    begin = 0
    for name, p in task.model.named_parameters():
        block = dense[begin : begin + p.numel(), begin : begin + p.numel()]
        begin += p.numel()
        # Every block has at most 40 entries: the Hutch++ sketch spans it, so tr is exact.
        assert values[f"{which}/layer_trace/{name}"] == pytest.approx(
            block.trace().item(), rel=1e-9
        )
        top = torch.linalg.eigvalsh(block)[-1].item()
        assert values[f"{which}/layer_top_eigenvalue/{name}"] == pytest.approx(top, rel=1e-6)

    # The grid is fixed: a later record lands on the same one and stacks.
    ctx.step = 50
    grid_before = diagnostic.grid
    again = diagnostic.compute(ctx)
    assert again[f"{which}/density"].shape == (201,) and diagnostic.grid is grid_before
    np.testing.assert_allclose(again[f"{which}/top_eigenvalues"], truth.flip(0)[:3], rtol=1e-6)


def test_exact_spectrum_is_refused_for_large_models() -> None:
    model = nn.Linear(60, 60).to(DTYPE)  # 3660 parameters
    inputs = torch.randn(4, 60, dtype=DTYPE)
    task = Task(model=model, criterion=mse, probe=(inputs, inputs))
    setup, _ = contexts(task, lr=0.1)
    for plugin in PLUGINS.values():
        diagnostic = plugin.create(defaults(plugin.params) | {"exact": True})
        with pytest.raises(ValueError, match=r"3660×3660.*up to 3000"):
            diagnostic.outputs(setup)


@pytest.mark.parametrize("which", ["ggn", "fisher"])
def test_psd_diagnostics_record_nan_for_a_non_finite_probe_loss(which: str) -> None:
    model = nn.Linear(2, 1).to(DTYPE)
    probe = (torch.full((4, 2), math.inf, dtype=DTYPE), torch.zeros(4, 1, dtype=DTYPE))
    _, ctx = contexts(Task(model=model, criterion=mse, probe=probe), lr=0.1)
    plugin = PLUGINS[which]
    values = plugin.create(defaults(plugin.params)).compute(ctx)
    assert np.isnan(values[f"{which}/top_eigenvalues"]).all()
    assert math.isnan(values[f"{which}/trace"]) and values[f"{which}/two_over_lr"] == 20.0
    assert f"{which}/min_eigenvalue" not in values  # PSD: off by default
