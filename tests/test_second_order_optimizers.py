"""Second-order optimizers against explicit float64 matrix solves on tiny problems.

Each step is compared with the formula it implements, built densely and independently: M-FAC's
Woodbury product with the solve of λI + GᵀG/m, EGN's batch-sized system with (JᵀQJ + λI)⁻¹g
from an explicit Jacobian and output Hessian, Newton with `torch.func.hessian`, FOSI with exact
eigenpairs from `eigh`, and the natural gradient's CG with the explicit Fisher solve.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from descentlab.engine.curvature.operators import flatten, unflatten
from descentlab.engine.params import defaults
from descentlab.engine.plugin import Needs
from descentlab.engine.registry import plugins
from descentlab.engine.stepping import take_step
from descentlab.plugins.tasks.common import output_as_loss

DTYPE = torch.float64
OPTIMIZERS = plugins("optimizers")
OPTIMIZERS_NEEDS = Needs(batch=True)
"""What every optimizer of this module needs of the loop: the batch, for its curvature."""


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).to(DTYPE)


def _data(classification: bool) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(6, 4, generator=generator, dtype=DTYPE)
    if classification:
        return inputs, torch.randint(0, 3, (6,), generator=generator)
    return inputs, torch.randn(6, 3, generator=generator, dtype=DTYPE)


def _build(pid: str, model: nn.Module, **hyper: object) -> torch.optim.Optimizer:
    plugin = OPTIMIZERS[pid]
    return plugin.build(list(model.named_parameters()), {}, defaults(plugin.params) | hyper)


def _backward(model: nn.Module, criterion, batch) -> Tensor:
    model.zero_grad(set_to_none=True)
    loss = criterion(model(batch[0]), batch[1])
    loss.backward()
    return flatten([p.grad for p in model.parameters()]).clone()


def _flat(model: nn.Module) -> Tensor:
    return flatten([p.detach() for p in model.parameters()]).clone()


def _step(opt, model, criterion, batch) -> tuple[Tensor, Tensor]:
    """One step as the Runner takes it; returns the gradient used and the update Δθ."""
    seen: list[Tensor] = []

    def before_step(loss: Tensor) -> bool:
        seen.append(flatten([p.grad for p in model.parameters()]).clone())
        seen.append(_flat(model))
        return True

    take_step(opt, OPTIMIZERS_NEEDS, model, criterion, batch, before_step)
    gradient, before = seen
    return gradient, _flat(model) - before


def _dense_hessian(model: nn.Module, criterion, batch) -> Tensor:
    names = [n for n, _ in model.named_parameters()]
    like = [p.detach() for p in model.parameters()]

    def loss(flat: Tensor) -> Tensor:
        values = dict(zip(names, unflatten(flat, like), strict=True))
        return criterion(torch.func.functional_call(model, values, (batch[0],)), batch[1])

    return torch.func.hessian(loss)(_flat(model))


# -- M-FAC --------------------------------------------------------------------------------------


def test_mfac_step_is_the_inverse_of_the_window_fisher() -> None:
    """Over 7 steps with a window of 3 (so it wraps around twice), each Δθ is −η F⁻¹g with
    F = λI + GᵀG/m, G the last m gradients (zero rows until the window fills)."""
    lr, damping, m = 0.7, 0.3, 3
    point = nn.Parameter(torch.zeros(6, dtype=DTYPE))
    opt = OPTIMIZERS["mfac"].build([("x", point)], {}, {"lr": lr, "damping": damping, "window": m})
    generator = torch.Generator().manual_seed(2)
    window = torch.zeros(m, 6, dtype=DTYPE)
    for t in range(7):
        g = torch.randn(6, generator=generator, dtype=DTYPE)
        window[t % m] = g
        point.grad = g.clone()
        before = point.detach().clone()
        opt.step()
        fisher = damping * torch.eye(6, dtype=DTYPE) + window.T @ window / m
        expected = -lr * torch.linalg.solve(fisher, g)
        torch.testing.assert_close(point.detach() - before, expected, rtol=0, atol=1e-10)
    assert opt.state[point]["count"] == 7


# -- EGN ----------------------------------------------------------------------------------------


def _explicit_gauss_newton_step(model, batch, q_of, damping) -> tuple[Tensor, Tensor]:
    names = [n for n, _ in model.named_parameters()]
    like = [p.detach() for p in model.parameters()]

    def outputs(flat: Tensor) -> Tensor:
        values = dict(zip(names, unflatten(flat, like), strict=True))
        return torch.func.functional_call(model, values, (batch[0],)).reshape(-1)

    jacobian = torch.autograd.functional.jacobian(outputs, _flat(model))
    q = q_of(model(batch[0]).detach())
    ggn = jacobian.T @ q @ jacobian
    return jacobian, ggn


def _cross_entropy_q(logits: Tensor) -> Tensor:
    batch = logits.shape[0]
    blocks = [(torch.diag(p) - torch.outer(p, p)) / batch for p in logits.softmax(dim=1)]
    return torch.block_diag(*blocks)


def _mse_q(outputs: Tensor) -> Tensor:
    return 2 * torch.eye(outputs.numel(), dtype=DTYPE) / outputs.numel()


@pytest.mark.parametrize(
    ("criterion", "q_of", "classification"),
    [(F.cross_entropy, _cross_entropy_q, True), (F.mse_loss, _mse_q, False)],
    ids=["cross-entropy", "mse"],
)
def test_egn_direction_is_the_damped_gauss_newton_solve(criterion, q_of, classification) -> None:
    damping = 0.05
    model, batch = _mlp(), _data(classification)
    opt = _build("egn", model, lr=1.0, damping=damping)
    _, ggn = _explicit_gauss_newton_step(model, batch, q_of, damping)
    gradient, update = _step(opt, model, criterion, batch)
    n = gradient.numel()
    expected = -torch.linalg.solve(ggn + damping * torch.eye(n, dtype=DTYPE), gradient)
    torch.testing.assert_close(update, expected, rtol=0, atol=1e-10)


def test_egn_momentum_accumulates_directions() -> None:
    model, twin, batch = _mlp(), _mlp(), _data(True)
    opt = _build("egn", model, lr=0.5, momentum=0.9)
    plain = _build("egn", twin, lr=0.5)
    _, first = _step(opt, model, F.cross_entropy, batch)
    _, plain_first = _step(plain, twin, F.cross_entropy, batch)
    torch.testing.assert_close(first, plain_first, rtol=0, atol=1e-12)
    _, second = _step(opt, model, F.cross_entropy, batch)
    _, plain_second = _step(plain, twin, F.cross_entropy, batch)
    torch.testing.assert_close(second, plain_second + 0.9 * first, rtol=0, atol=1e-12)


def test_egn_without_a_batch_says_what_is_missing() -> None:
    model = _mlp()
    opt = _build("egn", model)
    _backward(model, F.cross_entropy, _data(True))
    with pytest.raises(RuntimeError, match="set_batch"):
        opt.step()


# -- Newton -------------------------------------------------------------------------------------


def test_newton_step_is_the_damped_newton_solve() -> None:
    damping = 0.5
    model, batch = _mlp(), _data(True)
    opt = _build("newton", model, lr=0.8, damping=damping)
    hessian = _dense_hessian(model, F.cross_entropy, batch)
    shifted = hessian + damping * torch.eye(hessian.shape[0], dtype=DTYPE)
    assert torch.linalg.eigvalsh(shifted).min() > 0
    gradient, update = _step(opt, model, F.cross_entropy, batch)
    torch.testing.assert_close(
        update, -0.8 * torch.linalg.solve(shifted, gradient), rtol=0, atol=1e-10
    )
    assert opt.state[next(model.parameters())]["saddle_free"] is False


class _Saddle(nn.Module):
    """f(x, y) = x² − y² + x·y³/3, whose Hessian at the start is indefinite."""

    def __init__(self) -> None:
        super().__init__()
        self.xy = nn.Parameter(torch.tensor([0.7, 0.4], dtype=DTYPE))

    def forward(self, inputs: Tensor) -> Tensor:
        x, y = self.xy
        return x**2 - y**2 + x * y**3 / 3


def test_newton_on_an_indefinite_hessian_uses_absolute_eigenvalues() -> None:
    """H + λI has a negative eigenvalue: the step is −(|H| + λI)⁻¹g, which descends."""
    damping = 0.1
    model = _Saddle()
    batch = (torch.zeros(1, 1, dtype=DTYPE), torch.zeros(1, 0, dtype=DTYPE))
    opt = _build("newton", model, damping=damping)
    hessian = _dense_hessian(model, output_as_loss, batch)
    values, vectors = torch.linalg.eigh(hessian)
    assert values.min() + damping < 0
    absolute = vectors @ torch.diag(values.abs() + damping) @ vectors.T
    before = model(batch[0]).item()
    gradient, update = _step(opt, model, output_as_loss, batch)
    torch.testing.assert_close(update, -torch.linalg.solve(absolute, gradient), rtol=0, atol=1e-12)
    assert opt.state[model.xy]["saddle_free"] is True
    assert model(batch[0]).item() < before


def test_newton_solves_a_quadratic_in_one_step() -> None:
    task = plugins("tasks")["quadratic"]
    built = task.build(defaults(task.params) | {"dim": 8}, 0, torch.device("cpu"), DTYPE)
    opt = _build("newton", built.model, lr=1.0, damping=0.0)
    _step(opt, built.model, built.criterion, built.probe)
    torch.testing.assert_close(built.model.x.detach(), built.model.minimizer, rtol=0, atol=1e-10)


def test_lazy_newton_reuses_the_hessian_between_refreshes() -> None:
    damping = 0.5
    model, batch = _mlp(), _data(True)
    opt = _build("lazy-newton", model, lr=0.5, damping=damping, refresh=3)
    first = next(model.parameters())
    stale = _dense_hessian(model, F.cross_entropy, batch)
    _step(opt, model, F.cross_entropy, batch)
    gradient, update = _step(opt, model, F.cross_entropy, batch)
    shifted = stale + damping * torch.eye(stale.shape[0], dtype=DTYPE)
    torch.testing.assert_close(
        update, -0.5 * torch.linalg.solve(shifted, gradient), rtol=0, atol=1e-10
    )
    for _ in range(5):
        _step(opt, model, F.cross_entropy, batch)
    assert opt.state[first]["hessian_evals"] == 3  # steps 0, 3 and 6 of 7


@pytest.mark.parametrize("pid", ["newton", "lazy-newton"])
def test_newton_refuses_large_models_by_name(pid: str) -> None:
    model = nn.Linear(100, 30)
    with pytest.raises(
        ValueError, match=f"{pid}: the model has 3,030 parameters, more than max_params=3000"
    ):
        _build(pid, model)


# -- FOSI ---------------------------------------------------------------------------------------


def test_fosi_step_is_newton_in_the_top_eigenspace_plus_sgd_on_the_rest() -> None:
    """With exact top-k eigenpairs (Lanczos run to all n iterations), μ = 0 and α = 1:
    Δθ = −V Λ⁻¹ Vᵀ g − c·η (I − VVᵀ) g, c = clip(λ₁/λ_k, 1, clip)."""
    k, lr = 3, 0.02
    task = plugins("tasks")["quadratic"]
    built = task.build(defaults(task.params) | {"dim": 10}, 0, torch.device("cpu"), DTYPE)
    model = built.model
    opt = _build("fosi", model, lr=lr, alpha=1.0, momentum=0.0, k=k, iterations=10, tolerance=1e-14)
    values, vectors = torch.linalg.eigh(model.hessian)
    top, basis = values[-k:], vectors[:, -k:]
    gradient, update = _step(opt, model, built.criterion, built.probe)
    scale = min(max((top.max() / top.min()).item(), 1.0), 3.0)
    projector = basis @ basis.T
    expected = -basis @ ((basis.T @ gradient) / top) - scale * lr * (
        gradient - projector @ gradient
    )
    torch.testing.assert_close(update, expected, rtol=0, atol=1e-9)
    stored = opt.state[model.x]["basis"]
    torch.testing.assert_close(stored @ stored.T, projector, rtol=0, atol=1e-9)


# -- natural gradient ---------------------------------------------------------------------------


def test_natural_gradient_cg_matches_the_explicit_fisher_solve() -> None:
    damping, lr = 0.01, 0.3
    model, batch = _mlp(), _data(True)
    n = sum(p.numel() for p in model.parameters())
    opt = _build("natural-gradient", model, lr=lr, damping=damping, cg_iters=n, tolerance=1e-14)
    rows = []
    for x, y in zip(*batch, strict=True):
        rows.append(_backward(model, F.cross_entropy, (x[None], y[None])))
    per_example = torch.stack(rows)
    fisher = per_example.T @ per_example / len(rows)
    gradient, update = _step(opt, model, F.cross_entropy, batch)
    expected = -lr * torch.linalg.solve(fisher + damping * torch.eye(n, dtype=DTYPE), gradient)
    torch.testing.assert_close(update, expected, rtol=0, atol=1e-8)
