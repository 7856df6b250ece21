"""From the validator's problems to the editor's fields, without Qt.

A `SpecError` lists problems as 'PATH: message', the path naming the field
('runs[1].optimizer.betas[0]'); the experiment panel walks the parsed path down to the widget
holding the value and marks it there. The summary lists every problem, marked or not.
"""

from __future__ import annotations

import re


def parse_path(path: str) -> list[str | int]:
    """Split a problem's field path, 'runs[1].optimizer.betas[0]' → ['runs', 1, 'optimizer',
    'betas', 0]; the panel walks it down to the widget holding the value."""
    return [
        int(token[1:-1]) if token.startswith("[") else token
        for token in re.findall(r"\[\d+\]|[^.\[\]]+", path)
    ]


def index_suffix(rest: list[str | int]) -> str:
    """'[1]' for an error about one item of a list parameter, so the message says which."""
    return "".join(f"[{t}]" if isinstance(t, int) else f".{t}" for t in rest)


def problems_by_run(problems: list[str]) -> dict[int, list[str]]:
    """The problems under `runs[i]`, by i, so the runs list can flag each run that has any."""
    by_run: dict[int, list[str]] = {}
    for problem in problems:
        tokens = parse_path(problem.partition(": ")[0])
        if tokens[:1] == ["runs"] and len(tokens) > 1 and isinstance(tokens[1], int):
            by_run.setdefault(tokens[1], []).append(problem)
    return by_run


def summary(problems: list[str], marked: int) -> str:
    """The summary above the form: how many problems, how many shown on a field, each one."""
    bullets = "\n".join(f"• {problem}" for problem in problems)
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return f"{count} ({marked} marked on their fields):\n{bullets}"
