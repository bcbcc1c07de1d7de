"""Receptive fields: which input pixels each unit of each layer can see.

For every tensor of the forward pass we track, per axis (height and width):

- **size** ``r``: the side of one unit's field, in input pixels;
- **jump** ``j``: the distance in input pixels between the fields of two neighbouring units
  (the *effective stride*: the product of all strides so far);
- **top** ``t``: the input coordinate of the first pixel of unit 0's field (negative when the
  field reaches into the zero padding); its centre is ``start = t + (r − 1)/2``.

A window (convolution or pooling) with kernel ``k``, stride ``s``, padding ``p`` and dilation
``d`` has the effective kernel ``k_eff = d·(k − 1) + 1`` and maps them as::

    r_out = r_in + (k_eff − 1)·j_in      j_out = j_in·s      t_out = t_in − p·j_in
    (equivalently start_out = start_in + ((k_eff − 1)/2 − p)·j_in)

Elementwise layers (activations, batch norm, dropout) keep the field. Merging several tensors
(add, cat, mul) takes the union of their fields: the maximum over the paths of an Inception,
ResNet or DenseNet block. Global pooling, flatten and the dense layers after them see
``r_in + (n − 1)·j_in`` pixels (``n`` the pooled size): the whole image and its padding.

Sizes are *theoretical*: they are not clipped to the image (``exceeds_input`` says when a field
is larger than the image); :func:`unit_region` also gives the box clipped to the image.

The graph comes from ``torch.fx`` symbolic tracing. A model that fx cannot trace (data-dependent
control flow) falls back to its leaf modules in call order, treated as a chain, with a warning:
exact for plain stacks, approximate for branching models.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from cnnkit._checks import parse_input_shape, standardize_tuple
from cnnkit.layers.base import Layer

logger = logging.getLogger(__name__)

Pair = tuple[int, int]

__all__ = [
    "LayerTrace",
    "RFInfo",
    "UnitRegion",
    "empirical_receptive_field",
    "receptive_fields",
    "resolve_input_shape",
    "trace_layers",
    "unit_region",
]


# ----------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class _Field:
    """Receptive field of unit (0, 0) of a tensor: size, jump and top, per axis (h, w)."""

    size: Pair
    jump: Pair
    top: Pair

    @property
    def start(self) -> tuple[float, float]:
        """Centre of unit (0, 0)'s field in input pixel coordinates."""
        return tuple(t + (r - 1) / 2 for t, r in zip(self.top, self.size))


@dataclass(frozen=True)
class _Window:
    """One window op per axis: kernel, stride, padding (before the first pixel), dilation."""

    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair = (1, 1)

    def apply(self, field: _Field) -> _Field:
        k_eff = [d * (k - 1) + 1 for d, k in zip(self.dilation, self.kernel)]
        return _Field(
            size=tuple(r + (ke - 1) * j for r, ke, j in zip(field.size, k_eff, field.jump)),
            jump=tuple(j * s for j, s in zip(field.jump, self.stride)),
            top=tuple(t - p * j for t, p, j in zip(field.top, self.padding, field.jump)),
        )


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
    field: _Field | None


@dataclass(frozen=True)
class RFInfo:
    """Receptive field of the units of one layer's output.

    Attributes:
        name: module qualified name, or fx node name for a function (``"add"``).
        node: unique name of this call (use it when a module is called more than once).
        op: module class or function name.
        output_shape: per-image output shape, (C, H, W) or (F,).
        size: (h, w) side of one unit's field in input pixels (theoretical, not clipped).
        jump: (h, w) effective stride: input pixels between neighbouring units' fields.
        start: (h, w) centre of unit (0, 0)'s field in input pixel coordinates.
        top: (h, w) first input row/column of unit (0, 0)'s field (negative inside the padding).
        exceeds_input: whether the field is larger than the input image on either axis.
    """

    name: str
    node: str
    op: str
    output_shape: tuple[int, ...]
    size: Pair
    jump: Pair
    start: tuple[float, float]
    top: Pair
    exceeds_input: bool


@dataclass(frozen=True)
class UnitRegion:
    """Input pixels seen by one unit: boxes as (top, left, bottom, right), bottom/right exclusive.

    ``box`` is the theoretical field (may extend past the image into the zero padding);
    ``clipped`` is its intersection with the image, ready to draw or to index
    ``image[top:bottom, left:right]``.
    """

    box: tuple[int, int, int, int]
    clipped: tuple[int, int, int, int]


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


# ----------------------------------------------------------------------------- layer rules


def _spatial(shape: Sequence[int]) -> Pair:
    """(H, W) of a per-image (C, H, W) shape; a shape without a grid counts as 1x1."""
    return (int(shape[-2]), int(shape[-1])) if len(shape) == 3 else (1, 1)


def _padding_pair(padding, kernel: Pair, dilation: Pair) -> Pair:
    """Resolve a conv/pool padding (int, pair, 'same' or 'valid') to the pixels before pixel 0."""
    if padding == "valid":
        return (0, 0)
    if padding == "same":  # PyTorch puts the smaller half of d·(k − 1) first
        return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    return standardize_tuple(padding, 2, "padding", allow_zero=True)


def _window(kernel, stride, padding, dilation=1) -> _Window:
    kernel = standardize_tuple(kernel, 2, "kernel_size")
    stride = kernel if stride is None or stride == [] else standardize_tuple(stride, 2, "stride")
    dilation = standardize_tuple(dilation, 2, "dilation")
    return _Window(kernel, stride, _padding_pair(padding, kernel, dilation), dilation)


def _global(in_shape: Sequence[int]) -> _Window:
    """A window over the whole (H, W) grid (global pooling, flatten, dense).

    Its stride is 0: every output unit sees the same pixels, so a later flatten adds nothing.
    """
    return _Window(kernel=_spatial(in_shape), stride=(0, 0), padding=(0, 0))


def _adaptive(in_shape: Sequence[int], output_size) -> _Window:
    """Adaptive pooling: exact where an axis divides evenly, else the whole axis (upper bound)."""
    in_size = _spatial(in_shape)
    out = standardize_tuple(output_size, 2, "output_size") if output_size is not None else in_size
    out = tuple(n if o is None else o for o, n in zip(out, in_size))
    even = [n % o == 0 for n, o in zip(in_size, out)]
    kernel = tuple(n // o if ok else n for n, o, ok in zip(in_size, out, even))
    stride = tuple(k if ok else 0 for k, ok in zip(kernel, even))
    return _Window(kernel=kernel, stride=stride, padding=(0, 0))


def _module_window(module: nn.Module, in_shape) -> _Window | None:
    """The window op of a conv/pool module, or None for the shape-based generic rule."""
    if len(in_shape) != 3:
        return None
    if hasattr(module, "output_size") and "Adaptive" in type(module).__name__:
        return _adaptive(in_shape, module.output_size)
    if getattr(module, "transposed", False):
        return None  # transposed convolutions upsample: left to the generic rule (warned)
    if hasattr(module, "kernel_size") and hasattr(module, "stride"):
        return _window(module.kernel_size, module.stride, getattr(module, "padding", 0),
                       getattr(module, "dilation", 1))
    return None


def _bind(node: fx.Node, names: Sequence[str], defaults: dict) -> dict:
    """Map an fx call's positional and keyword arguments onto parameter names."""
    bound = dict(defaults)
    bound.update(zip(names, node.args))
    bound.update(node.kwargs)
    return bound


def _meta_shape(node) -> tuple[int, ...] | None:
    """Full (batched) shape fx's ShapeProp recorded for a node, or None for non-tensors."""
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    if not hasattr(meta, "shape") and isinstance(meta, (tuple, list)):  # (values, indices)
        meta = meta[0] if meta else None
    return tuple(meta.shape) if hasattr(meta, "shape") else None


_POOL_NAMES = ("input", "kernel_size", "stride", "padding", "dilation")
_AVG_NAMES = ("input", "kernel_size", "stride", "padding")
_ADAPTIVE_FUNCTIONS = {F.adaptive_avg_pool2d, F.adaptive_max_pool2d,
                       F.adaptive_max_pool2d_with_indices}


def _function_window(node: fx.Node, in_shape) -> _Window | None:
    """The window op of a functional conv/pool call, or None for the generic rule."""
    target = node.target
    if in_shape is None or len(in_shape) != 3:
        return None
    if target is F.conv2d:
        a = _bind(node, ("input", "weight", "bias", "stride", "padding", "dilation"),
                  {"stride": 1, "padding": 0, "dilation": 1})
        kernel = _meta_shape(a["weight"])[-2:]
        return _window(kernel, a["stride"], a["padding"], a["dilation"])
    if target in (F.max_pool2d, F.max_pool2d_with_indices, torch.max_pool2d):
        a = _bind(node, _POOL_NAMES, {"stride": None, "padding": 0, "dilation": 1})
        return _window(a["kernel_size"], a["stride"], a["padding"], a["dilation"])
    if target is F.avg_pool2d:
        a = _bind(node, _AVG_NAMES, {"stride": None, "padding": 0})
        return _window(a["kernel_size"], a["stride"], a["padding"])
    if target in _ADAPTIVE_FUNCTIONS:
        return _adaptive(in_shape, _bind(node, ("input", "output_size"), {})["output_size"])
    return None


def _combine(inputs: list[tuple[_Field, tuple[int, ...]]], out_shape, window: _Window | None,
             where: str) -> _Field:
    """Field of an op's output from its tensor inputs' (field, per-image shape) pairs."""
    if window is not None:
        return window.apply(inputs[0][0])
    if len(out_shape) != 3:  # the grid is gone (flatten, dense, mean over H and W)
        inputs = [(_global(shape).apply(f), (1,)) for f, shape in inputs]
    elif any(_spatial(shape) != _spatial(out_shape) for _, shape in inputs):
        logger.warning("receptive field: %s changes the grid %s -> %s in a way cnnkit does not "
                       "know; its field is taken as the whole input", where,
                       [_spatial(s) for _, s in inputs], _spatial(out_shape))
        inputs = [(_global(shape).apply(f), (1,)) for f, shape in inputs]
    fields = [f for f, _ in inputs]
    if len(fields) == 1:
        return fields[0]
    # union of the inputs' fields: the maximum over paths
    top = tuple(min(f.top[a] for f in fields) for a in range(2))
    bottom = tuple(max(f.top[a] + f.size[a] for f in fields) for a in range(2))
    return _Field(size=(bottom[0] - top[0], bottom[1] - top[1]),
                  jump=tuple(max(f.jump[a] for f in fields) for a in range(2)), top=top)


# ----------------------------------------------------------------------------- tracing


# fx's own context manager that lifts its Module.__call__/__getattr__ patches during a trace
_revert_patches = getattr(fx._symbolic_trace, "_maybe_revert_all_patches", None)


class _LeafTracer(fx.Tracer):
    """fx tracer for one known input: leaf modules stay single calls, checks run concretely.

    Every module without children (and torch.nn's own) is one call. Python control flow on a
    traced value (an input check such as ``if x.ndim != 4`` or ``tuple(x.shape[2:])``) is
    decided by running the graph built so far on ``example``: the trace is specialised to
    that input, which is all a summary of that input needs.
    """

    def __init__(self, example: torch.Tensor):
        super().__init__()
        self.example = example

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        # cnnkit layers are leaves even when they hold a child activation (Conv(activation=...)),
        # so the summary shows one 'Conv' row rather than the functional calls inside it.
        return (super().is_leaf_module(m, module_qualified_name) or isinstance(m, Layer)
                or next(m.children(), None) is None)

    def _evaluate(self, proxy: fx.Proxy):
        if _revert_patches is None:  # a torch without the helper: refuse as fx does
            raise fx.proxy.TraceError(f"control flow on the traced value {proxy.node.name!r}")
        graph = fx.Graph()
        copies: dict = {}
        graph.graph_copy(self.graph, copies)
        graph.output(copies[proxy.node])
        with _revert_patches():  # run real modules, not the tracer's patched __call__
            return _graph_module(self.root, graph)(self.example)

    def call_module(self, m: nn.Module, forward, args, kwargs):
        try:
            self.path_of_module(m)
        except NameError:  # a container made on the fly, e.g. ``self.classifier[:-1]``
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _ConcreteProxy(node, self)

    def to_bool(self, obj: fx.Proxy) -> bool:
        return bool(self._evaluate(obj))

    def iter(self, obj: fx.Proxy):
        value = self._evaluate(obj)
        if isinstance(value, torch.Tensor) or any(isinstance(v, torch.Tensor) for v in value):
            return super().iter(obj)  # iterating tensors must stay symbolic: fx refuses
        return iter(value)


class _ConcreteProxy(fx.Proxy):
    """fx Proxy whose ``len()`` is taken from the example input (fx refuses it otherwise)."""

    def __len__(self) -> int:
        return len(self.tracer._evaluate(self))


def _graph_module(model: nn.Module, graph: fx.Graph) -> fx.GraphModule:
    """GraphModule over ``model``'s own modules and tensors, looked up by qualified name.

    (By name rather than ``getattr``: a model may hide a sub-module behind a method of the same
    name, as zoo models do with ``features``.)
    """
    named = {**dict(model.named_modules()), **dict(model.named_parameters()),
             **dict(model.named_buffers())}
    targets = {n.target for n in graph.nodes if n.op in ("call_module", "get_attr")}
    return fx.GraphModule({t: named[t] for t in targets if t in named}, graph)


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


def _module_args(module: nn.Module) -> str:
    """A module's arguments as text: a cnnkit layer's spec arguments (``32,3``), else extra_repr."""
    if isinstance(module, Layer):
        spec = module.to_spec()  # e.g. "conv(32,3,stride=2)" -> "32,3,stride=2"
        return spec[spec.index("(") + 1:-1] if spec.endswith(")") else ""
    return module.extra_repr()


def _op_name(target) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _trace_fx(model: nn.Module, x: torch.Tensor) -> list[LayerTrace]:
    graph = _run_eval(model, lambda: _LeafTracer(x).trace(model))
    gm = _graph_module(model, graph)
    _run_eval(model, lambda: ShapeProp(gm).propagate(x))
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    image_field = _Field((1, 1), (1, 1), (0, 0)) if x.dim() == 4 else None
    fields: dict[fx.Node, _Field | None] = {}
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
            window = _module_window(module, in_shape) if in_shape else None
            name, op, args = node.target, type(module).__name__, _module_args(module)
            scope = node.target
        else:
            module, name, op, args = None, node.name, _op_name(node.target), _args_text(node)
            window = _function_window(node, in_shape)
            stack = node.meta.get("nn_module_stack") or {}
            scope = next(reversed(stack.values()))[0] if stack else ""
        field = _combine(known, shape[1:], window, name) if known else None
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
    field = _Field((1, 1), (1, 1), (0, 0)) if x.dim() == 4 else None
    traces, counts = [], {}
    for module, in_shape, out_shape in calls:
        name = names[module]
        counts[name] = counts.get(name, 0) + 1
        if field is not None:
            window = _module_window(module, in_shape)
            field = _combine([(field, in_shape)], out_shape, window, name)
        node = name if counts[name] == 1 else f"{name}#{counts[name]}"
        traces.append(LayerTrace(name, node, type(module).__name__, module, name,
                                 module.extra_repr(), out_shape, None, (), field))
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


def _info(trace: LayerTrace, image: Pair) -> RFInfo:
    f = trace.field
    return RFInfo(trace.name, trace.node, trace.op, trace.output_shape, f.size, f.jump, f.start,
                  f.top, f.size[0] > image[0] or f.size[1] > image[1])


def receptive_fields(model: nn.Module, input_shape=None, *, device="cpu") -> list[RFInfo]:
    """Receptive field, jump and start of every layer of ``model`` on an image.

    Args:
        model: the network.
        input_shape: ``"32x32x3"`` or (H, W, C); None uses the model's own (see
            :func:`resolve_input_shape`).
        device: the model's device.

    Returns:
        One :class:`RFInfo` per layer call, in execution order.

    Raises:
        ValueError: no input shape known, or the input is not an image (C, H, W).

    Example:
        >>> lenet = nn.Sequential(nn.Conv2d(1, 6, 5), nn.MaxPool2d(2))
        >>> [info.size for info in receptive_fields(lenet, "32x32x1")]
        [(5, 5), (6, 6)]
    """
    chw = _image_shape(model, input_shape)
    traces, _ = trace_layers(model, chw, device=device)
    return [_info(t, chw[1:]) for t in traces if t.field is not None]


def _image_shape(model, input_shape) -> tuple[int, int, int]:
    chw = resolve_input_shape(model, input_shape)
    if len(chw) != 3:
        raise ValueError(f"input_shape must be an image HxWxC to have receptive fields, got "
                         f"{input_shape!r} (resolved to {chw!r})")
    return chw


def _find(traces: list[LayerTrace], layer_name: str) -> LayerTrace:
    for trace in traces:
        if trace.node == layer_name:
            return trace
    known = [t.node for t in traces]
    raise ValueError(f"layer_name {layer_name!r} is not a layer of this model; expected one of "
                     f"{known[:30]!r}{' ...' if len(known) > 30 else ''}")


def _check_unit(unit, trace: LayerTrace) -> Pair:
    unit = standardize_tuple(unit, 2, "unit", allow_zero=True)
    grid = _spatial(trace.output_shape)
    if unit[0] >= grid[0] or unit[1] >= grid[1]:
        raise ValueError(f"unit {unit!r} is outside the {grid[0]}x{grid[1]} output grid of "
                         f"{trace.name!r}; use (row, column) with row < {grid[0]} and "
                         f"column < {grid[1]}")
    return unit


def unit_region(model: nn.Module, layer_name: str, unit=(0, 0), input_shape=None, *,
                device="cpu") -> UnitRegion:
    """Input box seen by one output unit of a layer.

    Args:
        model: the network.
        layer_name: module name (``"features.3"``) or node name from :func:`receptive_fields`.
        unit: (row, column) of the unit in the layer's output grid ((0, 0) for a flat layer).
        input_shape: ``"32x32x3"`` or (H, W, C); None uses the model's own.
        device: the model's device.

    Returns:
        :class:`UnitRegion` with ``box`` = (top, left, bottom, right), bottom and right
        exclusive, in input pixel coordinates (``top = t + row·jump``, ``bottom = top + size``);
        it may reach past the image into the zero padding; ``clipped`` is cut to the image.

    Raises:
        ValueError: unknown layer, ambiguous name, or a unit outside the output grid.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2))
        >>> unit_region(net, "1", (0, 0), "8x8x1").box
        (-1, -1, 3, 3)
    """
    chw = _image_shape(model, input_shape)
    traces, _ = trace_layers(model, chw, device=device)
    trace = _find([t for t in traces if t.field is not None], layer_name)
    unit = _check_unit(unit, trace)
    f = trace.field
    top, left = (f.top[a] + unit[a] * f.jump[a] for a in range(2))
    box = (top, left, top + f.size[0], left + f.size[1])
    height, width = chw[1:]
    clipped = (max(box[0], 0), max(box[1], 0), min(box[2], height), min(box[3], width))
    return UnitRegion(box, clipped)


# ----------------------------------------------------------------------------- measured field


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

        graph_module = _graph_module(model, _LeafTracer(x.detach()).trace(model))
        with _MaxAsAverage():
            _Keep(graph_module).run(x)
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
    chw = _image_shape(model, input_shape)
    traces, _ = trace_layers(model, chw)
    trace = _find([t for t in traces if t.field is not None], layer_name)
    row, col = _check_unit(unit, trace)
    positive = _positive_copy(model)
    generator = torch.Generator().manual_seed(seed)
    x = (0.5 + torch.rand(1, *chw, generator=generator, dtype=torch.float64)).requires_grad_()
    out = _capture(positive, trace, x)[0]
    picked = out[:, row, col] if out.dim() == 3 else out.reshape(-1)  # (C,) or (F,)
    weights = torch.linspace(1.0, 2.0, picked.numel(), dtype=picked.dtype)
    (grad,) = torch.autograd.grad((picked * weights).sum(), x)
    return (grad[0] != 0).any(dim=0)  # (C, H, W) -> (H, W)
