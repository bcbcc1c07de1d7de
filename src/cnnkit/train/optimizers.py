"""Optimizers by name: SGD (momentum, Nesterov), Adam, AdamW, RMSprop, Adadelta.

All are PyTorch's own implementations; this module maps names, validates arguments and, for a
process that does not compile, skips the ``torch._dynamo`` import that ``torch.optim`` makes on
its first call (:func:`eager_optimizer_class`).
"""
from __future__ import annotations

import difflib
import functools
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


# torch.optim wraps these Optimizer methods in ``torch._disable_dynamo``, whose first call
# imports ``torch._dynamo`` (1.0–1.3 s on a 2-core CPU, and sympy with it), and every
# ``step`` in ``_use_grad_for_differentiable``, which imports it on each call. Both wrappers
# only matter while torch.compile traces; their ``__wrapped__`` functions do the same work.
_DYNAMO_WRAPPED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


@functools.cache
def eager_optimizer_class(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """A subclass of ``cls`` whose methods skip torch.optim's dynamo wrappers.

    The update is PyTorch's own (the same ``step`` body, run under ``torch.no_grad()`` as
    ``_use_grad_for_differentiable`` does for ``differentiable=False``), so parameters after
    any number of steps are bit-identical to ``cls``'s (tests/train/test_optimizers_schedules.py);
    ``isinstance(opt, cls)``, the class name, ``state_dict`` and the LR schedulers are unchanged.
    What changes is that a training process that never compiles does not import
    ``torch._dynamo`` at all: about 1 s of the 5 s time-to-99 % budget (bench/RESULTS.md).
    Use ``cls`` itself when the optimizer step is traced by ``torch.compile``
    (:func:`build_optimizer` with ``eager=False``; the trainer does so when compiling).

    Example:
        >>> opt = eager_optimizer_class(torch.optim.Adam)(torch.nn.Linear(2, 2).parameters())
        >>> type(opt).__name__, isinstance(opt, torch.optim.Adam)
        ('Adam', True)
    """
    namespace = {name: getattr(torch.optim.Optimizer, name).__wrapped__
                 for name in _DYNAMO_WRAPPED}
    undecorated_step = cls.step.__wrapped__

    def step(self, closure=None):
        if self.defaults.get("differentiable"):
            return cls.step(self, closure)  # the differentiable path needs autograd: torch's own
        with torch.no_grad():
            return undecorated_step(self, closure)

    namespace.update(step=step, __doc__=cls.__doc__, __module__=__name__,
                     __qualname__=cls.__qualname__)
    return type(cls.__name__, (cls,), namespace)


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
                    weight_decay: float = 0.0, keras_defaults: bool = False,
                    eager: bool = True) -> torch.optim.Optimizer:
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
        eager: build :func:`eager_optimizer_class`'s subclass, which does not import
            ``torch._dynamo`` (the same updates); False for an optimizer step that
            ``torch.compile`` traces.

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
    cls = eager_optimizer_class(OPTIMIZER_CLASSES[key]) if eager else OPTIMIZER_CLASSES[key]
    if key == "sgd":
        return cls(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if key == "rmsprop":
        return cls(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **extra)
    return cls(params, lr=lr, weight_decay=weight_decay, **extra)
