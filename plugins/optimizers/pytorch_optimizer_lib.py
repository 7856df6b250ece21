"""Every optimizer of `pytorch-optimizer` as a plugin: its record, its schema, its build.

pytorch-optimizer (Kim, https://github.com/kozistr/pytorch_optimizer) is the maintained
reference implementation of well over a hundred published optimizers; the lab wraps it rather
than rewriting them. One plugin per name of `get_supported_optimizers()`, plus the wrappers the
library exports apart (the SAM family, Lookahead, OrthoGrad, TRAC, the schedule-free wrapper),
which take a base optimizer from a small `base` choice. Names that torch.optim or the lab's own
modules already use get the id `pto-<name>`.

Three pieces make a plugin: what the lab says about the optimizer (`pto_records.py`: title,
family, summary, paper, needs, conformance exemptions, lab defaults), its parameters read from
the constructor's signature (`pto_schema.py`, stored in `pto_manifest.json` so that listing the
catalogue does not import the library), and the build here, which imports the library and
applies the adapters of `pto_adapters.py` (own random state, gradients before the closure, ...).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import torch
from torch import nn

from descentlab.engine.live_hyper import SCHEMA_NAMES
from descentlab.engine.params import Param
from descentlab.engine.plugin import CONFORMANCE_CHECKS, OptimizerPlugin, Role
from descentlab.plugins.optimizers import pto_schema, torch_optim
from descentlab.plugins.optimizers.muon import split
from descentlab.plugins.optimizers.pto_records import RECORDS, Record
from descentlab.plugins.optimizers.pto_schema import WRAPPERS, LibraryEntry

RESERVED_IDS = frozenset(
    [
        "swan",
        "spectra",
        "symmetric",
        "auon",
        "auon-paper",
        "ortho-svd",
        "nag-gs",
        "mfac",
        "egn",
        "newton",
        "lazy-newton",
        "entropy-sgd",
        "fosi",
        "mezo",
        "langevin",
        "diffgrad",
        "diffgrad-published",
        "dog",
        "ldog",
        "optimistic",
        "random-scaled-sgdm",
        "noise",
        "lookahead",
        "cautious",
        "ema",
        "natural-gradient",
        "muon",
    ]
)
"""Ids the lab's hand-written optimizers use; a library name among them becomes `pto-<name>`."""

UNRUNNABLE: dict[str, str] = {r.name: r.unrunnable for r in RECORDS if r.unrunnable}
"""Library optimizers listed but refused at build, with the reason."""

MUON_ADAMW_NAMES = {
    "adamw_lr": "lr",
    "adamw_betas": "betas",
    "adamw_eps": "eps",
    "adamw_wd": "weight_decay",
}
"""Keys of a Muon type's AdamW groups by schema name (`live_hyper.SCHEMA_NAMES`)."""


def plugin_id(name: str, taken: frozenset[str]) -> str:
    """The library's name, or `pto-<name>` when the lab already uses that id."""
    return f"pto-{name}" if name in taken else name


def _build(
    record: Record,
    params: tuple[Param, ...],
    named_params: list[tuple[str, nn.Parameter]],
    roles: dict[str, Role],
    hyper: dict[str, Any],
) -> torch.optim.Optimizer:
    """The library's optimizer over the parameters (split by role for Muon types), the lab's
    adapters applied. pytorch-optimizer is imported here, not when the catalogue is listed."""
    from descentlab.plugins.optimizers import pto_adapters

    name = record.name
    kwargs = pto_schema.kwargs(params, pto_schema.converters(name), hyper)
    seed = kwargs.pop("seed", None)
    adapted = pto_adapters.adapted(
        pto_adapters.FIXED.get(name, pto_schema.library_classes()[name]),
        record.random,
        record.gradients_first,
        record.needs.batch,  # the model reaches WSAM through set_batch
        record.eval_after_first_step,
    )
    tensors = [p for _, p in named_params]
    if record.needs.roles:
        hidden, rest = split(named_params, roles)
        groups = [{"params": hidden, "use_muon": True}] if hidden else []
        adamw = {"params": rest, "use_muon": False, SCHEMA_NAMES: dict(MUON_ADAMW_NAMES)}
        groups += [adamw] if rest else []
        optimizer = adapted(groups, **kwargs)
    elif name in WRAPPERS:
        base = pto_schema.BASES[kwargs.pop("base")]
        if name == "wsam":
            optimizer = adapted(nn.Module(), tensors, base_optimizer=base, **kwargs)
        elif name in ("sam", "looksam", "friendlysam"):
            optimizer = adapted(tensors, base_optimizer=base, **kwargs)
        else:
            optimizer = adapted(base, params=tensors, **kwargs)
    else:
        optimizer = adapted(tensors, **kwargs)
    if seed is not None:
        optimizer._seed_random_state(seed)
    pto_adapters.keep_state_dtypes(optimizer)
    return optimizer


def _refuse(
    reason: str,
    named_params: list[tuple[str, nn.Parameter]],
    roles: dict[str, Role],
    hyper: dict[str, Any],
) -> torch.optim.Optimizer:
    raise ValueError(reason)


def _plugin(record: Record, entry: LibraryEntry, taken: frozenset[str]) -> OptimizerPlugin:
    """The plugin of one library optimizer from its record and its manifest entry."""
    pid = plugin_id(record.name, taken)
    params = tuple(
        dataclasses.replace(p, default=record.defaults[p.name]) if p.name in record.defaults else p
        for p in entry.params
    )
    if record.random:
        params += (Param("seed", "int", 0, pto_schema.HELP["seed"], low=0, high=2**31 - 1),)
    summary = record.summary or entry.summary
    if pid.startswith("pto-") and "pytorch-optimizer" not in summary:
        summary = f"pytorch-optimizer's implementation. {summary}"
    exempt = dict(record.exempt)
    if record.unrunnable:
        build = functools.partial(_refuse, f"{pid} cannot run here: {record.unrunnable}")
        exempt = dict.fromkeys(CONFORMANCE_CHECKS, record.unrunnable)
    else:
        build = functools.partial(_build, record, params)
    return OptimizerPlugin(
        id=pid,
        title=record.title or entry.class_name,
        summary=summary,
        params=params,
        build=build,
        family=record.family,
        reference=record.reference or entry.reference,
        needs=record.needs,
        exempt=exempt,
    )


def _plugins(taken: frozenset[str]) -> list[OptimizerPlugin]:
    """One plugin per manifest entry; a name without a record (or a record without a name) is a
    catalogue out of step with the library, reported as such."""
    records = {r.name: r for r in RECORDS}
    missing = sorted(set(_ENTRIES) - set(records))
    stale = sorted(set(records) - set(_ENTRIES))
    if missing or stale:
        raise LookupError(
            f"pto_manifest.json (pytorch-optimizer {LIBRARY_VERSION}) and pto_records.py "
            f"disagree: no record for {missing}, no library optimizer for {stale}"
        )
    return [_plugin(records[name], entry, taken) for name, entry in sorted(_ENTRIES.items())]


_TAKEN = frozenset(p.id for p in torch_optim.PLUGINS) | RESERVED_IDS
LIBRARY_VERSION, _ENTRIES = pto_schema.load_manifest()
"""The pytorch-optimizer release the manifest was read from, and its optimizers."""
PLUGINS: list[OptimizerPlugin] = _plugins(_TAKEN)
"""One plugin per pytorch-optimizer optimizer and wrapper (ids clash → `pto-<name>`)."""
