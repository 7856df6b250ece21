"""The built-in tasks: discovery, seeding, dtypes, roles, and each task's ground truth."""

from __future__ import annotations

import itertools
from typing import Any, get_args

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch.func import functional_call

from descentlab.engine.params import defaults
from descentlab.engine.plugin import Role, Task
from descentlab.engine.registry import load_failures, plugins
from descentlab.plugins.tasks.char_transformer import CausalSelfAttention, stdlib_text
from descentlab.plugins.tasks.function2d import FUNCTIONS, surface

CPU = torch.device("cpu")
TASK_IDS = (
    "char-transformer",
    "digits-cnn",
    "digits-mlp",
    "function2d",
    "gaussian-mixture",
    "matrix-sensing",
    "online-convex",
    "quadratic",
    "teacher-student",
)
DTYPES = (torch.float32, torch.float64)


def build(task_id: str, seed: int = 0, dtype: torch.dtype = torch.float64, **params: Any) -> Task:
    plugin = plugins("tasks")[task_id]
    return plugin.build(defaults(plugin.params) | params, seed, CPU, dtype)


def first_batch(task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    return next(task.batches(torch.Generator().manual_seed(0)))


def probe_loss_and_grads(task: Task) -> tuple[torch.Tensor, list[torch.Tensor]]:
    loss = task.loss(task.model, task.probe)
    return loss, list(torch.autograd.grad(loss, list(task.model.parameters())))


# --------------------------------------------------------------------------------------------
# Every task
# --------------------------------------------------------------------------------------------


# Tasks that read files the user names (a data root, a text file); see test_vision_tasks.py.
FILE_TASK_IDS = (
    "cifar10-cnn",
    "cifar10-resnet18",
    "cifar100-resnet18",
    "fashion-mnist-cnn",
    "fashion-mnist-mlp",
    "mnist-cnn",
    "mnist-mlp",
    "text-gpt",
)


def test_registry_finds_every_builtin_task() -> None:
    # plus "python", the task from the user's own file (tests/test_python_task.py)
    assert tuple(plugins("tasks")) == tuple(sorted((*TASK_IDS, *FILE_TASK_IDS, "python")))
    assert load_failures("tasks") == ()
    for plugin in plugins("tasks").values():
        assert plugin.title and plugin.summary
        assert all(p.help for p in plugin.params)
        # the python task's batch size is its factory's, not a parameter
        has_data = plugin.id not in ("function2d", "quadratic", "online-convex", "python")
        assert ("batch_size" in {p.name for p in plugin.params}) == has_data


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("task_id", TASK_IDS)
def test_builds_with_defaults_on_device_and_dtype(task_id: str, dtype: torch.dtype) -> None:
    task = build(task_id, dtype=dtype)
    named = dict(task.model.named_parameters())
    assert set(task.roles) == set(named)
    assert set(task.roles.values()) <= set(get_args(Role))
    tensors = [*named.values(), *task.model.buffers(), *task.probe, *first_batch(task)]
    tensors += [*(task.train or ()), *(task.held_out or ())]
    for tensor in tensors:
        assert tensor.device == CPU
        assert not tensor.is_floating_point() or tensor.dtype == dtype
    loss = task.loss(task.model, first_batch(task))
    assert loss.shape == () and loss.dtype == dtype and torch.isfinite(loss)
    assert task.batch_size == defaults(plugins("tasks")[task_id].params).get("batch_size", 0)


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_seeding_fixes_weights_and_data_without_touching_global_rng(task_id: str) -> None:
    torch_before, numpy_before = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    a, b, other = build(task_id, seed=0), build(task_id, seed=0), build(task_id, seed=1)
    assert torch.equal(torch.random.get_rng_state(), torch_before)
    assert np.array_equal(np.random.get_state()[1], numpy_before)
    state_a, state_b = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert all(torch.equal(x, y) for x, y in zip(first_batch(a), first_batch(b), strict=True))
    same_as_other = all(torch.equal(v, other.model.state_dict()[k]) for k, v in state_a.items())
    # the 2-D start point and the online problem's x₀ are fixed by the problem, not the seed
    assert same_as_other == (task_id in ("function2d", "online-convex"))


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_float32_weights_are_the_float64_weights_rounded(task_id: str) -> None:
    single, double = build(task_id, dtype=torch.float32), build(task_id, dtype=torch.float64)
    double_state = double.model.state_dict()
    for name, value in single.model.state_dict().items():
        assert torch.equal(value, double_state[name].to(value.dtype)), name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("task_id", TASK_IDS)
def test_a_small_gradient_step_lowers_the_probe_loss(task_id: str, dtype: torch.dtype) -> None:
    task = build(task_id, dtype=dtype)
    loss, grads = probe_loss_and_grads(task)
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    with torch.no_grad():
        for param, grad in zip(task.model.parameters(), grads, strict=True):
            param -= 1e-3 * grad / norm
        after = task.loss(task.model, task.probe)
    assert after < loss


# --------------------------------------------------------------------------------------------
# 2-D functions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function2d_minima_and_default_start(name: str) -> None:
    function = FUNCTIONS[name]
    task = build("function2d", function=name)
    assert task.model.point.tolist() == list(function.start)
    assert task.train is None and task.sample_batch is None
    assert first_batch(task) is task.probe
    for minimum in function.minima:
        with torch.no_grad():
            task.model.point.copy_(torch.tensor(minimum, dtype=torch.float64))
        value, (grad,) = probe_loss_and_grads(task)
        assert value.item() == pytest.approx(function.minimum_value, abs=1e-12)
        assert grad.abs().max() < 1e-6
    if not function.minima:  # the saddle: a critical point with curvature ±2, no minimum
        hessian = torch.func.hessian(lambda p: task.model.objective(p[0], p[1], {}))
        assert torch.equal(
            hessian(torch.zeros(2, dtype=torch.float64)),
            torch.diag(torch.tensor([2.0, -2.0], dtype=torch.float64)),
        )


def test_function2d_honours_start_condition_and_records_its_path() -> None:
    task = build("function2d", function="quadratic2d", start=[0.25, -2.0], condition=10.0)
    assert task.model.point.tolist() == [0.25, -2.0]
    assert task.loss(task.model, task.probe).item() == 0.5 * (0.25**2 + 10 * 4.0)
    trajectory = task.step_series(task.model)["trajectory/params"]
    assert trajectory.dtype == np.float64 and trajectory.tolist() == [0.25, -2.0]


def test_surface_matches_the_loss_on_a_grid() -> None:
    xs, ys = np.linspace(-2, 2, 5), np.linspace(-1, 3, 3)
    grid = surface("rosenbrock", {}, xs, ys)
    assert grid.shape == (3, 5)
    assert grid[2, 3] == (1 - xs[3]) ** 2 + 100 * (ys[2] - xs[3] ** 2) ** 2
    task = build("function2d", function="rastrigin", start=[xs[1], ys[0]])
    rastrigin = surface("rastrigin", {}, xs, ys)
    assert rastrigin[0, 1] == pytest.approx(task.loss(task.model, task.probe).item(), abs=1e-12)
    assert surface("quadratic2d", {"condition": 4.0}, [1.0], [1.0]).tolist() == [[2.5]]


# --------------------------------------------------------------------------------------------
# Quadratic
# --------------------------------------------------------------------------------------------


def quadratic_hessian(task: Task) -> torch.Tensor:
    def loss(x: torch.Tensor) -> torch.Tensor:
        return task.criterion(
            functional_call(task.model, {"x": x}, (task.probe[0],)), task.probe[1]
        )

    return torch.func.hessian(loss)(task.model.x.detach())


def test_quadratic_hessian_is_exactly_the_requested_spectrum() -> None:
    eigenvalues = [0.5, 10.0, -2.0, 3.0, 1e-3]
    task = build("quadratic", eigenvalues=eigenvalues)
    hessian = quadratic_hessian(task)
    assert torch.allclose(hessian, task.model.hessian, rtol=0, atol=1e-12)
    expected = torch.tensor(sorted(eigenvalues), dtype=torch.float64)
    assert torch.allclose(torch.linalg.eigvalsh(hessian), expected, rtol=0, atol=1e-10)
    assert task.model.eigenvalues.tolist() == sorted(eigenvalues, reverse=True)


@pytest.mark.parametrize("spacing", ["linear", "log"])
def test_quadratic_generated_spectrum(spacing: str) -> None:
    task = build("quadratic", spectrum=spacing, dim=7, condition=64.0)
    eigenvalues = torch.linalg.eigvalsh(quadratic_hessian(task))
    expected = np.linspace(1, 64, 7) if spacing == "linear" else 2.0 ** np.arange(7)
    assert np.allclose(eigenvalues.numpy(), expected, rtol=0, atol=1e-10)


def test_quadratic_gradient_vanishes_at_the_minimizer() -> None:
    task = build("quadratic")
    loss, (grad,) = probe_loss_and_grads(task)
    assert loss > 0 and grad.abs().max() > 0.1
    with torch.no_grad():
        task.model.x.copy_(task.model.minimizer)
    loss, (grad,) = probe_loss_and_grads(task)
    assert loss.item() == 0.0 and grad.abs().max() < 1e-12


def test_quadratic_noise_is_unbiased_gradient_noise_of_the_requested_size() -> None:
    task = build("quadratic", dim=5, noise_std=0.5)
    _, (exact,) = probe_loss_and_grads(task)
    batches = task.batches(torch.Generator().manual_seed(0))
    grads = torch.stack(
        [
            torch.autograd.grad(task.loss(task.model, next(batches)), task.model.x)[0]
            for _ in range(2000)
        ]
    )
    noise = grads - exact
    assert noise.mean(0).abs().max() < 0.05  # 4.5 standard errors of the mean
    assert noise.std(0).tolist() == pytest.approx([0.5] * 5, rel=0.1)
    assert quadratic_hessian(task).equal(task.model.hessian)  # the probe stays noise-free


# --------------------------------------------------------------------------------------------
# Data tasks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_id", ["digits-mlp", "digits-cnn"])
def test_digits_split(task_id: str) -> None:
    task = build(task_id)
    (x_train, y_train), (x_held, y_held) = task.train, task.held_out
    assert (x_train.shape, x_held.shape) == ((1437, 64), (360, 64))
    pixels, labels = load_digits(return_X_y=True)
    examples = zip(
        torch.cat([x_train, x_held]).tolist(), torch.cat([y_train, y_held]).tolist(), strict=True
    )
    assert sorted(examples) == sorted(zip((pixels / 16).tolist(), labels.tolist(), strict=True))
    assert task.probe[0].shape == (256, 64) and task.model(task.probe[0]).shape == (256, 10)
    assert not torch.equal(build(task_id, seed=1).held_out[1], y_held)


def test_digits_roles() -> None:
    assert build("digits-cnn").roles == {
        "1.weight": "hidden",
        "1.bias": "bias",
        "3.weight": "hidden",
        "3.bias": "bias",
        "6.weight": "head",
        "6.bias": "bias",
    }
    assert build("digits-mlp", hidden=[8]).roles == {
        "0.weight": "hidden",
        "0.bias": "bias",
        "2.weight": "head",
        "2.bias": "bias",
    }


def test_gaussian_mixture_classes_and_split() -> None:
    task = build("gaussian-mixture", clusters=3, dims=5, samples=600)
    (x_train, y_train), (x_held, y_held) = task.train, task.held_out
    assert (x_train.shape, x_held.shape) == ((480, 5), (120, 5))
    assert torch.bincount(torch.cat([y_train, y_held])).tolist() == [200, 200, 200]
    assert task.classification and task.batch_size == 64
    assert task.model(x_held).shape == (120, 3)


def test_teacher_student_targets() -> None:
    clean = build("teacher-student", dim=4, samples=1000)
    targets = torch.cat([clean.train[1], clean.held_out[1]])
    assert targets.shape == (1000, 1) and targets.std(correction=0).item() == pytest.approx(1.0)
    noisy = build("teacher-student", dim=4, samples=1000, noise=0.5)
    assert torch.equal(noisy.train[0], clean.train[0])
    residual = noisy.train[1] - clean.train[1]
    assert residual.std().item() == pytest.approx(0.5, rel=0.1)
    assert [
        p.shape for p in build("teacher-student", student_hidden=[3, 2]).model.parameters()
    ] == [
        (3, 16),
        (3,),
        (2, 3),
        (2,),
        (1, 2),
        (1,),
    ]


def test_matrix_sensing_truth_fits_the_measurements_exactly() -> None:
    task = build("matrix-sensing")
    target = task.model.target
    eigenvalues, vectors = torch.linalg.eigh(target)
    assert (eigenvalues[-3:] > 1e-3).all() and eigenvalues[:-3].abs().max() < 1e-12
    assert task.model.factor.std().item() == pytest.approx(1e-3, rel=0.2)
    assert task.probe[0].shape == (600, 20, 20) and task.held_out[0].shape[1:] == (20, 20)
    with torch.no_grad():
        task.model.factor.copy_(vectors[:, -5:] * eigenvalues[-5:].clamp(min=0).sqrt())
    assert torch.allclose(task.model.matrix(), target, atol=1e-12)
    assert task.loss(task.model, task.probe).item() < 1e-20
    assert task.loss(task.model, task.held_out).item() < 1e-20


def test_matrix_sensing_rejects_a_factor_narrower_than_the_target() -> None:
    with pytest.raises(ValueError, match=r"rank \(2\).*true_rank \(3\)"):
        build("matrix-sensing", rank=2, true_rank=3)


# --------------------------------------------------------------------------------------------
# Character transformer
# --------------------------------------------------------------------------------------------


def test_char_transformer_data() -> None:
    task = build("char-transformer", chars=20_000, context=16, batch_size=8)
    text = stdlib_text(20_000)
    assert len(text) == 20_000
    inputs, targets = first_batch(task)
    assert inputs.shape == targets.shape == (8, 16)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    assert task.probe[0].shape == (64, 16) and task.held_out[0].shape == (256, 16)
    assert task.model(inputs).shape == (8, 16, len(set(text)))
    assert task.loss(task.model, task.probe).item() == pytest.approx(
        np.log(len(set(text))), rel=0.05
    )
    with pytest.raises(ValueError, match=r"width \(30\).*heads \(4\)"):
        build("char-transformer", width=30)


def test_char_transformer_keeps_causal_attention_probabilities() -> None:
    task = build("char-transformer", chars=20_000, context=12)
    inputs_seen: list[torch.Tensor] = []
    modules = [m for m in task.model.modules() if isinstance(m, CausalSelfAttention)]
    assert len(modules) == 2
    modules[1].register_forward_pre_hook(lambda _, args: inputs_seen.append(args[0]))
    batch = first_batch(task)
    task.model(batch[0])
    for module in modules:
        attention = module.last_attention
        assert attention.shape == (32, 4, 12, 12) and not attention.requires_grad
        assert torch.allclose(attention.sum(-1), torch.ones(32, 4, 12, dtype=torch.float64))
        future = torch.ones(12, 12, dtype=torch.bool).triu(1)
        assert (attention[..., future] == 0).all() and (attention[..., ~future] > 0).all()
    scores = modules[1].scores(inputs_seen[0])
    assert torch.allclose(scores.softmax(-1), modules[1].last_attention, rtol=0, atol=1e-15)
    assert torch.isneginf(scores[..., future]).all()


def test_char_transformer_roles() -> None:
    roles = build("char-transformer", chars=20_000, layers=1).roles
    by_role = {r: sorted(n for n, role in roles.items() if role == r) for r in set(roles.values())}
    assert by_role["embedding"] == ["position_embedding.weight", "token_embedding.weight"]
    assert by_role["head"] == ["head.weight"]
    assert by_role["norm"] == ["blocks.0.ln1.weight", "blocks.0.ln2.weight", "ln_final.weight"]
    assert by_role["hidden"] == [
        "blocks.0.attention.proj.weight",
        "blocks.0.attention.qkv.weight",
        "blocks.0.mlp.0.weight",
        "blocks.0.mlp.2.weight",
    ]
    assert all(n.endswith(".bias") for n in by_role["bias"]) and len(by_role["bias"]) == 8
    assert set(itertools.chain(*by_role.values())) == set(roles)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_closed_form_gradients_of_the_2d_functions_equal_autograd(name: str) -> None:
    rng = np.random.default_rng(0)
    points = torch.tensor(rng.uniform(-3, 3, (64, 2)), requires_grad=True)
    params = {"condition": 25.0}
    function = FUNCTIONS[name]
    values = function.objective(points[:, 0], points[:, 1], params)
    (expected,) = torch.autograd.grad(values.sum(), points)
    x, y = points.detach().numpy().T
    np.testing.assert_allclose(
        np.stack(function.gradient(x, y, params), axis=1), expected.numpy(), rtol=1e-12, atol=1e-9
    )
