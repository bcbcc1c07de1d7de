"""The interface every model of the zoo shares (timm-like), and the input-size arithmetic.

A zoo model is an ``nn.Module`` that splits its forward pass in two::

    logits = model.forward_head(model.forward_features(x))

- ``forward_features(x)``: the last spatial feature volume, (N, C, H', W').
- ``forward_head(x, pre_logits=False)``: pooling + classifier -> logits (N, num_classes), or the
  penultimate vector (N, F) with ``pre_logits=True``.
- ``features(x)``: that penultimate vector, what transfer learning embeds.
- ``get_classifier()`` / ``reset_head(num_classes)`` (alias ``reset_classifier``): the final
  layer, and a fresh one.
- ``feature_info`` / ``forward_stages(x)``: each stage's name, channels and stride, and their
  outputs (see ``cnnkit.models.features``), from the main path listed by ``feature_layers()``.
- ``architecture``: a JSON-able dict that ``cnnkit.models.registry.build_architecture`` rebuilds.

Models forward plain logits (no softmax).

Models whose torchvision counterpart has a ``features`` sub-module (AlexNet, VGG, DenseNet) keep
that name for the state-dict keys (``features.0.weight``), but the attribute ``model.features`` is
the method above; reach the sub-module as ``model.trunk``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from cnnkit._checks import check_positive_int
from cnnkit.layers.arithmetic import window_output_size
from cnnkit.models.features import FeatureInfo, module_stride, stage_indices

_SPATIAL_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def layer_output_size(size: int, layer: nn.Module, dim: int) -> int:
    """Output length along ``dim`` (0 = height, 1 = width) of a conv or pooling layer.

    Args:
        size: the input length W along that dimension.
        layer: an ``nn.Conv2d``, ``nn.MaxPool2d`` or ``nn.AvgPool2d`` with integer padding.
        dim: 0 for the height, 1 for the width.

    Shape:
        O = floor((W - D*(K - 1) - 1 + 2P) / S) + 1, i.e. O = (W - K + 2P)/S + 1 for D = 1.
        With ``ceil_mode`` the floor is a ceil, and (PyTorch's rule) a last window that would
        start in the right padding is dropped (the formula lives in
        :func:`cnnkit.layers.arithmetic.window_output_size`).

    Example:
        >>> layer_output_size(32, nn.Conv2d(3, 6, 5), 0)
        28
    """
    return window_output_size(size, _pair(layer.kernel_size)[dim], _pair(layer.stride)[dim],
                              _pair(layer.padding)[dim],
                              _pair(getattr(layer, "dilation", 1))[dim],
                              ceil_mode=bool(getattr(layer, "ceil_mode", False)))


def _describe_layer(layer: nn.Module) -> str:
    kernel, stride, padding = (_pair(layer.kernel_size), _pair(layer.stride), _pair(layer.padding))
    return (f"{type(layer).__name__}(kernel_size={kernel[0]}, stride={stride[0]}, "
            f"padding={padding[0]})")


def _first_failure(input_size, layers):
    """Walk ``layers``; return (final (H, W), None) or (None, (name, layer, size_in, size_out))."""
    height, width = input_size
    for name, layer in layers:
        new_h = layer_output_size(height, layer, 0)
        new_w = layer_output_size(width, layer, 1)
        if new_h < 1 or new_w < 1:
            return None, (name, layer, (height, width), (new_h, new_w))
        height, width = new_h, new_w
    return (height, width), None


def spatial_layers(named_modules: Iterable[tuple[str, nn.Module]],
                   skip: tuple[str, ...] = ()) -> list[tuple[str, nn.Module]]:
    """The convs and pools among ``named_modules`` (in order), minus names containing ``skip``.

    Use it to list the layers on a model's main path, e.g. a ResNet without its ``downsample``
    shortcuts, whose sizes always equal the main path's.
    """
    return [(name, module) for name, module in named_modules
            if isinstance(module, _SPATIAL_LAYERS) and not any(s in name for s in skip)]


SIZE_LAYOUTS = ("imagenet", "small")
#: Inputs up to this many pixels per side get the "small" layout when none is given.
SMALL_LAYOUT_MAX = 64


def choose_layout(value: str | None, input_size: tuple[int, int], argument: str) -> str:
    """The ``stem``/``layout`` of a model with an ImageNet and a small-image variant.

    None picks ``"small"`` when both sides of ``input_size`` are at most 64 pixels (ResNet's,
    DenseNet's and NiN's rule), else ``"imagenet"``.

    Raises:
        ValueError: ``value`` is neither, naming ``argument`` and both choices.

    Example:
        >>> choose_layout(None, (32, 32), "stem"), choose_layout(None, (224, 224), "stem")
        ('small', 'imagenet')
    """
    if value is None:
        return "small" if max(input_size) <= SMALL_LAYOUT_MAX else "imagenet"
    if value not in SIZE_LAYOUTS:
        raise ValueError(f"{argument} must be one of {SIZE_LAYOUTS!r}, got {value!r}; use "
                         "'small' for images of about 32x32 and 'imagenet' for about 224x224")
    return value


def check_input_size(model_name: str, input_size: tuple[int, int],
                     layers: list[tuple[str, nn.Module]], *, hint: str = "") -> tuple[int, int]:
    """Return the (H', W') that ``layers`` produce from ``input_size``, or explain why none exists.

    Args:
        model_name: used in the message, e.g. ``"alexnet"``.
        input_size: (H, W) of the input images.
        layers: (name, layer) pairs of the main path, in forward order (see ``spatial_layers``).
        hint: an extra suggestion appended to the error, e.g. another model for small images.

    Shape:
        Each layer maps W to O = floor((W - K + 2P)/S) + 1 (see ``layer_output_size``).

    Raises:
        ValueError: the feature map shrinks below 1x1 at some layer; the message names the layer,
            shows the formula with the numbers, and gives the smallest square input that works.

    Example:
        >>> check_input_size("tiny", (8, 8), [("pool", nn.MaxPool2d(2))])
        (4, 4)
    """
    final, failure = _first_failure(input_size, layers)
    if failure is None:
        return final
    name, layer, (h_in, w_in), (h_out, w_out) = failure
    dim = 0 if h_out < 1 else 1
    size_in = (h_in, w_in)[dim]
    kernel, stride, padding = (_pair(layer.kernel_size)[dim], _pair(layer.stride)[dim],
                               _pair(layer.padding)[dim])
    rounding = "ceil" if getattr(layer, "ceil_mode", False) else "floor"
    smallest = next((side for side in range(1, 4097)
                     if _first_failure((side, side), layers)[1] is None), None)
    fix = (f"The smallest input that works is {smallest}x{smallest}: resize the images to at "
           f"least that, e.g. input_size={smallest}." if smallest else "")
    raise ValueError(
        f"{model_name} cannot take input_size={tuple(input_size)!r}: the feature map shrinks to "
        f"{max(h_out, 0)}x{max(w_out, 0)} at layer {name!r} ({_describe_layer(layer)}; "
        f"O = {rounding}(({size_in} - {kernel} + 2*{padding})/{stride}) + 1 = {min(h_out, w_out)} "
        f"from a {h_in}x{w_in} input). {fix}{' ' + hint if hint else ''}"
    )


class ZooModel(nn.Module):
    """Base class of the zoo models: shared attributes, ``forward`` and classifier handling.

    Subclasses set ``num_classes``, ``in_channels``, ``input_size`` and ``classifier_path`` (the
    dotted name of the final layer, e.g. ``"fc"`` or ``"classifier.6"``), and implement
    ``forward_features``, ``forward_head``, ``feature_layers`` (the main path as (name, layer)
    pairs, which ``forward_stages`` and ``feature_info`` read) and
    ``_make_classifier(num_classes)`` (which builds the initialised final layer, used both at
    construction and by ``reset_head``/``reset_classifier``).
    ``fixed_input_size = True`` marks models whose classifier depends on the input size (LeNet).
    """

    classifier_path: str = "fc"
    fixed_input_size: bool = False
    #: In training mode, models with ReLU → max-pool pairs (VGG, AlexNet, keras_mnist) run them
    #: pooled first: the same outputs and gradients on fewer values (cnnkit.models.relu_pool).
    #: False runs every layer as written.
    pool_before_relu: bool = True

    def __init__(self, *, num_classes: int, in_channels: int, input_size: tuple[int, int]):
        super().__init__()
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.input_size = tuple(input_size)
        self.registry_name: str | None = None
        self.registry_kwargs: dict = {}

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The input image without the batch, (C, H, W) (the same contract as Sequential's)."""
        return (self.in_channels, *self.input_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images -> (N, C', H', W') last spatial feature volume."""
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, C', H', W') features -> (N, num_classes) logits, or (N, F) with ``pre_logits``."""
        raise NotImplementedError

    def feature_layers(self) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
        """(name, layer) pairs whose chain is ``forward_features``, in forward order.

        Each subclass lists its main path here; ``forward_stages`` and ``feature_info`` read it.
        """
        raise NotImplementedError

    def _stage_layout(self) -> tuple[list[int], list[str], list[int]]:
        """Positions in ``feature_layers`` of the stages, their names and cumulative strides."""
        layers = self.feature_layers()
        strides = [module_stride(layer) if isinstance(layer, nn.Module) else 1
                   for _, layer in layers]
        positions = stage_indices(strides)
        return (positions, [layers[i][0] for i in positions],
                [math.prod(strides[:i + 1]) for i in positions])

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, C, H, W) images -> the output of every ``feature_info`` stage, in order.

        Explicit code (no hooks), so it works under ``torch.onnx.export`` and ``torch.jit.trace``.

        Shape:
            (N, C, H, W) -> [(N, channels_i, H_i, W_i)], H_i about H / stride_i; the last one is
            ``forward_features(x)``.
        """
        self._check_input(x)
        keep = set(self._stage_layout()[0])
        outputs = []
        for position, (_, layer) in enumerate(self.feature_layers()):
            x = layer(x)
            if position in keep:
                outputs.append(x)
        return outputs

    @property
    def feature_info(self) -> list[FeatureInfo]:
        """One ``FeatureInfo(name, channels, stride)`` per stage (the last layer at each resolution).

        The channels come from one forward pass of a zero image at ``input_shape`` (eval mode,
        no gradient; every module's train/eval flag is restored), the strides from the layers.
        """
        _, names, strides = self._stage_layout()
        parameter = next(self.parameters())
        modes = {module: module.training for module in self.modules()}
        self.eval()
        try:
            with torch.no_grad():
                stages = self.forward_stages(torch.zeros(1, *self.input_shape,
                                                         device=parameter.device,
                                                         dtype=parameter.dtype))
        finally:
            for module, training in modes.items():
                module.training = training
        return [FeatureInfo(name, stage.shape[1], stride)
                for name, stage, stride in zip(names, stages, strides)]

    def _make_classifier(self, num_classes: int) -> nn.Module:
        raise NotImplementedError

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4:
            raise ValueError(
                f"{type(self).__name__} expects a batch of shape (N, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)!r}; add a batch dimension with x.unsqueeze(0)"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects a batch of shape (N, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)!r}; images are (N, C, H, W) in PyTorch: convert them, or "
                f"create the model with in_channels={x.shape[1]}"
            )
        if self.fixed_input_size and tuple(x.shape[2:]) != self.input_size:
            raise ValueError(
                f"{type(self).__name__} was built for {self.input_size[0]}x{self.input_size[1]} "
                f"images (its fully connected layer depends on it), got {tuple(x.shape)!r}; "
                f"resize the images or create the model with input_size={tuple(x.shape[2:])!r}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) images -> (N, num_classes) logits (no softmax)."""
        self._check_input(x)
        return self.forward_head(self.forward_features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) images -> (N, F) penultimate vector (the embedding)."""
        self._check_input(x)
        return self.forward_head(self.forward_features(x), pre_logits=True)

    @property
    def trunk(self) -> nn.Module:
        """The ``features`` sub-module of torchvision-style models (AlexNet, VGG, DenseNet)."""
        if "features" not in self._modules:
            raise AttributeError(f"{type(self).__name__} has no 'features' sub-module")
        return self._modules["features"]

    def get_classifier(self) -> nn.Module:
        """The final layer (an ``nn.Linear``, or NiN's 1x1-conv block)."""
        return self.get_submodule(self.classifier_path)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer by a freshly initialised one with ``num_classes`` outputs.

        The new layer lands on the device and dtype of the old one; the rest is untouched.

        Example:
            >>> model.reset_classifier(3)   # doctest: +SKIP
        """
        check_positive_int(num_classes, "num_classes")
        old = next(self.get_classifier().parameters())
        head = self._make_classifier(num_classes).to(device=old.device, dtype=old.dtype)
        parent_name, _, child_name = self.classifier_path.rpartition(".")
        self.get_submodule(parent_name).register_module(child_name, head)
        self.num_classes = num_classes

    def reset_head(self, num_classes: int) -> None:
        """A fresh classifier with ``num_classes`` outputs (``reset_classifier`` is the old name).

        Example:
            >>> model.reset_head(5)   # doctest: +SKIP
        """
        self.reset_classifier(num_classes)

    @property
    def architecture(self) -> dict:
        """JSON-able ``{"type": "registry", "name": ..., "kwargs": {...}}`` that rebuilds it."""
        if self.registry_name is None:
            raise ValueError(
                f"this {type(self).__name__} was not built through the registry, so it has no "
                "architecture record; build it with cnnkit.models.create(name, ...)"
            )
        return {
            "type": "registry",
            "name": self.registry_name,
            "kwargs": {"num_classes": self.num_classes, "in_channels": self.in_channels,
                       "input_size": list(self.input_size), **self.registry_kwargs},
        }
