"""Run ``ReLU → max-pool`` as ``max-pool → ReLU``: the same numbers on a quarter of the values.

ReLU and max pooling commute exactly: ReLU is monotone, so the largest of ``relu(x)`` over a
window is ``relu`` of the largest ``x``, in floating point too (no rounding is involved).
The gradient is the same as well: where the window's maximum is positive the same element is
the (first) maximum of both and receives the gradient; where it is ≤ 0 both orders give every
element a zero gradient (ReLU's derivative at and below 0 is 0). Pooling first lets ReLU's
forward and backward touch the pooled volume instead of the full one: a 2×2 pool makes that a
quarter of the values. In the tutorial CNN (conv 32@3×3 with ReLU, 2×2 max-pool, fc 256,
fc 10; ``bench/tutorial_mnist.py``) that is about 0.45 ms of a 7.5 ms bf16 training step on
the 2-core CPU of bench/RESULTS.md.

:class:`~cnnkit.models.sequential.Sequential` applies it in training mode (where the backward
pass doubles the saving) to two patterns: a ``Conv`` whose ``activation`` is ReLU followed by a
max-pool, and a ReLU layer followed by a max-pool. The layers stay in their order (state dict,
``summary``, ``feature_info``, export unchanged); evaluation and tracing (``summary``, receptive
fields, ONNX export: all in eval mode) run them as written, and so does any pair with a forward
hook on one of its modules (feature-map pictures, frozen layers), whose hooks must see each
layer's own output. The zoo's VGG and AlexNet trunks (``nn.ReLU`` → ``nn.MaxPool2d``) and
``keras_mnist`` (conv 64, ReLU, pool) do the same. The switch is ``pool_before_relu`` on
``Sequential`` and ``ZooModel`` (True by default; set it False on a model, or on the class, to
run every layer as written).

Example:
    >>> import torch
    >>> from cnnkit.layers import Conv, MaxPool, ReLU
    >>> x = torch.randn(2, 3, 8, 8)
    >>> layers = [Conv(4, 3, in_channels=3), ReLU(), MaxPool(2)]
    >>> torch.equal(run_layers(layers, x), layers[2](layers[1](layers[0](x))))
    True
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.modules import module as _module

from cnnkit.layers.activations import ReLU
from cnnkit.layers.conv import Conv
from cnnkit.layers.keras import Activation
from cnnkit.layers.pooling import MaxPool

_RELU_TYPES = (ReLU, nn.ReLU)


def _hooked(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def _global_hooks() -> bool:
    # torch keeps hooks registered with nn.modules.module.register_module_forward_hook here.
    return bool(getattr(_module, "_global_forward_hooks", None)
                or getattr(_module, "_global_forward_pre_hooks", None))


def _is_relu(module: nn.Module | None) -> bool:
    if isinstance(module, Activation):
        return not _hooked(module) and _is_relu(module.activation)
    return isinstance(module, _RELU_TYPES) and not _hooked(module)


def _is_max_pool(module: nn.Module) -> bool:
    if _hooked(module):
        return False
    if isinstance(module, MaxPool):
        return True
    # torch's own: not when it returns (values, indices)
    return isinstance(module, nn.MaxPool2d) and not module.return_indices


def reorders(model: nn.Module, x) -> bool:
    """Whether ``model`` runs its ReLU → max-pool pairs pooled first for this input.

    True in training mode with ``model.pool_before_relu`` set, for a real tensor (not an fx
    proxy or a tensor subclass under tracing).
    """
    return bool(getattr(model, "pool_before_relu", False)) and model.training \
        and type(x) is torch.Tensor


def unhooked(*modules: nn.Module) -> bool:
    """No forward (pre-)hook on any of ``modules``, nor a global one: their outputs are private."""
    return not _global_hooks() and not any(_hooked(m) for m in modules)


def run_layers(layers: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """Apply ``layers`` in order, pooling before the ReLU of each ReLU → max-pool pair.

    Args:
        layers: the modules, as ``nn.Sequential`` would run them.
        x: their input.

    Shape:
        whatever the layers do; a pair ``(N, C, H, W) -relu-> (N, C, H, W) -pool->
        (N, C, H', W')`` runs as ``-pool-> (N, C, H', W') -relu-> (N, C, H', W')``.
    """
    if _global_hooks():
        for layer in layers:
            x = layer(x)
        return x
    i, count = 0, len(layers)
    while i < count:
        layer = layers[i]
        pool = layers[i + 1] if i + 1 < count else None
        if pool is not None and x.ndim == 4 and _is_max_pool(pool):
            if (isinstance(layer, Conv) and not _hooked(layer)
                    and _is_relu(layer.activation)):
                x = layer.activation(pool(layer.forward_linear(x)))  # conv, pool, then ReLU
                i += 2
                continue
            if _is_relu(layer):
                x = layer(pool(x))  # (N, C, H, W) -> (N, C, H', W') pooled, then ReLU
                i += 2
                continue
        x = layer(x)
        i += 1
    return x
