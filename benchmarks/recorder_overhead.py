"""The Recorder's own cost per step against the bare loop on digits-mlp, measured side by side.

Every loop trains the same model (Adam, batch 64, hidden [128, 128]) on the same batches, as a
user would write it: `zero_grad`, forward, backward, `step`. The bare loop does nothing more;
the others add `rec.step(loss)` with a Recorder writing a real session (loss and learning rate,
then diagnostics). Repetitions alternate between the loops so that drifts of the machine hit
all alike; the figure is the ratio of median times per step. Beside it, the time spent inside
`rec.step` itself, timed in the same loop: on a busy machine the side-by-side ratio carries the
noise of two separate runs, this share does not.

    python benchmarks/recorder_overhead.py [--steps 2000] [--reps 7] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from runner_overhead import setup  # benchmarks/ is the script's sys.path[0]

from descentlab import Recorder
from descentlab.engine import registry
from descentlab.engine.plugin import Task

CASES: dict[str, dict[str, Any]] = {
    "loss and lr only": {},
    "`norms` every step": {"norms": {}},
    "`norms` every 10 steps": {"norms": {"every": 10}},
    "`hessian` every 100 steps": {"hessian": {"every": 100}},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loop(
    task: Task, steps: int, device: torch.device, path: Path | None, diagnostics: dict[str, Any]
) -> tuple[float, float]:
    """Seconds per step of the user's loop, with a Recorder at `path` unless it is None, and of
    that the seconds per step inside `rec.step` (and `rec.close`)."""
    model = copy.deepcopy(task.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = task.batches(torch.Generator().manual_seed(0))
    rec = None
    if path is not None:
        rec = Recorder(
            path,
            model,
            loss_fn=task.criterion,
            probe=task.probe,
            optimizer=optimizer,
            diagnostics=diagnostics,
        )
    inside = 0.0
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        inputs, targets = next(batches)
        optimizer.zero_grad()
        loss = task.criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
        if rec is not None:
            entered = time.perf_counter()
            rec.step(loss)  # reads the loss: waits for the device, as loss.item() would
            inside += time.perf_counter() - entered
    if rec is not None:
        entered = time.perf_counter()
        rec.close()  # the last flush is part of the cost
        inside += time.perf_counter() - entered
    _sync(device)
    elapsed = time.perf_counter() - start
    if path is not None:
        path.unlink()
    return elapsed / steps, inside / steps


def step_alone(task: Task, path: Path, calls: int = 2000) -> float:
    """Seconds per `rec.step(loss)` with loss and learning rate only, with no training around it
    and the file's flushes left out (a flush interval longer than the measurement): the cost of
    the call itself."""
    model = copy.deepcopy(task.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = task.criterion(model(task.probe[0]), task.probe[1]).detach()
    rec = Recorder(
        path, model, loss_fn=task.criterion, probe=task.probe, optimizer=optimizer,
        flush_interval=3600.0,
    )  # fmt: skip
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            rec.step(loss)
        best = min(best, (time.perf_counter() - start) / calls)
    rec.close()
    path.unlink()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (one: steadier on a shared box)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    plugin = registry.plugins("tasks")["digits-mlp"]
    params = {p.name: p.default for p in plugin.params} | {"batch_size": 64, "hidden": [128, 128]}
    task = plugin.build(params, 0, device, torch.float32)
    times: dict[str, list[float]] = {"bare loop": [], **{name: [] for name in CASES}}
    inside: dict[str, list[float]] = {name: [] for name in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        loop(task, 200, device, None, {})  # warm-up: imports, allocator, caches
        loop(task, 200, device, folder / "warm.h5", {"norms": {}})
        for rep in range(args.reps):
            times["bare loop"].append(loop(task, args.steps, device, None, {})[0])
            for i, (name, diagnostics) in enumerate(CASES.items()):
                path = folder / f"rec-{rep}-{i}.h5"
                total, recording = loop(task, args.steps, device, path, diagnostics)
                times[name].append(total)
                inside[name].append(recording)
        alone = step_alone(task, folder / "alone.h5")
    base = statistics.median(times["bare loop"])
    print(f"digits-mlp, Adam, batch 64, {args.steps} steps x {args.reps} reps, {setup(device)}")
    print("| loop | per step | ratio to bare loop | in `rec.step` | step / (step − it) |")
    print("|---|---|---|---|---|")
    print(f"| bare loop | {base * 1e6:.1f} µs | 1.000× | | |")
    for label in CASES:
        med = statistics.median(times[label])
        own = statistics.median(inside[label])
        share = statistics.median(
            t / (t - r) for t, r in zip(times[label], inside[label], strict=True)
        )
        print(
            f"| Recorder, {label} | {med * 1e6:.1f} µs | {med / base:.3f}× | "
            f"{own * 1e6:.1f} µs | {share:.3f}× |"
        )
    print(f"rec.step alone (loss and lr, no flush), best of 5 x 2000 calls: {alone * 1e6:.2f} µs")


if __name__ == "__main__":
    main()
