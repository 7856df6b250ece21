"""Gradient-noise and optimizer-state diagnostics against plain reference computations.

The per-example quantities are checked against a Python loop of one backward pass per example
on a small float64 MLP; the effective-step histogram against numpy on a real Adam's state; the
sign disagreement through a loop that calls the diagnostic exactly as the Runner does.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from descentlab.engine.plugin import SetupContext, StepContext, Task
from descentlab.plugins.diagnostics import gradient_noise as gn
from descentlab.plugins.diagnostics import optimizer_state as ostate

D = torch.float64


def mlp_task(n_probe: int = 12, n_held: int = 20, seed: int = 0) -> Task:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).to(D)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=D))
    x = torch.randn(n_probe, 5, generator=g, dtype=D)
    y = torch.randint(3, (n_probe,), generator=g)
    xh = torch.randn(n_held, 5, generator=g, dtype=D)
    yh = torch.randint(3, (n_held,), generator=g)
    return Task(model, F.cross_entropy, (x, y), held_out=(xh, yh), classification=True)


def step_context(task: Task, optimizer: torch.optim.Optimizer, step: int = 0, update=None):  # type: ignore[no-untyped-def]
    named = dict(task.model.named_parameters())
    return StepContext(
        step=step,
        model=task.model,
        named_params=named,
        grads={n: p.grad for n, p in named.items() if p.grad is not None},
        update=update,
        init_params={n: p.detach().clone() for n, p in named.items()},
        optimizer=optimizer,
        lr=float(optimizer.param_groups[0]["lr"]),
        loss=0.0,
        task=task,
    )


def setup_context(task: Task, optimizer: torch.optim.Optimizer) -> SetupContext:
    return SetupContext(task.model, dict(task.model.named_parameters()), task, optimizer)


def loop_gradients(task: Task, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, np.ndarray]:
    """Per-example gradients (n, *shape) by one backward pass per example."""
    named = dict(task.model.named_parameters())
    rows: dict[str, list[np.ndarray]] = {n: [] for n in named}
    x, y = batch
    for i in range(x.shape[0]):
        loss = task.criterion(task.model(x[i : i + 1]), y[i : i + 1])
        grads = torch.autograd.grad(loss, list(named.values()))
        for n, gi in zip(named, grads, strict=True):
            rows[n].append(gi.numpy())
    return {n: np.stack(r) for n, r in rows.items()}


@pytest.mark.parametrize("chunk", [5, 64])
def test_gradient_noise_matches_a_loop_over_examples(chunk: int) -> None:
    task = mlp_task()
    opt = torch.optim.SGD(task.model.parameters(), lr=0.1)
    diag = gn.PLUGIN.create({"chunk": chunk})
    names = [o.name for o in diag.outputs(setup_context(task, opt))]
    records = diag.compute(step_context(task, opt))
    assert set(records) == set(names)

    per = loop_gradients(task, task.probe)
    flat = np.concatenate([g.reshape(len(g), -1) for g in per.values()], axis=1)
    mean = flat.mean(axis=0)
    trace = np.mean(np.sum((flat - mean) ** 2, axis=1))
    assert records[gn.TRACE] == pytest.approx(trace, rel=1e-10)
    assert records[gn.NOISE_SCALE] == pytest.approx(trace / np.sum(mean**2), rel=1e-10)
    for name, g in per.items():
        g = g.reshape(len(g), -1)
        snr = np.mean(g.mean(axis=0) ** 2 / g.var(axis=0))
        assert records[f"gradient_noise/snr/{name}"] == pytest.approx(snr, rel=1e-8)

    # The cosine with the gradient of the mean loss on as many held-out examples.
    named = dict(task.model.named_parameters())
    xh, yh = task.held_out  # type: ignore[misc]
    loss = task.criterion(task.model(xh[:12]), yh[:12])
    held = torch.cat([gi.reshape(-1) for gi in torch.autograd.grad(loss, list(named.values()))])
    held_np = held.numpy()
    cosine = mean @ held_np / (np.linalg.norm(mean) * np.linalg.norm(held_np))
    assert records[gn.COSINE] == pytest.approx(cosine, rel=1e-10)
    # Nothing of the model's own gradients was touched.
    assert all(p.grad is None for p in task.model.parameters())


def test_gradient_noise_skips_coordinates_without_variance_and_tasks_without_examples() -> None:
    class WithUnused(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net
            self.unused = nn.Linear(2, 2).to(D)  # zero gradient for every example: 0/0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    task = mlp_task()
    task.held_out = None
    model = task.model = WithUnused(task.model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    diag = gn.PLUGIN.create({"chunk": 64})
    names = {o.name for o in diag.outputs(setup_context(task, opt))}
    assert gn.COSINE not in names
    records = diag.compute(step_context(task, opt))
    assert set(records) == names
    assert math.isnan(records["gradient_noise/snr/unused.weight"])
    assert math.isfinite(records["gradient_noise/snr/net.0.weight"])

    for inputs in (torch.zeros(1, 0, dtype=D), torch.zeros(1, 4, dtype=D)):  # 2-D, quadratic
        data_free = Task(nn.Linear(4, 1).to(D), lambda o, t: o.sum(), (inputs, inputs))
        opt = torch.optim.SGD(data_free.model.parameters(), lr=0.1)
        assert diag.outputs(setup_context(data_free, opt)) == []


def test_per_example_gradients_of_sequences() -> None:
    """A row of a sequence task is one window: its loss is the mean over its positions."""

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(6, 4)
            self.head = nn.Linear(4, 6)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.head(self.embedding(tokens).cumsum(dim=1))

    torch.manual_seed(0)
    model = Tiny().to(D)

    def criterion(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    tokens = torch.randint(6, (9, 5))
    task = Task(model, criterion, (tokens[:, :-1], tokens[:, 1:]))
    moments = gn.per_example_moments(
        model, criterion, dict(model.named_parameters()), task.probe, 4
    )
    per = loop_gradients(task, task.probe)
    for name, g in per.items():
        np.testing.assert_allclose(moments.mean[name].numpy(), g.mean(axis=0), rtol=1e-10)
        np.testing.assert_allclose(
            moments.m2[name].numpy(), ((g - g.mean(axis=0)) ** 2).sum(axis=0), atol=1e-12
        )


# -- optimizer state ---------------------------------------------------------------------------


def test_effective_step_histogram_matches_numpy_on_a_real_adam() -> None:
    task = mlp_task()
    lr, eps, beta2 = 0.01, 1e-8, 0.99
    opt = torch.optim.Adam(task.model.parameters(), lr=lr, betas=(0.9, beta2), eps=eps)
    diag = ostate.PLUGIN.create({"bins": 30})
    outputs = {o.name: o for o in diag.outputs(setup_context(task, opt))}
    hist = outputs[ostate.HISTOGRAM]
    assert hist.kind == "histogram" and hist.shape == (30,) and hist.attrs["log10"] is True
    edges = np.array(hist.attrs["edges"])
    np.testing.assert_allclose(edges[[0, -1]], [1e-8 * lr, 1e3 * lr])
    assert diag.compute(step_context(task, opt)) == {}  # no state yet, nor an update

    for _ in range(4):
        opt.zero_grad()
        task.loss(task.model, task.probe).backward()
        opt.step()
    values = []
    for p in task.model.parameters():
        state = opt.state[p]
        t = float(state["step"])
        v_hat = state["exp_avg_sq"].numpy().ravel() / (1 - beta2**t)
        values.append(lr / (np.sqrt(v_hat) + eps))
    expected, _ = np.histogram(np.clip(np.concatenate(values), edges[0], edges[-1]), edges)
    record = diag.compute(step_context(task, opt, step=4))[ostate.HISTOGRAM]
    np.testing.assert_allclose(record, expected / expected.sum(), atol=1e-15)
    assert record.sum() == pytest.approx(1.0)
    assert np.count_nonzero(record) > 1

    # No second moment, no histogram.
    sgd = torch.optim.SGD(task.model.parameters(), lr=0.1)
    names = [o.name for o in ostate.PLUGIN.create({}).outputs(setup_context(task, sgd))]
    assert names == [ostate.DISAGREEMENT]


class SignMask(torch.optim.Optimizer):
    """θ ← θ − η s_t ⊙ g with s_t = −1 on the first k_t coordinates (uphill), +1 elsewhere."""

    def __init__(self, params, lr: float, ks: list[int]) -> None:  # type: ignore[no-untyped-def]
        super().__init__(params, {"lr": lr})
        self.ks = ks
        self.t = 0

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def]
        for group in self.param_groups:
            for p in group["params"]:
                s = torch.ones(p.numel(), dtype=p.dtype)
                s[: self.ks[self.t]] = -1
                p.add_(-group["lr"] * s.view_as(p) * p.grad)
        self.t += 1


def run_like_the_runner(optimizer_factory, every: int, steps: int) -> dict[int, float]:  # type: ignore[no-untyped-def]
    """Train a linear model calling the diagnostic as the Runner does; its disagreement records."""
    torch.manual_seed(1)
    model = nn.Linear(6, 1, bias=False).to(D)
    x, y = torch.randn(32, 6, dtype=D), torch.randn(32, 1, dtype=D)
    task = Task(model, F.mse_loss, (x, y))
    optimizer = optimizer_factory(model.parameters())
    diag = ostate.PLUGIN.create({})
    diag.outputs(setup_context(task, optimizer))
    named = dict(model.named_parameters())
    previous = None
    records: dict[int, float] = {}
    for step in range(steps):
        optimizer.zero_grad()
        task.loss(model, (x[step % 4 :: 4], y[step % 4 :: 4])).backward()
        if step % every == 0:
            update = {n: p.detach() - previous[n] for n, p in named.items()} if previous else None
            out = diag.compute(step_context(task, optimizer, step, update))
            if ostate.DISAGREEMENT in out:
                records[step] = out[ostate.DISAGREEMENT]
        previous = (
            {n: p.detach().clone() for n, p in named.items()} if (step + 1) % every == 0 else None
        )
        optimizer.step()
    return records


@pytest.mark.parametrize("every", [1, 4])
def test_sign_disagreement_pairs_each_update_with_its_own_gradient(every: int) -> None:
    sgd = run_like_the_runner(lambda p: torch.optim.SGD(p, lr=0.05), every, 13)
    assert sorted(sgd) == list(range(every, 13, every))
    assert all(v == 0.0 for v in sgd.values())

    ks = [(3 * t) % 7 for t in range(13)]  # 0 … 6 of the 6 coordinates go uphill at step t
    masked = run_like_the_runner(lambda p: SignMask(p, 0.05, ks), every, 13)
    assert masked == {s: min(ks[s - 1], 6) / 6 for s in range(every, 13, every)}


def test_sign_disagreement_of_a_hand_made_pair() -> None:
    update = {"a": torch.tensor([1.0, -1.0, 2.0, 0.0, -3.0]), "b": torch.tensor([[0.5]])}
    grads = {"a": torch.tensor([1.0, 1.0, -1.0, 5.0, 0.0]), "b": torch.tensor([[2.0]])}
    # Compared: a[0] (uphill), a[1], a[2] (downhill), b (uphill); a[3] and a[4] have a zero.
    assert ostate.sign_disagreement(update, grads) == pytest.approx(2 / 4)
