"""``Sequential``: a stack of layers that learns every layer's input size from one input shape."""
from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from cnnkit._checks import check_positive_int, format_shape_hwc
from cnnkit.layers.arithmetic import check_rounding
from cnnkit.layers.base import Layer, WindowLayer, parse_user_shape
from cnnkit.layers.dense import Dense
from cnnkit.layers.keras import Input
from cnnkit.models.limits import check_memory, dry_run, total_values
from cnnkit.models.features import FeatureInfo, module_stride, stage_indices
from cnnkit.models.relu_pool import reorders, run_layers
from cnnkit.models.spec import SpecError, parse_spec

logger = logging.getLogger(__name__)


class Sequential(nn.Sequential):
    """Layers applied one after the other, built as soon as the input shape is known.

    Give the input shape once (here, or as the first layer's Keras-style ``input_shape=``) and
    every layer's ``in_channels``/``in_features`` is inferred, so ``model.parameters()`` is
    complete before an optimizer is created. Without any input shape the layers build at the
    first forward call instead. State-dict keys are ``0.weight``, ``0.bias``, ... as in
    ``nn.Sequential``.

    Args:
        layers: a list of modules (cnnkit layers or any ``nn.Module``), or a mapping name->module.
        input_shape: the input without the batch, in the tutorials' H×W×C (``"28x28x1"``,
            ``(28, 28, 1)``) or a feature count for flat inputs (``784``).
        rounding: "warn", "floor" or "strict" (see ``Conv``); overrides the default ("warn") of
            layers that were not given one.
        name: the model's name.

    Shape:
        Input (N, C, H, W) (or (N, F) for a flat input shape) -> (N, *output_shape).

    Raises:
        ValueError: a layer's output size arithmetic fails, or the shapes do not chain.
        cnnkit.errors.ModelTooLargeError: the parameters or the batch-1 activations would not
            fit in the available memory (checked before anything is allocated).

    Example:
        >>> from cnnkit.layers import Conv, Dense, Flatten, MaxPool
        >>> model = Sequential([Conv(32, 3, activation="relu"), MaxPool(2), Flatten(), Dense(10)],
        ...                    input_shape="28x28x1")
        >>> model.shapes()[2]
        ('flatten1', (5408,))
    """

    #: In training mode, run each ReLU → max-pool pair as max-pool → ReLU (the same outputs and
    #: gradients, on a quarter of the values: :mod:`cnnkit.models.relu_pool`). Evaluation,
    #: tracing (summary, export) and hooks see the layers as written; False: always as written.
    pool_before_relu: bool = True

    def __init__(self, layers: Iterable[nn.Module] | Mapping[str, nn.Module] | None = None,
                 input_shape=None, *, rounding: str | None = None, name: str | None = None):
        super().__init__()
        if isinstance(layers, nn.Module):
            raise TypeError("layers must be a list of modules, e.g. Sequential([Conv(32, 3), "
                            f"ReLU()]), got the single module {layers!r}")
        self.name = name
        self.rounding = None if rounding is None else check_rounding(rounding)
        self._input_shape: tuple[int, ...] | None = None
        self._shapes: list[tuple[int, ...]] = []
        if input_shape is not None:
            self._input_shape = parse_user_shape(input_shape)
        if isinstance(layers, Mapping):
            layers = layers.values()
        for layer in layers or ():
            self.add(layer)

    # ------------------------------------------------------------------ building
    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The input without batch: (C, H, W) or (F,); None until known."""
        return self._input_shape

    @property
    def output_shape(self) -> tuple[int, ...] | None:
        """The output without batch, e.g. (10,); None until the input shape is known."""
        if self._input_shape is None:
            return None
        return self._shapes[-1] if self._shapes else self._input_shape

    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """(layer name, output shape without batch) for every layer, in order."""
        names = [getattr(m, "name", None) or key for key, m in self._modules.items()]
        return list(zip(names, self._shapes))

    def add(self, layer: nn.Module) -> None:
        """Append ``layer`` and build it if the input shape is known (returns None, as Keras).

        A Keras ``Input(shape)`` is consumed (it sets the input shape and adds no module).

        Raises:
            TypeError: ``layer`` is not an ``nn.Module``.
            ValueError: the layer does not fit the current output shape.
        """
        if isinstance(layer, Input):
            if len(self):
                raise ValueError("Input(...) must come before every other layer")
            self._input_shape = layer.input_shape
            return
        if not isinstance(layer, nn.Module):
            raise TypeError(f"layer must be a torch.nn.Module such as Conv(32, 3), got {layer!r}")
        if not len(self) and self._input_shape is None:
            self._input_shape = getattr(layer, "input_shape", None)
        if isinstance(layer, Layer) and layer.name is None:
            counts = Counter(getattr(m, "token", None) for m in self)
            layer.name = f"{layer.token}{counts[layer.token] + 1}"
        if self.rounding is not None and isinstance(layer, WindowLayer) and layer.rounding is None:
            layer.rounding = self.rounding
        if self._input_shape is not None:
            self._check_fits([*self, layer], self._input_shape)
            self._shapes.append(self._build_layer(layer, self.output_shape))
        self.append(layer)

    @staticmethod
    def _check_fits(layers: list[nn.Module], shape: tuple[int, ...]) -> None:
        """Refuse (``ModelTooLargeError``) before allocating a model that cannot fit in memory."""
        parameters, activations = 0, 0
        for layer in layers:
            count, shape = dry_run(layer, shape)
            parameters += count
            activations += total_values(shape)
        check_memory(parameters, activations, where="the model")

    @staticmethod
    def _build_layer(layer: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Build ``layer`` for ``shape``; return its output shape (probing plain torch modules)."""
        if isinstance(layer, Layer):
            layer.build(shape)
            return tuple(layer.compute_output_shape(shape))
        was_training = layer.training
        layer.eval()
        with torch.no_grad():
            out = layer(torch.zeros(1, *shape))
        layer.train(was_training)
        return tuple(out.shape[1:])

    def _set_input_shape(self, shape: tuple[int, ...]) -> None:
        """Learn the input shape (C, H, W)/(F,) and build every layer in order."""
        self._input_shape = tuple(shape)
        self._check_fits(list(self), self._input_shape)
        self._shapes = []
        for layer in self:
            self._shapes.append(self._build_layer(layer, self.output_shape))

    # ------------------------------------------------------------------ running
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layers; ``x`` is (N, C, H, W) (or (N, F)) matching ``input_shape``."""
        if self._input_shape is None:
            self._set_input_shape(tuple(x.shape[1:]))
            self.to(device=x.device, dtype=x.dtype if x.is_floating_point() else None)
            logger.info("Sequential built lazily for input %s; create the optimizer after this",
                        self._input_shape)
        self._check_batch(x)
        if reorders(self, x):
            return run_layers(list(self._modules.values()), x)  # training steps only
        return super().forward(x)

    def _check_batch(self, x: torch.Tensor) -> None:
        expected = self._input_shape
        got = tuple(x.shape[1:])
        if got == expected:
            if not x.is_floating_point():
                raise TypeError(f"the model needs a float tensor, got dtype {x.dtype}; convert "
                                "uint8 images with x.float() / 255 or cnnkit's Normalization")
            return
        hint = ""
        if len(expected) == 3 and got == (expected[1], expected[2], expected[0]):
            hint = (" It looks like (N, H, W, C) channels-last data: use x.permute(0, 3, 1, 2) "
                    "to get (N, C, H, W).")
        elif len(expected) == 3 and got == expected[1:]:
            hint = " Add the channel axis with x.unsqueeze(1)."
        where = f" ({format_shape_hwc(expected)} as H×W×C)" if len(expected) == 3 else ""
        raise ValueError(f"input of shape {tuple(x.shape)!r} does not match the model's input "
                         f"shape (N, *{expected!r}){where}.{hint}")

    # ------------------------------------------------------------------ model interface
    def _require_shape(self, what: str) -> tuple[int, ...]:
        if self._input_shape is None:
            raise ValueError(f"{what} needs the input shape: give Sequential(..., input_shape=...) "
                             "or run one batch through the model first")
        return self._input_shape

    def _spatial_end(self) -> int:
        """How many leading layers output an image (C, H, W): the layers of ``forward_features``."""
        self._require_shape("the feature/head split")
        return max((i + 1 for i, shape in enumerate(self._shapes) if len(shape) == 3), default=0)

    def _stage_layout(self) -> tuple[list[int], list[int]]:
        """Layer positions of the stages and their cumulative strides (see ``feature_info``)."""
        strides = [module_stride(layer) for layer in list(self)[:self._spatial_end()]]
        positions = stage_indices(strides)
        return positions, [math.prod(strides[:i + 1]) for i in positions]

    @property
    def feature_info(self) -> list[FeatureInfo]:
        """One ``FeatureInfo(name, channels, stride)`` per stage, from the known layer shapes.

        A stage is the last layer at each resolution (the one before each layer with a stride
        above 1) and the last layer with an image output. Empty for a flat (F,) input.

        Example:
            >>> net = Sequential.from_spec("conv(4,3) relu maxpool(2) conv(8,3) flatten fc(2)",
            ...                            "16x16x1")
            >>> [(f.name, f.channels, f.stride) for f in net.feature_info]
            [('relu1', 4, 1), ('conv2', 8, 2)]
        """
        names = [getattr(m, "name", None) or key for key, m in self._modules.items()]
        positions, strides = self._stage_layout()
        return [FeatureInfo(names[i], self._shapes[i][0], stride)
                for i, stride in zip(positions, strides)]

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, C, H, W) -> the output of every ``feature_info`` stage, in order (no hooks)."""
        end = self._spatial_end()
        self._check_batch(x)
        keep = set(self._stage_layout()[0])
        outputs = []
        for position, layer in enumerate(list(self)[:end]):
            x = layer(x)
            if position in keep:
                outputs.append(x)
        return outputs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C', H', W'), the output of the last layer with an image output."""
        end = self._spatial_end()
        self._check_batch(x)
        for layer in list(self)[:end]:
            x = layer(x)
        return x

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``forward_features``' output -> (N, num_classes), or the (N, F) classifier input.

        Shape:
            (N, C', H', W') -> (N, num_classes); with ``pre_logits`` the input of the
            classifier (the last layer with parameters) flattened to (N, F).
        """
        layers = list(self)
        stop = self._classifier_index() if pre_logits else len(layers)
        for layer in layers[self._spatial_end():stop]:
            features = layer(features)
        return features.flatten(1) if pre_logits else features  # (N, F, ...) -> (N, F*...)

    def _classifier_index(self) -> int:
        with_params = [i for i, layer in enumerate(self) if any(True for _ in layer.parameters())]
        if not with_params:
            raise ValueError("this Sequential has no layer with parameters, so it has no "
                             "classifier; end it with a Dense/fc layer")
        return with_params[-1]

    @property
    def classifier_path(self) -> str:
        """The name of the classifier: the last layer with parameters (``"7"``)."""
        return list(self._modules)[self._classifier_index()]

    @property
    def num_classes(self) -> int | None:
        """Outputs of the model ((F,) output shape), None while the input shape is unknown."""
        shape = self.output_shape
        return shape[0] if shape is not None and len(shape) == 1 else None

    @property
    def in_channels(self) -> int | None:
        """C of a (C, H, W) input shape; setting it changes the input shape's channels."""
        return self._input_shape[0] if self._input_shape is not None else None

    @in_channels.setter
    def in_channels(self, channels: int) -> None:
        shape = self._require_shape("setting in_channels")
        self._input_shape = (check_positive_int(channels, "in_channels"), *shape[1:])

    def get_classifier(self) -> nn.Module:
        """The classifier layer (see ``classifier_path``)."""
        return self._modules[self.classifier_path]

    def reset_head(self, num_classes: int) -> None:
        """Replace the classifier by a fresh ``Dense``/``nn.Linear`` with ``num_classes`` outputs.

        The new layer keeps the old one's input size, activation, bias and name, lands on its
        device and dtype, and every layer's output shape is recomputed (the spec follows).

        Raises:
            ValueError: the classifier is not built yet, or is not a Dense/nn.Linear layer.

        Example:
            >>> net = Sequential.from_spec("conv(4,3) relu flatten fc(10)", "8x8x1")
            >>> net.reset_head(3); net.output_shape
            (3,)
        """
        check_positive_int(num_classes, "num_classes")
        path = self.classifier_path
        old = self._modules[path]
        if isinstance(old, Dense):
            if old.in_features is None:
                raise ValueError(f"{old.label} is not built yet; give the model its input shape "
                                 "before replacing the classifier")
            new = Dense(num_classes, activation=old.activation, bias=old.use_bias,
                        in_features=old.in_features, name=old.name)
        elif isinstance(old, nn.Linear):
            new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        else:
            raise ValueError(f"the classifier {type(old).__name__} is not a Dense or nn.Linear "
                             "layer; replace it yourself (model[i] = nn.Linear(...))")
        reference = next(old.parameters())
        self.register_module(path, new.to(device=reference.device, dtype=reference.dtype))
        if self._input_shape is not None:
            self._set_input_shape(self._input_shape)

    reset_classifier = reset_head

    # ------------------------------------------------------------------ architecture strings
    def to_spec(self) -> str:
        """The architecture string that rebuilds this model (``from_spec`` reads it back).

        Raises:
            ValueError: a layer is a plain torch module with no spec token.
        """
        tokens = []
        for key, layer in self._modules.items():
            if not isinstance(layer, Layer):
                raise ValueError(f"layer {key} ({type(layer).__name__}) has no spec token; only "
                                 "cnnkit layers can be written as an architecture string")
            tokens.append(layer.to_spec())
        return " ".join(tokens)

    @classmethod
    def from_spec(cls, spec: str, input_shape=None, *, num_classes: int = 10,
                  rounding: str | None = None, name: str | None = None) -> Sequential:
        """Build a model from an architecture string (see ``cnnkit.models.spec``).

        Args:
            spec: e.g. ``"conv(6,5) relu maxpool(2) conv(16,5) relu maxpool(2) fc(120) relu
                fc(84) relu fc(10)"`` or ``"Input -> Conv -> ReLU -> Pool -> Fully Connected"``.
            input_shape: H×W×C (``"32x32x3"``) or a feature count; None builds lazily.
            num_classes: units of a final arrow-form ``Fully Connected`` stage without arguments.
            rounding, name: as in the constructor.

        Raises:
            SpecError: a token is unknown, malformed, or its layer does not fit the shapes;
                the message points at the token.

        Example:
            >>> Sequential.from_spec("conv(6,5) relu maxpool(2) fc(10)", "28x28x1").output_shape
            (10,)
        """
        model = cls(rounding=rounding, name=name)
        if input_shape is not None:
            model._input_shape = parse_user_shape(input_shape)
        image_input = None if model._input_shape is None else len(model._input_shape) == 3
        for item in parse_spec(spec, num_classes=num_classes, image_input=image_input):
            try:
                model.add(item.layer)
            except ValueError as error:
                raise SpecError(f"layer '{item.text}' at position {item.position} does not fit: "
                                f"{error}", spec, item.position, len(item.text)) from error
        return model

    @property
    def architecture(self) -> dict:
        """JSON-able description that ``from_architecture`` turns back into the same model."""
        return {"type": "spec", "spec": self.to_spec(),
                "input_shape": None if self._input_shape is None else list(self._input_shape)}

    @classmethod
    def from_architecture(cls, architecture: Mapping) -> Sequential:
        """Rebuild a model from its ``architecture`` dict (input shape stored as [C, H, W]).

        Raises:
            ValueError: the dict is not a ``{"type": "spec", ...}`` architecture.
        """
        if architecture.get("type") != "spec" or "spec" not in architecture:
            raise ValueError(f"architecture must be {{'type': 'spec', 'spec': ..., 'input_shape': "
                             f"[C, H, W]}}, got {dict(architecture)!r}")
        shape = architecture.get("input_shape")
        if shape is not None and len(shape) == 3:
            channels, height, width = shape
            shape = (height, width, channels)  # (C, H, W) -> H×W×C, the notation from_spec reads
        return cls.from_spec(architecture["spec"], shape)
