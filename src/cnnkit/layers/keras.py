"""Keras-named layers, so a Keras tutorial's model runs by changing only its imports.

They follow Keras semantics: ``input_shape`` is H×W×C (``[28, 28, 1]``), padding is 'valid' or
'same' (TensorFlow's 'same', extra pixel bottom/right), and output sizes are rounded down.
Tensors inside stay PyTorch's (N, C, H, W). Each is a subclass of the native layer, so it
serialises to the native spec token with explicit arguments (e.g. ``Conv2D(32, (3,3))`` ->
``conv(32,3)``); a size that does not divide warns (``RoundingWarning``) as in native layers.

Example:
    >>> from cnnkit.models.sequential import Sequential
    >>> model = Sequential()
    >>> model.add(Conv2D(32, (3, 3), activation="relu", input_shape=[28, 28, 1]))
    >>> model.add(MaxPool2D())
    >>> model.add(Flatten())
    >>> model.add(Dense(10, activation="softmax"))
    >>> model.shapes()[2]
    ('flatten1', (5408,))
"""
from __future__ import annotations

import torch

from cnnkit.layers import activations, conv, dense, norm, pooling
from cnnkit.layers.activations import get_activation
from cnnkit.layers.base import Layer, parse_user_shape
from cnnkit.layers.dropout import Dropout
from cnnkit.layers.pooling import GlobalAvgPool, GlobalMaxPool

__all__ = [
    "Activation", "AveragePooling2D", "AvgPool2D", "BatchNormalization", "Conv2D", "Dense",
    "Dropout", "Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Input", "MaxPool2D",
    "MaxPooling2D", "Softmax",
]


def _keras_padding(padding) -> str:
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same' (Keras), got {padding!r}")
    return padding.lower()


def _glorot_uniform(layer: Layer) -> None:
    """Keras' default initialisers: Glorot-uniform kernel (U(±sqrt(6 / (fan_in + fan_out))),
    fans over the receptive field as Keras counts them) and zero bias."""
    torch.nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        torch.nn.init.zeros_(layer.bias)


def _keras_input_shape(layer: Layer, input_shape) -> None:
    if input_shape is not None:
        layer.input_shape = parse_user_shape(input_shape)


class Conv2D(conv.Conv):
    """Keras' ``Conv2D(filters, kernel_size, strides=(1, 1), padding='valid', ...)``.

    Shape:
        (N, C, H, W) -> (N, filters, H_out, W_out); O = floor((W − K)/S) + 1 for 'valid',
        O = ceil(W / S) for 'same'.
    """

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding: str = "valid",
                 activation=None, use_bias: bool = True, dilation_rate=(1, 1), groups: int = 1,
                 input_shape=None, *, name: str | None = None):
        super().__init__(filters, kernel_size, strides, _keras_padding(padding), dilation_rate,
                         groups, use_bias, activation, name=name)
        _keras_input_shape(self, input_shape)

    def reset_parameters(self) -> None:
        """Keras' defaults (not PyTorch's): Glorot-uniform kernel, zero bias."""
        _glorot_uniform(self)


class MaxPool2D(pooling.MaxPool):
    """Keras' ``MaxPool2D(pool_size=(2, 2), strides=None, padding='valid')`` (floor rounding)."""

    def __init__(self, pool_size=(2, 2), strides=None, padding: str = "valid", input_shape=None,
                 *, name: str | None = None):
        super().__init__(pool_size, strides, _keras_padding(padding), name=name)
        _keras_input_shape(self, input_shape)


class AveragePooling2D(pooling.AvgPool):
    """Keras' ``AveragePooling2D(pool_size=(2, 2), strides=None, padding='valid')``.

    With 'same' padding the padded zeros are not counted in the mean, as in Keras.
    """

    def __init__(self, pool_size=(2, 2), strides=None, padding: str = "valid", input_shape=None,
                 *, name: str | None = None):
        super().__init__(pool_size, strides, _keras_padding(padding), name=name)
        _keras_input_shape(self, input_shape)


MaxPooling2D = MaxPool2D
AvgPool2D = AveragePooling2D


class GlobalAveragePooling2D(GlobalAvgPool):
    """Keras' ``GlobalAveragePooling2D()``: (N, C, H, W) -> (N, C)."""


class GlobalMaxPooling2D(GlobalMaxPool):
    """Keras' ``GlobalMaxPooling2D()``: (N, C, H, W) -> (N, C)."""


class Flatten(dense.Flatten):
    """Keras' ``Flatten(input_shape=None)``, e.g. ``Flatten(input_shape=(28, 28))`` for an MLP.

    Shape:
        (N, C, H, W) -> (N, C·H·W) in PyTorch's channel-major order.
    """

    def __init__(self, input_shape=None, *, name: str | None = None):
        super().__init__(name=name)
        _keras_input_shape(self, input_shape)


class Dense(dense.Dense):
    """Keras' ``Dense(units, activation=None, use_bias=True, input_shape=None)``.

    ``input_shape`` is ``(F,)`` for a flat input (e.g. ``(784,)``) or H×W×C.
    """

    def __init__(self, units: int, activation=None, use_bias: bool = True, input_shape=None, *,
                 name: str | None = None):
        super().__init__(units, activation, use_bias, name=name)
        _keras_input_shape(self, input_shape)

    def reset_parameters(self) -> None:
        """Keras' defaults (not PyTorch's): Glorot-uniform kernel, zero bias."""
        _glorot_uniform(self)


class BatchNormalization(norm.BatchNorm):
    """Keras' ``BatchNormalization(momentum=0.99, epsilon=0.001)``.

    Keras' momentum weighs the *old* running average: Keras 0.99 is PyTorch/cnnkit 0.01.
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, input_shape=None, *,
                 name: str | None = None):
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) \
                or not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1] (Keras' 0.99 is typical), "
                             f"got {momentum!r}")
        super().__init__(momentum=round(1.0 - momentum, 12), eps=epsilon, name=name)
        _keras_input_shape(self, input_shape)


class Activation(Layer):
    """Keras' ``Activation('relu')``: apply a named activation as its own layer."""

    def __init__(self, activation, *, name: str | None = None):
        super().__init__(name=name)
        module = get_activation(activation)
        if module is None:
            raise ValueError(f"Activation needs a non-linear activation such as 'relu', "
                             f"got {activation!r}; drop the layer for a linear one")
        self.activation = module
        self.token = getattr(module, "token", "activation")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(x)

    def to_spec(self) -> str:
        return self.activation.to_spec()


class Softmax(activations.Softmax):
    """Keras' ``Softmax(axis=-1)``; on (N, K) scores axis −1 and cnnkit's dim 1 agree."""

    def __init__(self, axis: int = -1, *, name: str | None = None):
        super().__init__(dim=1 if axis == -1 else axis, name=name)


class Input(Layer):
    """Keras' ``Input(shape=(28, 28, 1))``: only tells ``Sequential.add`` the input shape.

    ``Sequential.add`` consumes it; it never becomes a module of the model.
    """

    token = "input"

    def __init__(self, shape, *, name: str | None = None):
        super().__init__(name=name)
        self.input_shape = parse_user_shape(shape, "shape")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
