"""cnnkit layers: thin, validated ``torch.nn.Module`` layers named in the tutorials' vocabulary.

Every layer infers its input size (``in_channels``, flattened features) from an input shape
given once to ``cnnkit.Sequential``, checks the output-size arithmetic O = (W − K + 2P)/S + 1
when it is built, and writes itself as an architecture-string token (``to_spec()``). Keras-named
aliases live in ``cnnkit.layers.keras``.
"""
from cnnkit.layers.activations import (
    GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, get_activation,
)
from cnnkit.layers.arithmetic import conv_output_size, same_padding
from cnnkit.layers.base import Layer, WindowLayer, parse_user_shape
from cnnkit.layers.conv import Conv
from cnnkit.layers.dense import Dense, Flatten
from cnnkit.layers.dropout import Dropout
from cnnkit.layers.norm import BatchNorm
from cnnkit.layers.pooling import (
    AvgPool, GlobalAvgPool, GlobalMaxPool, L2Pool, MaxPool, SumPool,
)
from cnnkit.layers.upsample import ConvTranspose, Upsample

__all__ = [
    "AvgPool", "BatchNorm", "Conv", "ConvTranspose", "Dense", "Dropout", "Flatten", "GELU",
    "GlobalAvgPool", "GlobalMaxPool", "L2Pool", "Layer", "LeakyReLU", "MaxPool", "ReLU",
    "Sigmoid", "Softmax", "SumPool", "Tanh", "Upsample", "WindowLayer", "conv_output_size",
    "get_activation", "parse_user_shape", "same_padding",
]
