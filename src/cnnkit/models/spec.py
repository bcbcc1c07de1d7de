"""Architecture strings: a CNN written in the tutorials' notation, parsed into cnnkit layers.

Two forms are accepted.

**Token form** (what ``Sequential.to_spec()`` writes)::

    conv(6,5) relu maxpool(2) conv(16,5) relu maxpool(2) fc(120) relu fc(84) relu fc(10)

Tokens are separated by whitespace (a comma between tokens is also accepted). A token is a
name, optionally followed by arguments in parentheses: positional values first, then
``key=value``. Values are ints, floats, names (``same``, ``relu``, ``floor``, ``true``), tuples
``(3,5)`` or an activation token (``activation=leakyrelu(0.2)``). Names are case-insensitive.

=====================  =====================================  =====================================
token (aliases)        positional arguments (defaults)        keyword-only arguments
=====================  =====================================  =====================================
conv (conv2d)          filters, kernel_size=3, stride=1,      dilation=1, groups=1, bias=true,
                       padding=0 (int, valid or same)         activation=none, rounding=warn
maxpool (pool)         size=2, stride=size, padding=0         rounding
avgpool, sumpool,      size=2, stride=size, padding=0         rounding
l2pool
gap (globalavgpool)    -                                      -
globalmaxpool (gmp)    -                                      -
flatten                -                                      -
fc (dense, linear)     units                                  activation=none, bias=true
dropout                rate=0.5                               -
bn (batchnorm)         -                                      momentum=0.1, eps=1e-05
relu, tanh, sigmoid,   -                                      -
gelu
leakyrelu              negative_slope=0.01                    -
upsample (upsampling)  scale_factor=2, mode=nearest|bilinear  -
convtranspose          filters, kernel_size=2, stride=1       padding=0, output_padding=0,
(deconv)                                                      bias=true
softmax                -                                      dim=1
=====================  =====================================  =====================================

``flatten`` is inserted automatically before the first ``fc`` that follows an image volume
(the input, when it is an image, or a conv/pool layer), so ``conv(6,5) maxpool(2) fc(10)``
means ``conv(6,5) maxpool(2) flatten fc(10)``.

**Arrow form** (a tutorial's diagram)::

    Input -> Conv -> ReLU -> Pool -> Fully Connected

Stages are separated by ``->`` (or ``→``); names are case-insensitive and may contain spaces
(``Fully Connected``, ``Max Pool``, ``Batch Norm``); ``Input`` is optional and only marks the
start. A stage takes the same arguments as the token (``Conv(64,5)``); missing ones get these
defaults: ``Conv`` = ``conv(32,3,padding=same)``, ``Pool``/``Max Pool`` = ``maxpool(2)``,
``Fully Connected``/``FC`` = ``fc(num_classes)`` for the last one and ``fc(128)`` otherwise,
``Dropout`` = ``dropout(0.5)``.

Errors raise ``SpecError``, whose message shows the spec with a caret under the offending token
and its 0-based character position.

Example:
    >>> [p.layer.to_spec() for p in parse_spec("conv(6,5) relu maxpool(2) fc(10)")]
    ['conv(6,5)', 'relu', 'maxpool(2)', 'flatten', 'fc(10)']
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.layers.activations import ACTIVATIONS, GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from cnnkit.layers.base import Layer
from cnnkit.layers.conv import Conv
from cnnkit.layers.dense import Dense, Flatten
from cnnkit.layers.dropout import Dropout
from cnnkit.layers.norm import BatchNorm
from cnnkit.layers.pooling import AvgPool, GlobalAvgPool, GlobalMaxPool, L2Pool, MaxPool, SumPool
from cnnkit.layers.upsample import ConvTranspose, Upsample


class SpecError(CnnkitError, ValueError):
    """An architecture string that cannot be parsed or built; points at the offending token.

    Attributes:
        reason: the message without the caret picture.
        spec: the full architecture string.
        position: 0-based character offset of the offending token.
    """

    def __init__(self, reason: str, spec: str, position: int, length: int = 1):
        self.reason = reason
        self.spec = spec
        self.position = position
        line = re.sub(r"\s", " ", spec)
        caret = " " * position + "^" * max(1, length)
        super().__init__(f"{reason}\n  {line}\n  {caret}")


@dataclass(frozen=True)
class ParsedLayer:
    """A layer built from a spec, with the token text and position it came from."""

    layer: nn.Module
    text: str
    position: int


@dataclass(frozen=True)
class _Kind:
    factory: Callable[..., Layer]
    positional: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    example: str = ""
    arrow_defaults: dict = field(default_factory=dict)
    spatial_after: bool | None = None  # True: outputs an image volume, False: a flat vector


_POOL_ARGS = {"positional": ("size", "stride", "padding"), "keywords": ("rounding",),
              "spatial_after": True}
KINDS: dict[str, _Kind] = {
    "conv": _Kind(Conv, ("filters", "kernel_size", "stride", "padding"),
                  ("dilation", "groups", "bias", "activation", "rounding"), ("filters",),
                  "conv(32,3)", {"filters": 32, "kernel_size": 3, "padding": "same"}, True),
    "maxpool": _Kind(MaxPool, **_POOL_ARGS),
    "avgpool": _Kind(AvgPool, **_POOL_ARGS),
    "sumpool": _Kind(SumPool, **_POOL_ARGS),
    "l2pool": _Kind(L2Pool, **_POOL_ARGS),
    "gap": _Kind(GlobalAvgPool, spatial_after=False),
    "globalmaxpool": _Kind(GlobalMaxPool, spatial_after=False),
    "flatten": _Kind(Flatten, spatial_after=False),
    "fc": _Kind(Dense, ("units",), ("activation", "bias"), ("units",), "fc(120)",
                spatial_after=False),
    "dropout": _Kind(Dropout, ("rate",)),
    "bn": _Kind(BatchNorm, (), ("momentum", "eps")),
    "relu": _Kind(ReLU),
    "leakyrelu": _Kind(LeakyReLU, ("negative_slope",)),
    "tanh": _Kind(Tanh),
    "sigmoid": _Kind(Sigmoid),
    "gelu": _Kind(GELU),
    "softmax": _Kind(Softmax, (), ("dim",)),
    "upsample": _Kind(Upsample, ("scale_factor", "mode"), spatial_after=True),
    "convtranspose": _Kind(ConvTranspose, ("filters", "kernel_size", "stride"),
                           ("padding", "output_padding", "bias"), ("filters",),
                           "convtranspose(16,2,2)", {"filters": 32, "kernel_size": 2,
                                                     "stride": 2}, True),
}
ALIASES = {
    "conv2d": "conv", "convolution": "conv", "convolutional": "conv", "pool": "maxpool",
    "maxpooling": "maxpool", "averagepool": "avgpool", "avgpooling": "avgpool",
    "averagepooling": "avgpool", "sumpooling": "sumpool", "l2pooling": "l2pool",
    "globalavgpool": "gap", "globalaveragepool": "gap", "globalaveragepooling": "gap",
    "gmp": "globalmaxpool", "globalmaxpooling": "globalmaxpool", "dense": "fc", "linear": "fc",
    "fullyconnected": "fc", "batchnorm": "bn", "batchnormalization": "bn",
    "deconv": "convtranspose", "deconvolution": "convtranspose",
    "transposedconv": "convtranspose", "upsampling": "upsample",
}
MAX_SPEC_LENGTH = 10_000
MAX_NESTING_DEPTH = 16
_DEFAULT_HIDDEN_UNITS = 128
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STAGE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:[ \t-]+[A-Za-z][A-Za-z0-9_]*)*")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_ARROW = re.compile(r"->|→")


@dataclass(frozen=True)
class _Value:
    value: object
    position: int


@dataclass(frozen=True)
class _Call:
    name: str           # as written
    args: tuple         # of _Value
    kwargs: dict        # str -> _Value (positioned at the key)
    position: int       # of the name
    end: int            # one past the closing parenthesis (or the name)


def _normalize(name: str) -> str:
    return re.sub(r"[\s_-]", "", name).lower()


class _Scanner:
    """Recursive-descent reader of calls and values over the whole spec string."""

    def __init__(self, spec: str, start: int = 0, stop: int | None = None):
        self.spec = spec
        self.pos = start
        self.stop = len(spec) if stop is None else stop

    def error(self, reason: str, position: int | None = None, length: int = 1) -> SpecError:
        return SpecError(reason, self.spec, self.pos if position is None else position, length)

    def skip_space(self) -> None:
        while self.pos < self.stop and self.spec[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.spec[self.pos] if self.pos < self.stop else ""

    def expect(self, char: str, context: str) -> None:
        self.skip_space()
        if self.peek() != char:
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.error(f"expected {char!r} {context} at position {self.pos}, found {found}")
        self.pos += 1

    def match(self, pattern: re.Pattern) -> str | None:
        found = pattern.match(self.spec, self.pos, self.stop)
        if not found:
            return None
        self.pos = found.end()
        return found.group()

    def call(self, name_pattern: re.Pattern = _NAME) -> _Call:
        self.skip_space()
        start = self.pos
        name = self.match(name_pattern)
        if name is None:
            raise self.error(f"expected a layer name at position {start}, found {self.peek()!r}")
        args, kwargs = [], {}
        end = self.pos
        self.skip_space()
        if self.peek() == "(":
            self.pos += 1
            args, kwargs = self.arguments(name, start)
            end = self.pos
        self.pos = end
        return _Call(name, tuple(args), kwargs, start, end)

    def arguments(self, name: str, start: int) -> tuple[list, dict]:
        args, kwargs = [], {}
        self.skip_space()
        if self.peek() == ")":
            self.pos += 1
            return args, kwargs
        while True:
            self.skip_space()
            position = self.pos
            keyword = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=").match(self.spec, self.pos,
                                                                          self.stop)
            if keyword:
                self.pos = keyword.end()
                key = keyword.group(1).lower()
                if key in kwargs:
                    raise self.error(f"argument {key!r} given twice in '{name}' at position "
                                     f"{position}", position, len(key))
                kwargs[key] = _Value(self.value().value, position)
            elif kwargs:
                raise self.error(f"positional argument after key=value in '{name}' at position "
                                 f"{position}; put positional arguments first")
            else:
                args.append(self.value())
            self.skip_space()
            if self.peek() == ",":
                self.pos += 1
                continue
            if self.peek() == ")":
                self.pos += 1
                return args, kwargs
            if not self.peek():
                raise self.error(f"unclosed '(' in '{name}' at position {start}", start, len(name))
            raise self.error(f"expected ',' or ')' in '{name}' at position {self.pos}, "
                             f"found {self.peek()!r}")

    def value(self) -> _Value:
        self.skip_space()
        start = self.pos
        if self.peek() == "(":
            self.pos += 1
            items = [self.value().value]
            while True:
                self.skip_space()
                if self.peek() == ",":
                    self.pos += 1
                    items.append(self.value().value)
                    continue
                self.expect(")", "to close the tuple")
                return _Value(tuple(items), start)
        number = self.match(_NUMBER)
        if number is not None:
            is_int = re.fullmatch(r"[-+]?\d+", number)
            return _Value(int(number) if is_int else float(number), start)
        name = self.match(_NAME)
        if name is None:
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.error(f"expected a value (number, name or tuple) at position {start}, "
                             f"found {found}")
        if self.spec[self.pos:self.pos + 1] == "(":
            self.pos = start
            return _Value(self.call(), start)
        lowered = name.lower()
        return _Value({"true": True, "false": False}.get(lowered, lowered), start)


def _kind_name(call: _Call, spec: str) -> str:
    key = _normalize(call.name)
    key = ALIASES.get(key, key)
    if key not in KINDS:
        choices = [*KINDS, *ALIASES]
        close = difflib.get_close_matches(_normalize(call.name), choices, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpecError(f"unknown layer {call.name!r} at position {call.position}{hint}; "
                        f"known layers: {', '.join(KINDS)}", spec, call.position, len(call.name))
    return key


def _build(call: _Call, spec: str, defaults: dict | None = None) -> Layer:
    """Turn one parsed call into a layer, with errors that point at it."""
    key = _kind_name(call, spec)
    kind = KINDS[key]
    text = spec[call.position:call.end]
    if len(call.args) > len(kind.positional):
        takes = ", ".join(kind.positional) or "none"
        raise SpecError(f"too many arguments in '{text}' at position {call.position}: {key} "
                        f"takes {len(kind.positional)} positional ({takes}), got "
                        f"{len(call.args)}", spec, call.position, len(text))
    bound = dict(defaults or {})
    bound.update({name: v.value for name, v in zip(kind.positional, call.args)})
    allowed = kind.positional + kind.keywords
    for name, v in call.kwargs.items():
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpecError(f"unknown argument {name!r} in '{text}' at position {v.position}"
                            f"{hint}; {key} takes {', '.join(allowed) or 'no arguments'}",
                            spec, v.position)
        if name in kind.positional[:len(call.args)]:
            raise SpecError(f"argument {name!r} given twice in '{text}' at position "
                            f"{v.position}", spec, v.position)
        bound[name] = v.value
    missing = [name for name in kind.required if name not in bound]
    if missing:
        raise SpecError(f"'{text}' at position {call.position} needs {', '.join(missing)}, "
                        f"e.g. {kind.example}", spec, call.position, len(text))
    if isinstance(bound.get("activation"), _Call):
        bound["activation"] = _activation(bound["activation"], spec)
    try:
        return kind.factory(**bound)
    except (TypeError, ValueError) as error:
        raise SpecError(f"bad arguments in '{text}' at position {call.position}: {error}",
                        spec, call.position, len(text)) from error


def _activation(call: _Call, spec: str) -> Layer:
    if _kind_name(call, spec) not in ACTIVATIONS:
        raise SpecError(f"activation={call.name!r} at position {call.position} is not an "
                        f"activation; use one of {', '.join(ACTIVATIONS)}", spec, call.position,
                        len(call.name))
    return _build(call, spec)


def _token_calls(spec: str) -> list[_Call]:
    scanner = _Scanner(spec)
    calls = []
    while True:
        while scanner.peek() and (scanner.peek().isspace() or scanner.peek() == ","):
            scanner.pos += 1
        if not scanner.peek():
            return calls
        if not _NAME.match(scanner.peek()):
            raise scanner.error(f"unexpected {scanner.peek()!r} at position {scanner.pos}; "
                                "tokens look like conv(32,3) or relu")
        calls.append(scanner.call())


def _arrow_calls(spec: str) -> list[_Call]:
    bounds, start = [], 0
    for arrow in _ARROW.finditer(spec):
        bounds.append((start, arrow.start()))
        start = arrow.end()
    bounds.append((start, len(spec)))
    calls = []
    for index, (begin, stop) in enumerate(bounds):
        scanner = _Scanner(spec, begin, stop)
        scanner.skip_space()
        if not scanner.peek():
            raise scanner.error(f"empty stage between arrows at position {scanner.pos}; "
                                "write e.g. 'Input -> Conv -> ReLU -> Pool -> Fully Connected'")
        call = scanner.call(_STAGE_NAME)
        scanner.skip_space()
        if scanner.peek():
            raise scanner.error(f"unexpected {scanner.peek()!r} after stage '{call.name}' at "
                                f"position {scanner.pos}; stages are separated by '->'")
        if _normalize(call.name) == "input":
            if index:
                raise SpecError(f"'Input' at position {call.position} must be the first stage",
                                spec, call.position, len(call.name))
            continue
        calls.append(call)
    return calls


def _check_size(spec: str) -> None:
    """Reject over-long or over-nested strings before the recursive parser sees them."""
    if len(spec) > MAX_SPEC_LENGTH:
        raise SpecError(f"architecture string too long ({len(spec)} characters, at most "
                        f"{MAX_SPEC_LENGTH}); write the model in Python or split it",
                        spec[:80], 0)
    depth = 0
    for position, char in enumerate(spec):
        if char == "(":
            depth += 1
            if depth > MAX_NESTING_DEPTH:
                raise SpecError(f"parentheses nested too deeply at position {position} (more "
                                f"than {MAX_NESTING_DEPTH} levels); remove the extra '('",
                                spec, position)
        elif char == ")":
            depth = max(0, depth - 1)


def parse_spec(spec: str, *, num_classes: int = 10,
               image_input: bool | None = None) -> list[ParsedLayer]:
    """Parse an architecture string into fresh (unbuilt) layers.

    Args:
        spec: token form or arrow form (see the module docstring).
        num_classes: units of the last arrow-form ``Fully Connected`` stage without arguments.
        image_input: True when the model input is an image (then a leading ``fc`` gets a
            ``flatten``), False for a flat input, None when unknown.

    Returns:
        One ``ParsedLayer`` per layer, including inserted ``flatten`` layers.

    Raises:
        SpecError: unknown token, bad arguments or malformed text; the message points at it.
        TypeError: ``spec`` is not a string.

    Example:
        >>> [p.layer.to_spec() for p in parse_spec("Input -> Conv -> ReLU -> Pool -> FC")]
        ['conv(32,3,padding=same)', 'relu', 'maxpool(2)', 'flatten', 'fc(10)']
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string such as 'conv(32,3) relu fc(10)', got {spec!r}")
    if not spec.strip():
        raise SpecError("empty architecture string; write e.g. 'conv(32,3) relu maxpool(2) "
                        "fc(10)'", spec, 0)
    _check_size(spec)
    arrow = bool(_ARROW.search(spec))
    calls = _arrow_calls(spec) if arrow else _token_calls(spec)
    kinds = [_kind_name(call, spec) for call in calls]
    last_fc = max((i for i, key in enumerate(kinds) if key == "fc"), default=None)
    spatial = bool(image_input)
    parsed = []
    for index, (call, key) in enumerate(zip(calls, kinds)):
        kind = KINDS[key]
        defaults = dict(kind.arrow_defaults) if arrow else {}
        if arrow and key == "fc":
            defaults["units"] = num_classes if index == last_fc else _DEFAULT_HIDDEN_UNITS
        text = spec[call.position:call.end]
        if key == "fc" and spatial:
            parsed.append(ParsedLayer(Flatten(), text, call.position))
        parsed.append(ParsedLayer(_build(call, spec, defaults), text, call.position))
        if kind.spatial_after is not None:
            spatial = kind.spatial_after
    return parsed


def canonical_spec(spec: str, *, num_classes: int = 10, image_input: bool | None = None) -> str:
    """The canonical token form of ``spec`` (what ``Sequential.to_spec()`` writes).

    Example:
        >>> canonical_spec("Conv(6, 5) -> ReLU -> Max Pool -> Dense(10)")
        'conv(6,5,padding=same) relu maxpool(2) flatten fc(10)'
    """
    layers = parse_spec(spec, num_classes=num_classes, image_input=image_input)
    return " ".join(p.layer.to_spec() for p in layers)
