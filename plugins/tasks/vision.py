"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 classified by an MLP, a small CNN or ResNet-18.

The files are read from a local `root` (see `image_files` for the layouts); the whole data set
then lives on the task's device as one uint8 tensor, a quarter of float32's memory. Batches are
drawn on the device, augmented there (random crop with zero padding 4, horizontal flip) from the
shared batch generator, so every run of a race sees the same batches, and the model's first layer
turns bytes into normalised floats per batch. Nothing waits on a host-side data loader.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from descentlab.engine.params import Param
from descentlab.engine.plugin import Batch, Role, Task, TaskPlugin
from descentlab.plugins.tasks import image_files
from descentlab.plugins.tasks.common import (
    ACTIVATIONS,
    PROBE_SIZE,
    batch_size_param,
    build_module,
    default_init,
    infer_roles,
    mlp,
)

Builder = Callable[[dict[str, Any], int, torch.device, torch.dtype], Task]

CROP_PADDING = 4
"""Zero padding of the random crop: the standard CIFAR recipe (He et al., 2016)."""


class Normalize(nn.Module):
    """uint8 pixels (N, C, H, W) to the model's float dtype, `(x / 255 − mean) / std` by channel."""

    mean: Tensor  # buffers, registered in __init__
    std: Tensor

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.values = (mean, std)
        self.register_buffer("mean", torch.empty(len(mean), 1, 1), persistent=False)
        self.register_buffer("std", torch.empty(len(std), 1, 1), persistent=False)

    def reset_buffers(self) -> None:
        """Fill `mean` and `std` from the statistics given at construction."""
        for buffer, values in zip((self.mean, self.std), self.values, strict=True):
            buffer.copy_(torch.tensor(values, dtype=buffer.dtype).view(-1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x.to(self.mean.dtype) / 255.0 - self.mean) / self.std


def augment(images: Tensor, generator: torch.Generator, padding: int = CROP_PADDING) -> Tensor:
    """Random crops of the zero-padded images, each flipped left–right with probability ½.

    Output pixel (i, j) of image b is padded[b, :, dy_b + i, dx_b + j'] with j' = j, or
    W − 1 − j when b is flipped, and (dx_b, dy_b) uniform in {0, …, 2·padding}: torchvision's
    RandomCrop(padding) followed by RandomHorizontalFlip, done as one gather on the device.
    The draws come from `generator` (on the CPU), so they are the same on every device.
    """
    n, channels, height, width = images.shape
    dy, dx, flip = (
        torch.randint(0, high, (n,), generator=generator).to(images.device)
        for high in (2 * padding + 1, 2 * padding + 1, 2)
    )
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = dy[:, None] + torch.arange(height, device=images.device)
    columns = torch.arange(width, device=images.device).expand(n, width)
    columns = dx[:, None] + torch.where(flip[:, None].bool(), width - 1 - columns, columns)
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(channels, device=images.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], columns[:, None, None, :]]


@dataclass
class ImageTask(Task):
    """A data task whose training batches are augmented on the device when `augment` is set."""

    augment: bool = False

    def batches(self, generator: torch.Generator) -> Iterator[Batch]:
        """The epochs of `Task.batches`, each batch cropped and flipped from the same generator."""
        for inputs, targets in super().batches(generator):
            yield (augment(inputs, generator) if self.augment else inputs), targets


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def _mlp(dataset: image_files.ImageDataset, hidden: list[int], activation: str) -> nn.Module:
    return nn.Sequential(
        Normalize(dataset.mean, dataset.std),
        nn.Flatten(),
        mlp([int(np.prod(dataset.shape)), *hidden, dataset.classes], activation),
    )


def _cnn(dataset: image_files.ImageDataset, channels: list[int]) -> nn.Module:
    """3×3 'same' convolutions, each with ReLU and a 2×2 max-pool, then a linear head."""
    c_in, height, width = dataset.shape
    layers: list[nn.Module] = [Normalize(dataset.mean, dataset.std)]
    for c_out in channels:
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c_in, height, width = c_out, height // 2, width // 2
    layers += [nn.Flatten(), nn.Linear(c_in * height * width, dataset.classes)]
    return nn.Sequential(*layers)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(min(32, channels), channels)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with normalisation and a residual; a strided 1×1 projection when the
    shape changes (He et al., 2016, option B)."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = _norm(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = _norm(norm, c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), _norm(norm, c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 with the CIFAR stem: one 3×3 stride-1 convolution and no max-pool, so 32×32
    inputs keep their resolution into the first stage; stages of widths w, 2w, 4w, 8w."""

    def __init__(self, dataset: image_files.ImageDataset, width: int, norm: str) -> None:
        super().__init__()
        self.normalize = Normalize(dataset.mean, dataset.std)
        self.conv1 = nn.Conv2d(dataset.shape[0], width, 3, 1, 1, bias=False)
        self.bn1 = _norm(norm, width)
        stages: list[nn.Module] = []
        c_in = width
        for i, c_out in enumerate(width * 2**k for k in range(4)):
            stride = 1 if i == 0 else 2
            stages.append(
                nn.Sequential(
                    BasicBlock(c_in, c_out, stride, norm), BasicBlock(c_out, c_out, 1, norm)
                )
            )
            c_in = c_out
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(c_in, dataset.classes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        out = self.layers(out)
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def _init(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's defaults, identity normalisation layers and the data set's pixel statistics."""
    if isinstance(module, Normalize):
        module.reset_buffers()
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
    else:
        default_init(module, generator)


def _resnet_init(module: nn.Module, generator: torch.Generator) -> None:
    """torchvision's ResNet init: He-normal (fan-out) convolutions, the rest as `_init`."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(
            module.weight, mode="fan_out", nonlinearity="relu", generator=generator
        )
    else:
        _init(module, generator)


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def load(key: str, params: dict[str, Any], device: torch.device) -> tuple[Batch, Batch]:
    """Train and test split of data set `key` as uint8 images and int64 labels on `device`.

    `subset` keeps the first N training examples (the files' order), `test_subset` the first N
    test examples; 0 keeps all.
    """
    if not params["root"]:
        raise image_files.DataFilesError(
            "root: give the folder that holds the data; "
            + image_files.how_to_get(image_files.DATASETS[key], Path("<root>"))
        )
    root = Path(params["root"]).expanduser()
    if params["download"] and not any(
        (root / f).is_dir() for f in image_files.DATASETS[key].folders
    ):
        image_files.download(key, root)
    splits = []
    for train, keep in ((True, params["subset"]), (False, params["test_subset"])):
        images, labels = image_files.read_split(key, root, train)
        if keep:
            images, labels = images[:keep], labels[:keep]
        # np.require copies only read-only buffers (an IDX file's bytes), which torch cannot share
        images = np.require(images, requirements=["C", "W"])
        splits.append((torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device)))
    return splits[0], splits[1]


def _roles(model: nn.Module, head: str | None) -> dict[str, Role]:
    """`infer_roles`, with BatchNorm and GroupNorm scales as "norm" like LayerNorm's."""
    roles = infer_roles(model, head=head)
    for name, module in model.named_modules():
        if isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
            roles[f"{name}.weight"] = "norm"
    return roles


def _builder(key: str, architecture: str) -> Builder:
    """The `build` function of the task that trains `architecture` on data set `key`."""
    dataset = image_files.DATASETS[key]

    def build(params: dict[str, Any], seed: int, device: torch.device, dtype: torch.dtype) -> Task:
        if architecture == "mlp":
            factory: Callable[[], nn.Module]
            factory = functools.partial(_mlp, dataset, params["hidden"], params["activation"])
            init, head = _init, None
        elif architecture == "cnn":
            if not params["channels"]:
                raise ValueError("channels: give at least one convolution's width")
            if 2 ** len(params["channels"]) > dataset.shape[1]:
                raise ValueError(
                    f"channels: {len(params['channels'])} pooled convolutions shrink "
                    f"{dataset.shape[1]}×{dataset.shape[2]} images below one pixel"
                )
            factory = functools.partial(_cnn, dataset, params["channels"])
            init, head = _init, None
        else:
            factory = functools.partial(ResNet18, dataset, params["width"], params["norm"])
            init, head = _resnet_init, "fc"
        train, held_out = load(key, params, device)
        model = build_module(factory, seed, "init", device, dtype, init=init)
        return ImageTask(
            model=model,
            criterion=F.cross_entropy,
            probe=(train[0][:PROBE_SIZE], train[1][:PROBE_SIZE]),
            train=train,
            held_out=held_out,
            batch_size=params["batch_size"],
            classification=True,
            roles=_roles(model, head),
            augment=params.get("augment", False),
        )

    return build


def _data_params(key: str, batch_size: int) -> tuple[Param, ...]:
    dataset = image_files.DATASETS[key]
    params: tuple[Param, ...] = (
        Param(
            "root",
            "str",
            "",
            f"Folder holding {' or '.join(dataset.folders)} (torchvision's layout); "
            "relative paths start at the working directory.",
        ),
        Param(
            "download",
            "bool",
            False,
            "Fetch the files into root when they are missing (needs the 'datasets' extra and a "
            "network).",
        ),
        batch_size_param(batch_size),
        Param(
            "subset",
            "int",
            0,
            "Train on the first N training examples only (0: all); handy on a CPU.",
            low=0,
        ),
        Param(
            "test_subset",
            "int",
            0,
            "Evaluate on the first N test examples only (0: all).",
            low=0,
        ),
    )
    if dataset.shape[0] == 3:
        params += (
            Param(
                "augment",
                "bool",
                True,
                "Random crop (zero padding 4) and horizontal flip of every training batch, on "
                "the device.",
            ),
        )
    return params


MLP_PARAMS = (
    Param("hidden", "ints", [256, 256], "Widths of the MLP's hidden layers.", low=1, high=16384),
    Param(
        "activation", "choice", "relu", "Nonlinearity between the MLP's layers.",
        choices=tuple(ACTIVATIONS),
    ),
)  # fmt: skip
CNN_PARAMS = (
    Param(
        "channels", "ints", [32, 64],
        "Output channels of each 3×3 convolution (each followed by ReLU and a 2×2 max-pool).",
        low=1, high=2048,
    ),
)  # fmt: skip
RESNET_PARAMS = (
    Param(
        "width", "int", 64,
        "Channels of the first stage (64 in ResNet-18); the stages have w, 2w, 4w, 8w.",
        low=1, high=512,
    ),
    Param(
        "norm", "choice", "batch",
        "Normalisation layers: batch norm as in ResNet-18, or group norm (no running "
        "statistics, so per-example diagnostics apply).",
        choices=("batch", "group"),
    ),
)  # fmt: skip

REFERENCES = {
    "mnist": "LeCun, Bottou, Bengio & Haffner (1998), Gradient-based learning applied to "
    "document recognition; MNIST database.",
    "fashion-mnist": "Xiao, Rasul & Vollgraf (2017), Fashion-MNIST: a novel image dataset for "
    "benchmarking machine learning algorithms.",
    "cifar10": "Krizhevsky (2009), Learning Multiple Layers of Features from Tiny Images.",
    "cifar100": "Krizhevsky (2009), Learning Multiple Layers of Features from Tiny Images.",
}
RESNET_REFERENCE = "; He, Zhang, Ren & Sun (2016), Deep Residual Learning for Image Recognition."
MODELS = {
    "mlp": ("MLP", MLP_PARAMS, "a fully connected network on the flattened pixels"),
    "cnn": (
        "small CNN",
        CNN_PARAMS,
        "3×3 convolutions with ReLU and max-pooling, then a linear head",
    ),
    "resnet18": (
        "ResNet-18",
        RESNET_PARAMS,
        "ResNet-18 with the CIFAR stem (a 3×3 stride-1 first convolution, no max-pool)",
    ),
}
TASKS = (
    ("mnist", "mlp", 128),
    ("mnist", "cnn", 128),
    ("fashion-mnist", "mlp", 128),
    ("fashion-mnist", "cnn", 128),
    ("cifar10", "cnn", 128),
    ("cifar10", "resnet18", 128),
    ("cifar100", "resnet18", 128),
)


def _plugin(key: str, architecture: str, batch_size: int) -> TaskPlugin:
    dataset = image_files.DATASETS[key]
    title, model_params, description = MODELS[architecture]
    channels, height, width = dataset.shape
    return TaskPlugin(
        id=f"{key}-{architecture}",
        title=f"{dataset.name}, {title}",
        summary=(
            f"{dataset.name} ({channels}×{height}×{width} images, {dataset.classes} classes, "
            f"read from a local root in torchvision's layout) classified by {description}, "
            "with cross-entropy. The data set lives on the task's device as uint8 and is "
            "normalised there per batch; the probe is the first 256 training images and the "
            "held-out set is the test split."
        ),
        params=model_params + _data_params(key, batch_size),
        build=_builder(key, architecture),
        reference=REFERENCES[key] + (RESNET_REFERENCE if architecture == "resnet18" else ""),
    )


PLUGINS = [_plugin(*entry) for entry in TASKS]
