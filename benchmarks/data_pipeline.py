"""Step time of the Runner on an image task against a plain PyTorch loop on the same model and data.

The data are generated CIFAR-10 (or MNIST) files in the published binary format, so no network is
needed; the task reads them into one uint8 tensor on the device. The plain loop is what a user
would write around the same tensors: a random permutation per epoch, index the batch (and, with
augmentation, the same on-device crop and flip), forward, backward, `loss.item()`, Adam's step.
Repetitions alternate between the loops so that drifts of the machine hit both alike; the figure
is the ratio of median times per step.

    python benchmarks/data_pipeline.py [--task mnist-cnn] [--steps 200] [--reps 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from runner_overhead import (  # benchmarks/ is the script's sys.path[0]
    runner_loop,
    setup,
    sync_device,
)

from descentlab.engine import registry
from descentlab.engine.spec import ExperimentSpec, parse_toml
from descentlab.plugins.tasks.vision import augment

SPEC = """
name = "bench"
steps = {steps}
device = "{device}"
[task]
id = "{task}"
root = "{root}"
batch_size = {batch_size}
{extra}
[[runs]]
name = "adam"
optimizer = {{ id = "adam", lr = 1e-3 }}
"""

EXTRA = {
    "mnist-mlp": "hidden = [256, 256]",
    "mnist-cnn": "channels = [32, 64]",
    "cifar10-cnn": "channels = [32, 64]",
    "cifar10-resnet18": "width = {width}",
}


def write_files(root: Path, examples: int) -> None:
    """MNIST IDX files and CIFAR-10 binary batches of random pixels, `examples` per split."""
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        for kind, shape in (
            ("images-idx3-ubyte", (examples, 28, 28)),
            ("labels-idx1-ubyte", (examples,)),
        ):
            array = rng.integers(0, 10 if len(shape) == 1 else 256, shape, dtype=np.uint8)
            header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *shape)
            (raw / f"{prefix}-{kind}").write_bytes(header + array.tobytes())
    folder = root / "cifar-10-batches-bin"
    folder.mkdir()
    for name in [*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin"]:
        labels = rng.integers(0, 10, (examples // 5, 1), dtype=np.uint8)
        pixels = rng.integers(0, 256, (examples // 5, 3072), dtype=np.uint8)
        (folder / name).write_bytes(np.concatenate([labels, pixels], axis=1).tobytes())


def plain_loop(spec: ExperimentSpec, device: torch.device, with_augment: bool) -> float:
    """Seconds per step of a hand-written loop on the task's model and device-resident tensors."""
    plugin = registry.plugins("tasks")[spec.task.id]
    task = plugin.build(dict(spec.task.params), 0, device, torch.float32)
    model = copy.deepcopy(task.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    assert task.train is not None
    images, labels = task.train
    n, batch_size = images.shape[0], task.batch_size
    generator = torch.Generator().manual_seed(0)
    losses = []
    order = torch.randperm(n, generator=generator).to(device)
    position = 0
    sync_device(device)
    start = time.perf_counter()
    for _ in range(spec.steps):
        if position + batch_size > n:
            order, position = torch.randperm(n, generator=generator).to(device), 0
        index = order[position : position + batch_size]
        position += batch_size
        inputs = images[index]
        if with_augment:
            inputs = augment(inputs, generator)
        optimizer.zero_grad(set_to_none=True)
        loss = task.criterion(model(inputs), labels[index])
        loss.backward()
        losses.append(loss.item())
        optimizer.step()
    sync_device(device)
    return (time.perf_counter() - start) / spec.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist-cnn", choices=sorted(EXTRA))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--examples", type=int, default=5000, help="per split, in the files")
    parser.add_argument("--width", type=int, default=64, help="ResNet-18's first-stage width")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    cases = [False, True] if args.task.startswith("cifar") else [False]
    with tempfile.TemporaryDirectory() as tmp:
        write_files(Path(tmp), args.examples)
        specs = {}
        for with_augment in cases:
            extra = EXTRA[args.task].format(width=args.width)
            if args.task.startswith("cifar"):
                extra += f"\naugment = {str(with_augment).lower()}"
            specs[with_augment] = parse_toml(
                SPEC.format(
                    steps=args.steps,
                    device=args.device,
                    task=args.task,
                    root=tmp,
                    batch_size=args.batch_size,
                    extra=extra,
                )
            )
        times: dict[tuple[str, bool], list[float]] = {}
        for with_augment, spec in specs.items():  # warm-up: imports, allocator, caches
            runner_loop(spec, Path(tmp))
            plain_loop(spec, device, with_augment)
        for _ in range(args.reps):
            for with_augment, spec in specs.items():
                times.setdefault(("plain", with_augment), []).append(
                    plain_loop(spec, device, with_augment)
                )
                times.setdefault(("runner", with_augment), []).append(runner_loop(spec, Path(tmp)))
    print(
        f"{args.task} ({EXTRA[args.task].format(width=args.width)}), Adam, batch "
        f"{args.batch_size}, {args.steps} steps x {args.reps} reps, {setup(device)}"
    )
    print("| augmentation | plain loop per step | Runner per step | ratio |")
    print("|---|---|---|---|")
    for with_augment in specs:
        plain = statistics.median(times[("plain", with_augment)])
        runner = statistics.median(times[("runner", with_augment)])
        label = "crop + flip on the device" if with_augment else "none"
        print(f"| {label} | {plain * 1e3:.2f} ms | {runner * 1e3:.2f} ms | {runner / plain:.3f}× |")


if __name__ == "__main__":
    main()
