"""The model zoo: importing this package registers every family with ``cnnkit.models.registry``."""
from cnnkit.models.zoo import (  # noqa: F401  (imported for their @register side effect)
    airbench,
    alexnet,
    densenet,
    googlenet,
    keras_mnist,
    lenet,
    nin,
    resnet,
    vgg,
)
