"""curvlinops-for-pytorch (3.x) against the lab's curvature operators, per product and per trace.

Same model, batch and machine as benchmarks/pyhessian_compare.py: digits-mlp (64→128→128→10)
after 200 seeded Adam steps, its 256-example probe, CPU, float32, torch's default thread count.
Per-product times (median of repeated products after a warm-up) of:

- ours: `HessianOperator` (∇L built once with its graph, each product one double backward) and
  `GGNOperator`;
- curvlinops: `HessianLinearOperator` / `GGNLinearOperator` (torch.func: jacrev + jvp, vmapped
  over the columns of a block, forward and backward recomputed for every call);
- a plain torch.func path for reference: vmap over jvp(grad(L)), forward-over-reverse.

on one vector and on a block of 10, each checked against ours; then the trace estimators
(Hutch++ and Hutchinson, 30 products) from both libraries, time and relative error against the
exact trace over R seeds. The rule for the lab: use curvlinops where it is as fast as (within 10%
of) our torch path. curvlinops is a benchmark-only dependency, installed without touching torch:
`pip install --no-deps curvlinops-for-pytorch backpack-for-pytorch linear_operator einconv
einops unfoldNd opt-einsum tqdm` (scipy is already there; backpack's torchvision is not needed
for these operators).

    .venv/bin/python benchmarks/curvlinops_compare.py [--seeds 5] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from curvlinops import GGNLinearOperator, HessianLinearOperator, hutchinson_trace, hutchpp_trace
from pyhessian_compare import ground_truth, hessian_operator, trained_task
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp

from descentlab.engine.curvature.operators import GGNOperator, flatten, unflatten
from descentlab.engine.curvature.trace import hutchinson, hutchpp

BLOCK = 10
BUDGET = 30
TOLERANCE = 1.10
"""'As fast as': curvlinops' median time at most 10% above ours."""


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_func_hvp(model: nn.Module, criterion: Callable, batch: tuple[Tensor, Tensor]) -> Callable:
    """H @ V by vmap over forward-over-reverse products, V a vector (n,) or a block (n, m)."""
    names = [name for name, _ in model.named_parameters()]
    params = [p.detach() for p in model.parameters()]
    inputs, targets = batch

    def loss(*values: Tensor) -> Tensor:
        return criterion(
            functional_call(model, dict(zip(names, values, strict=True)), (inputs,)), targets
        )

    gradient = grad(loss, argnums=tuple(range(len(params))))

    def hvp(v: Tensor) -> Tensor:
        _, out = jvp(gradient, tuple(params), tuple(unflatten(v, params)))
        return flatten(out)

    batched = torch.vmap(hvp, in_dims=1, out_dims=1)
    return lambda v: hvp(v) if v.ndim == 1 else batched(v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--train-steps", type=int, default=200)
    args = parser.parse_args()

    task = trained_task(args.train_steps)
    model, criterion, batch = task.model, task.criterion, task.probe
    inputs, targets = batch
    params = [p for p in model.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    generator = torch.Generator().manual_seed(0)
    v = torch.randn(n, generator=generator)
    block = torch.randn(n, BLOCK, generator=generator)

    ours = hessian_operator(model, criterion, batch)
    theirs = HessianLinearOperator(
        model, nn.CrossEntropyLoss(), params, [(inputs, targets)], check_deterministic=False
    )
    func = torch_func_hvp(model, criterion, batch)
    outputs = model(inputs)
    ours_ggn = GGNOperator(outputs, targets, criterion, params)
    theirs_ggn = GGNLinearOperator(
        model, nn.CrossEntropyLoss(), params, [(inputs, targets)], check_deterministic=False
    )

    def check(a: Tensor, b: Tensor) -> float:
        return ((a - b).norm() / b.norm()).item()

    agreement = {
        "Hessian, curvlinops vs ours": check(theirs @ block, ours @ block),
        "Hessian, torch.func vs ours": check(func(block), ours @ block),
        "GGN, curvlinops vs ours": check(theirs_ggn @ block, ours_ggn @ block),
    }

    r = args.repeats
    rows = [
        (
            "Hessian: build (forward + ∇L with graph)",
            median_time(lambda: hessian_operator(model, criterion, batch), r),
            None,
            None,
        ),
        (
            "Hessian @ vector",
            median_time(lambda: ours @ v, r),
            median_time(lambda: theirs @ v, r),
            median_time(lambda: func(v), r),
        ),
        (
            f"Hessian @ block of {BLOCK}",
            median_time(lambda: ours @ block, r),
            median_time(lambda: theirs @ block, r),
            median_time(lambda: func(block), r),
        ),
        (
            "GGN @ vector",
            median_time(lambda: ours_ggn @ v, r),
            median_time(lambda: theirs_ggn @ v, r),
            None,
        ),
        (
            f"GGN @ block of {BLOCK}",
            median_time(lambda: ours_ggn @ block, r),
            median_time(lambda: theirs_ggn @ block, r),
            None,
        ),
    ]

    truth = ground_truth(task)["trace"]
    estimators = {
        "ours hutchpp": lambda seed: (
            hutchpp(
                hessian_operator(model, criterion, batch),
                BUDGET,
                generator=torch.Generator().manual_seed(seed),
            ).trace
        ),
        "curvlinops hutchpp_trace": lambda seed: (
            torch.manual_seed(seed),
            hutchpp_trace(
                HessianLinearOperator(
                    model, nn.CrossEntropyLoss(), params, [batch], check_deterministic=False
                ),
                BUDGET,
            ).item(),
        )[1],
        "ours hutchinson": lambda seed: (
            hutchinson(
                hessian_operator(model, criterion, batch),
                BUDGET,
                generator=torch.Generator().manual_seed(seed),
            ).trace
        ),
        "curvlinops hutchinson_trace": lambda seed: (
            torch.manual_seed(seed),
            hutchinson_trace(
                HessianLinearOperator(
                    model, nn.CrossEntropyLoss(), params, [batch], check_deterministic=False
                ),
                BUDGET,
            ).item(),
        )[1],
    }
    trace_stats: dict[str, list[tuple[float, float]]] = {name: [] for name in estimators}
    for estimate in estimators.values():
        estimate(1000)  # warm-up
    for seed in range(args.seeds):  # interleaved, so that drifts of the machine hit all alike
        for name, estimate in estimators.items():
            start = time.perf_counter()
            value = estimate(seed)
            trace_stats[name].append((time.perf_counter() - start, abs(value - truth) / truth))

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (at the end of the run)"
    )
    print(
        f"digits-mlp after {args.train_steps} Adam steps, n = {n} parameters, probe of "
        f"{inputs.shape[0]} examples, float32; median of {r} timed calls after 2 warm-ups"
    )
    print(
        "agreement (relative difference on the block): "
        + ", ".join(f"{k} {val:.1e}" for k, val in agreement.items())
    )
    print()
    print("| product | ours (ms) | curvlinops (ms) | torch.func vmap (ms) | curvlinops / ours |")
    print("|---|---|---|---|---|")
    verdicts = []
    for name, t_ours, t_theirs, t_func in rows:
        cells = [f"{1e3 * t:.2f}" if t is not None else "—" for t in (t_ours, t_theirs, t_func)]
        ratio = "—" if t_theirs is None else f"{t_theirs / t_ours:.2f}"
        print(f"| {name} | {' | '.join(cells)} | {ratio} |")
        if t_theirs is not None:
            verdicts.append((name, t_theirs <= TOLERANCE * t_ours))
    print()
    print(
        f"| trace estimator ({BUDGET} products, build included) | median time (ms) | "
        "median rel. error |"
    )
    print("|---|---|---|")
    for name, runs in trace_stats.items():
        print(
            f"| {name} | {1e3 * statistics.median(t for t, _ in runs):.1f} | "
            f"{statistics.median(e for _, e in runs):.2e} |"
        )
    for pair in (
        ("ours hutchpp", "curvlinops hutchpp_trace"),
        ("ours hutchinson", "curvlinops hutchinson_trace"),
    ):
        t_ours, t_theirs = (statistics.median(t for t, _ in trace_stats[p]) for p in pair)
        verdicts.append((f"{pair[1]} vs {pair[0]}", t_theirs <= TOLERANCE * t_ours))
    print()
    print(f"exact tr H = {truth:.6f}")
    print("verdict (curvlinops used where it is as fast as ours, within 10%):")
    for name, fast in verdicts:
        print(f"  {name}: {'curvlinops' if fast else 'ours (curvlinops slower)'}")


if __name__ == "__main__":
    main()
