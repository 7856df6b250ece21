"""The cheap diagnostics (eval, norms, spectra) against values computed by hand."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from descentlab.engine.params import defaults
from descentlab.engine.plugin import Diagnostic, SetupContext, StepContext, Task
from descentlab.engine.registry import load_failures, plugins

DIAGNOSTICS = plugins("diagnostics")


def _task(model: nn.Module, **fields: Any) -> Task:
    probe = (torch.zeros(1, 1), torch.zeros(1))
    return Task(
        model=model, criterion=fields.pop("criterion", F.cross_entropy), probe=probe, **fields
    )


def _create(plugin_id: str) -> Diagnostic:
    plugin = DIAGNOSTICS[plugin_id]
    return plugin.create(defaults(plugin.params))


def _setup(model: nn.Module, task: Task) -> SetupContext:
    named = dict(model.named_parameters())
    return SetupContext(model, named, task, torch.optim.SGD(model.parameters(), lr=0.1))


def _step(
    model: nn.Module,
    task: Task,
    *,
    grads: dict[str, Tensor] | None = None,
    update: dict[str, Tensor] | None = None,
    init: dict[str, Tensor] | None = None,
    step: int = 1,
) -> StepContext:
    named = dict(model.named_parameters())
    return StepContext(
        step=step,
        model=model,
        named_params=named,
        grads=grads if grads is not None else {},
        update=update,
        init_params=init if init is not None else {n: p.detach().clone() for n, p in named.items()},
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        lr=0.1,
        loss=0.0,
        task=task,
    )


def _norm(tensors: list[Tensor]) -> float:
    """‖·‖₂ of all entries together, computed by numpy."""
    return float(np.linalg.norm(np.concatenate([t.detach().numpy().ravel() for t in tensors])))


def test_registry_lists_the_cheap_diagnostics() -> None:
    for plugin_id, every in (("eval", 50), ("norms", 1), ("spectra", 50)):
        plugin = DIAGNOSTICS[plugin_id]
        assert (plugin.cost, plugin.every) == ("cheap", every)
        assert not [f for f in load_failures("diagnostics") if f.startswith(f"{plugin_id}:")]


# --------------------------------------------------------------------------------------------
# norms
# --------------------------------------------------------------------------------------------


class _Net(nn.Module):
    """Two layers and a parameter named "total", which must not collide with the totals."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 4, dtype=torch.float64)
        self.total = nn.Parameter(torch.zeros(5, dtype=torch.float64))


def _random_like(named: dict[str, Tensor], seed: int) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {n: torch.randn(p.shape, generator=generator, dtype=p.dtype) for n, p in named.items()}


def test_norms_match_hand_computed_norms() -> None:
    model = _Net()
    named = dict(model.named_parameters())
    with torch.no_grad():
        for p, value in zip(named.values(), _random_like(named, 0).values(), strict=True):
            p.copy_(value)
    grads, update = _random_like(named, 1), _random_like(named, 2)
    task = _task(model)
    diagnostic = _create("norms")
    declared = {o.name: o for o in diagnostic.outputs(_setup(model, task))}
    assert diagnostic.needs_update

    records = diagnostic.compute(_step(model, task, grads=grads, update=update))

    assert set(records) == set(declared)
    for quantity, tensors in (("grad", grads), ("update", update), ("weight", named)):
        for name, tensor in tensors.items():
            series = f"norms/{quantity}/{name}"
            assert records[series] == pytest.approx(_norm([tensor]), rel=1e-12)
            assert (declared[series].kind, declared[series].layer) == ("per_layer", name)
        total = f"norms/{quantity}_total"
        assert records[total] == pytest.approx(_norm(list(tensors.values())), rel=1e-12)
        assert declared[total].kind == "scalar"
    assert records["norms/grad/total"] != records["norms/grad_total"]
    assert records["norms/distance_from_init"] == 0.0


def test_norms_omit_the_update_at_step_0_and_missing_gradients() -> None:
    model = _Net()
    grads = {"layer.weight": torch.ones(4, 3, dtype=torch.float64)}
    records = _create("norms").compute(_step(model, _task(model), grads=grads, step=0))
    assert not [name for name in records if name.startswith("norms/update")]
    assert [name for name in records if name.startswith("norms/grad")] == [
        "norms/grad/layer.weight",
        "norms/grad_total",
    ]
    assert records["norms/grad_total"] == pytest.approx(math.sqrt(12), rel=1e-15)


def test_distance_from_init_is_exact() -> None:
    model = _Net()
    with torch.no_grad():
        model.layer.weight.copy_(torch.arange(12.0).reshape(4, 3))
        model.layer.bias.fill_(-1.0)
    init = {n: p.detach().clone() for n, p in model.named_parameters()}
    init["layer.weight"][2, 1] -= 3.0
    init["total"][4] += 4.0
    records = _create("norms").compute(_step(model, _task(model), init=init))
    assert records["norms/distance_from_init"] == 5.0


# --------------------------------------------------------------------------------------------
# spectra
# --------------------------------------------------------------------------------------------


class _Layers(nn.Module):
    def __init__(self, **params: Tensor) -> None:
        super().__init__()
        for name, value in params.items():
            self.register_parameter(name, nn.Parameter(value))


def _spectra(**params: Tensor) -> tuple[dict[str, Any], dict[str, Any]]:
    """(declared outputs by name, records) of the spectra diagnostic on these parameters."""
    model = _Layers(**params)
    task = _task(model)
    diagnostic = _create("spectra")
    declared = {o.name: o for o in diagnostic.outputs(_setup(model, task))}
    return declared, diagnostic.compute(_step(model, task))


def test_spectra_match_numpy_svd() -> None:
    generator = torch.Generator().manual_seed(0)
    matrix = torch.randn(7, 4, generator=generator, dtype=torch.float64)
    kernel = torch.randn(5, 2, 3, 3, generator=generator, dtype=torch.float64)
    bias = torch.randn(5, generator=generator, dtype=torch.float64)
    declared, records = _spectra(matrix=matrix, kernel=kernel, bias=bias)

    assert not [name for name in declared if name.endswith("/bias")]
    for name, as_matrix in (("matrix", matrix.numpy()), ("kernel", kernel.numpy().reshape(5, 18))):
        expected = np.linalg.svd(as_matrix, compute_uv=False)
        output = declared[f"spectra/weights/{name}"]
        assert (output.kind, output.layer, output.shape) == ("vector", name, expected.shape)
        np.testing.assert_allclose(records[f"spectra/weights/{name}"], expected, rtol=1e-12)
        assert records[f"spectra/spectral_norm/{name}"] == pytest.approx(expected[0], rel=1e-12)
        stable_rank = (expected**2).sum() / expected[0] ** 2
        assert records[f"spectra/stable_rank/{name}"] == pytest.approx(stable_rank, rel=1e-12)
        assert declared[f"spectra/stable_rank/{name}"].layer == name


def test_stable_rank_of_rank_one_orthogonal_and_zero_matrices() -> None:
    generator = torch.Generator().manual_seed(1)
    u = torch.randn(6, 1, generator=generator, dtype=torch.float64)
    v = torch.randn(1, 9, generator=generator, dtype=torch.float64)
    orthogonal, _ = torch.linalg.qr(torch.randn(5, 5, generator=generator, dtype=torch.float64))
    _, records = _spectra(
        rank_one=u @ v, orthogonal=orthogonal, zero=torch.zeros(3, 4, dtype=torch.float64)
    )

    assert records["spectra/stable_rank/rank_one"] == pytest.approx(1.0, rel=1e-12)
    assert records["spectra/spectral_norm/rank_one"] == pytest.approx(
        float(u.norm() * v.norm()), rel=1e-12
    )
    assert records["spectra/stable_rank/orthogonal"] == pytest.approx(5.0, rel=1e-12)
    np.testing.assert_allclose(records["spectra/weights/orthogonal"], np.ones(5), rtol=1e-12)
    assert records["spectra/stable_rank/zero"] == 0.0


# --------------------------------------------------------------------------------------------
# eval
# --------------------------------------------------------------------------------------------


def _classifier() -> nn.Module:
    """Three classes from 2-D points, with a dropout layer that eval mode must switch off."""
    model = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        model[0].bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    return model


def _points(n: int, seed: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return inputs, torch.randint(0, 3, (n,), generator=generator)


def _manual(model: nn.Module, inputs: Tensor, targets: Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy by numpy, from the logits of the linear layer alone."""
    logits = model[0](inputs).detach().numpy()
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    picked = log_probs[np.arange(len(targets)), targets.numpy()]
    accuracy = np.mean(logits.argmax(axis=1) == targets.numpy())
    return float(-picked.mean()), float(accuracy)


def test_eval_matches_a_manual_computation_in_chunks() -> None:
    model = _classifier()
    held_out, train = _points(10, 0), _points(7, 1)
    task = _task(model, train=train, held_out=held_out, classification=True)
    plugin = DIAGNOSTICS["eval"]
    diagnostic = plugin.create({**defaults(plugin.params), "chunk_size": 3})  # uneven chunks
    declared = [o.name for o in diagnostic.outputs(_setup(model, task))]

    records = diagnostic.compute(_step(model, task))

    assert declared == ["eval/loss", "eval/accuracy", "eval/train_loss", "eval/train_accuracy"]
    assert set(records) == set(declared)
    for (inputs, targets), prefix in ((held_out, "eval/"), (train, "eval/train_")):
        loss, accuracy = _manual(model, inputs, targets)
        assert records[prefix + "loss"] == pytest.approx(loss, rel=1e-12)
        assert records[prefix + "accuracy"] == accuracy
    assert 0.0 < records["eval/accuracy"] < 1.0  # the check above is not vacuous
    assert model.training  # training mode restored


def test_eval_of_a_regression_task_has_no_accuracy() -> None:
    model = nn.Linear(2, 1, dtype=torch.float64)
    generator = torch.Generator().manual_seed(2)
    inputs = torch.randn(9, 2, generator=generator, dtype=torch.float64)
    targets = torch.randn(9, 1, generator=generator, dtype=torch.float64)
    task = _task(model, criterion=F.mse_loss, held_out=(inputs, targets))
    diagnostic = _create("eval")
    assert [o.name for o in diagnostic.outputs(_setup(model, task))] == ["eval/loss"]
    records = diagnostic.compute(_step(model, task))
    expected = float(((model(inputs) - targets) ** 2).mean().detach())
    assert records == {"eval/loss": pytest.approx(expected, rel=1e-12)}


def test_eval_of_a_task_without_data_records_nothing() -> None:
    point = _Layers(point=torch.tensor([1.0, 2.0]))
    task = _task(point)
    diagnostic = _create("eval")
    assert diagnostic.outputs(_setup(point, task)) == []
    assert diagnostic.compute(_step(point, task)) == {}
