"""A task from the user's own Python file: `[task] id = "python"`, `file`, `factory`, `[task.args]`.

The file is code: it is run (as `python my_task.py` would run it) only when a run is built, never
when a spec or a session is read. The factory is called as

    factory(seed=seed, device=device, dtype=dtype, **args) -> Task

and returns the contract the built-in tasks return (`descentlab.engine.plugin.Task`). Everything
that can go wrong is reported here, before training, as a ValueError naming the spec field:
`task.file` (missing, unreadable, a syntax error with its line, an error while the file runs),
`task.factory` (not defined, raising, returning something else than a Task) and `task.probe`
(the model cannot run on the probe batch, or the criterion cannot score its outputs).
"""

from __future__ import annotations

import itertools
import sys
import traceback
import types
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from descentlab.engine.params import Param
from descentlab.engine.plugin import Batch, Task, TaskPlugin
from descentlab.plugins.tasks.common import infer_roles

MODULE_NAME = "descentlab_user_task"
"""The `__name__` the user's file runs under (not `__main__`: its `if __name__ == "__main__":`
block, a script's own entry point, stays unrun)."""


def _user_frame(exc: BaseException, path: Path) -> str:
    """` (file:line)` of the deepest frame of `exc` inside the user's file, or ""."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == path:
            line = frame.lineno
    return f" ({path}:{line})" if line is not None else ""


def load_module(file: str) -> types.ModuleType:
    """Compile and run the user's file as a fresh module (run anew on every build, so an edited
    file takes effect).

    Raises:
        ValueError: naming `task.file`: the file is missing or unreadable, has a syntax error
            (with file:line), or raises while it runs (with the exception and its line).
    """
    path = Path(file).expanduser()
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"task.file: cannot read {path}: {reason}") from None
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise ValueError(f"task.file: syntax error in {path}:{exc.lineno}: {exc.msg}") from None
    module = types.ModuleType(MODULE_NAME)
    module.__file__ = str(path)
    # registered, as an import would, so dataclasses and pickling (loader workers) find it
    sys.modules[MODULE_NAME] = module
    try:
        exec(code, module.__dict__)
    except Exception as exc:
        raise ValueError(
            f"task.file: running {path} raised {type(exc).__name__}: {exc}{_user_frame(exc, path)}"
        ) from None
    return module


def _factory(module: types.ModuleType, name: str) -> Callable[..., Any]:
    factory = getattr(module, name, None)
    if callable(factory):
        return factory
    functions = sorted(
        k for k, v in vars(module).items() if isinstance(v, types.FunctionType) and k[0] != "_"
    )
    what = "is not a function" if factory is not None else "is not defined"
    found = ", ".join(functions) or "none"
    raise ValueError(
        f"task.factory: {name!r} {what} in {module.__file__}; functions there: {found}"
    )


def _to(value: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """Tensors onto the task's device, floating ones in its dtype; tuples and lists likewise."""
    if isinstance(value, Tensor):
        return value.to(device, dtype) if value.is_floating_point() else value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_to(v, device, dtype) for v in value)
    return value


def _is_batch(value: Any) -> bool:
    return (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, Tensor) for v in value)
    )


def _cycle(loader: Iterable[Any], device: torch.device, dtype: torch.dtype) -> Iterator[Batch]:
    """The loader's batches, epoch after epoch (iterated anew, so a shuffling loader reshuffles),
    as (inputs, targets) on the task's device."""
    for _ in itertools.count():
        empty = True
        for batch in loader:
            empty = False
            if not _is_batch(batch):
                raise ValueError(
                    f"task.train: the loader yielded {type(batch).__name__}; each batch must be "
                    "a pair (inputs, targets) of tensors"
                )
            inputs, targets = _to(tuple(batch), device, dtype)
            yield inputs, targets
        if empty:
            raise ValueError("task.train: the loader yielded no batch")


def _check_task(task: Any, name: str, device: torch.device, dtype: torch.dtype) -> Task:
    """The factory's result as a Task on `device`/`dtype`, its loader turned into `sample_batch`
    and its roles inferred when not given; ValueError naming the field that is wrong."""
    if not isinstance(task, Task):
        raise ValueError(
            f"task.factory: {name} returned {type(task).__name__}; it must return a "
            "descentlab.engine.plugin.Task (model, criterion, probe, train, held_out, ...)"
        )
    if not isinstance(task.model, nn.Module):
        raise ValueError(f"task.model: {type(task.model).__name__} is not a torch.nn.Module")
    if not callable(task.criterion):
        raise ValueError(f"task.criterion: {type(task.criterion).__name__} is not callable")
    for field in ("probe", "held_out"):
        value = getattr(task, field)
        if value is None and field == "held_out":
            continue
        if not _is_batch(value):
            raise ValueError(
                f"task.{field}: {type(value).__name__} is not a pair (inputs, targets) of tensors"
            )
        setattr(task, field, _to(tuple(value), device, dtype))
    task.model.to(device, dtype)
    if task.train is not None and not _is_batch(task.train):
        if task.sample_batch is not None:
            raise ValueError("task.train: give a loader as `train` or a `sample_batch`, not both")
        if not isinstance(task.train, Iterable):
            raise ValueError(
                f"task.train: {type(task.train).__name__} is neither a pair (inputs, targets) "
                "of tensors nor an iterable of such batches (a DataLoader)"
            )
        # the first batch is drawn now, so a loader yielding something else is refused before
        # training, and put back in front
        loader = _cycle(task.train, device, dtype)
        batches = itertools.chain([next(loader)], loader)
        task.sample_batch = lambda generator: next(batches)
        task.train = None
    elif task.train is not None:
        task.train = _to(tuple(task.train), device, dtype)
    _check_probe(task)
    # roles the factory leaves out are read from the layers, as the built-in tasks do
    has_linear = any(isinstance(m, nn.Linear) for m in task.model.modules())
    task.roles = {**infer_roles(task.model, head=None if has_linear else ""), **task.roles}
    unknown = sorted(set(task.roles) - {n for n, _ in task.model.named_parameters()})
    if unknown:
        raise ValueError(f"task.roles: not parameters of the model: {', '.join(unknown)}")
    return task


def _check_probe(task: Task) -> None:
    """Run the model on the probe once and score it, so a shape mismatch is a message now, not
    a traceback at step 0."""
    try:
        with torch.no_grad():
            loss = task.loss(task.model, task.probe)
    except Exception as exc:
        shapes = " and ".join(str(tuple(t.shape)) for t in task.probe)
        raise ValueError(
            f"task.probe: the model cannot run on the probe batch (shapes {shapes}): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        got = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(f"task.criterion: must return the mean loss, a scalar; got {got}")


def build(params: dict[str, Any], seed: int, device: torch.device, dtype: torch.dtype) -> Task:
    """Run the user's file, call its factory with the seed, device and dtype, check the result."""
    module = load_module(params["file"])
    name = params["factory"]
    factory = _factory(module, name)
    try:
        task = factory(seed=seed, device=device, dtype=dtype, **params.get("args", {}))
    except Exception as exc:
        raise ValueError(
            f"task.factory: {name} raised {type(exc).__name__}: {exc}"
            f"{_user_frame(exc, Path(params['file']).expanduser())}"
        ) from None
    return _check_task(task, name, device, dtype)


PLUGIN = TaskPlugin(
    id="python",
    title="Your own Python file",
    summary="A model and data from your own Python file: its factory "
    "`make_task(seed, device, dtype, **args)` returns a Task (see docs/tasks.md). "
    "The file is code: the window asks before it runs it the first time.",
    params=(
        Param("file", "str", "", "the Python file defining the task, relative to the spec"),
        Param("factory", "str", "make_task", "the function in that file that returns the Task"),
    ),
    build=build,
)
