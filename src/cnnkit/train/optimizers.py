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

# Default learning rates, used when ``lr`` is None: Keras' (``optimizer="adam"``), except
# Adadelta's 1.0, PyTorch's and the PyTorch MNIST example's (Keras 3 uses 1e-3).
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "adadelta": 1.0}

# What Keras 3's optimizers default to where PyTorch's differ (keras.optimizers.*.__init__):
# epsilon 1e-7 (PyTorch 1e-8), RMSprop's rho 0.9 (PyTorch's alpha 0.99), Adadelta's learning
# rate 1e-3 (PyTorch 1.0) and AdamW's weight decay 0.004 (PyTorch 0.01). The Keras surface
# (cnnkit.keras) builds its optimizers by name with these, so a Keras listing trains as in Keras.
KERAS_DEFAULTS = {
    "sgd": {},
    "adam": {"eps": 1e-7},
    "adamw": {"eps": 1e-7, "weight_decay": 0.004},
    "rmsprop": {"eps": 1e-7, "alpha": 0.9},
    "adadelta": {"eps": 1e-7, "rho": 0.95, "lr": 1e-3},
}


def trainable_param_groups(params: Iterable) -> list[dict]:
    """Parameter groups holding only the parameters with ``requires_grad`` (empty groups dropped).

    Args:
        params: parameters, or parameter-group dicts (``{"params": [...], "lr": ...}``).

    Raises:
        ValueError: every parameter is frozen.
    """
    items = list(params)
    groups = [dict(g) for g in items] if items and isinstance(items[0], dict) else [
        {"params": items}]
    total = 0
    for group in groups:
        group_params = group["params"]
        group_params = [group_params] if isinstance(group_params, torch.Tensor) else group_params
        group["params"] = [p for p in group_params if p.requires_grad]
        total += len(group_params)
    kept = [g for g in groups if g["params"]]
    if not kept:
        raise ValueError(f"every one of the {total} parameters is frozen (requires_grad=False), "
                         "so there is nothing to optimise; unfreeze some layers first "
                         "(cnnkit.transfer_learning.unfreeze)")
    return kept


def build_optimizer(name: str, params: Iterable, *, lr: float | None = None,
                    momentum: float = 0.0, nesterov: bool = False,
                    weight_decay: float = 0.0, keras_defaults: bool = False
                    ) -> torch.optim.Optimizer:
    """Create a PyTorch optimizer from its name.

    Args:
        name: ``sgd``, ``adam``, ``adamw``, ``rmsprop`` or ``adadelta`` (case-insensitive).
        params: the model's parameters (or parameter groups). Frozen parameters
            (``requires_grad=False``) are left out, so they get no optimizer state and no
            weight decay; groups left empty are dropped.
        lr: learning rate; None takes Keras' default for that optimizer.
        momentum: SGD and RMSprop only (ignored by the Adam family, which has its own betas).
        nesterov: SGD only; needs ``momentum > 0``.
        weight_decay: L2 penalty (decoupled weight decay for AdamW).
        keras_defaults: take Keras 3's defaults where they differ from PyTorch's
            (:data:`KERAS_DEFAULTS`: epsilon 1e-7, RMSprop rho 0.9, Adadelta lr 1e-3, AdamW
            weight decay 0.004); ``lr`` and a non-zero ``weight_decay`` still win.

    Raises:
        ValueError: unknown name (with a suggestion), negative values, Nesterov without
            momentum, or no trainable parameter at all.

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
    keras = KERAS_DEFAULTS[key] if keras_defaults else {}
    lr = keras.get("lr", DEFAULT_LR[key]) if lr is None else lr
    weight_decay = weight_decay or keras.get("weight_decay", 0.0)
    extra = {k: v for k, v in keras.items() if k not in ("lr", "weight_decay")}  # eps, alpha, rho
    for arg, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        if value < 0:
            raise ValueError(f"{arg} must be >= 0, got {value!r}")
    if nesterov and (key != "sgd" or momentum <= 0):
        raise ValueError(f"nesterov=True needs optimizer='sgd' with momentum > 0, got "
                         f"optimizer={name!r}, momentum={momentum!r}")
    params = trainable_param_groups(params)
    cls = OPTIMIZER_CLASSES[key]
    if key == "sgd":
        return cls(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if key == "rmsprop":
        return cls(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **extra)
    return cls(params, lr=lr, weight_decay=weight_decay, **extra)
