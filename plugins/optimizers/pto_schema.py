"""pytorch-optimizer's constructors read into parameter schemas, and the manifest made of them.

Schemas come from the signatures as in `torch_optim.py` (whose rules `_derive` extends): numbers,
booleans, tuples of numbers, `Literal` strings and enums become parameters with the library's
defaults; implementation switches and `maximize` are left out, and so are arguments the
signature cannot type (callables, dtypes, free-form strings, dicts): the library keeps its
default for those.

Reading every signature means importing pytorch-optimizer (a few seconds: it loads
torch.distributed), so the schemas are written once to `pto_manifest.json` (with each class's
name and docstring's first line and link), and the catalogue lists the library from that file.
The library is imported when an optimizer is built. After upgrading it, regenerate the file:

    python -m descentlab.plugins.optimizers.pto_schema

A test fails while the file and the installed library disagree.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import json
import math
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from descentlab.engine.params import Param, defaults
from descentlab.plugins.optimizers import torch_optim

NOT_HYPERPARAMETERS = torch_optim.NOT_HYPERPARAMETERS | {"kwargs", "compute_dtype"}
"""Arguments never exposed: torch.optim's implementation switches, `maximize`, `**kwargs`."""

BASES: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}
"""Base optimizers offered to the wrappers (SAM family, Lookahead, ...)."""

HELP: dict[str, str] = {
    **torch_optim._HELP,
    "betas": "Decay rates (β₁, β₂, ...) of the running averages, in the library's order.",
    "weight_decouple": "Decay the weights directly, θ ← θ(1 − ηλ) (AdamW-style), instead of "
    "adding λθ to the gradient.",
    "fixed_decay": "With decoupled decay, shrink by (1 − λ) instead of (1 − ηλ).",
    "ams_bound": "Divide by the running maximum of the second moment (AMSGrad).",
    "nesterov": "Nesterov momentum: step along the look-ahead of the momentum.",
    "rectify": "Rectify the adaptive step in the first steps, as RAdam does.",
    "degenerated_to_sgd": "While the rectification is undefined, take SGD steps instead of none.",
    "n_sma_threshold": "Length of the approximated SMA below which the step is not rectified.",
    "ns_steps": "Newton–Schulz iterations per orthogonalisation.",
    "adamw_lr": "Learning rate of the AdamW groups (parameters that are not hidden matrices).",
    "adamw_betas": "(β₁, β₂) of the AdamW groups.",
    "adamw_wd": "Weight decay of the AdamW groups.",
    "adamw_eps": "ε of the AdamW groups.",
    "use_adjusted_lr": "Scale η by the matrix shape so that the update RMS matches AdamW's.",
    "max_grad_norm": "Clip the global gradient norm to this (0: no clipping).",
    "rho": "Radius ρ of the sharpness-aware perturbation.",
    "adaptive": "Scale the perturbation elementwise by |θ| (ASAM).",
    "perturb_eps": "ε added to the gradient norm of the perturbation.",
    "use_gc": "Centralise gradients (subtract their mean over each output row).",
    "d0": "Initial estimate d₀ of the distance to the solution.",
    "growth_rate": "Largest factor by which the distance estimate may grow per step; unset: ∞.",
    "k": "Number of inner steps between two updates of the slow weights.",
    "alpha": "Interpolation or mixing coefficient α (see the summary).",
    "update_period": "Steps between two Hessian-diagonal estimates.",
    "num_samples": "Hutchinson probe vectors per Hessian-diagonal estimate.",
    "hessian_power": "Exponent k of the Hessian diagonal in the denominator (|D|^k).",
    "weight_lr_power": "Power of the learning rate in the weights of the iterate average.",
    "r": "Power r of the step count in the weights of the iterate average.",
    "warmup_steps": "Steps of linear learning-rate warm-up.",
    "seed": "Seed of the optimizer's own random numbers (probes, noise, masks).",
    "base": "Base optimizer that takes the actual step: " + ", ".join(BASES) + ".",
    "base_lr": "Learning rate of the base optimizer.",
}
"""Help for arguments shared by several optimizers; torch_optim's entries included."""

_RANGES: dict[str, dict[str, Any]] = {
    **torch_optim._RANGES,
    "adamw_lr": {"low": 1e-8, "high": 10.0, "log": True},
    "adamw_eps": {"low": 0.0, "high": 1.0, "log": True},
    "adamw_wd": {"low": 0.0, "high": 10.0, "log": True},
    "adamw_betas": {"low": 0.0, "high": 0.99999},
    "eps1": {"low": 0.0, "high": 1.0, "log": True},
    "eps2": {"low": 0.0, "high": 1.0, "log": True},
    "rho": {"low": 0.0, "high": 10.0},
}
"""Ranges shared by every argument of that name; a default outside one widens it."""


def _literal_choices(annotation: Any) -> tuple[str, ...] | None:
    """The strings of a `Literal[...]` (possibly inside `| None`), or None."""
    if typing.get_origin(annotation) is typing.Literal:
        values = typing.get_args(annotation)
        return values if all(isinstance(v, str) for v in values) else None
    for arg in typing.get_args(annotation):
        found = _literal_choices(arg)
        if found is not None:
            return found
    return None


def _help(name: str, cls_name: str) -> str:
    return HELP.get(name, f"Argument {name} of pytorch-optimizer's {cls_name} (see its docs).")


def _derive(arg: inspect.Parameter, cls_name: str) -> Param | None:
    """The parameter a constructor argument implies, or None where its type cannot be told.

    On top of `torch_optim`'s rules: `Literal` strings and enums become choices (None, where
    allowed, is the choice "none"), tuples of ints become int lists, and an infinite default
    (a bound that is off) becomes an unset nullable number.
    """
    default, name = arg.default, arg.name
    help_text = _help(name, cls_name)
    choices = _literal_choices(arg.annotation)
    if choices is not None and (isinstance(default, str) or default is None):
        if default is None:
            return Param(name, "choice", "none", help_text, choices=("none", *choices))
        return Param(name, "choice", default, help_text, choices=choices)
    if isinstance(default, enum.Enum):
        members = tuple(m.name.lower() for m in type(default))
        return Param(name, "choice", default.name.lower(), help_text, choices=members)
    if isinstance(default, tuple) and default and all(type(v) is int for v in default):
        return Param(name, "ints", default, help_text, length=len(default))
    if isinstance(default, float) and math.isinf(default):
        return Param(name, "float", None, help_text, nullable=True)
    derived = torch_optim._derive(arg)
    return None if derived is None else dataclasses.replace(derived, help=help_text)


def _ranged(param: Param) -> Param:
    """Shared ranges for the parameter's name, widened to admit the library's default."""
    changes = dict(_RANGES.get(param.name, {}))
    if param.name.endswith("_lr") or param.name.startswith("lr_"):
        changes.setdefault("low", 0.0)
        changes.setdefault("log", True)
    values = param.default if isinstance(param.default, tuple) else (param.default,)
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if param.type in ("float", "floats", "int", "ints") and numbers:
        if changes.get("low") is not None:
            changes["low"] = min(changes["low"], *numbers)
        if changes.get("high") is not None:
            changes["high"] = max(changes["high"], *numbers)
    if changes.get("log") and changes.get("low") is None:
        changes["low"] = 0.0
    return dataclasses.replace(param, **changes)


@dataclass(frozen=True)
class _Required:
    """A constructor argument without a default that the lab can still supply."""

    param: Param | None
    """Exposed as this parameter, or None when the build supplies it itself."""


_REQUIRED: dict[str, _Required] = {
    "num_data": _Required(
        Param(
            "num_data",
            "int",
            1000,
            "N, the number of training examples: the posterior noise has variance 1/(N·s). "
            "Set it to the task's training-set size.",
            low=1,
            high=10**9,
            log=True,
        )
    ),
    "num_iterations": _Required(
        Param(
            "num_iterations",
            "int",
            1000,
            "Length of training in steps, from which Ranger21 derives its warm-up and "
            "warm-down; set it to the run's steps.",
            low=1,
            high=10**9,
            log=True,
        )
    ),
    "base_optimizer": _Required(None),
    "optimizer": _Required(None),
    "model": _Required(None),
}
"""Arguments without defaults: exposed with a lab default, or supplied by the build."""


def schema(cls: type, cls_name: str) -> tuple[tuple[Param, ...], dict[str, Callable[[Any], Any]]]:
    """The parameters of `cls` in signature order, and converters back to the library's values.

    Raises KeyError for a required argument the lab does not know how to supply.
    """
    params: list[Param] = []
    convert: dict[str, Callable[[Any], Any]] = {}
    for arg in inspect.signature(cls).parameters.values():
        if arg.name in NOT_HYPERPARAMETERS or arg.kind is arg.VAR_KEYWORD:
            continue
        if arg.default is inspect.Parameter.empty:
            required = _REQUIRED[arg.name]
            if required.param is not None:
                params.append(required.param)
            continue
        derived = _derive(arg, cls_name)
        if derived is None:  # callables, dtypes, free-form strings, dicts: library default
            continue
        if isinstance(arg.default, enum.Enum):
            convert[arg.name] = functools.partial(_enum_member, type(arg.default))
        elif derived.type == "choice" and arg.default is None:
            convert[arg.name] = _none_choice
        elif isinstance(arg.default, float) and math.isinf(arg.default):
            convert[arg.name] = _unset_is_infinite
        params.append(_ranged(derived))
    return tuple(params), convert


def _enum_member(enum_type: type[enum.Enum], name: str) -> Any:
    """The member named `name`; IntEnums as plain ints, which state dicts can hold."""
    member = enum_type[name.upper()]
    return int(member) if isinstance(member, int) else member


def _none_choice(value: str) -> str | None:
    return None if value == "none" else value


def _unset_is_infinite(value: float | None) -> float:
    return math.inf if value is None else value


def kwargs(
    params: tuple[Param, ...], convert: dict[str, Callable[[Any], Any]], hyper: dict[str, Any]
) -> dict[str, Any]:
    """Constructor keyword arguments: defaults filled in, lists as tuples, choices converted."""
    kwargs = {**defaults(params), **hyper}
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    for name, to_library in convert.items():
        kwargs[name] = to_library(kwargs[name])
    return kwargs


WRAPPERS: dict[str, str] = {
    "sam": "SAM",
    "wsam": "WSAM",
    "looksam": "LookSAM",
    "friendlysam": "FriendlySAM",
    "lookahead": "Lookahead",
    "orthograd": "OrthoGrad",
    "trac": "TRAC",
    "schedulefreewrapper": "ScheduleFreeWrapper",
}
"""Wrapper-style classes exported apart from `get_supported_optimizers()`, by lab name."""


def _first_line(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.splitlines()[0].strip() if doc else cls.__name__


def _docstring_reference(cls: type) -> str:
    found = re.search(r"https?://[^\s>`'\")]+", inspect.getdoc(cls) or "")
    return found.group(0).rstrip(".") if found else ""


def wrapper_params(cls: type) -> tuple[tuple[Param, ...], dict[str, Any]]:
    params, convert = schema(cls, cls.__name__)
    base = (
        Param("base", "choice", "sgd", HELP["base"], choices=tuple(BASES)),
        Param("lr", "float", 0.05, "Learning rate η of the base optimizer.", 1e-8, 10.0, True),
        Param(
            "weight_decay",
            "float",
            0.0,
            "Weight decay λ of the base optimizer (AdamW: decoupled).",
            0.0,
            10.0,
            True,
        ),
    )
    clashes = {p.name for p in base} & {p.name for p in params}
    return base + tuple(p for p in params if p.name not in clashes), convert


@functools.cache
def library_classes() -> dict[str, type]:
    """Every optimizer class the catalogue wraps, by library name (imports the library)."""
    import pytorch_optimizer as pto

    found = {name: pto.load_optimizer(name) for name in pto.get_supported_optimizers()}
    found.update({name: getattr(pto, cls) for name, cls in WRAPPERS.items()})
    found["gsam"] = pto.GSAM
    return found


@functools.cache
def converters(name: str) -> dict[str, Callable[[Any], Any]]:
    """The converters from the lab's values to the library's for optimizer `name` (see
    `schema`); they need the library's enums, so this imports the library."""
    cls = library_classes()[name]
    if name in WRAPPERS:
        return wrapper_params(cls)[1]
    try:
        return schema(cls, cls.__name__)[1]
    except KeyError:
        return {}


def describe(name: str, cls: type) -> dict[str, Any]:
    """What the catalogue lists of `cls` without importing it: its class name, parameters and
    the first line and link of its docstring, as JSON-able values."""
    if name in WRAPPERS:
        params, _ = wrapper_params(cls)
    else:
        try:
            params, _ = schema(cls, cls.__name__)
        except KeyError:  # a required argument the lab cannot supply (the model)
            params = ()
    return {
        "class": cls.__name__,
        "params": [dataclasses.asdict(p) for p in params],
        "summary": _first_line(cls),
        "reference": _docstring_reference(cls),
    }


def manifest() -> dict[str, Any]:
    """The manifest of the installed library (imports it)."""
    import importlib.metadata

    return {
        "pytorch-optimizer": importlib.metadata.version("pytorch-optimizer"),
        "optimizers": {
            name: describe(name, cls) for name, cls in sorted(library_classes().items())
        },
    }


MANIFEST = Path(__file__).with_name("pto_manifest.json")


@dataclass(frozen=True)
class LibraryEntry:
    """One library optimizer as the manifest lists it."""

    class_name: str
    params: tuple[Param, ...]
    summary: str
    reference: str


def _param(fields: dict[str, Any]) -> Param:
    """A Param from its JSON form (lists back to tuples)."""
    default = fields["default"]
    return Param(
        **{
            **fields,
            "default": tuple(default) if isinstance(default, list) else default,
            "choices": tuple(fields["choices"]),
        }
    )


def load_manifest(path: Path = MANIFEST) -> tuple[str, dict[str, LibraryEntry]]:
    """(the library version the manifest was made from, its entries by library name)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    entries = {
        name: LibraryEntry(
            item["class"],
            tuple(_param(p) for p in item["params"]),
            item["summary"],
            item["reference"],
        )
        for name, item in data["optimizers"].items()
    }
    return data["pytorch-optimizer"], entries


def manifest_text() -> str:
    """The manifest file's text for the installed library: JSON with one line per parameter,
    so that a regenerated file's diff shows what changed."""

    def line(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)

    data = manifest()
    entries = []
    for name, item in data["optimizers"].items():
        params = ",\n".join(f"    {line(p)}" for p in item["params"])
        fields = [f'   "{key}": {line(item[key])}' for key in ("class", "summary", "reference")]
        fields.append(f'   "params": [\n{params}\n   ]' if params else '   "params": []')
        entries.append(f"  {line(name)}: {{\n" + ",\n".join(fields) + "\n  }")
    version = line(data["pytorch-optimizer"])
    body = ",\n".join(entries)
    return f'{{\n "pytorch-optimizer": {version},\n "optimizers": {{\n{body}\n }}\n}}\n'


if __name__ == "__main__":
    MANIFEST.write_text(manifest_text(), encoding="utf-8")
    print(f"wrote {MANIFEST}")
