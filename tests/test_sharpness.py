"""The sharpness diagnostic through its public contract, against dense ground truth.

Ground truth: an explicit quadratic ½(x − x*)ᵀA(x − x*) (its Hessian is A) driven by a real
torch.optim.Adam, whose state gives the preconditioner P densely; and a small MLP classifier
whose mini-batch Hessians come densely from `torch.func.hessian` on the very batches the
diagnostic drew (`minibatches`).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from engine_helpers import seeded
from torch import Tensor, nn

from descentlab.engine.curvature.operators import flatten, unflatten
from descentlab.engine.params import defaults
from descentlab.engine.plugin import SetupContext, StepContext, Task
from descentlab.plugins.diagnostics.sharpness import PLUGIN, minibatches

DTYPE = torch.float64
LR = 0.01
BETAS = (0.9, 0.999)
EIGENVALUES = torch.tensor(
    [20.0, 15.0, 11.0, 8.0, 6.0, 4.5, 3.3, 2.4, 1.7, 1.2, 0.8, 0.5], dtype=DTYPE
)
N = len(EIGENVALUES)


class Quadratic(nn.Module):
    """f(x) = ½(x − x*)ᵀA(x − x*); the input is ignored (a data-free task)."""

    def __init__(self, a: Tensor, minimizer: Tensor) -> None:
        super().__init__()
        self.x = nn.Parameter(torch.zeros_like(minimizer))
        self.register_buffer("a", a)
        self.register_buffer("minimizer", minimizer)

    def forward(self, inputs: Tensor) -> Tensor:
        delta = self.x - self.minimizer
        return 0.5 * delta @ (self.a @ delta)


def quadratic_task() -> Task:
    generator = seeded(0)
    q, _ = torch.linalg.qr(torch.randn(N, N, generator=generator, dtype=DTYPE))
    a = q @ torch.diag(EIGENVALUES) @ q.T
    model = Quadratic(0.5 * (a + a.T), torch.randn(N, generator=generator, dtype=DTYPE))
    placeholder = torch.zeros(1, dtype=DTYPE)
    return Task(model=model, criterion=lambda out, _: out, probe=(placeholder, placeholder))


def contexts(
    task: Task, optimizer: torch.optim.Optimizer, lr: float, step: int = 0
) -> tuple[SetupContext, StepContext]:
    """Contexts at the current parameters; `grads` are the probe loss's gradients."""
    named = dict(task.model.named_parameters())
    loss = task.loss(task.model, task.probe)
    grads = dict(zip(named, torch.autograd.grad(loss, list(named.values())), strict=True))
    setup = SetupContext(model=task.model, named_params=named, task=task, optimizer=optimizer)
    ctx = StepContext(
        step=step,
        model=task.model,
        named_params=named,
        grads=grads,
        update=None,
        init_params={name: p.detach().clone() for name, p in named.items()},
        optimizer=optimizer,
        lr=lr,
        loss=loss.item(),
        task=task,
    )
    return setup, ctx


def trained_adam(task: Task, steps: int = 5) -> torch.optim.Adam:
    optimizer = torch.optim.Adam(task.model.parameters(), lr=LR, betas=BETAS)
    for _ in range(steps):
        optimizer.zero_grad()
        task.loss(task.model, task.probe).backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return optimizer


def dense_preconditioner(optimizer: torch.optim.Adam, p: Tensor, momentum: bool) -> Tensor:
    state = optimizer.state[p]
    t = state["step"].item()
    beta1, beta2 = BETAS
    diag = (state["exp_avg_sq"] / (1 - beta2**t)).sqrt() + optimizer.param_groups[0]["eps"]
    return diag * (1 - beta1**t) if momentum else diag


# --------------------------------------------------------------------------------------------
# The quadratic with Adam
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("momentum", [True, False])
def test_quadratic_with_adam(momentum: bool) -> None:
    task = quadratic_task()
    optimizer = trained_adam(task)
    setup, ctx = contexts(task, optimizer, LR)
    params = defaults(PLUGIN.params) | {
        "top_k": 3,
        "trace_samples": 3 * N,
        "momentum_bias_correction": momentum,
    }
    diagnostic = PLUGIN.create(params)
    declared = {out.name: out for out in diagnostic.outputs(setup)}
    assert set(declared) == {
        "sharpness/preconditioned",
        "sharpness/adam_threshold",
        "sharpness/trace_over_two_over_lr",
        "sharpness/lambda_max_over_two_over_lr",
        "sharpness/gradient_overlap",
        "sharpness/subspace_overlap",
    }  # no training data: no mini-batch part
    assert all(out.kind == "scalar" and out.shape == () for out in declared.values())

    first = diagnostic.compute(ctx)
    assert set(first) == set(declared) - {"sharpness/subspace_overlap"}  # nothing to compare yet
    a = task.model.a

    # P⁻¹A and the symmetric P^{-1/2} A P^{-1/2} share their spectrum; the dense one from the state.
    p = dense_preconditioner(optimizer, task.model.x, momentum)
    scaled = a / p.sqrt()[:, None] / p.sqrt()[None, :]
    truth = torch.linalg.eigvalsh(scaled)[-1].item()
    assert first["sharpness/preconditioned"] == pytest.approx(truth, rel=1e-8)
    similar = torch.linalg.eigvals(a / p[:, None]).real.max().item()
    assert first["sharpness/preconditioned"] == pytest.approx(similar, rel=1e-8)
    assert first["sharpness/adam_threshold"] == pytest.approx(38 / LR, rel=1e-12)
    # After 5 steps the momentum correction 1 − 0.9⁵ ≈ 0.41 matters: P shrinks, P⁻¹A grows.
    if momentum:
        plain = dense_preconditioner(optimizer, task.model.x, False)
        scaled_plain = a / plain.sqrt()[:, None] / plain.sqrt()[None, :]
        ratio = truth / torch.linalg.eigvalsh(scaled_plain)[-1].item()
        assert ratio == pytest.approx(1 / (1 - 0.9**5), rel=1e-12)

    # Hutch++ with a budget of 3n sketches all n directions: the trace is exact.
    assert first["sharpness/trace_over_two_over_lr"] == pytest.approx(
        EIGENVALUES.sum().item() * LR / 2, rel=1e-10
    )
    assert first["sharpness/lambda_max_over_two_over_lr"] == pytest.approx(20 * LR / 2, rel=1e-9)

    # Gradient overlap with the top-3 eigenspace of A, densely.
    eigenvectors = torch.linalg.eigh(a).eigenvectors[:, -3:]
    g = ctx.grads["x"]
    overlap = ((eigenvectors.T @ g).square().sum() / g.square().sum()).item()
    assert 0.01 < overlap < 0.99  # a real test: the gradient is not in either subspace
    assert first["sharpness/gradient_overlap"] == pytest.approx(overlap, rel=1e-7)

    # Same parameters at the next record: the same top-3 subspace.
    ctx.step = 50
    second = diagnostic.compute(ctx)
    assert second["sharpness/subspace_overlap"] == pytest.approx(1.0, abs=1e-9)
    assert second["sharpness/preconditioned"] == pytest.approx(truth, rel=1e-8)

    # A gradient inside the top-3 eigenspace by construction.
    ctx.grads = {"x": eigenvectors @ torch.tensor([1.0, -2.0, 0.5], dtype=DTYPE)}
    ctx.step = 100
    third = diagnostic.compute(ctx)
    assert third["sharpness/gradient_overlap"] == pytest.approx(1.0, abs=1e-9)
    assert task.model.x.grad is None  # the diagnostic never touches .grad


def test_sgd_declares_no_preconditioned_outputs() -> None:
    task = quadratic_task()
    optimizer = torch.optim.SGD(task.model.parameters(), lr=LR, momentum=0.9)
    setup, ctx = contexts(task, optimizer, LR)
    diagnostic = PLUGIN.create(defaults(PLUGIN.params) | {"top_k": 3})
    declared = {out.name for out in diagnostic.outputs(setup)}
    assert not declared & {"sharpness/preconditioned", "sharpness/adam_threshold"}
    values = diagnostic.compute(ctx)
    assert set(values) == declared - {"sharpness/subspace_overlap"}
    assert values["sharpness/lambda_max_over_two_over_lr"] == pytest.approx(20 * LR / 2, rel=1e-9)


def test_adam_before_its_first_step_skips_the_preconditioned_record() -> None:
    task = quadratic_task()
    optimizer = torch.optim.AdamW(task.model.parameters(), lr=LR)
    setup, ctx = contexts(task, optimizer, LR)
    params = defaults(PLUGIN.params) | {"stability": False, "overlap": False}
    diagnostic = PLUGIN.create(params)
    declared = {out.name for out in diagnostic.outputs(setup)}
    assert declared == {"sharpness/preconditioned", "sharpness/adam_threshold"}
    assert diagnostic.compute(ctx) == {}  # no exp_avg_sq yet


# --------------------------------------------------------------------------------------------
# Mini-batch sharpness on a small MLP classifier
# --------------------------------------------------------------------------------------------


def mlp_task() -> Task:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).to(DTYPE)  # 51 parameters
    generator = seeded(1)
    inputs = torch.randn(96, 4, generator=generator, dtype=DTYPE)
    targets = torch.randint(0, 3, (96,), generator=generator)
    # The probe is the whole training set, so E[H_B] over uniform batches B is the probe's H.
    return Task(
        model=model,
        criterion=F.cross_entropy,
        probe=(inputs, targets),
        train=(inputs, targets),
        classification=True,
    )


def dense_lambda_max(model: nn.Module, batch: tuple[Tensor, Tensor]) -> float:
    names = [name for name, _ in model.named_parameters()]
    like = [p.detach() for p in model.parameters()]
    inputs, targets = batch

    def loss_of(flat: Tensor) -> Tensor:
        params = dict(zip(names, unflatten(flat, like), strict=True))
        return F.cross_entropy(torch.func.functional_call(model, params, (inputs,)), targets)

    return torch.linalg.eigvalsh(torch.func.hessian(loss_of)(flatten(like)))[-1].item()


def test_batch_sharpness_matches_dense_hessians_of_the_same_batches() -> None:
    task = mlp_task()
    optimizer = torch.optim.SGD(task.model.parameters(), lr=0.1)
    setup, ctx = contexts(task, optimizer, 0.1, step=7)
    params = defaults(PLUGIN.params) | {
        "preconditioned": False,
        "stability": False,
        "overlap": False,
        "batch_sizes": [4, 16],
        "batch_draws": 3,
        "batch_iterations": 60,
        "seed": 3,
    }
    diagnostic = PLUGIN.create(params)
    (output,) = diagnostic.outputs(setup)
    assert output.name == "sharpness/batch_lambda_max"
    assert output.kind == "vector" and output.shape == (3,)
    assert json.loads(json.dumps(output.attrs)) == {"batch_sizes": [4, 16, "probe"]}

    record = diagnostic.compute(ctx)["sharpness/batch_lambda_max"]
    assert isinstance(record, np.ndarray) and record.shape == (3,)
    batches = minibatches(task, [4, 16], 3, seed=3, step=7)
    for drawn, used in zip(batches, diagnostic.last_batches, strict=True):
        for batch, same in zip(drawn, used, strict=True):
            assert torch.equal(batch[0], same[0]) and torch.equal(batch[1], same[1])
    truth = [np.mean([dense_lambda_max(task.model, b) for b in drawn]) for drawn in batches]
    truth.append(dense_lambda_max(task.model, task.probe))
    np.testing.assert_allclose(record, truth, rtol=1e-8)
    # λmax is convex, so E λmax(H_B) ≥ λmax(E H_B) = λmax(H_probe) here (Jensen); with seed 3
    # the sample means of 3 draws show it too, by a wide margin for the smallest batches.
    assert record[0] > record[1] > record[2]
    assert record[0] > 1.5 * record[2]


def test_tasks_without_training_data_skip_the_batch_part() -> None:
    task = quadratic_task()
    setup, _ = contexts(task, torch.optim.SGD(task.model.parameters(), lr=LR), LR)
    names = {out.name for out in PLUGIN.create(defaults(PLUGIN.params)).outputs(setup)}
    assert "sharpness/batch_lambda_max" not in names
    assert PLUGIN.id == "sharpness" and PLUGIN.cost == "heavy" and PLUGIN.every == 50


def scaled_lambda_max(a: Tensor, p: Tensor) -> float:
    return torch.linalg.eigvalsh(a / p.sqrt()[:, None] / p.sqrt()[None, :])[-1].item()


def test_adamax_amsgrad_and_per_group_learning_rates() -> None:
    """Adamax preconditions by its infinity-norm state u; amsgrad by the running max of v; a
    group at another learning rate η_g enters as P·η/η_g (same threshold)."""
    params = defaults(PLUGIN.params) | {"stability": False, "overlap": False}
    beta1 = 0.8
    for case in ("adamax", "amsgrad", "groups"):
        task = quadratic_task()
        x = task.model.x
        if case == "adamax":
            optimizer = torch.optim.Adamax([x], lr=LR, betas=(beta1, 0.99))
        else:
            optimizer = torch.optim.Adam([x], lr=LR, betas=(beta1, 0.99), amsgrad=True)
        for _ in range(4):
            optimizer.zero_grad()
            task.loss(task.model, task.probe).backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state, lr = optimizer.state[x], LR
        if case == "adamax":
            p = state["exp_inf"] * (1 - beta1**4)
        else:
            v = state["max_exp_avg_sq"]
            p = ((v / (1 - 0.99**4)).sqrt() + 1e-8) * (1 - beta1**4)
        if case == "groups":
            lr = LR / 4  # the run's η; the only group runs at 4η
            p = p / 4
        setup, ctx = contexts(task, optimizer, lr)
        diagnostic = PLUGIN.create(params)
        assert len(diagnostic.outputs(setup)) == 2
        values = diagnostic.compute(ctx)
        assert values["sharpness/preconditioned"] == pytest.approx(
            scaled_lambda_max(task.model.a, p), rel=1e-8
        )
        assert values["sharpness/adam_threshold"] == pytest.approx(
            (2 + 2 * beta1) / ((1 - beta1) * lr), rel=1e-12
        )


def test_muon_with_adamw_declares_no_preconditioned_outputs() -> None:
    muon = pytest.importorskip("descentlab.plugins.optimizers.muon")
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(DTYPE)
    weights = [model[0].weight]
    rest = [p for p in model.parameters() if p is not model[0].weight]
    optimizer = muon.MuonWithAdamW(
        weights,
        rest,
        lr=0.02,
        momentum=0.95,
        nesterov=True,
        ns_steps=5,
        weight_decay=0.0,
        adjust_lr_fn="original",
        adamw_lr=1e-3,
        adamw_betas=(0.9, 0.999),
        adamw_eps=1e-8,
        adamw_weight_decay=0.0,
    )
    inputs = torch.randn(8, 3, generator=seeded(5), dtype=DTYPE)
    task = Task(model=model, criterion=F.mse_loss, probe=(inputs, inputs[:, :2]))
    setup, _ = contexts(task, optimizer, 0.02)
    names = {out.name for out in PLUGIN.create(defaults(PLUGIN.params)).outputs(setup)}
    assert "sharpness/preconditioned" not in names and "sharpness/adam_threshold" not in names
