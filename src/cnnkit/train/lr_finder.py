"""Learning-rate range test (Smith, 2015): raise the rate exponentially, watch the loss.

Step ``i`` of ``n`` uses ``lr_i = min_lr · (max_lr / min_lr)^(i / (n − 1))``. The loss is smoothed
with an exponential moving average (``β = 0.98``, bias-corrected); the test stops early when the
smoothed loss exceeds ``4 ×`` its minimum. The suggested rate is the one where the smoothed loss
falls fastest (steepest negative slope against log lr) — usually a good peak rate for one-cycle
or cosine schedules. The model's weights are restored afterwards.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from cnnkit.train.losses import get_loss
from cnnkit.train.outputs import PROBS, output_kind
from cnnkit.train.optimizers import build_optimizer

SMOOTHING = 0.98
DIVERGE_FACTOR = 4.0


@dataclass(frozen=True)
class LRFinderResult:
    """The tested rates, their smoothed losses, and the suggested rate."""

    lrs: list[float]
    losses: list[float]
    suggestion: float

    def to_text(self, rows: int = 12) -> str:
        """A small table of (lr, loss), thinned to about ``rows`` lines, and the suggestion."""
        step = max(1, len(self.lrs) // rows)
        lines = ["lr          loss"]
        lines += [f"{lr:<10.2e}  {loss:.4f}" for lr, loss in
                  zip(self.lrs[::step], self.losses[::step])]
        lines.append(f"suggested lr: {self.suggestion:.2e}")
        return "\n".join(lines)


def find_lr(model: nn.Module, loader: Iterable, *, optimizer: str = "adam",
            loss: str | Callable = "cross_entropy", min_lr: float = 1e-6, max_lr: float = 1.0,
            num_steps: int = 100, device: str | torch.device = "cpu") -> LRFinderResult:
    """Run the learning-rate range test on ``model`` and restore its weights afterwards.

    Args:
        model: the classifier.
        loader: ``(x, y)`` batches; cycled if shorter than ``num_steps``.
        optimizer: optimizer name (see :func:`cnnkit.train.optimizers.build_optimizer`).
        loss: loss name or callable.
        min_lr, max_lr: the range, ``0 < min_lr < max_lr``.
        num_steps: number of rates tried (>= 5).
        device: where to train.

    Raises:
        ValueError: a bad range or step count, or an empty loader.

    Example:
        >>> result = find_lr(model, train_loader, num_steps=50)  # doctest: +SKIP
        >>> result.suggestion  # doctest: +SKIP
        0.0031
    """
    if not 0 < min_lr < max_lr:
        raise ValueError(f"need 0 < min_lr < max_lr, got min_lr={min_lr!r}, max_lr={max_lr!r}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 5:
        raise ValueError(f"num_steps must be an int >= 5, got {num_steps!r}")
    saved = copy.deepcopy(model.state_dict())
    model.to(device).train()
    opt = build_optimizer(optimizer, model.parameters(), lr=min_lr)
    loss_fn = get_loss(loss, from_probs=output_kind(model) == PROBS)
    lrs, losses = [], []
    avg, best = 0.0, math.inf
    batches = iter(loader)
    try:
        for i in range(num_steps):
            lr = min_lr * (max_lr / min_lr) ** (i / (num_steps - 1))
            for group in opt.param_groups:
                group["lr"] = lr
            try:
                x, y = next(batches)
            except StopIteration:
                batches = iter(loader)
                try:
                    x, y = next(batches)
                except StopIteration:
                    raise ValueError("the loader gave no batches; give a non-empty "
                                     "loader") from None
            value = loss_fn(model(x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            avg = SMOOTHING * avg + (1 - SMOOTHING) * value.item()
            smoothed = avg / (1 - SMOOTHING ** (i + 1))
            if not math.isfinite(smoothed) or smoothed > DIVERGE_FACTOR * best:
                break
            best = min(best, smoothed)
            lrs.append(lr)
            losses.append(smoothed)
    finally:
        model.load_state_dict(saved)
    return LRFinderResult(lrs, losses, _steepest(lrs, losses))


def _steepest(lrs: list[float], losses: list[float]) -> float:
    """The rate where the loss falls fastest against log(lr) (the first rate if < 3 points)."""
    if len(lrs) < 3:
        return lrs[0] if lrs else float("nan")
    slopes = [(losses[i + 1] - losses[i - 1]) / (math.log(lrs[i + 1]) - math.log(lrs[i - 1]))
              for i in range(1, len(lrs) - 1)]
    return lrs[1 + min(range(len(slopes)), key=slopes.__getitem__)]
