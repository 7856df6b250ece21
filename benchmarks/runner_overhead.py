"""Runner overhead against a hand-written PyTorch loop on digits-mlp, measured side by side.

Both loops train the same model (Adam, batch 64, hidden [128, 128]) on the same batches; the
Runner writes a real HDF5 session. Repetitions alternate between the two so that drifts of the
machine hit both alike; the figure is the ratio of median times per step. Then the same for the
Runner with diagnostics on, as ratios to the plain loop.

    python benchmarks/runner_overhead.py [--steps 2000] [--reps 7] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from descentlab.engine import registry
from descentlab.engine.runner import Runner
from descentlab.engine.session.writer import SessionWriter
from descentlab.engine.spec import ExperimentSpec, parse_toml

SPEC = """
name = "bench"
steps = {steps}
device = "{device}"
[task]
id = "digits-mlp"
batch_size = 64
hidden = [128, 128]
[[runs]]
name = "adam"
optimizer = {{ id = "adam", lr = 1e-3 }}
{diagnostics}
"""

CASES = {
    "no diagnostics": "",
    "norms every step": '[[diagnostics]]\nid = "norms"\nevery = 1',
    "hessian every 10 steps": '[[diagnostics]]\nid = "hessian"\nevery = 10',
    "hessian every 100 steps": '[[diagnostics]]\nid = "hessian"\nevery = 100',
}


def sync_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def setup(device: torch.device) -> str:
    """The device, its processor or GPU, torch and its threads: what a figure depends on."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return (
        f"device {device} ({name or platform.machine()}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )


def plain_loop(spec: ExperimentSpec, device: torch.device) -> float:
    """Seconds per step of the loop a user would write by hand, recording the loss each step."""
    task = registry.plugins("tasks")["digits-mlp"].build(spec.task.params, 0, device, torch.float32)
    model = copy.deepcopy(task.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = task.batches(torch.Generator().manual_seed(0))
    losses = []
    sync_device(device)
    start = time.perf_counter()
    for _ in range(spec.steps):
        inputs, targets = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss = task.criterion(model(inputs), targets)
        loss.backward()
        losses.append(loss.item())
        optimizer.step()
    sync_device(device)
    return (time.perf_counter() - start) / spec.steps


def runner_loop(spec: ExperimentSpec, folder: Path) -> float:
    """Seconds per step of the Runner, writing its session to disk."""
    runner = Runner(spec)
    path = folder / f"bench-{time.monotonic_ns()}.h5"
    with SessionWriter(path, spec.to_toml()) as writer:
        sync_device(runner.device)
        start = time.perf_counter()
        runner.run(writer)
        sync_device(runner.device)
        elapsed = time.perf_counter() - start
    path.unlink()
    return elapsed / spec.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    specs = {
        name: parse_toml(SPEC.format(steps=args.steps, device=args.device, diagnostics=diag))
        for name, diag in CASES.items()
    }
    device = torch.device(args.device)
    times: dict[str, list[float]] = {"plain loop": [], **{name: [] for name in CASES}}
    with tempfile.TemporaryDirectory() as tmp:
        runner_loop(specs["no diagnostics"], Path(tmp))  # warm-up: imports, allocator, caches
        plain_loop(specs["no diagnostics"], device)
        for _ in range(args.reps):
            times["plain loop"].append(plain_loop(specs["no diagnostics"], device))
            for name, spec in specs.items():
                times[name].append(runner_loop(spec, Path(tmp)))
    base = statistics.median(times["plain loop"])
    print(f"digits-mlp, Adam, batch 64, {args.steps} steps x {args.reps} reps, {setup(device)}")
    print("| loop | median time per step | ratio to plain loop |")
    print("|---|---|---|")
    for label, values in times.items():
        med = statistics.median(values)
        print(
            f"| {label if label == 'plain loop' else 'Runner, ' + label} | "
            f"{med * 1e6:.1f} µs | {med / base:.3f}× |"
        )


if __name__ == "__main__":
    main()
