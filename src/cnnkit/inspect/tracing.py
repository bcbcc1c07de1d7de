"""Tracing: one forward pass of a model as a list of layer calls, each with its receptive field.

The graph comes from ``torch.fx`` symbolic tracing (:mod:`cnnkit.inspect.leaf_tracer`). A model
that fx cannot trace (data-dependent control flow) falls back to its leaf modules in call order,
treated as a chain, with a warning: exact for plain stacks, approximate for branching models.
The field of each call follows the rules of :mod:`cnnkit.inspect.field_arithmetic`;
:mod:`cnnkit.inspect.summary` and :mod:`cnnkit.inspect.receptive_field` read the records.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from cnnkit._checks import parse_input_shape, standardize_tuple
from cnnkit.inspect.field_arithmetic import (Field, Pair, Window, adaptive_window, combine,
                                             module_window, sliding_window, spatial)
from cnnkit.inspect.leaf_tracer import LeafTracer, graph_module
from cnnkit.layers.base import Layer

logger = logging.getLogger(__name__)

__all__ = [
    "LayerTrace",
    "check_unit",
    "find_call",
    "resolve_image_shape",
    "resolve_input_shape",
    "trace_layers",
]


# ----------------------------------------------------------------------------- layer records


@dataclass(frozen=True)
class LayerTrace:
    """One layer call of a forward pass, as seen by :func:`trace_layers`.

    Attributes:
        name: module qualified name (``"features.0"``) or, for a function, the fx node name.
        node: unique name of this call (the fx node name; ``name#k`` for the k-th call of a
            module in the hook fallback).
        op: module class name (``"Conv2d"``) or function name (``"add"``).
        module: the module called, or None for a function.
        scope: qualified name of the innermost module this call happens in ("" at top level).
        args: the layer's arguments as text (``extra_repr`` for modules).
        output_shape: per-image output shape, (C, H, W) or (F,).
        weight_shape: shape of the weight of a functional ``conv2d``/``linear`` call, else None.
        parameter_names: qualified names of parameters a function reads directly.
        field: receptive field of unit (0, 0), or None when the input is not an image.
    """

    name: str
    node: str
    op: str
    module: nn.Module | None
    scope: str
    args: str
    output_shape: tuple[int, ...]
    weight_shape: tuple[int, ...] | None
    parameter_names: tuple[str, ...]
    field: Field | None


# ----------------------------------------------------------------------------- input shape


def resolve_input_shape(model: nn.Module, input_shape=None) -> tuple[int, ...]:
    """Return the per-image input shape, (C, H, W) (or (F,) for a flat model).

    Args:
        model: the network.
        input_shape: ``"32x32x3"`` or (H, W, C) in the tutorials' notation; when None, the
            model's own ``input_shape`` (C, H, W) (cnnkit Sequential) or ``in_channels`` and
            ``input_size`` (H, W) (registry models) are used.

    Raises:
        ValueError: no shape given and the model does not know its own.

    Example:
        >>> resolve_input_shape(nn.Conv2d(3, 8, 3), "32x32x3")
        (3, 32, 32)
    """
    if input_shape is not None:
        return parse_input_shape(input_shape)
    known = getattr(model, "input_shape", None)
    if known is not None:
        return tuple(int(d) for d in known)
    in_channels = getattr(model, "in_channels", None)
    input_size = getattr(model, "input_size", None)
    if in_channels is not None and input_size is not None:
        return (int(in_channels), *standardize_tuple(input_size, 2, "input_size"))
    raise ValueError(
        f"input_shape is required: {type(model).__name__} does not record the image size it "
        "expects (no input_shape, nor in_channels with input_size); pass e.g. "
        "input_shape='32x32x3' (height x width x channels)"
    )


# ----------------------------------------------------------------------------- fx call arguments


def _bind(node: fx.Node, names: Sequence[str], defaults: dict) -> dict:
    """Map an fx call's positional and keyword arguments onto parameter names."""
    bound = dict(defaults)
    bound.update(zip(names, node.args))
    bound.update(node.kwargs)
    return bound


def _meta_shape(node) -> tuple[int, ...] | None:
    """Full (batched) shape :class:`_ShapeRecorder` recorded for a node, or None for non-tensors."""
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    if not hasattr(meta, "shape") and isinstance(meta, (tuple, list)):  # (values, indices)
        meta = meta[0] if meta else None
    return tuple(meta.shape) if hasattr(meta, "shape") else None


_POOL_NAMES = ("input", "kernel_size", "stride", "padding", "dilation")
_AVG_NAMES = ("input", "kernel_size", "stride", "padding")
_ADAPTIVE_FUNCTIONS = {F.adaptive_avg_pool2d, F.adaptive_max_pool2d,
                       F.adaptive_max_pool2d_with_indices}


def _function_window(node: fx.Node, in_shape) -> Window | None:
    """The window op of a functional conv/pool call, or None for the generic rule."""
    target = node.target
    if in_shape is None or len(in_shape) != 3:
        return None
    if target is F.conv2d:
        a = _bind(node, ("input", "weight", "bias", "stride", "padding", "dilation"),
                  {"stride": 1, "padding": 0, "dilation": 1})
        kernel = _meta_shape(a["weight"])[-2:]
        return sliding_window(kernel, a["stride"], a["padding"], a["dilation"])
    if target in (F.max_pool2d, F.max_pool2d_with_indices, torch.max_pool2d):
        a = _bind(node, _POOL_NAMES, {"stride": None, "padding": 0, "dilation": 1})
        return sliding_window(a["kernel_size"], a["stride"], a["padding"], a["dilation"])
    if target is F.avg_pool2d:
        a = _bind(node, _AVG_NAMES, {"stride": None, "padding": 0})
        return sliding_window(a["kernel_size"], a["stride"], a["padding"])
    if target in _ADAPTIVE_FUNCTIONS:
        return adaptive_window(in_shape, _bind(node, ("input", "output_size"), {})["output_size"])
    return None


# ----------------------------------------------------------------------------- tracing


def _run_eval(model: nn.Module, fn: Callable):
    """Run ``fn()`` with the model in eval mode and no grad, restoring each module's mode."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            return fn()
    finally:
        for m, training in modes:
            m.train(training)


def _args_text(node: fx.Node) -> str:
    """The non-tensor arguments of a functional call, as text."""
    parts = [repr(a) for a in node.args if not isinstance(a, fx.Node)]
    parts += [f"{k}={v!r}" for k, v in node.kwargs.items() if not isinstance(v, fx.Node)]
    return ", ".join(parts)


def _one(value):
    """``(3, 3)`` -> ``3`` (a square kernel, stride or padding); other values unchanged."""
    if isinstance(value, tuple) and len(set(value)) == 1:
        return value[0]
    return value


def _options(**given) -> list[str]:
    """``key=value`` for the options given (None: at its default, left out)."""
    return [f"{k}={str(v).replace(' ', '')}" for k, v in given.items() if v is not None]


def _torch_args(module: nn.Module) -> str | None:
    """A torch layer's arguments in the architecture strings' compact form, defaults left out.

    ``Conv2d(3, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)`` ->
    ``64,7,stride=2,padding=3,bias=False`` (filters, kernel, then what differs from the
    default); None for a module without a compact form (its ``extra_repr`` is shown).
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        stride, padding, dilation = (_one(module.stride), _one(module.padding),
                                     _one(module.dilation))
        return ",".join([str(module.out_channels), str(_one(module.kernel_size)), *_options(
            stride=None if stride == 1 else stride, padding=None if padding == 0 else padding,
            dilation=None if dilation == 1 else dilation,
            groups=None if module.groups == 1 else module.groups,
            bias=None if module.bias is not None else False)])
    if isinstance(module, nn.Linear):
        return ",".join([str(module.out_features),
                         *_options(bias=None if module.bias is not None else False)])
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kernel, stride, padding = _one(module.kernel_size), _one(module.stride), _one(module.padding)
        return ",".join([str(kernel), *_options(stride=None if stride == kernel else stride,
                                                padding=None if padding == 0 else padding)])
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return str(_one(module.output_size))
    if isinstance(module, nn.BatchNorm2d):
        return str(module.num_features)
    if isinstance(module, nn.Dropout):
        return f"{module.p:g}"
    if isinstance(module, (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.Identity, nn.Flatten)):
        return ""
    return None


def _module_args(module: nn.Module) -> str:
    """A module's arguments as text: a cnnkit layer's spec arguments (``32,3``), a torch layer's
    in the same compact form (:func:`_torch_args`), else its ``extra_repr``."""
    if isinstance(module, Layer):
        spec = module.to_spec()  # e.g. "conv(32,3,stride=2)" -> "32,3,stride=2"
        return spec[spec.index("(") + 1:-1] if spec.endswith(")") else ""
    compact = _torch_args(module)
    return module.extra_repr() if compact is None else compact


def _op_name(target) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


class _Shape(NamedTuple):
    shape: torch.Size


class _ShapeRecorder(fx.Interpreter):
    """Runs the graph and stores each tensor result's shape in ``node.meta["tensor_meta"]``.

    What fx's ``ShapeProp`` records for :func:`_meta_shape`, without its fake-tensor machinery:
    ``ShapeProp.run_node`` imports ``torch.fx.experimental.symbolic_shapes`` (and sympy) on its
    first node, 0.7 s of the 2.4 s that ``cnnkit serve`` took to start (bench/startup.py).
    """

    def run_node(self, n: fx.Node):
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            n.meta["tensor_meta"] = _Shape(result.shape)
        elif isinstance(result, (tuple, list)) and any(isinstance(r, torch.Tensor)
                                                       for r in result):
            n.meta["tensor_meta"] = tuple(_Shape(r.shape) if isinstance(r, torch.Tensor) else r
                                          for r in result)
        return result


def _trace_fx(model: nn.Module, x: torch.Tensor) -> list[LayerTrace]:
    graph = _run_eval(model, lambda: LeafTracer(x).trace(model))
    gm = graph_module(model, graph)
    _run_eval(model, lambda: _ShapeRecorder(gm).run(x))
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    image_field = Field((1, 1), (1, 1), (0, 0)) if x.dim() == 4 else None
    fields: dict[fx.Node, Field | None] = {}
    shapes: dict[fx.Node, tuple[int, ...]] = {}
    traces = []
    for node in graph.nodes:
        shape = _meta_shape(node)
        if shape is None or node.op in ("output", "get_attr"):
            continue
        shapes[node] = shape[1:]
        if node.op == "placeholder":
            fields[node] = image_field if not fields else None
            continue
        inputs = [n for n in node.all_input_nodes if n in shapes]
        known = [(fields[n], shapes[n]) for n in inputs if fields.get(n) is not None]
        in_shape = shapes[inputs[0]] if inputs else None
        if node.op == "call_module":
            module = modules[node.target]
            window = module_window(module, in_shape) if in_shape else None
            name, op, args = node.target, type(module).__name__, _module_args(module)
            scope = node.target
        else:
            module, name, op, args = None, node.name, _op_name(node.target), _args_text(node)
            window = _function_window(node, in_shape)
            stack = node.meta.get("nn_module_stack") or {}
            scope = next(reversed(stack.values()))[0] if stack else ""
        field = combine(known, shape[1:], window, name) if known else None
        fields[node] = field
        weight_shape = None
        if node.target in (F.conv2d, F.linear) and len(node.args) > 1:
            weight_shape = _meta_shape(node.args[1])
        param_names = tuple(n.target for n in node.all_input_nodes if n.op == "get_attr")
        call = node.name
        if module is not None:
            calls[name] = calls.get(name, 0) + 1
            call = name if calls[name] == 1 else f"{name}#{calls[name]}"
        traces.append(LayerTrace(name, call, op, module, scope, args, shape[1:],
                                 weight_shape, param_names, field))
    return traces


def _trace_hooks(model: nn.Module, x: torch.Tensor) -> list[LayerTrace]:
    """Fallback: leaf modules in call order, as a chain."""
    calls = []

    def hook(module, inputs, output):
        tensors = [t for t in inputs if isinstance(t, torch.Tensor)]
        out = output[0] if isinstance(output, (tuple, list)) else output
        if tensors and isinstance(out, torch.Tensor):
            calls.append((module, tuple(tensors[0].shape[1:]), tuple(out.shape[1:])))

    names = {m: n for n, m in model.named_modules()}
    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        _run_eval(model, lambda: model(x))
    finally:
        for h in handles:
            h.remove()
    field = Field((1, 1), (1, 1), (0, 0)) if x.dim() == 4 else None
    traces, counts = [], {}
    for module, in_shape, out_shape in calls:
        name = names[module]
        counts[name] = counts.get(name, 0) + 1
        if field is not None:
            window = module_window(module, in_shape)
            field = combine([(field, in_shape)], out_shape, window, name)
        node = name if counts[name] == 1 else f"{name}#{counts[name]}"
        traces.append(LayerTrace(name, node, type(module).__name__, module, name,
                                 _module_args(module), out_shape, None, (), field))
    return traces


def trace_layers(model: nn.Module, input_shape: Sequence[int], *,
                 device="cpu") -> tuple[list[LayerTrace], bool]:
    """Run one forward pass and describe every layer call, with its receptive field.

    Args:
        model: the network (left on its device, in its mode; eval mode is used for the pass).
        input_shape: per-image shape (C, H, W) or (F,) — already resolved, PyTorch order.
        device: where the zeros input is made; must be the model's device.

    Returns:
        The layer calls in execution order, and whether fx tracing worked (False: the
        hook fallback was used and branching models get a chain approximation).

    Shape:
        Input: a zeros batch (1, *input_shape).
    """
    x = torch.zeros(1, *input_shape, device=device)
    try:
        return _trace_fx(model, x), True
    except Exception as exc:  # fx raises many types (TraceError, TypeError, RuntimeError...)
        logger.warning("torch.fx could not trace %s (%s: %s); receptive fields follow the modules "
                       "in call order, which is only approximate for branching models",
                       type(model).__name__, type(exc).__name__, exc)
        return _trace_hooks(model, x), False


# ----------------------------------------------------------------------------- finding a layer call


def resolve_image_shape(model, input_shape) -> tuple[int, int, int]:
    """:func:`resolve_input_shape`, refusing a flat (F,) input: receptive fields need an image."""
    chw = resolve_input_shape(model, input_shape)
    if len(chw) != 3:
        raise ValueError(f"input_shape must be an image HxWxC to have receptive fields, got "
                         f"{input_shape!r} (resolved to {chw!r})")
    return chw


def find_call(traces: list[LayerTrace], layer_name: str) -> LayerTrace:
    """The call whose ``node`` is ``layer_name`` (a module name, ``name#k`` or an fx node name)."""
    for trace in traces:
        if trace.node == layer_name:
            return trace
    known = [t.node for t in traces]
    raise ValueError(f"layer_name {layer_name!r} is not a layer of this model; expected one of "
                     f"{known[:30]!r}{' ...' if len(known) > 30 else ''}")


def check_unit(unit, trace: LayerTrace) -> Pair:
    """``unit`` as a (row, column) pair, checked to lie in the output grid of ``trace``."""
    unit = standardize_tuple(unit, 2, "unit", allow_zero=True)
    grid = spatial(trace.output_shape)
    if unit[0] >= grid[0] or unit[1] >= grid[1]:
        raise ValueError(f"unit {unit!r} is outside the {grid[0]}x{grid[1]} output grid of "
                         f"{trace.name!r}; use (row, column) with row < {grid[0]} and "
                         f"column < {grid[1]}")
    return unit
