"""Helpers shared by the built-in tasks: seeded streams, seeded model building, roles and splits.

Every random draw of a task goes through `numpy_rng` or `torch_generator`, never the global RNG,
so that one seed fixes data and weights bit for bit, and so that building a task does not disturb
anyone else's random state.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from descentlab.engine.params import Param
from descentlab.engine.plugin import Batch, Role

PROBE_SIZE = 256
"""Training examples in the probe batch of data tasks: enough for stable curvature estimates,
few enough for Hessian-vector products every few steps."""

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}

Init = Callable[[nn.Module, torch.Generator], None]


def numpy_rng(seed: int, stream: str) -> np.random.Generator:
    """An independent random stream per purpose ("data", "split", ...) derived from `seed`.

    Separate streams keep e.g. the data unchanged when only the model's width changes.
    """
    return np.random.default_rng([seed % 2**64, zlib.crc32(stream.encode())])


def torch_generator(seed: int, stream: str) -> torch.Generator:
    """A CPU `torch.Generator` seeded from the same per-purpose stream as `numpy_rng`."""
    generator = torch.Generator()
    generator.manual_seed(int(numpy_rng(seed, stream).integers(2**63)))
    return generator


def as_tensor(array: npt.ArrayLike, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A numpy array (drawn in float64) as a tensor of the task's device and dtype."""
    return torch.as_tensor(array).to(device=device, dtype=dtype)


def default_init(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisation of the standard layers, drawn from `generator`.

    Modules with parameters or buffers of another type raise, so that no parameter is ever left
    holding the uninitialised memory of `build_module`.
    """
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
        if module.bias is not None:
            bound = 1.0 / math.sqrt(module.weight[0].numel())
            nn.init.uniform_(module.bias, -bound, bound, generator=generator)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, generator=generator)
    elif any(module.parameters(recurse=False)) or any(module.buffers(recurse=False)):
        raise TypeError(f"no seeded initialisation for {type(module).__name__}")


def build_module(
    factory: Callable[[], nn.Module],
    seed: int,
    stream: str,
    device: torch.device,
    dtype: torch.dtype,
    init: Init = default_init,
) -> nn.Module:
    """Build `factory()` with weights drawn from the seeded `stream`, on `device` in `dtype`.

    The module is made on the meta device (so its constructor draws nothing from the global RNG),
    initialised in float64 on the CPU and then cast and moved: the same seed gives the same
    weights on every device and, up to rounding, in both dtypes.
    """
    with torch.device("meta"):
        model = factory()
    model = model.to_empty(device="cpu").to(torch.float64)
    generator = torch_generator(seed, stream)
    with torch.no_grad():
        for module in model.modules():
            init(module, generator)
    return model.to(device=device, dtype=dtype)


def mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    """Fully connected layers `sizes[0] → … → sizes[-1]` with `activation` between them."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        if i > 0:
            layers.append(ACTIVATIONS[activation]())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def infer_roles(model: nn.Module, head: str | None = None) -> dict[str, Role]:
    """The role of every named parameter, read from the layer that owns it.

    Biases (LayerNorm's included) are "bias", LayerNorm weights "norm", embedding tables
    "embedding", the weight of the output layer `head` (by default the last `nn.Linear`) "head",
    other matrices and kernels "hidden" and the rest "other".
    """
    if head is None:
        head = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    roles: dict[str, Role] = {}
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            if name == "bias":
                roles[full] = "bias"
            elif isinstance(module, nn.LayerNorm):
                roles[full] = "norm"
            elif isinstance(module, nn.Embedding):
                roles[full] = "embedding"
            elif module_name == head:
                roles[full] = "head"
            elif param.ndim >= 2:
                roles[full] = "hidden"
            else:
                roles[full] = "other"
    return roles


def split_data(
    inputs: np.ndarray,
    targets: np.ndarray,
    held_out: int,
    rng: np.random.Generator,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[Batch, Batch]:
    """Shuffle the examples once with `rng` and cut off `held_out` of them.

    Floating arrays become tensors of the task's dtype, integer labels int64, all on `device`.
    """
    order = rng.permutation(inputs.shape[0])
    parts = (order[held_out:], order[:held_out])

    def tensor(array: np.ndarray) -> Tensor:
        if np.issubdtype(array.dtype, np.integer):
            return torch.as_tensor(array, dtype=torch.long, device=device)
        return as_tensor(array, device, dtype)

    train, test = ((tensor(inputs[idx]), tensor(targets[idx])) for idx in parts)
    return train, test


def probe_of(train: Batch) -> Batch:
    """The fixed probe of a data task: the first `PROBE_SIZE` (shuffled) training examples."""
    inputs, targets = train
    return inputs[:PROBE_SIZE], targets[:PROBE_SIZE]


def batch_size_param(default: int) -> Param:
    """The `batch_size` parameter every data task shares."""
    return Param(
        "batch_size",
        "int",
        default,
        "Examples per training step; 0 trains on the full batch.",
        low=0,
    )


def output_as_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    """Criterion of data-free tasks, whose model already returns the objective's value."""
    return outputs
