"""Learning-rate schedules: a multiplier of each run's base learning rate, as a function of step.

A multiplier rather than an absolute rate keeps live edits simple: changing the base rate while
a run is live rescales the whole remaining schedule, which is what a user expects.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from descentlab.engine.params import Param

Multiplier = Callable[[int], float]

_WARMUP = Param("warmup_steps", "int", 0, "steps of linear warm-up from 0", low=0)

SCHEDULES: dict[str, tuple[Param, ...]] = {
    "constant": (_WARMUP,),
    "cosine": (
        _WARMUP,
        Param("min_factor", "float", 0.0, "final rate as a fraction of the base rate", 0.0, 1.0),
    ),
    "linear": (
        _WARMUP,
        Param("final_factor", "float", 0.0, "final rate as a fraction of the base rate", 0.0, 1.0),
    ),
    "step": (
        _WARMUP,
        Param("step_size", "int", 100, "steps between two decays", low=1),
        Param("gamma", "float", 0.1, "factor applied at every decay", 0.0, 1.0),
    ),
}
"""Schedule ids and their parameter schemas, checked by the spec validator."""


def multiplier(schedule_id: str, params: dict[str, Any], total_steps: int) -> Multiplier:
    """The factor applied to the base learning rate at each step (0-based).

    Warm-up ramps linearly to 1 over `warmup_steps` (step 0 already gets 1/warmup, so the first
    update is not wasted); the decay then spans the remaining steps.
    """
    warmup = params.get("warmup_steps", 0)
    span = max(total_steps - warmup, 1)

    def decay(t: int) -> float:
        if schedule_id == "cosine":
            lo = params["min_factor"]
            return lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * min(t / span, 1.0)))
        if schedule_id == "linear":
            return 1.0 + (params["final_factor"] - 1.0) * min(t / span, 1.0)
        if schedule_id == "step":
            return params["gamma"] ** (t // params["step_size"])
        return 1.0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return decay(step - warmup)

    return factor
