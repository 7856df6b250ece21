"""Top Hessian eigenvalue and tr H against PyHessian 0.1, same model, batch and machine.

digits-mlp (64→128→128→10, 26 122 parameters) after 200 seeded Adam steps, its 256-example probe,
CPU, float32, torch's default thread count. Ground truth: the top eigenvalue by our Lanczos run to
convergence on a float64 copy (budget 300, tol 0), and tr H exactly, Σ e_iᵀHe_i over every parameter
by batched Hessian-vector products in float64. Then, for R seeds, PyHessian's power iteration
(`eigenvalues(maxIter=100, tol=1e-3)`) and Hutchinson trace (`trace(maxIter=100, tol=1e-3)`)
against our Lanczos top-1 and Hutch++ at the smallest budget whose median relative error over the
seeds is at most PyHessian's. Times are end to end (forward pass, ∇L with its graph, products,
the algorithm), each path warmed up once; PyHessian runs on a deep copy of the model, since it
puts the model in eval mode and writes `.grad`. Products are counted for both (PyHessian's by
wrapping the function its module calls, nothing copied from it; PyHessian is GPL and only a
benchmark dependency: `pip install --no-deps pyhessian`).

    .venv/bin/python benchmarks/pyhessian_compare.py [--seeds 5] [--train-steps 200]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from descentlab.engine import registry
from descentlab.engine.curvature.lanczos import lanczos
from descentlab.engine.curvature.operators import HessianOperator
from descentlab.engine.curvature.trace import hutchpp
from descentlab.engine.params import defaults

LANCZOS_BUDGETS = [2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30]
HUTCHPP_BUDGETS = [3, 6, 9, 12, 15, 18, 24, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600]


def trained_task(steps: int, seed: int = 0) -> Any:
    """digits-mlp with default parameters after `steps` Adam steps (lr 1e-3), all seeded."""
    torch.manual_seed(seed)
    plugin = registry.plugins("tasks")["digits-mlp"]
    task = plugin.build(defaults(plugin.params), seed, torch.device("cpu"), torch.float32)
    optimizer = torch.optim.Adam(task.model.parameters(), lr=1e-3)
    batches = task.batches(torch.Generator().manual_seed(seed))
    for _ in range(steps):
        inputs, targets = next(batches)
        optimizer.zero_grad()
        task.criterion(task.model(inputs), targets).backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return task


def hessian_operator(model: nn.Module, criterion: Callable, batch: tuple[Tensor, Tensor]) -> Any:
    """Our operator at the model's current θ on `batch` (forward pass and ∇L included)."""
    inputs, targets = batch
    params = [p for p in model.parameters() if p.requires_grad]
    return HessianOperator(criterion(model(inputs), targets), params)


def ground_truth(task: Any) -> dict[str, float]:
    """Top eigenvalue (Lanczos to convergence) and exact trace, both in float64, with times."""
    model = copy.deepcopy(task.model).double()
    inputs, targets = task.probe
    batch = (inputs.double(), targets)
    start = time.perf_counter()
    op = hessian_operator(model, task.criterion, batch)
    result = lanczos(
        op, 1, iterations=300, tol=0.0, smallest=False, generator=torch.Generator().manual_seed(0)
    )
    lanczos_time = time.perf_counter() - start

    start = time.perf_counter()
    params = list(model.parameters())
    loss = task.criterion(model(batch[0]), batch[1])
    grads = torch.autograd.grad(loss, params, create_graph=True)
    n = sum(p.numel() for p in params)
    chunk = 64
    trace = 0.0
    for first in range(0, n, chunk):
        count = min(chunk, n - first)
        basis = torch.zeros(count, n, dtype=torch.float64)
        rows = torch.arange(count)
        basis[rows, first + rows] = 1.0
        pieces = torch.split(basis, [p.numel() for p in params], dim=1)
        outputs = tuple(
            piece.reshape(count, *p.shape) for piece, p in zip(pieces, params, strict=True)
        )
        hv = torch.autograd.grad(
            grads, params, grad_outputs=outputs, retain_graph=True, is_grads_batched=True
        )
        hv_flat = torch.cat([h.reshape(count, -1) for h in hv], dim=1)
        trace += hv_flat[rows, first + rows].sum().item()
    trace_time = time.perf_counter() - start
    return {
        "top": result.eigenvalues[0].item(),
        "top_residual": result.residuals[0].item(),
        "top_products": result.iterations,
        "top_time": lanczos_time,
        "trace": trace,
        "trace_time": trace_time,
        "n": n,
    }


class PyHessianRunner:
    """Calls PyHessian on fresh deep copies of the model and counts its Hessian-vector products."""

    def __init__(self, task: Any) -> None:
        import importlib

        module = importlib.import_module("pyhessian.hessian")

        self.module = module
        self.task = task
        self.products = 0
        original = module.hessian_vector_product

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.products += 1
            return original(*args, **kwargs)

        module.hessian_vector_product = counted

    def _fresh(self) -> nn.Module:
        model = copy.deepcopy(self.task.model)
        for p in model.parameters():
            p.grad = None
        return model

    def top(self, seed: int) -> tuple[float, float, int]:
        model = self._fresh()
        torch.manual_seed(seed)
        self.products = 0
        start = time.perf_counter()
        h = self.module.hessian(model, self.task.criterion, data=self.task.probe, cuda=False)
        eigenvalues, _ = h.eigenvalues(maxIter=100, tol=1e-3, top_n=1)
        return float(eigenvalues[0]), time.perf_counter() - start, self.products

    def trace(self, seed: int) -> tuple[float, float, int]:
        model = self._fresh()
        torch.manual_seed(seed)
        self.products = 0
        start = time.perf_counter()
        h = self.module.hessian(model, self.task.criterion, data=self.task.probe, cuda=False)
        samples = h.trace(maxIter=100, tol=1e-3)
        estimate = float(sum(samples) / len(samples))
        return estimate, time.perf_counter() - start, len(samples)


def ours_top(task: Any, seed: int, iterations: int, tol: float) -> tuple[float, float, int]:
    start = time.perf_counter()
    op = hessian_operator(task.model, task.criterion, task.probe)
    result = lanczos(
        op,
        1,
        iterations=iterations,
        tol=tol,
        smallest=False,
        generator=torch.Generator().manual_seed(seed),
    )
    return result.eigenvalues[0].item(), time.perf_counter() - start, op.matvecs


def ours_trace(task: Any, seed: int, budget: int) -> tuple[float, float, int]:
    start = time.perf_counter()
    op = hessian_operator(task.model, task.criterion, task.probe)
    estimate = hutchpp(op, budget, generator=torch.Generator().manual_seed(seed))
    return estimate.trace, time.perf_counter() - start, op.matvecs


def summarise(runs: list[tuple[float, float, int]], truth: float) -> dict[str, float]:
    return {
        "error": statistics.median(abs(value - truth) / abs(truth) for value, _, _ in runs),
        "time": statistics.median(t for _, t, _ in runs),
        "products": statistics.median(p for _, _, p in runs),
    }


def row(name: str, stats: dict[str, float], reference: dict[str, float] | None) -> str:
    ratio = "1 (reference)" if reference is None else f"{stats['time'] / reference['time']:.2f}"
    return (
        f"| {name} | {stats['products']:g} | {1e3 * stats['time']:.1f} | "
        f"{stats['error']:.2e} | {ratio} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=200)
    args = parser.parse_args()
    seeds = list(range(args.seeds))

    task = trained_task(args.train_steps)
    truth = ground_truth(task)
    pyhessian = PyHessianRunner(task)

    # Warm-up, once per path.
    pyhessian.top(1000)
    pyhessian.trace(1000)
    ours_top(task, 1000, 10, 0.0)
    ours_trace(task, 1000, 30)

    top_truth, trace_truth = truth["top"], truth["trace"]
    # Interleave PyHessian and our runs seed by seed, so that drifts of the machine hit both.
    py_top, py_trace, ours_tol = [], [], []
    for seed in seeds:
        py_top.append(pyhessian.top(seed))
        ours_tol.append(ours_top(task, seed, 100, 1e-3))
        py_trace.append(pyhessian.trace(seed))
    py_top_stats = summarise(py_top, top_truth)
    py_trace_stats = summarise(py_trace, trace_truth)
    ours_tol_stats = summarise(ours_tol, top_truth)

    lanczos_sweep = {}
    for budget in LANCZOS_BUDGETS:
        stats = summarise([ours_top(task, s, budget, 0.0) for s in seeds], top_truth)
        lanczos_sweep[budget] = stats
        if stats["error"] <= py_top_stats["error"]:
            break
    hutchpp_sweep = {}
    for budget in HUTCHPP_BUDGETS:
        stats = summarise([ours_trace(task, s, budget) for s in seeds], trace_truth)
        hutchpp_sweep[budget] = stats
        if stats["error"] <= py_trace_stats["error"]:
            break

    lanczos_budget = max(lanczos_sweep)
    hutchpp_budget = max(hutchpp_sweep)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (at the end of the run)"
    )
    print(
        f"digits-mlp after {args.train_steps} Adam steps, n = {truth['n']} parameters, "
        f"probe of {task.probe[0].shape[0]} examples, float32, {len(seeds)} seeds"
    )
    print(
        f"ground truth: λ_max = {top_truth:.6f} (float64 Lanczos, {truth['top_products']} "
        f"products, residual {truth['top_residual']:.1e}, {truth['top_time']:.2f} s); "
        f"tr H = {trace_truth:.6f} (exact, {truth['n']} batched products, "
        f"{truth['trace_time']:.2f} s)"
    )
    print()
    print("| method | HVPs (median) | median time (ms) | median rel. error | time / PyHessian |")
    print("|---|---|---|---|---|")
    print(row("λ_max: PyHessian power iteration (maxIter=100, tol=1e-3)", py_top_stats, None))
    print(
        row(
            f"λ_max: ours, Lanczos, fixed budget {lanczos_budget} (smallest budget with "
            "median error ≤ PyHessian's)",
            lanczos_sweep[lanczos_budget],
            py_top_stats,
        )
    )
    print(row("λ_max: ours, Lanczos (iterations=100, tol=1e-3)", ours_tol_stats, py_top_stats))
    print(row("tr H: PyHessian Hutchinson (maxIter=100, tol=1e-3)", py_trace_stats, None))
    print(
        row(
            f"tr H: ours, Hutch++, budget {hutchpp_budget} (smallest budget with median "
            "error ≤ PyHessian's)",
            hutchpp_sweep[hutchpp_budget],
            py_trace_stats,
        )
    )
    print()
    print("Lanczos sweep (budget: median error, median ms):")
    print(
        "  "
        + "; ".join(
            f"{b}: {s['error']:.1e}, {1e3 * s['time']:.1f}" for b, s in lanczos_sweep.items()
        )
    )
    print("Hutch++ sweep (budget: median error, median ms):")
    print(
        "  "
        + "; ".join(
            f"{b}: {s['error']:.1e}, {1e3 * s['time']:.1f}" for b, s in hutchpp_sweep.items()
        )
    )
    if hutchpp_sweep[hutchpp_budget]["error"] > py_trace_stats["error"]:
        print("Hutch++ did not reach PyHessian's trace error within the largest budget tried.")
    per_run = ", ".join(
        f"{abs(v - trace_truth) / abs(trace_truth):.1e} ({p})" for v, _, p in py_trace
    )
    print(f"PyHessian trace errors per seed (samples): {per_run}")
    per_run = ", ".join(f"{abs(v - top_truth) / abs(top_truth):.1e} ({p})" for v, _, p in py_top)
    print(f"PyHessian λ_max errors per seed (products): {per_run}")


if __name__ == "__main__":
    main()
