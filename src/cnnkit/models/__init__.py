"""Models: ``Sequential`` (from layers or an architecture string) and the registry of classic
architectures (LeNet-5, AlexNet, ZFNet, VGG, NiN, GoogLeNet, ResNet, DenseNet, airbench).

Example:
    >>> model = create("resnet18", num_classes=10, in_channels=3, input_size=32)
    >>> net = Sequential.from_spec("conv(6,5) relu maxpool(2) fc(10)", input_shape="28x28x1")
"""
from cnnkit.models.base import ZooModel
from cnnkit.models.registry import (build_architecture, create, describe, list_models, names,
                                    register)
from cnnkit.models.sequential import Sequential
from cnnkit.models.spec import SpecError, canonical_spec, parse_spec
from cnnkit.models import zoo  # noqa: F401  (its modules @register themselves in the registry)

__all__ = [
    "Sequential", "SpecError", "ZooModel", "build_architecture", "canonical_spec", "create",
    "describe", "list_models", "names", "parse_spec", "register",
]
