"""Model summary: per layer, the output volume, parameters, multiply-adds and receptive field.

``summary(model, "32x32x3")`` runs one forward pass on a zeros image (batch 1, eval mode, no
grad) and returns a :class:`ModelSummary`; ``print(it)`` gives the table the tutorials draw,
with volumes written H×W×D (``26x26x32``), and ``to_dict()`` gives the same as JSON-able data.

Conventions:

- **Parameters** are counted once, at the first call of the layer that owns them (a module
  called twice shows them on its first row); the totals come from ``model.parameters()``.
  *Frozen* means ``requires_grad`` is False.
- **MACs** (multiply-accumulates) count the weighted sums only, the convention of torchvision
  and fvcore: a convolution does ``C_out·H_out·W_out × (C_in/groups)·k_h·k_w``, a dense layer
  ``in_features × out_features``; activations, batch norm, pooling and adds count 0.
- **Activation memory** is the size of every layer's output for one image in float32, as if
  each were stored (the Keras/torchsummary convention; views and in-place ops use less).
- **Receptive field** and **jump** (effective stride) come from
  :mod:`cnnkit.inspect.receptive_field`: theoretical, not clipped to the image; a ``*`` marks
  a field larger than the input (it reaches into the zero padding).
- **Rounding**: a layer whose O = (W − K + 2P)/S + 1 was rounded down has ``!`` after its
  output and a note under the table saying how many rows/columns it drops (``note``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from torch import nn

from cnnkit._checks import check_positive_int, format_shape_hwc
from cnnkit.inspect.tracing import LayerTrace, resolve_input_shape, trace_layers

__all__ = ["LayerRow", "ModelSummary", "summary"]

_BYTES_PER_FLOAT32 = 4
_ARGS_WIDTH = 40


@dataclass(frozen=True)
class LayerRow:
    """One line of the summary.

    Attributes:
        name: module qualified name, or fx node name for a function (``"add"``).
        type: module class or function name.
        args: the layer's arguments as text (``extra_repr`` for modules).
        output_shape: per-image output, (C, H, W) or (F,).
        trainable_params: parameters first used here with ``requires_grad`` True.
        frozen_params: parameters first used here with ``requires_grad`` False.
        macs: multiply-accumulates for one image.
        receptive_field: (h, w) input pixels seen by one unit, or None for a non-image input.
        jump: (h, w) effective stride in input pixels, or None.
        start: (h, w) centre of unit (0, 0)'s field in input pixels, or None.
        rf_exceeds_input: whether the field is larger than the input image.
        note: what rounding the output size down dropped (``"floor: drops 1 row, 1 col"``),
            or None.
    """

    name: str
    type: str
    args: str
    output_shape: tuple[int, ...]
    trainable_params: int
    frozen_params: int
    macs: int
    receptive_field: tuple[int, int] | None
    jump: tuple[int, int] | None
    start: tuple[float, float] | None
    rf_exceeds_input: bool
    note: str | None = None

    @property
    def params(self) -> int:
        return self.trainable_params + self.frozen_params


@dataclass(frozen=True)
class ModelSummary:
    """What :func:`summary` found: the rows and the totals for one image.

    ``str(summary)`` is an aligned text table; :meth:`to_dict` is JSON-able.
    """

    model_type: str
    input_shape: tuple[int, ...]
    rows: list[LayerRow] = field(default_factory=list)
    trainable_params: int = 0
    frozen_params: int = 0
    macs: int = 0
    activation_bytes: int = 0
    traced: bool = True

    @property
    def total_params(self) -> int:
        return self.trainable_params + self.frozen_params

    def to_dict(self) -> dict:
        """JSON-able dict: every field, ``total_params``, and shapes also written H×W×C."""
        data = asdict(self)
        data["total_params"] = self.total_params
        data["input"] = format_shape_hwc(self.input_shape)
        for row, out in zip(data["rows"], self.rows):
            row["output"] = format_shape_hwc(out.output_shape)
        return data

    def __str__(self) -> str:
        header = ("Layer", "Type (arguments)", "Output", "Params", "Frozen", "MACs", "RF", "Jump")
        lines = [header] + [_cells(row) for row in self.rows]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        left = {0, 1}

        def fmt(cells):
            return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "-" * len(fmt(header))
        table = [f"Model: {self.model_type}   input {format_shape_hwc(self.input_shape)}",
                 rule, fmt(header), rule, *(fmt(cells) for cells in lines[1:]), rule,
                 f"Total params: {self.total_params:,} (trainable {self.trainable_params:,}, "
                 f"frozen {self.frozen_params:,})",
                 f"MACs for one image: {self.macs:,} ({self.macs / 1e6:.2f} M)",
                 f"Activation memory for one image (float32): {_megabytes(self.activation_bytes)}",
                 "RF = receptive field in input pixels (HxW), Jump = effective stride; "
                 "* = field larger than the input (reaches into the padding)"]
        notes = [f"! {row.name}: {row.note} (O = (W − K + 2P)/S + 1 rounded down)"
                 for row in self.rows if row.note]
        table[-1:-1] = notes
        if not self.traced:
            table.append("(torch.fx could not trace this model: fields follow the call order "
                         "and are approximate for branching models)")
        return "\n".join(table)


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.2f} MB"


def _pair(value) -> str:
    return "-" if value is None else f"{value[0]}x{value[1]}"


def _cells(row: LayerRow) -> tuple[str, ...]:
    args = row.args if len(row.args) <= _ARGS_WIDTH else row.args[:_ARGS_WIDTH - 3] + "..."
    rf = _pair(row.receptive_field) + ("*" if row.rf_exceeds_input else "")
    output = format_shape_hwc(row.output_shape) + (" !" if row.note else "")
    return (row.name, f"{row.type}({args})", output,
            f"{row.trainable_params:,}", f"{row.frozen_params:,}", f"{row.macs:,}", rf,
            _pair(row.jump) if len(row.output_shape) == 3 else "-")  # flat: no grid to step


def _macs(trace: LayerTrace) -> int:
    """Multiply-accumulates of one layer call for one image (0 outside conv and dense)."""
    out_elems = math.prod(trace.output_shape)
    weight = getattr(trace.module, "weight", None) if trace.module is not None else None
    if isinstance(weight, nn.Parameter):
        shape = tuple(weight.shape)
        is_conv = hasattr(trace.module, "kernel_size")
        if is_conv and getattr(trace.module, "transposed", False):
            return 0  # transposed convolutions are not counted (no input volume recorded)
    else:
        shape = trace.weight_shape
        is_conv = shape is not None and len(shape) == 4
    if shape is None or len(shape) < 2 or (len(shape) == 4) != is_conv:
        return 0
    # conv weight (C_out, C_in/groups, kh, kw): each output element sums C_in/groups·kh·kw
    # products; dense weight (out, in): each output element sums `in` products
    return out_elems * math.prod(shape[1:])


def _own_parameters(model: nn.Module, trace: LayerTrace) -> list[nn.Parameter]:
    if trace.module is not None:
        return list(trace.module.parameters())
    named = dict(model.named_parameters())
    return [named[n] for n in trace.parameter_names if n in named]


def _rows(model: nn.Module, traces: list[LayerTrace], image_hw) -> list[LayerRow]:
    seen: set[int] = set()
    rows = []
    for trace in traces:
        params = [p for p in _own_parameters(model, trace) if id(p) not in seen]
        seen.update(id(p) for p in params)
        trainable = sum(p.numel() for p in params if p.requires_grad)
        frozen = sum(p.numel() for p in params if not p.requires_grad)
        f = trace.field
        exceeds = f is not None and (f.size[0] > image_hw[0] or f.size[1] > image_hw[1])
        rows.append(LayerRow(
            trace.name, trace.op, trace.args, trace.output_shape, trainable, frozen,
            _macs(trace), f.size if f else None, f.jump if f else None,
            f.start if f else None, exceeds, getattr(trace.module, "rounding_note", None),
        ))
    return rows


def _group(model: nn.Module, rows: list[LayerRow], traces: list[LayerTrace],
           depth: int) -> list[LayerRow]:
    """Merge consecutive rows inside the same module at ``depth`` (1 = top-level children)."""
    groups: list[tuple[str | None, list[LayerRow]]] = []
    for row, trace in zip(rows, traces):
        path = trace.scope.split(".") if trace.scope else []
        if trace.module is None:  # a function runs *inside* its scope module
            path.append(trace.node)
        key = ".".join(path[:depth]) if len(path) > depth else None
        if key is not None and groups and groups[-1][0] == key:
            groups[-1][1].append(row)
        else:
            groups.append((key, [row]))
    return [members[0] if key is None else _merge(model, key, members) for key, members in groups]


def _merge(model: nn.Module, key: str, members: list[LayerRow]) -> LayerRow:
    """One row for a whole module: summed counts, the last call's output and field."""
    last = members[-1]
    return LayerRow(
        key, type(dict(model.named_modules())[key]).__name__, "", last.output_shape,
        sum(r.trainable_params for r in members), sum(r.frozen_params for r in members),
        sum(r.macs for r in members), last.receptive_field, last.jump, last.start,
        last.rf_exceeds_input,
    )


def summary(model: nn.Module, input_shape=None, *, device="cpu",
            depth: int | None = None) -> ModelSummary:
    """Describe every layer of ``model``: output volume, parameters, MACs and receptive field.

    Args:
        model: the network, already on ``device``; its train/eval mode is restored afterwards.
        input_shape: ``"32x32x3"`` or (H, W, C) in the tutorials' notation. None uses the
            model's ``input_shape`` (C, H, W) (cnnkit Sequential) or ``in_channels`` with
            ``input_size`` (registry models).
        device: where the zeros input image is made.
        depth: None lists every layer call; ``1`` merges everything inside each top-level
            child into one row (``2`` their children, ...).

    Shape:
        Each conv row's output follows O = (W − K + 2P)/S + 1 per axis; the pass uses one
        zeros image (1, C, H, W).

    Raises:
        ValueError: no input shape known, a malformed one, or ``depth`` below 1.
        TypeError: ``depth`` not an int.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU())
        >>> s = summary(net, "28x28x1")
        >>> s.rows[0].output_shape, s.rows[0].macs, s.total_params
        ((32, 26, 26), 194688, 320)
    """
    if depth is not None:
        check_positive_int(depth, "depth")
    shape = resolve_input_shape(model, input_shape)
    traces, traced = trace_layers(model, shape, device=device)
    rows = _rows(model, traces, shape[1:] if len(shape) == 3 else (0, 0))
    activation_bytes = sum(math.prod(r.output_shape) for r in rows) * _BYTES_PER_FLOAT32
    macs = sum(r.macs for r in rows)
    if depth is not None:
        rows = _group(model, rows, traces, depth)
    params = {id(p): p for p in model.parameters()}.values()
    return ModelSummary(
        model_type=type(model).__name__,
        input_shape=tuple(shape),
        rows=rows,
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        frozen_params=sum(p.numel() for p in params if not p.requires_grad),
        macs=macs,
        activation_bytes=activation_bytes,
        traced=traced,
    )
