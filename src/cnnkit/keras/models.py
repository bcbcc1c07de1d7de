"""Keras' ``models.Sequential``: :class:`cnnkit.models.Sequential` plus Keras' training API.

:class:`cnnkit.models.Sequential` is the plain network (it imports no training code); this
subclass adds ``compile`` / ``fit`` / ``evaluate`` / ``predict``
(:class:`~cnnkit.keras.training.KerasModelMixin`) and ``summary()``. ``cnnkit.Sequential`` is
this class.
"""
from __future__ import annotations

from cnnkit.inspect.summary import ModelSummary, summary
from cnnkit.keras.training import KerasModelMixin
from cnnkit.models import sequential


class Sequential(KerasModelMixin, sequential.Sequential):
    """A :class:`cnnkit.models.Sequential` with Keras' ``compile/fit/evaluate/predict/summary``.

    Args:
        layers, input_shape, rounding, name: as :class:`cnnkit.models.Sequential`.

    Shape:
        Input (N, C, H, W) (or (N, F) for a flat input shape) -> (N, *output_shape).

    Example:
        >>> from cnnkit.keras.layers import Conv2D, Dense, Flatten
        >>> model = Sequential([Conv2D(8, 3, activation="relu", input_shape=(8, 8, 1)),
        ...                     Flatten(), Dense(10, activation="softmax")])
        >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    """

    def summary(self, input_shape=None, print_fn=print) -> ModelSummary:
        """Print the layer table (shapes, parameters, MACs, receptive fields), as Keras does.

        Args:
            input_shape: H×W×C to summarise at; defaults to the model's own input shape.
            print_fn: where the table goes (Keras' argument); ``None`` prints nothing.

        Returns:
            The :class:`cnnkit.inspect.summary.ModelSummary` behind the table.
        """
        result = summary(self, input_shape=input_shape)
        if print_fn is not None:
            print_fn(str(result))
        return result


__all__ = ["Sequential"]
