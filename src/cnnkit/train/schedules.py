"""Learning-rate schedules as a factor of the peak rate, stepped once per optimizer step.

With ``T`` total steps, ``W`` warm-up steps, step ``s`` (0-based) and ``p = (s − W)/(T − W)``
the fraction of the post-warm-up steps done, the rate is ``lr · factor(s)`` with:

* warm-up (any schedule, ``s < W``): ``factor = (s + 1)/W`` (linear ramp to the peak)
* ``constant``: ``1``
* ``step``: ``0.1^m``, ``m`` = milestones passed, at ``p = 0.5`` and ``p = 0.75``
* ``cosine``: ``½(1 + cos(π p))`` (from 1 down to 0)
* ``onecycle``: linear ramp ``1/25 → 1`` over the first 30% of ``T`` (used instead of a warm-up),
  then ``½(1 + cos(π q))`` down to 0, with ``q`` the fraction of the remaining 70% done.

The scheduler is a ``torch.optim.lr_scheduler.LambdaLR`` whose state dict is plain JSON.
"""
from __future__ import annotations

import difflib
import functools
import math

import torch

SCHEDULE_NAMES = ("constant", "step", "cosine", "onecycle")
ONECYCLE_PCT_START = 0.3
ONECYCLE_START_FACTOR = 1.0 / 25.0
STEP_MILESTONES = (0.5, 0.75)
STEP_GAMMA = 0.1


def lr_factor(step: int, *, name: str, total_steps: int, warmup_steps: int = 0) -> float:
    """The multiplier of the peak learning rate at optimizer step ``step`` (0-based).

    Example:
        >>> lr_factor(50, name="cosine", total_steps=100)
        0.5
    """
    if name == "onecycle":
        ramp = max(1, round(ONECYCLE_PCT_START * total_steps))
        if step < ramp:
            return ONECYCLE_START_FACTOR + (1 - ONECYCLE_START_FACTOR) * step / ramp
        q = min(1.0, (step - ramp) / max(1, total_steps - ramp))
        return 0.5 * (1.0 + math.cos(math.pi * q))
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    p = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if name == "constant":
        return 1.0
    if name == "step":
        return STEP_GAMMA ** sum(p >= m for m in STEP_MILESTONES)
    if name == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    raise ValueError(f"unknown schedule {name!r} (valid: {', '.join(SCHEDULE_NAMES)})")


def build_schedule(name: str, optimizer: torch.optim.Optimizer, *, total_steps: int,
                   warmup_steps: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step scheduler following :func:`lr_factor`; call ``.step()`` after each optimizer step.

    Args:
        name: ``constant``, ``step``, ``cosine`` or ``onecycle``.
        optimizer: the optimizer whose ``lr`` is the peak rate.
        total_steps: optimizer steps in the whole run (epochs × batches per epoch).
        warmup_steps: linear warm-up steps (ignored by ``onecycle``, which has its own ramp).

    Raises:
        ValueError: unknown name (with a suggestion) or step counts out of range.

    Example:
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
        >>> sched = build_schedule("cosine", opt, total_steps=10)
    """
    if name not in SCHEDULE_NAMES:
        hint = difflib.get_close_matches(str(name), SCHEDULE_NAMES, n=1)
        fix = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"unknown schedule {name!r}{fix} (valid: {', '.join(SCHEDULE_NAMES)})")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps!r}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], "
                         f"got {warmup_steps!r}")
    factor = functools.partial(lr_factor, name=name, total_steps=total_steps,
                               warmup_steps=warmup_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
