"""A task of your own for Descent Lab: a small MLP classifying two noisy spirals.

Run it with `descentlab run my_task.toml` or open my_task.toml in the window.
"""

import torch
from torch import nn

from descentlab.engine.plugin import Task


def make_task(seed, device, dtype, samples=512, hidden=32, noise=0.1, batch_size=64):
    """Everything random is drawn from `seed`: every run of the experiment starts alike."""
    gen = torch.Generator().manual_seed(seed)
    angle = torch.rand(samples, generator=gen) * 3 * torch.pi
    label = torch.randint(0, 2, (samples,), generator=gen)
    sign = 1 - 2 * label.to(dtype)
    x = torch.stack([angle * torch.cos(angle), angle * torch.sin(angle)], 1) * sign[:, None] / 5
    x = x + noise * torch.randn(samples, 2, generator=gen)
    torch.manual_seed(seed)  # the initial weights
    model = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 2))
    train = (x[: samples // 2], label[: samples // 2])
    data = torch.utils.data.TensorDataset(*train)
    loader = torch.utils.data.DataLoader(  # or pass `train=train, batch_size=...` as tensors
        data, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    return Task(
        model=model.to(device, dtype),
        criterion=nn.functional.cross_entropy,
        train=loader,
        held_out=(x[samples // 2 :], label[samples // 2 :]),
        probe=(x[:128], label[:128]),
        classification=True,
    )
