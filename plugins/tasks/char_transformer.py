"""A small GPT-style character model trained on Python's own standard-library sources.

The text is on every machine that runs the lab, so nothing is downloaded. Attention is written
out by hand rather than with `nn.MultiheadAttention`, so that each layer keeps its attention
probabilities for diagnostics and its pre-softmax scores can be recomputed.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch._C._functorch import is_functorch_wrapped_tensor

from descentlab.engine.params import Param
from descentlab.engine.plugin import Batch, Task, TaskPlugin
from descentlab.plugins.tasks.common import (
    build_module,
    default_init,
    infer_roles,
)

TRAIN_FRACTION = 0.9
PROBE_WINDOWS = 64
HELD_OUT_WINDOWS = 256
INIT_STD = 0.02
"""GPT-2's weight scale: small logits at the start, so the loss begins near log(vocabulary)."""


@functools.cache
def stdlib_text(chars: int) -> str:
    """The first `chars` characters of the stdlib's top-level .py files, taken in name order."""
    pieces: list[str] = []
    total = 0
    for path in sorted(Path(os.path.dirname(os.__file__)).glob("*.py")):
        piece = path.read_text(encoding="utf-8", errors="replace")
        pieces.append(piece)
        total += len(piece)
        if total >= chars:
            break
    return "".join(pieces)[:chars]


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention that keeps its last attention probabilities.

    After every plain forward pass `last_attention` holds the (B, heads, T, T) probabilities,
    detached; `scores(x)` recomputes the masked pre-softmax scores for the same input.
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.last_attention: Tensor | None = None

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        batch, length, width = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        return q, k, v

    @staticmethod
    def _masked_scores(q: Tensor, k: Tensor) -> Tensor:
        length = q.shape[-2]
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        future = torch.ones(length, length, dtype=torch.bool, device=q.device).triu(1)
        return scores.masked_fill(future, float("-inf"))

    def scores(self, x: Tensor) -> Tensor:
        """Pre-softmax scores (B, heads, T, T), −inf above the diagonal (the future)."""
        q, k, _ = self._split(x)
        return self._masked_scores(q, k)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self._split(x)
        attention = self._masked_scores(q, k).softmax(dim=-1)
        if not is_functorch_wrapped_tensor(attention):
            # Under torch.func transforms (vmap, grad) a kept tensor would escape its transform
            # and fail when read; only plain forward passes record their attention.
            self.last_attention = attention.detach()
        return self.proj((attention @ v).transpose(1, 2).flatten(2))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: attention, then a 4× wide GELU MLP, both residual."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    """Token and learned position embeddings, `layers` blocks, a final LayerNorm, untied head."""

    def __init__(self, vocabulary: int, context: int, width: int, heads: int, layers: int) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocabulary, width)
        self.position_embedding = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_final = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocabulary)

    def forward(self, tokens: Tensor) -> Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_final(x))


def _gpt_init(module: nn.Module, generator: torch.Generator) -> None:
    """N(0, 0.02²) weights and embeddings, zero biases, identity LayerNorms."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=INIT_STD, generator=generator)
        bias = getattr(module, "bias", None)  # an Embedding has none
        if bias is not None:
            nn.init.zeros_(bias)
    else:
        default_init(module, generator)


def _criterion(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of the next character, averaged over every position of every window."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def _windows(tokens: Tensor, starts: Tensor, context: int) -> Batch:
    """Input windows tokens[s : s+T] and their targets, shifted by one character."""
    index = starts[:, None] + torch.arange(context + 1, device=tokens.device)
    chunks = tokens[index].long()
    return chunks[:, :-1], chunks[:, 1:]


def _spread(length: int, context: int, count: int, device: torch.device) -> Tensor:
    """Up to `count` window starts spread evenly over a text of `length` characters."""
    last = length - context - 1
    return torch.as_tensor(np.linspace(0, last, min(count, last + 1)).round(), device=device).long()


def build(params: dict[str, Any], seed: int, device: torch.device, dtype: torch.dtype) -> Task:
    """Text split by position (first 90% for training); batches are random training windows."""
    if params["width"] % params["heads"]:
        raise ValueError(
            f"width ({params['width']}) must be divisible by heads ({params['heads']})"
        )
    text = stdlib_text(params["chars"])
    vocabulary = sorted(set(text))
    code = {c: i for i, c in enumerate(vocabulary)}
    tokens = torch.tensor([code[c] for c in text], dtype=torch.long, device=device)
    if len(tokens) - int(TRAIN_FRACTION * len(tokens)) <= params["context"]:
        raise ValueError(
            f"chars ({params['chars']}) leaves too little held-out text for context "
            f"({params['context']})"
        )
    return text_task(tokens, len(vocabulary), params, seed, device, dtype)


def text_task(
    tokens: Tensor,
    vocabulary: int,
    params: dict[str, Any],
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
) -> Task:
    """A `CharTransformer` task on any token sequence on `device` (also the byte-level GPT's).

    `params` carries width, heads, layers, context and batch_size. The first 90% of the tokens
    train, the rest are held out; `tokens` may be any integer dtype (uint8 bytes save memory)
    and windows are cast to int64 for the embedding. The caller checks that the held-out part
    is longer than the context.
    """
    width, heads, context = params["width"], params["heads"], params["context"]
    cut = int(TRAIN_FRACTION * len(tokens))
    train_tokens, held_tokens = tokens[:cut], tokens[cut:]
    factory = functools.partial(
        CharTransformer, vocabulary, context, width, heads, params["layers"]
    )
    model = build_module(factory, seed, "init", device, dtype, init=_gpt_init)
    batch_size = params["batch_size"]

    def sample_batch(generator: torch.Generator) -> Batch:
        """`batch_size` windows at uniformly random positions of the training text."""
        starts = torch.randint(
            len(train_tokens) - context, (batch_size,), generator=generator, device=generator.device
        )
        return _windows(train_tokens, starts.to(device), context)

    return Task(
        model=model,
        criterion=_criterion,
        probe=_windows(train_tokens, _spread(cut, context, PROBE_WINDOWS, device), context),
        held_out=_windows(
            held_tokens, _spread(len(held_tokens), context, HELD_OUT_WINDOWS, device), context
        ),
        batch_size=batch_size,
        classification=True,
        roles=infer_roles(model, head="head"),
        sample_batch=sample_batch,
    )


PLUGIN = TaskPlugin(
    id="char-transformer",
    title="Character transformer",
    summary=(
        "A small GPT-style decoder (token and learned position embeddings, pre-LayerNorm blocks "
        "of causal self-attention and GELU MLPs, an untied output head) predicts the next "
        "character of Python's own standard-library sources, which every machine has. The text "
        "is split by position, 90% for training; batches are random windows. Embeddings, "
        "norms, hidden matrices and the head all differ in role, which is what Muon-style "
        "optimizers exploit, and each layer keeps its attention maps for inspection."
    ),
    params=(
        Param("layers", "int", 2, "Number of transformer blocks.", low=1, high=48),
        Param("heads", "int", 4, "Attention heads per block; must divide width.", low=1, high=64),
        Param("width", "int", 64, "Embedding width of the residual stream.", low=4, high=4096),
        Param("context", "int", 32, "Characters per training window.", low=2, high=4096),
        Param(
            "chars",
            "int",
            200_000,
            "Characters of standard-library source to read, 90% for training.",
            low=10_000,
            high=20_000_000,
            log=True,
        ),
        Param(
            "batch_size",
            "int",
            32,
            "Random windows per training step (random windows have no full batch).",
            low=1,
        ),
    ),
    build=build,
    reference=(
        "Radford et al. (2019), Language Models are Unsupervised Multitask Learners (GPT-2); "
        "Karpathy, nanoGPT (2022)."
    ),
)
