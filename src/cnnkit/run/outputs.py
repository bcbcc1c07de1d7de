"""What a model's last layer produces: raw scores (logits), probabilities, or log-probabilities.

Keras tutorial models end in ``Dense(10, activation='softmax')`` and train with
``categorical_crossentropy`` on the probabilities; PyTorch models end in a plain ``Linear`` and
train with ``cross_entropy`` on logits. The loss and ``predict`` must know which, so that a
softmax is never applied twice.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

LOGITS, PROBS, LOG_PROBS = "logits", "probs", "log_probs"


def _last_leaf(model: nn.Module) -> nn.Module:
    module = model
    while True:
        children = list(module.children())
        if not children:
            return module
        module = children[-1]


def output_kind(model: nn.Module) -> str:
    """``"probs"`` if the model ends in a softmax, ``"log_probs"`` for a log-softmax, else logits.

    Looks at the last leaf module (the last child, recursively), and at an ``activation``
    attribute on it (a Dense layer with ``activation='softmax'``).

    Example:
        >>> output_kind(nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1)))
        'probs'
    """
    last = _last_leaf(model)
    candidates = [last, getattr(last, "activation", None)]
    for item in candidates:
        if isinstance(item, nn.LogSoftmax):
            return LOG_PROBS
        if isinstance(item, (nn.Softmax, nn.Softmax2d)):
            return PROBS
        name = item if isinstance(item, str) else type(item).__name__
        if isinstance(name, str):
            if name.lower() in ("logsoftmax", "log_softmax"):
                return LOG_PROBS
            if name.lower() == "softmax":
                return PROBS
    return LOGITS


def to_probabilities(output: torch.Tensor, kind: str) -> torch.Tensor:
    """Class probabilities (N, K) from a model output of the given kind."""
    output = output.float()
    if kind == PROBS:
        return output
    if kind == LOG_PROBS:
        return output.exp()
    return F.softmax(output, dim=1)


def flip_tta(forward, x: torch.Tensor, kind: str) -> torch.Tensor:
    """Average the predictions for ``x`` and its horizontal flip (W axis, dim 3).

    Returns probabilities for a softmax-ending model, else log-probabilities (valid logits:
    ``softmax(log p) = p``), so the losses see the output kind they expect.

    Shape:
        x (N, C, H, W) -> (N, K).
    """
    p = (to_probabilities(forward(x), kind) + to_probabilities(forward(x.flip(3)), kind)) / 2
    return p if kind == PROBS else torch.log(p.clamp_min(1e-12))


@torch.no_grad()
def predict_proba(model: nn.Module, batches, *, device: torch.device | str | None = None,
                  tta: bool = False, forward=None, autocast=None) -> torch.Tensor:
    """Class probabilities of every input, in order, with the model in eval mode.

    Args:
        model: the classifier (its training flag is restored afterwards).
        batches: iterable of ``x`` tensors or ``(x, y)`` pairs (``y`` ignored).
        device: where to run (default: the device of the model's first parameter).
        tta: average with the horizontal flip.
        forward: the callable to run instead of ``model`` (e.g. its ``torch.compile`` form).
        autocast: a context-manager factory for mixed precision (None: fp32).

    Shape:
        (N, K) float32 on the CPU.

    Raises:
        ValueError: ``batches`` is empty.
    """
    kind = output_kind(model)
    forward = forward or model
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    # eval() and train() walk every module (0.18 ms per call for LeNet-5): only when a module
    # is in training mode
    switch = any(m.training for m in model.modules())
    if switch:
        model.eval()
    outs = []
    try:
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            x = x.to(device, non_blocking=True)
            with autocast() if autocast else contextlib.nullcontext():
                if tta:
                    out, out_kind = flip_tta(forward, x, kind), PROBS if kind == PROBS else LOGITS
                else:
                    out, out_kind = forward(x), kind
            outs.append(to_probabilities(out, out_kind).cpu())
    finally:
        if switch:
            model.train(was_training)
    if not outs:
        raise ValueError("predict_proba got no batches; give at least one input")
    return torch.cat(outs)
