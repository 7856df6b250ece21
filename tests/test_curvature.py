"""Curvature operators, Lanczos, trace estimators and the hessian diagnostic, against ground truth.

Ground truth is an explicit quadratic (its Hessian is the matrix A) and the dense Hessian of a
small MLP from `torch.func.hessian`. Stochastic estimates are checked against bounds derived from
the estimator's exact variance, so the fixed seeds are not what makes them pass.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from engine_helpers import contexts, seeded
from torch import Tensor, nn

from descentlab.engine.curvature.lanczos import lanczos
from descentlab.engine.curvature.operators import (
    BLOCK_TRIALS,
    HessianOperator,
    flatten,
    unflatten,
)
from descentlab.engine.curvature.trace import hutchinson, hutchpp, krylov_hutchpp
from descentlab.engine.params import defaults
from descentlab.engine.plugin import Task
from descentlab.engine.registry import plugins
from descentlab.plugins.diagnostics.hessian import PLUGIN

DTYPE = torch.float64


def relative_error(estimate: Tensor | float, truth: Tensor | float) -> float:
    estimate = torch.as_tensor(estimate, dtype=DTYPE)
    truth = torch.as_tensor(truth, dtype=DTYPE)
    return ((estimate - truth).abs() / truth.abs()).max().item()


def rademacher_sd(b: Tensor, samples: int) -> float:
    """Standard deviation of the mean of `samples` draws of zᵀBz, z Rademacher, B symmetric.

    Var(zᵀBz) = 2(‖B‖_F² − Σ B_ii²): only the off-diagonal entries fluctuate.
    """
    return math.sqrt(2 * (b.square().sum() - b.diagonal().square().sum()).item() / samples)


def frobenius_tolerance(a: Tensor, samples: int, bound: bool = False) -> float:
    """4 standard deviations of a Frobenius estimate from `samples` Rademacher products, relative.

    ‖A‖_F² is estimated by a mean of ‖Az‖² = zᵀA²z, whose sd is `rademacher_sd(A², samples)`;
    the square root halves relative errors. Hutch++'s deflated part averages ‖APz‖² instead,
    whose variance 2(‖PA²P‖_F² − Σ(PA²P)_ii²) is at most 2‖A²‖_F² for any projector P (`bound`).
    """
    squared = a @ a
    sd = (
        math.sqrt(2 * squared.square().sum().item() / samples)
        if bound
        else rademacher_sd(squared, samples)
    )
    return 4 * sd / a.square().sum().item() / 2


# --------------------------------------------------------------------------------------------
# An explicit quadratic f(x) = ½(x − x*)ᵀA(x − x*), A = Qᵀdiag(λ)Q
# --------------------------------------------------------------------------------------------

QUADRATIC_EIGENVALUES = torch.cat(
    [torch.linspace(0.5, 10.0, 49, dtype=DTYPE), torch.tensor([-3.0], dtype=DTYPE)]
)


class Quadratic(nn.Module):
    def __init__(self, a: Tensor, minimizer: Tensor) -> None:
        super().__init__()
        self.x = nn.Parameter(torch.zeros_like(minimizer))
        self.register_buffer("a", a)
        self.register_buffer("minimizer", minimizer)

    def forward(self) -> Tensor:
        delta = self.x - self.minimizer
        return 0.5 * delta @ (self.a @ delta)


@pytest.fixture(scope="module")
def quadratic() -> Quadratic:
    generator = seeded(0)
    q, _ = torch.linalg.qr(torch.randn(50, 50, generator=generator, dtype=DTYPE))
    a = q.T @ torch.diag(QUADRATIC_EIGENVALUES) @ q
    return Quadratic(0.5 * (a + a.T), torch.randn(50, generator=generator, dtype=DTYPE))


def test_flatten_and_unflatten_are_inverse() -> None:
    like = [torch.zeros(2, 3), torch.zeros(4), torch.zeros(1, 1, 2)]
    vector = torch.arange(12.0)
    pieces = unflatten(vector, like)
    assert [p.shape for p in pieces] == [t.shape for t in like]
    assert torch.equal(flatten(pieces), vector)


def test_hessian_operator_is_the_matrix_of_a_quadratic(quadratic: Quadratic) -> None:
    op = HessianOperator(quadratic(), [quadratic.x])
    assert op.shape == (50, 50) and op.dtype == DTYPE and op.device == quadratic.x.device
    v = torch.randn(50, 4, generator=seeded(1), dtype=DTYPE)
    torch.testing.assert_close(op @ v[:, 0], quadratic.a @ v[:, 0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(op @ v, quadratic.a @ v, rtol=1e-12, atol=1e-12)
    assert op.matvecs == 5
    assert quadratic.x.grad is None


def test_hessian_operator_of_a_linear_loss_is_zero() -> None:
    w = nn.Parameter(torch.ones(3, dtype=DTYPE))
    unused = nn.Parameter(torch.ones(2, dtype=DTYPE))
    op = HessianOperator((w * torch.arange(3.0, dtype=DTYPE)).sum(), [w, unused])
    assert torch.equal(op @ torch.ones(5, dtype=DTYPE), torch.zeros(5, dtype=DTYPE))


def test_lanczos_finds_extreme_eigenvalues_of_a_quadratic(quadratic: Quadratic) -> None:
    op = HessianOperator(quadratic(), [quadratic.x])
    result = lanczos(op, 3, iterations=40, generator=seeded(2))
    top = QUADRATIC_EIGENVALUES.sort(descending=True).values[:3]
    assert relative_error(result.eigenvalues, top) < 1e-4
    assert relative_error(result.min_eigenvalue, -3.0) < 1e-4
    # The Ritz vectors are eigenvectors to within the reported residuals.
    a = quadratic.a
    pairs = [*zip(result.eigenvalues, result.eigenvectors.T, strict=True)]
    pairs.append((torch.tensor(result.min_eigenvalue), result.min_eigenvector))
    for (value, vector), residual in zip(pairs, result.residuals, strict=True):
        assert abs(vector.norm().item() - 1) < 1e-10
        assert (a @ vector - value * vector).norm().item() <= residual.item() * 1.01 + 1e-12


def test_lanczos_resolves_repeated_eigenvalues() -> None:
    """A start vector sees one copy of each distinct eigenvalue; restarts find the others."""
    a = torch.diag(torch.tensor([5.0, 5.0, 5.0, 1.0, 1.0, 0.0, 0.0, -2.0, -2.0, -2.0]))
    result = lanczos(a.to(DTYPE), 4, generator=seeded(3))
    torch.testing.assert_close(result.eigenvalues, torch.tensor([5.0, 5.0, 5.0, 1.0], dtype=DTYPE))
    assert abs(result.min_eigenvalue + 2.0) < 1e-12


def test_lanczos_warm_start_reconverges_faster(quadratic: Quadratic) -> None:
    a = quadratic.a
    cold = lanczos(a, 3, iterations=50, tol=1e-8, generator=seeded(4))
    start = torch.cat([cold.eigenvectors, cold.min_eigenvector[:, None]], dim=1)
    warm = lanczos(a, 3, start=start, iterations=50, tol=1e-8, generator=seeded(5))
    assert cold.converged and warm.converged
    assert warm.iterations < cold.iterations
    torch.testing.assert_close(warm.eigenvalues, cold.eigenvalues, rtol=1e-10, atol=0)


def test_trace_and_frobenius_of_a_quadratic(quadratic: Quadratic) -> None:
    op = HessianOperator(quadratic(), [quadratic.x])
    trace = QUADRATIC_EIGENVALUES.sum().item()
    frobenius = QUADRATIC_EIGENVALUES.square().sum().sqrt().item()
    plain = hutchinson(op, budget=60, generator=seeded(6))
    assert plain.matvecs == 60
    assert relative_error(plain.frobenius, frobenius) < frobenius_tolerance(quadratic.a, 60)
    estimate = hutchpp(op, budget=90, generator=seeded(6))
    assert estimate.matvecs == 90
    tolerance = frobenius_tolerance(quadratic.a, 30, bound=True)
    assert tolerance < 0.1
    assert relative_error(estimate.frobenius, frobenius) < tolerance
    # A flat spectrum has no top to deflate, so one Hutch++ draw errs like Hutchinson's
    # (sd 1.4% at m = 90, measured over 400 draws). Hutch++ is unbiased: the mean of 36 draws
    # has sd 0.23%, and is within 1% of tr A at more than 4 sd.
    draws = [estimate.trace] + [hutchpp(quadratic.a, 90, seeded(6 + i)).trace for i in range(1, 36)]
    assert relative_error(float(np.mean(draws)), trace) < 0.01


def test_hutchpp_is_exact_once_the_sketch_spans_the_space(quadratic: Quadratic) -> None:
    estimate = hutchpp(quadratic.a, budget=200, generator=seeded(7))
    assert estimate.matvecs == 100
    assert relative_error(estimate.trace, QUADRATIC_EIGENVALUES.sum()) < 1e-12
    assert relative_error(estimate.frobenius, QUADRATIC_EIGENVALUES.norm()) < 1e-12


# --------------------------------------------------------------------------------------------
# A small MLP against its dense Hessian
# --------------------------------------------------------------------------------------------


def make_mlp() -> tuple[nn.Module, tuple[Tensor, Tensor]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(DTYPE)
    generator = seeded(8)
    inputs = torch.randn(32, 5, generator=generator, dtype=DTYPE)
    targets = torch.randint(0, 3, (32,), generator=generator)
    return model, (inputs, targets)


@pytest.fixture(scope="module")
def mlp() -> tuple[nn.Module, tuple[Tensor, Tensor], Tensor]:
    """The model, its batch, and the dense Hessian over all parameters in named order."""
    model, (inputs, targets) = make_mlp()
    names = [name for name, _ in model.named_parameters()]
    like = [p.detach() for p in model.parameters()]

    def loss_of(flat: Tensor) -> Tensor:
        params = dict(zip(names, unflatten(flat, like), strict=True))
        outputs = torch.func.functional_call(model, params, (inputs,))
        return F.cross_entropy(outputs, targets)

    dense = torch.func.hessian(loss_of)(flatten(like))
    return model, (inputs, targets), dense


def mlp_operator(model: nn.Module, batch: tuple[Tensor, Tensor]) -> HessianOperator:
    inputs, targets = batch
    return HessianOperator(F.cross_entropy(model(inputs), targets), list(model.parameters()))


def test_hessian_operator_matches_the_dense_hessian(mlp) -> None:
    model, batch, dense = mlp
    v = torch.randn(dense.shape[0], 3, generator=seeded(9), dtype=DTYPE)
    torch.testing.assert_close(mlp_operator(model, batch) @ v, dense @ v, rtol=1e-10, atol=1e-12)


def test_lanczos_matches_the_dense_spectrum_of_an_mlp(mlp) -> None:
    model, batch, dense = mlp
    truth = torch.linalg.eigvalsh(dense)
    assert truth[0] < 0  # a saddle-shaped spot, so the smallest eigenvalue is a real test
    result = lanczos(mlp_operator(model, batch), 3, iterations=60, tol=1e-10, generator=seeded(10))
    assert relative_error(result.eigenvalues, truth.flip(0)[:3]) < 1e-6
    assert relative_error(result.min_eigenvalue, truth[0]) < 1e-6


def test_trace_estimators_match_the_dense_trace_of_an_mlp(mlp) -> None:
    model, batch, dense = mlp
    op = mlp_operator(model, batch)
    trace = dense.trace().item()
    budget = 30
    # Hutchinson is unbiased with sd = rademacher_sd(H, m); Hutch++ is exact on range(Q) and
    # spends g = m/3 probes on B = PHP (P = I − QQᵀ), so its sd is at most √(2‖B‖_F²/g) with
    # ‖B‖_F ≤ ‖H‖_F. Each draw is within 4 of its standard deviations.
    hutchinson_sd = rademacher_sd(dense, budget)
    hutchpp_sd = math.sqrt(2 * dense.square().sum().item() / (budget // 3))
    for seed in range(5):
        assert abs(hutchinson(op, budget, seeded(100 + seed)).trace - trace) < 4 * hutchinson_sd
        assert abs(hutchpp(op, budget, seeded(200 + seed)).trace - trace) < 4 * hutchpp_sd


def test_hutchpp_beats_hutchinson_on_a_decaying_spectrum() -> None:
    """On a spectrum with outliers (Hessians of trained networks) Hutch++ errs far less.

    Here λ_i = 0.7^i: the sketch of 10 directions captures all but 0.7^10 ≈ 3% of the trace,
    and what is left has a small Frobenius norm (Meyer et al. 2021, Theorem 1); the same
    deflation helps ‖A‖_F² = tr(A²) even more.
    """
    q, _ = torch.linalg.qr(torch.randn(60, 60, generator=seeded(13), dtype=DTYPE))
    eigenvalues = 0.7 ** torch.arange(60, dtype=DTYPE)
    a = q @ torch.diag(eigenvalues) @ q.T
    truth = {"trace": eigenvalues.sum().item(), "frobenius": eigenvalues.norm().item()}
    errors = {(method, quantity): [] for method in ("plain", "++") for quantity in truth}
    for seed in range(20):
        for method, estimator in (("plain", hutchinson), ("++", hutchpp)):
            estimate = estimator(a, 30, seeded(300 + seed))
            for quantity, value in truth.items():
                errors[method, quantity].append(abs(getattr(estimate, quantity) - value))
    mean = {key: np.mean(values) for key, values in errors.items()}
    # Measured over 20 other seed sets, as a fraction of Hutchinson's error: 0.04 to 0.12 for
    # the trace, 0.005 to 0.02 for the Frobenius norm.
    assert mean["++", "trace"] < 0.25 * mean["plain", "trace"]
    assert mean["++", "frobenius"] < 0.1 * mean["plain", "frobenius"]


# --------------------------------------------------------------------------------------------
# The hessian diagnostic through its public contract
# --------------------------------------------------------------------------------------------


def test_diagnostic_end_to_end_on_an_mlp(mlp) -> None:
    model, batch, dense = mlp
    task = Task(model=model, criterion=F.cross_entropy, probe=batch, classification=True)
    setup, ctx = contexts(task, lr=0.05)
    params = defaults(PLUGIN.params) | {"trace_samples": 60}
    diagnostic = PLUGIN.create(params)
    declared = {out.name: out for out in diagnostic.outputs(setup)}
    assert set(declared) == {
        "hessian/top_eigenvalues",
        "hessian/min_eigenvalue",
        "hessian/trace",
        "hessian/frobenius",
        "hessian/two_over_lr",
    }
    assert declared["hessian/top_eigenvalues"].kind == "vector"
    assert declared["hessian/top_eigenvalues"].shape == (3,)
    assert all(out.kind == "scalar" for name, out in declared.items() if "top" not in name)

    grads = {name: torch.randn_like(p) for name, p in model.named_parameters()}
    for name, p in model.named_parameters():
        p.grad = grads[name].clone()
    before = {name: p.grad for name, p in model.named_parameters()}

    first = diagnostic.compute(ctx)
    assert set(first) == set(declared)
    top = first["hessian/top_eigenvalues"]
    assert isinstance(top, np.ndarray) and top.shape == (3,)
    assert np.all(np.diff(top) <= 0)
    assert all(isinstance(first[name], float) for name in declared if "top" not in name)
    assert first["hessian/two_over_lr"] == pytest.approx(2 / 0.05, rel=1e-15)
    truth = torch.linalg.eigvalsh(dense)
    assert relative_error(torch.as_tensor(top), truth.flip(0)[:3]) < 1e-4
    assert relative_error(first["hessian/min_eigenvalue"], truth[0]) < 1e-3
    assert abs(first["hessian/trace"] - dense.trace().item()) < 4 * rademacher_sd(dense, 60)
    tolerance = frobenius_tolerance(dense, 20, bound=True)  # Hutch++ spends 20 on the rest
    assert relative_error(first["hessian/frobenius"], torch.linalg.matrix_norm(dense)) < tolerance
    cold_iterations = diagnostic.last.iterations

    # Same parameters at the next record: the warm start reconverges sooner to the same values.
    ctx.step = 50
    second = diagnostic.compute(ctx)
    assert diagnostic.last.iterations < cold_iterations
    np.testing.assert_allclose(second["hessian/top_eigenvalues"], top, rtol=1e-6)

    for name, p in model.named_parameters():
        assert p.grad is before[name]
        assert torch.equal(p.grad, grads[name])


def test_diagnostic_clamps_top_k_and_skips_disabled_outputs() -> None:
    model = nn.Linear(1, 1).to(DTYPE)  # two parameters
    inputs = torch.randn(16, 1, generator=seeded(12), dtype=DTYPE)
    task = Task(model=model, criterion=F.mse_loss, probe=(inputs, 3 * inputs))
    setup, ctx = contexts(task, lr=0.1)
    params = defaults(PLUGIN.params) | {"top_k": 5, "trace": False, "frobenius": False}
    diagnostic = PLUGIN.create(params)
    declared = {out.name: out for out in diagnostic.outputs(setup)}
    assert declared["hessian/top_eigenvalues"].shape == (2,)
    assert "hessian/trace" not in declared and "hessian/frobenius" not in declared
    values = diagnostic.compute(ctx)
    assert set(values) == set(declared)
    # MSE of a 1-D linear model: H = (2/N) Σ [x 1]ᵀ[x 1], exactly.
    features = torch.cat([inputs, torch.ones_like(inputs)], dim=1)
    truth = torch.linalg.eigvalsh(2 * features.T @ features / 16)
    np.testing.assert_allclose(values["hessian/top_eigenvalues"], truth.flip(0), rtol=1e-10)


def test_diagnostic_records_nan_for_a_non_finite_probe_loss() -> None:
    model = nn.Linear(2, 1).to(DTYPE)
    probe = (torch.full((4, 2), math.inf, dtype=DTYPE), torch.zeros(4, 1, dtype=DTYPE))
    _, ctx = contexts(Task(model=model, criterion=F.mse_loss, probe=probe), lr=0.1)
    values = PLUGIN.create(defaults(PLUGIN.params)).compute(ctx)
    assert np.isnan(values["hessian/top_eigenvalues"]).all()
    assert math.isnan(values["hessian/trace"]) and values["hessian/two_over_lr"] == 20.0


@pytest.mark.parametrize("method", ["hutch++", "krylov-hutch++"])
def test_diagnostic_on_the_quadratic_task(method: str) -> None:
    assert plugins("diagnostics")["hessian"] is PLUGIN
    quadratic = plugins("tasks")["quadratic"]
    eigenvalues = [12.0, 7.5, 4.0, 2.0, 1.0, 0.5, 0.25, -1.5]
    params = defaults(quadratic.params) | {"eigenvalues": eigenvalues}
    task = quadratic.build(params, 0, torch.device("cpu"), DTYPE)
    setup, ctx = contexts(task, lr=0.1)
    diagnostic = PLUGIN.create(
        defaults(PLUGIN.params) | {"trace_samples": 24, "trace_method": method}
    )
    assert {out.name for out in diagnostic.outputs(setup)} >= {"hessian/top_eigenvalues"}
    values = diagnostic.compute(ctx)
    np.testing.assert_allclose(values["hessian/top_eigenvalues"], task.model.eigenvalues[:3])
    np.testing.assert_allclose(values["hessian/top_eigenvalues"], eigenvalues[:3], rtol=1e-10)
    assert values["hessian/min_eigenvalue"] == pytest.approx(-1.5, rel=1e-10)
    # Either sketch (8 random columns; 16 Krylov steps) spans all 8 dimensions: both are exact.
    assert values["hessian/trace"] == pytest.approx(sum(eigenvalues), rel=1e-10)
    frobenius = torch.linalg.matrix_norm(task.model.hessian).item()
    assert values["hessian/frobenius"] == pytest.approx(frobenius, rel=1e-10)


# --------------------------------------------------------------------------------------------
# Block paths, the ∇L start and the eigenvalue stopping rule
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["loop", "batched", "auto"])
def test_block_paths_agree_with_the_dense_hessian(mlp, path: str) -> None:
    model, (inputs, targets), dense = mlp
    params = list(model.parameters())
    op = HessianOperator(F.cross_entropy(model(inputs), targets), params, block=path)
    widths = (2, 3, 5, 4, 2)  # 2 · BLOCK_TRIALS + 1 blocks: "auto" measures both, then settles
    for m in widths:
        v = torch.randn(dense.shape[0], m, generator=seeded(20 + m), dtype=DTYPE)
        torch.testing.assert_close(op @ v, dense @ v, rtol=1e-10, atol=1e-12)
    assert op.matvecs == sum(widths)
    if path == "auto":
        assert [len(t) for t in op.block_timings.values()] == [BLOCK_TRIALS] * 2


def test_batched_block_of_a_linear_loss_is_zero_and_bad_paths_are_refused() -> None:
    w = nn.Parameter(torch.ones(3, dtype=DTYPE))
    unused = nn.Parameter(torch.ones(2, dtype=DTYPE))
    op = HessianOperator((w * torch.arange(3.0, dtype=DTYPE)).sum(), [w, unused], block="batched")
    assert torch.equal(op @ torch.ones(5, 2, dtype=DTYPE), torch.zeros(5, 2, dtype=DTYPE))
    with pytest.raises(ValueError, match="block must be one of"):
        HessianOperator(w.square().sum(), [w], block="vmap")  # type: ignore[arg-type]


def test_gradient_is_the_loss_gradient_and_starts_lanczos_at_the_top(mlp) -> None:
    model, (inputs, targets), dense = mlp
    params = list(model.parameters())
    op = HessianOperator(F.cross_entropy(model(inputs), targets), params)
    expected = flatten(torch.autograd.grad(F.cross_entropy(model(inputs), targets), params))
    torch.testing.assert_close(op.gradient, expected, rtol=1e-12, atol=1e-14)
    top = torch.linalg.eigvalsh(dense)[-1]
    result = lanczos(
        op, 1, start=op.gradient, tol=1e-8, smallest=False, generator=seeded(40), stop="eigenvalue"
    )
    assert result.converged and relative_error(result.eigenvalues[0], top) < 1e-7


def test_lanczos_eigenvalue_stop_meets_tol_with_fewer_products(quadratic: Quadratic) -> None:
    """Stopping on min(r, r²/δ) instead of r: same relative eigenvalue accuracy, fewer steps.

    The top eigenvalue 10 has a gap of only 0.2 to the next, so r²/δ is not a loose estimate.
    """
    top = QUADRATIC_EIGENVALUES.max().item()
    tol = 1e-4
    for seed in range(30, 36):
        kwargs = {"tol": tol, "smallest": False, "iterations": 50}
        by_residual = lanczos(quadratic.a, 1, generator=seeded(seed), **kwargs)
        by_eigenvalue = lanczos(quadratic.a, 1, generator=seeded(seed), stop="eigenvalue", **kwargs)
        assert by_eigenvalue.converged
        assert by_eigenvalue.iterations < by_residual.iterations
        assert relative_error(by_eigenvalue.eigenvalues[0], top) <= tol
    with pytest.raises(ValueError, match="stop must be"):
        lanczos(quadratic.a, 1, stop="gap")  # type: ignore[arg-type]


def test_hutchpp_on_the_operator_equals_hutchpp_on_its_matrix(mlp) -> None:
    """Whatever block path the operator takes, Hutch++ sees the same products and probes."""
    model, batch, dense = mlp
    for path in ("loop", "batched"):
        op = HessianOperator(
            F.cross_entropy(model(batch[0]), batch[1]), list(model.parameters()), block=path
        )
        estimate = hutchpp(op, 12, seeded(50))
        reference = hutchpp(dense, 12, seeded(50))
        assert estimate.matvecs == 12
        assert abs(estimate.trace - reference.trace) < 1e-10 * abs(reference.trace)
        assert abs(estimate.frobenius - reference.frobenius) < 1e-10 * reference.frobenius


def test_krylov_hutchpp_is_exact_on_an_invariant_krylov_space(quadratic: Quadratic) -> None:
    estimate = krylov_hutchpp(quadratic.a, budget=90, generator=seeded(60))
    assert estimate.matvecs == 50  # 50 Lanczos steps span everything; no probes are needed
    assert relative_error(estimate.trace, QUADRATIC_EIGENVALUES.sum()) < 1e-10
    assert relative_error(estimate.frobenius, QUADRATIC_EIGENVALUES.norm()) < 1e-10
    with pytest.raises(ValueError, match="at least 3"):
        krylov_hutchpp(quadratic.a, budget=2)


def test_krylov_hutchpp_matches_the_dense_trace_of_an_mlp(mlp) -> None:
    """Unbiased for any start: the probes see only PHP (P = I − QQᵀ), so each draw lies within
    4 sd, sd ≤ √(2‖H‖_F²/g), of tr H; from ∇L or at random, and spending exactly the budget."""
    model, batch, dense = mlp
    op = mlp_operator(model, batch)
    trace = dense.trace().item()
    budget = 15
    sd = math.sqrt(2 * dense.square().sum().item() / (budget // 3))
    for seed in range(5):
        for start in (op.gradient, None):
            estimate = krylov_hutchpp(op, budget, seeded(400 + seed), start=start)
            assert estimate.matvecs == budget
            assert abs(estimate.trace - trace) < 4 * sd
    # Deflating a Krylov space that holds the top of the spectrum beats the plain estimate.
    errors = [abs(krylov_hutchpp(op, 30, seeded(500 + s)).trace - trace) for s in range(10)]
    plain = [abs(hutchinson(op, 30, seeded(500 + s)).trace - trace) for s in range(10)]
    assert np.mean(errors) < np.mean(plain)


def test_lanczos_from_a_start_without_perturbation_draws_nothing_random() -> None:
    """`perturbation=0` starts at the given vector itself (the same result whatever the
    generator); a zero start, as ∇L at a stationary point, falls back to a random vector."""
    a = torch.diag(torch.tensor([5.0, 2.0, 1.0, -1.0], dtype=torch.float64))
    start = torch.ones(4, dtype=torch.float64)
    one = lanczos(a, 1, start=start, perturbation=0.0, generator=torch.Generator().manual_seed(1))
    two = lanczos(a, 1, start=start, perturbation=0.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(one.eigenvalues, two.eigenvalues)
    assert one.eigenvalues[0].item() == pytest.approx(5.0, rel=1e-12)
    zero = lanczos(a, 1, start=torch.zeros(4, dtype=torch.float64), perturbation=0.0)
    assert zero.eigenvalues[0].item() == pytest.approx(5.0, rel=1e-12)
