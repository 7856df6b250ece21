"""Spectral statistics (engine/spectral.py) and the spectra, update-spectra, activations and
attention diagnostics, against random-matrix theory, known distributions and hand computations."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from descentlab.engine import spectral
from descentlab.engine.params import defaults
from descentlab.engine.plugin import Diagnostic, DiagnosticPlugin, SetupContext, StepContext, Task
from descentlab.engine.registry import plugins
from descentlab.plugins.diagnostics import activations, attention, spectra, update_spectra

F64 = torch.float64


def _gaussian(rows: int, cols: int, seed: int = 0) -> Tensor:
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _orthonormal(rows: int, cols: int, seed: int) -> Tensor:
    return torch.linalg.qr(_gaussian(rows, cols, seed))[0]


def _task(model: nn.Module, inputs: Tensor, **fields: Any) -> Task:
    return Task(
        model=model,
        criterion=F.cross_entropy,
        probe=(inputs, torch.zeros(inputs.shape[0], dtype=torch.long)),
        **fields,
    )


def _contexts(
    task: Task, update: dict[str, Tensor] | None = None, step: int = 1
) -> tuple[SetupContext, StepContext]:
    model = task.model
    named = dict(model.named_parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    setup = SetupContext(model, named, task, optimizer)
    step_ctx = StepContext(
        step=step,
        model=model,
        named_params=named,
        grads={},
        update=update,
        init_params={n: p.detach().clone() for n, p in named.items()},
        optimizer=optimizer,
        lr=0.1,
        loss=0.0,
        task=task,
    )
    return setup, step_ctx


def _run(
    plugin: DiagnosticPlugin, task: Task, update: dict[str, Tensor] | None = None, step: int = 1
) -> tuple[Diagnostic, dict[str, Any], dict[str, Any]]:
    """(instance, declared outputs by name, records); checks records match their declarations."""
    diagnostic = plugin.create(defaults(plugin.params))
    setup, step_ctx = _contexts(task, update, step)
    declared = {output.name: output for output in diagnostic.outputs(setup)}
    records = diagnostic.compute(step_ctx)
    assert set(records) <= set(declared)
    for name, value in records.items():
        assert np.shape(value) == declared[name].shape, name
    return diagnostic, declared, records


def _char_transformer(**overrides: Any) -> Task:
    plugin = plugins("tasks")["char-transformer"]
    params = defaults(plugin.params)
    params.update(layers=2, heads=2, width=16, context=8, chars=10_000, batch_size=4)
    params.update(overrides)
    return plugin.build(params, 0, torch.device("cpu"), F64)


# --------------------------------------------------------------------------------------------
# engine/spectral.py
# --------------------------------------------------------------------------------------------


def test_marchenko_pastur_edge_formula() -> None:
    assert spectral.marchenko_pastur_edge(2.0, 100, 400) == pytest.approx(2.0 * 1.5**2)
    assert spectral.marchenko_pastur_edge(1.0, 400, 100) == pytest.approx(9.0)


@pytest.mark.parametrize("shape", [(400, 1000), (1000, 400)])
def test_gaussian_matrix_has_no_outliers_and_fills_the_bulk(shape: tuple[int, int]) -> None:
    matrix = 0.7 * _gaussian(*shape)
    eigenvalues = spectral.covariance_eigenvalues(matrix)
    bulk = spectral.matrix_marchenko_pastur(matrix)
    assert bulk.sigma2 == pytest.approx(0.49, rel=0.01)
    assert bulk.outliers / eigenvalues.numel() < 0.01
    assert float(eigenvalues[0]) == pytest.approx(bulk.edge, rel=0.03)


def test_planted_rank_two_spike_gives_two_outliers() -> None:
    rows, cols = 400, 1000
    noise = _gaussian(rows, cols)
    # Signal-plus-noise W/√cols = X/√cols + Σ θ_k u_k v_kᵀ; the BBP threshold is θ = q^(1/4) ≈ 0.80.
    spike = _orthonormal(rows, 2, 1) @ torch.diag(torch.tensor([3.0, 2.0], dtype=F64))
    matrix = noise + math.sqrt(cols) * spike @ _orthonormal(cols, 2, 2).T
    bulk = spectral.matrix_marchenko_pastur(matrix)
    assert bulk.outliers == 2
    assert spectral.matrix_marchenko_pastur(noise).outliers == 0


def test_effective_and_stable_rank() -> None:
    for r in (1, 3, 7):
        singular_values = torch.cat([torch.full((r,), 2.5, dtype=F64), torch.zeros(10 - r)])
        matrix = _orthonormal(12, 10, 0) @ torch.diag(singular_values) @ _orthonormal(10, 10, 1).T
        computed = torch.linalg.svdvals(matrix)
        assert spectral.effective_rank(computed) == pytest.approx(r, rel=1e-9)
        assert spectral.stable_rank(computed) == pytest.approx(r, rel=1e-9)
    rank_one = torch.outer(torch.arange(1.0, 6.0, dtype=F64), torch.ones(4, dtype=F64))
    assert spectral.stable_rank(torch.linalg.svdvals(rank_one)) == pytest.approx(1.0, rel=1e-12)
    assert spectral.effective_rank(torch.zeros(3)) == 0.0
    assert spectral.stable_rank(torch.zeros(3)) == 0.0
    # exp of the entropy of σ/Σσ, by hand
    s = np.array([4.0, 2.0, 1.0, 1.0])
    p = s / s.sum()
    assert spectral.effective_rank(s) == pytest.approx(math.exp(-(p * np.log(p)).sum()))


@pytest.mark.parametrize("alpha", [2.5, 4.0])
def test_power_law_fit_recovers_pareto_exponent(alpha: float) -> None:
    rng = np.random.default_rng(7)
    x_min = 0.3
    samples = x_min * (1.0 - rng.random(5000)) ** (-1.0 / (alpha - 1.0))
    known = spectral.power_law_fit(samples, x_min=x_min)
    assert known.alpha == pytest.approx(alpha, abs=0.1)
    assert known.n_tail == 5000
    fitted = spectral.power_law_fit(samples)
    assert fitted.alpha == pytest.approx(alpha, abs=0.1)
    assert x_min <= fitted.x_min < 2 * x_min
    assert fitted.ks < 0.03
    assert fitted.sigma == pytest.approx((fitted.alpha - 1) / math.sqrt(fitted.n_tail))
    # Contaminating the body below x_min leaves the tail fit alone.
    body = rng.uniform(0.01, x_min, 2000)
    assert spectral.power_law_fit(np.r_[samples, body]).alpha == pytest.approx(alpha, abs=0.1)


def test_power_law_fit_needs_enough_points() -> None:
    assert math.isnan(spectral.power_law_fit(np.arange(1.0, 6.0)).alpha)
    assert math.isnan(spectral.power_law_fit(np.zeros(50)).alpha)


# --------------------------------------------------------------------------------------------
# spectra (new outputs)
# --------------------------------------------------------------------------------------------


def test_spectra_new_outputs_match_hand_computation() -> None:
    model = nn.Sequential(nn.Linear(60, 40), nn.Linear(40, 3), nn.Conv2d(3, 8, 3))
    with torch.no_grad():
        model[0].weight.copy_(_gaussian(40, 60, 3))
        model[0].weight[:, :5] += 4.0  # a planted low-rank block
    model = model.double()
    task = _task(model, torch.zeros(1, 60))
    _, declared, records = _run(spectra.PLUGIN, task)
    for name, param in model.named_parameters():
        if param.ndim < 2:
            assert f"spectra/alpha/{name}" not in declared
            continue
        w = param.detach().reshape(param.shape[0], -1).numpy()
        rows, cols = w.shape
        s = np.linalg.svd(w, compute_uv=False)
        p = s / s.sum()
        eigenvalues = s**2 / cols
        edge = np.mean(w**2) * (1 + math.sqrt(rows / cols)) ** 2
        assert records[f"spectra/effective_rank/{name}"] == pytest.approx(
            math.exp(-(p * np.log(p)).sum()), rel=1e-9
        )
        assert records[f"spectra/mp_edge/{name}"] == pytest.approx(edge, rel=1e-12)
        assert records[f"spectra/mp_outliers/{name}"] == (eigenvalues > edge).sum()
        expected_alpha = spectral.power_law_fit(eigenvalues).alpha
        np.testing.assert_allclose(records[f"spectra/alpha/{name}"], expected_alpha, rtol=1e-9)
        np.testing.assert_allclose(records[f"spectra/weights/{name}"], s, rtol=1e-12)
        for quantity in ("effective_rank", "mp_edge", "mp_outliers", "alpha"):
            output = declared[f"spectra/{quantity}/{name}"]
            assert (output.kind, output.layer, output.shape) == ("per_layer", name, ())
    assert records["spectra/mp_outliers/0.weight"] >= 1  # the planted block
    assert math.isnan(records["spectra/alpha/1.weight"])  # 3 eigenvalues: no fit


# --------------------------------------------------------------------------------------------
# update-spectra
# --------------------------------------------------------------------------------------------


def test_update_spectra_orthogonality() -> None:
    model = nn.Sequential(nn.Linear(16, 32), nn.Conv2d(4, 6, 2)).double()
    task = _task(model, torch.zeros(1, 16))
    orthogonal = {
        "0.weight": 0.01 * _orthonormal(32, 16, 0),
        "1.weight": 3.0 * _orthonormal(16, 6, 1).T.reshape(6, 4, 2, 2),
        "0.bias": torch.ones(32, dtype=F64),
    }
    _, declared, records = _run(update_spectra.PLUGIN, task, orthogonal)
    assert declared["update_spectra/singular_values/0.weight"].shape == (16,)
    assert declared["update_spectra/singular_values/1.weight"].shape == (6,)
    assert not any("0.bias" in name for name in declared)
    for name in ("0.weight", "1.weight"):
        assert records[f"update_spectra/orthogonality/{name}"] == pytest.approx(0.0, abs=1e-12)
        matrix = orthogonal[name].reshape(orthogonal[name].shape[0], -1).numpy()
        s = np.linalg.svd(matrix, compute_uv=False)
        np.testing.assert_allclose(records[f"update_spectra/singular_values/{name}"], s, rtol=1e-12)
        assert records[f"update_spectra/stable_rank/{name}"] == pytest.approx(s.size)
        assert records[f"update_spectra/spectral_norm/{name}"] == pytest.approx(s[0])

    gaussian = {
        "0.weight": _gaussian(32, 16, 5),
        "1.weight": _gaussian(6, 16, 6).reshape(6, 4, 2, 2),
    }
    _, _, records = _run(update_spectra.PLUGIN, task, gaussian)
    for name, update in gaussian.items():
        s = np.linalg.svd(update.reshape(update.shape[0], -1).numpy(), compute_uv=False)
        expected = np.linalg.norm(s / s[0] - 1) / math.sqrt(s.size)
        value = records[f"update_spectra/orthogonality/{name}"]
        assert value == pytest.approx(expected, rel=1e-12)
        assert 0.1 < value < 1.0
        # the polar-factor form of the same number
        u, _, vt = np.linalg.svd(update.reshape(update.shape[0], -1).numpy(), full_matrices=False)
        polar_gap = np.linalg.norm(update.reshape(update.shape[0], -1).numpy() / s[0] - u @ vt)
        assert value == pytest.approx(polar_gap / math.sqrt(s.size), rel=1e-9)


def test_update_spectra_records_nothing_without_an_update() -> None:
    model = nn.Linear(4, 3).double()
    _, declared, records = _run(update_spectra.PLUGIN, _task(model, torch.zeros(1, 4)), None, 0)
    assert declared and records == {}
    assert update_spectra.PLUGIN.create({}).needs_update
    zero = {"weight": torch.zeros(3, 4, dtype=F64)}
    _, _, records = _run(update_spectra.PLUGIN, _task(model, torch.zeros(1, 4)), zero)
    assert math.isnan(records["update_spectra/orthogonality/weight"])
    assert records["update_spectra/stable_rank/weight"] == 0.0


# --------------------------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------------------------


def _covariance_eigenvalues(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=0)
    return np.clip(np.linalg.eigvalsh(centred.T @ centred / x.shape[0])[::-1], 0, None)


def test_activations_match_hand_computed_features() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 300), nn.Tanh(), nn.Linear(300, 20), nn.ReLU())
    model.append(nn.Linear(20, 4))
    model = model.double()
    inputs = _gaussian(500, 10, 1)
    task = _task(model, inputs, roles={"4.weight": "head"})
    diagnostic, declared, records = _run(activations.PLUGIN, task)
    with torch.no_grad():
        hidden = torch.tanh(model[0](inputs))
        penultimate = torch.relu(model[2](hidden))
    by_hand = {"0": inputs.numpy(), "2": hidden.numpy(), "4": penultimate.numpy()}
    assert declared["activations/covariance_spectrum/2"].shape == (256,)  # capped from 300
    for layer, x in by_hand.items():
        eigenvalues = _covariance_eigenvalues(x)
        recorded = records[f"activations/covariance_spectrum/{layer}"]
        np.testing.assert_allclose(recorded, eigenvalues[:256], rtol=1e-8, atol=1e-12)
        assert declared[f"activations/covariance_spectrum/{layer}"].layer == layer
        singular = np.sqrt(eigenvalues)
        p = singular[singular > 0] / singular.sum()
        assert records[f"activations/entropy/{layer}"] == pytest.approx(
            math.exp(-(p * np.log(p)).sum()), rel=1e-8
        )
        samples, width = x.shape
        edge = eigenvalues.sum() / width * (1 + math.sqrt(width / samples)) ** 2
        assert records[f"activations/mp_outliers/{layer}"] == (eigenvalues > edge).sum()
    assert records["activations/penultimate_effective_rank"] == records["activations/entropy/4"]
    centred = by_hand["4"] - by_hand["4"].mean(axis=0)
    nuclear = np.linalg.svd(centred, compute_uv=False).sum() / math.sqrt(centred.shape[0])
    assert records["activations/penultimate_nuclear_norm"] == pytest.approx(nuclear, rel=1e-8)
    assert all(not m._forward_pre_hooks for m in model.modules())  # hooks removed
    assert diagnostic.head == "4"


def test_activations_of_a_convolution_use_channels() -> None:
    model = nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 4 * 4, 2))
    model = model.double()
    inputs = _gaussian(40, 3 * 36, 2).reshape(40, 3, 6, 6)
    _, declared, records = _run(activations.PLUGIN, _task(model, inputs))
    assert declared["activations/covariance_spectrum/0"].shape == (3,)
    x = inputs.permute(0, 2, 3, 1).reshape(-1, 3).numpy()
    np.testing.assert_allclose(
        records["activations/covariance_spectrum/0"], _covariance_eigenvalues(x), rtol=1e-10
    )
    assert "activations/penultimate_nuclear_norm" in records  # the last Linear by default


def test_activations_on_real_tasks() -> None:
    task_plugin = plugins("tasks")["digits-mlp"]
    task = task_plugin.build(defaults(task_plugin.params), 0, torch.device("cpu"), F64)
    _, declared, records = _run(activations.PLUGIN, task)
    assert declared["activations/covariance_spectrum/0"].shape == (64,)
    assert len(records) == len(declared) == 3 * 3 + 2
    assert 1.0 <= records["activations/penultimate_effective_rank"] <= 128
    _, declared, records = _run(activations.PLUGIN, _char_transformer())
    assert declared["activations/covariance_spectrum/blocks.0.mlp.2"].shape == (64,)
    assert records.keys() == declared.keys()
    data_free = plugins("tasks")["quadratic"]
    task = data_free.build(defaults(data_free.params), 0, torch.device("cpu"), F64)
    assert _run(activations.PLUGIN, task)[1] == {}


# --------------------------------------------------------------------------------------------
# attention
# --------------------------------------------------------------------------------------------


def test_attention_entropy_and_logit_norm_by_hand() -> None:
    task = _char_transformer()
    model = task.model
    with torch.no_grad():  # sharper attention than the 0.02-scale initialisation gives
        for block in model.blocks:
            block.attention.qkv.weight.mul_(40.0)
    _, declared, records = _run(attention.PLUGIN, task)
    assert set(declared) == {
        f"attention/{q}/blocks.{i}.attention" for q in ("entropy", "logit_norm") for i in (0, 1)
    }
    tokens = task.probe[0]
    length = tokens.shape[1]
    bound = np.mean(np.log(np.arange(1, length + 1)))
    for i, block in enumerate(model.blocks):
        maps = block.attention.last_attention.numpy()  # left by the diagnostic's own pass
        rows = -np.sum(np.where(maps > 0, maps * np.log(np.where(maps > 0, maps, 1)), 0), axis=-1)
        entropy = records[f"attention/entropy/blocks.{i}.attention"]
        np.testing.assert_allclose(entropy, rows.mean(axis=(0, 2)), rtol=1e-10)
        assert np.all(rows >= -1e-12)
        assert np.all(rows <= np.log(np.arange(1, length + 1)) + 1e-12)  # causal: log(i + 1)
        np.testing.assert_allclose(rows[..., 0], 0.0, atol=1e-12)  # the first query sees itself
        assert np.all(entropy <= bound) and np.all(entropy < bound - 0.05)
        assert declared[f"attention/entropy/blocks.{i}.attention"].shape == (2,)

    # Logits of block 0 from the weights by hand: LayerNorm of the embeddings, q/k projections.
    with torch.no_grad():
        x = model.token_embedding(tokens) + model.position_embedding(torch.arange(length))
        x = model.blocks[0].ln1(x)
        w, b = model.blocks[0].attention.qkv.weight, model.blocks[0].attention.qkv.bias
        width, heads = x.shape[-1], 2
        q = (x @ w[:width].T + b[:width]).numpy()
        k = (x @ w[width : 2 * width].T + b[width : 2 * width]).numpy()
    d = width // heads
    expected = np.zeros(heads)
    for h in range(heads):
        qh, kh = q[..., h * d : (h + 1) * d], k[..., h * d : (h + 1) * d]
        logits = np.tril(qh @ kh.transpose(0, 2, 1) / math.sqrt(d))
        expected[h] = np.mean([np.linalg.norm(s, 2) for s in logits])
    np.testing.assert_allclose(
        records["attention/logit_norm/blocks.0.attention"], expected, rtol=1e-9
    )
    assert all(not m._forward_hooks for m in model.modules())  # hooks removed


def test_attention_without_attention_modules() -> None:
    task_plugin = plugins("tasks")["digits-mlp"]
    task = task_plugin.build(defaults(task_plugin.params), 0, torch.device("cpu"), F64)
    _, declared, records = _run(attention.PLUGIN, task)
    assert declared == {} and records == {}


def test_attention_row_entropy_is_log_of_uniform_width() -> None:
    uniform = torch.tril(torch.ones(5, 5, dtype=F64))
    uniform = uniform / uniform.sum(dim=-1, keepdim=True)
    np.testing.assert_allclose(attention.row_entropy(uniform), np.log(np.arange(1, 6)), rtol=1e-12)


@pytest.mark.parametrize("shape", [(20, 50), (50, 20)])
def test_covariance_spectrum_with_fewer_samples_than_features(shape: tuple[int, int]) -> None:
    x = _gaussian(*shape, seed=4) + 3.0
    recorded = activations.covariance_spectrum(x).numpy()
    assert recorded.shape == (shape[1],)
    np.testing.assert_allclose(recorded, _covariance_eigenvalues(x.numpy()), atol=1e-10)


def test_activations_on_digits_cnn() -> None:
    task_plugin = plugins("tasks")["digits-cnn"]
    task = task_plugin.build(defaults(task_plugin.params), 0, torch.device("cpu"), F64)
    _, declared, records = _run(activations.PLUGIN, task)
    assert declared["activations/covariance_spectrum/1"].shape == (1,)  # one input channel
    assert declared["activations/covariance_spectrum/6"].shape == (256,)  # 2048 features, capped
    assert records["activations/penultimate_effective_rank"] <= 256  # n = 256 probe images


NEW_PLUGINS = {
    "update-spectra": (update_spectra.PLUGIN, 10),
    "activations": (activations.PLUGIN, 50),
    "attention": (attention.PLUGIN, 50),
}


@pytest.mark.parametrize("plugin_id", list(NEW_PLUGINS))
def test_descriptors(plugin_id: str) -> None:
    plugin, every = NEW_PLUGINS[plugin_id]
    assert (plugin.id, plugin.cost, plugin.every) == (plugin_id, "cheap", every)
    assert plugin.summary and plugin.reference
    registered = plugins("diagnostics").get(plugin_id)
    if registered is None:
        pytest.skip(f"{plugin_id} has no entry point in this install")
    assert registered is plugin
