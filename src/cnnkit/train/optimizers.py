"""Optimizers by name: SGD (momentum, Nesterov), Adam, AdamW, RMSprop, Adadelta.

All are PyTorch's own implementations; this module only maps names and validates arguments.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable

import torch

OPTIMIZER_CLASSES: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adadelta": torch.optim.Adadelta,
}

# Keras' default learning rates, used when ``lr`` is None (Keras' ``optimizer="adam"``).
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "adadelta": 1.0}


def build_optimizer(name: str, params: Iterable, *, lr: float | None = None,
                    momentum: float = 0.0, nesterov: bool = False,
                    weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Create a PyTorch optimizer from its name.

    Args:
        name: ``sgd``, ``adam``, ``adamw``, ``rmsprop`` or ``adadelta`` (case-insensitive).
        params: the model's parameters (or parameter groups).
        lr: learning rate; None takes Keras' default for that optimizer.
        momentum: SGD and RMSprop only (ignored by the Adam family, which has its own betas).
        nesterov: SGD only; needs ``momentum > 0``.
        weight_decay: L2 penalty (decoupled weight decay for AdamW).

    Raises:
        ValueError: unknown name (with a suggestion), negative values, or Nesterov without momentum.

    Example:
        >>> opt = build_optimizer("sgd", torch.nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.9)
        >>> type(opt).__name__
        'SGD'
    """
    if not isinstance(name, str):
        raise TypeError(f"optimizer must be a name like 'adam' or a torch.optim.Optimizer, "
                        f"got {name!r}")
    key = name.strip().lower()
    if key not in OPTIMIZER_CLASSES:
        hint = difflib.get_close_matches(key, OPTIMIZER_CLASSES, n=1)
        fix = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"unknown optimizer {name!r}{fix} "
                         f"(valid: {', '.join(OPTIMIZER_CLASSES)})")
    lr = DEFAULT_LR[key] if lr is None else lr
    for arg, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        if value < 0:
            raise ValueError(f"{arg} must be >= 0, got {value!r}")
    if nesterov and (key != "sgd" or momentum <= 0):
        raise ValueError(f"nesterov=True needs optimizer='sgd' with momentum > 0, got "
                         f"optimizer={name!r}, momentum={momentum!r}")
    cls = OPTIMIZER_CLASSES[key]
    if key == "sgd":
        return cls(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if key == "rmsprop":
        return cls(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return cls(params, lr=lr, weight_decay=weight_decay)
