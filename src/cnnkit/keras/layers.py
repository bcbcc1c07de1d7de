"""Keras-named layers (``Conv2D``, ``MaxPool2D``, ``Dense``, ...): see :mod:`cnnkit.layers.keras`."""
from cnnkit.layers.keras import (Activation, AveragePooling2D, AvgPool2D, BatchNormalization,
                                 Conv2D, Dense, Dropout, Flatten, GlobalAveragePooling2D,
                                 GlobalMaxPooling2D, Input, MaxPool2D, MaxPooling2D, Softmax)

__all__ = [
    "Activation", "AveragePooling2D", "AvgPool2D", "BatchNormalization", "Conv2D", "Dense",
    "Dropout", "Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Input", "MaxPool2D",
    "MaxPooling2D", "Softmax",
]
