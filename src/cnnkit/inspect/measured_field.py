"""Measured receptive field: the input pixels one unit depends on, found by the gradient.

A check on the theoretical fields of :mod:`cnnkit.inspect.receptive_field`: the unit is
differentiated with respect to the input image on a positive float64 copy of the model (every
weight an averaging kernel, max pooling swapped for an average over the same window), so the
gradient is non-zero on every pixel the unit can see.
"""
from __future__ import annotations

import copy

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from cnnkit._checks import standardize_tuple
from cnnkit.inspect.leaf_tracer import LeafTracer, graph_module
from cnnkit.inspect.tracing import (LayerTrace, check_unit, find_call, resolve_image_shape,
                                    trace_layers)

__all__ = ["empirical_receptive_field"]


def _max_pool_as_average(input, kernel_size, stride=None, padding=0, dilation=1,
                         ceil_mode=False, return_indices=False):
    """Average over exactly the pixels a max-pool window reads (so the gradient reaches all)."""
    stride = stride if stride else kernel_size
    if standardize_tuple(dilation, 2, "dilation") == (1, 1):
        out = F.avg_pool2d(input, kernel_size, stride, padding, ceil_mode,
                           count_include_pad=False)
    else:  # avg_pool2d has no dilation: unfold the dilated windows and average them
        n, c = input.shape[:2]
        out_hw = F.max_pool2d(input.detach(), kernel_size, stride, padding, dilation).shape[-2:]
        cols = F.unfold(input, kernel_size, dilation, padding, stride)  # (N, C*kh*kw, L)
        out = cols.view(n, c, -1, cols.shape[-1]).mean(2)  # -> (N, C, kh*kw, L) -> (N, C, L)
        out = out.view(n, c, *out_hw)  # (N, C, L) -> (N, C, H_out, W_out)
    if return_indices:
        _, indices = F.max_pool2d_with_indices(input, kernel_size, stride, padding, dilation,
                                               ceil_mode, True)
        return out, indices
    return out


def _adaptive_max_as_average(input, output_size, return_indices=False):
    out = F.adaptive_avg_pool2d(input, output_size)
    if return_indices:
        return out, F.adaptive_max_pool2d_with_indices(input, output_size, True)[1]
    return out


class _MaxAsAverage(torch.overrides.TorchFunctionMode):
    """Swap max pooling (module or functional) for averaging over the same windows."""

    _SWAPS = {
        F.max_pool2d: _max_pool_as_average,
        F.max_pool2d_with_indices: _max_pool_as_average,
        torch.max_pool2d: _max_pool_as_average,
        F.adaptive_max_pool2d: _adaptive_max_as_average,
        F.adaptive_max_pool2d_with_indices: _adaptive_max_as_average,
    }

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return self._SWAPS.get(func, func)(*args, **(kwargs or {}))


def _positive_copy(model: nn.Module) -> nn.Module:
    """Float64 eval-mode copy whose every unit is a positive sum of its inputs."""
    model = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                if p.dim() >= 2:  # weights: averaging kernels, 1 / fan-in
                    p.fill_(1.0 / p[0].numel())
                else:  # biases 0, scales (batch-norm gamma, PReLU slope) 1
                    p.fill_(0.0 if name == "bias" else 1.0)
            for name, b in module.named_buffers(recurse=False):
                if name in ("running_mean", "running_var"):
                    b.fill_(0.0 if name == "running_mean" else 1.0)
    return model


def _capture(model: nn.Module, trace: LayerTrace, x: torch.Tensor) -> torch.Tensor:
    """Run ``model(x)`` and return the output of the traced layer call.

    A module call is caught by a forward hook (``name#k`` is its k-th call); a function call
    by running the fx graph (traced before max pooling is swapped) and keeping that node.
    """
    outputs = []
    if trace.module is not None:
        call_index = int(trace.node.split("#")[1]) - 1 if "#" in trace.node else 0
        module = dict(model.named_modules())[trace.name]
        handle = module.register_forward_hook(lambda m, inputs, output: outputs.append(output))
        try:
            with _MaxAsAverage():
                model(x)
        finally:
            handle.remove()
        out = outputs[call_index]
    else:
        class _Keep(fx.Interpreter):
            def run_node(self, node):
                result = super().run_node(node)
                if node.name == trace.node:
                    outputs.append(result)
                return result

        traced = graph_module(model, LeafTracer(x.detach()).trace(model))
        with _MaxAsAverage():
            _Keep(traced).run(x)
        out = outputs[0]
    return out[0] if isinstance(out, (tuple, list)) else out


def empirical_receptive_field(model: nn.Module, layer_name: str, unit=(0, 0), input_shape=None,
                              *, seed: int = 0) -> torch.Tensor:
    """Input pixels on which one output unit depends, measured by the gradient.

    The unit's channels are summed with weights 1..2 (a plain sum of softmax outputs is constant)
    and differentiated with respect to an input image. To see the whole *theoretical* field
    rather than accidental zeros, this runs on a float64 eval-mode copy of the model in which
    every weight is ``1/fan_in`` (biases 0, batch-norm and other scales 1, running statistics
    0 and 1), the input is random in [0.5, 1.5) (so every ReLU is active and no normalisation
    sees a constant), and max pooling — whose gradient reaches only each window's maximum — is
    replaced by an average over the same window. The model itself is not changed.

    Args:
        model: the network (on the CPU).
        layer_name: module name or node name (see :func:`receptive_fields`).
        unit: (row, column) in the layer's output grid ((0, 0) for a flat layer).
        input_shape: ``"32x32x3"`` or (H, W, C); None uses the model's own.
        seed: seed of the random input.

    Returns:
        Bool tensor (H, W): True where the gradient is non-zero in any input channel.

    Raises:
        ValueError: unknown layer, or a unit outside the output grid.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
        >>> int(empirical_receptive_field(net, "2", (0, 0), "8x8x1").sum())
        25
    """
    chw = resolve_image_shape(model, input_shape)
    traces, _ = trace_layers(model, chw)
    trace = find_call([t for t in traces if t.field is not None], layer_name)
    row, col = check_unit(unit, trace)
    positive = _positive_copy(model)
    generator = torch.Generator().manual_seed(seed)
    x = (0.5 + torch.rand(1, *chw, generator=generator, dtype=torch.float64)).requires_grad_()
    out = _capture(positive, trace, x)[0]
    picked = out[:, row, col] if out.dim() == 3 else out.reshape(-1)  # (C,) or (F,)
    weights = torch.linspace(1.0, 2.0, picked.numel(), dtype=picked.dtype)
    (grad,) = torch.autograd.grad((picked * weights).sum(), x)
    return (grad[0] != 0).any(dim=0)  # (C, H, W) -> (H, W)
