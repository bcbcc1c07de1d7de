"""cnnkit: build, train, inspect and serve convolutional neural networks for image classification.

The public API is small:

* :class:`Sequential` and the layers in :mod:`cnnkit.layers` (Keras names in :mod:`cnnkit.keras`),
  architecture strings (``Sequential.from_spec``), and the model zoo (:func:`cnnkit.models.create`);
* :func:`cnnkit.data.open_data` for every image source;
* ``model.compile/fit/evaluate/predict``; :class:`TrainConfig` + ``cnnkit.train.train`` for whole
  runs (the package :mod:`cnnkit.train` keeps its name, so the function is not re-exported here);
* :func:`load` for a trained run folder; :func:`summary` for the layer table;
* :func:`transfer` to start from a trained network (new head, frozen backbone, ...).

Example:
    >>> import cnnkit
    >>> model = cnnkit.Sequential.from_spec("conv(32,3) relu maxpool(2) fc(10)", "28x28x1")
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
    ...               metrics=["accuracy"])
"""
from cnnkit import data, layers, models
from cnnkit.inspect.summary import summary
from cnnkit.models import Sequential
from cnnkit.train import TrainConfig, Trainer
from cnnkit.train import load_run as load
from cnnkit.transfer_learning import transfer

__version__ = "0.1.0"

__all__ = ["Sequential", "TrainConfig", "Trainer", "data", "layers", "load", "models", "summary",
           "transfer"]
