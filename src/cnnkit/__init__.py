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
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

    from cnnkit.run.folder import LoadedModel

__version__ = "0.1.0"

# name -> (module, attribute); None: the module itself. Loaded on first use (PEP 562), so that
# ``import cnnkit.models`` (which runs this file first) loads no training, export or CLI code.
_LAZY = {
    "Sequential": ("cnnkit.keras.models", "Sequential"),
    "TrainConfig": ("cnnkit.train.config", "TrainConfig"),
    "Trainer": ("cnnkit.train.trainer", "Trainer"),
    "data": ("cnnkit.data", None),
    "layers": ("cnnkit.layers", None),
    "models": ("cnnkit.models", None),
    "summary": ("cnnkit.inspect.summary", "summary"),
    "transfer": ("cnnkit.transfer_learning", "transfer"),
}


def __getattr__(name: str):
    """The public names of :data:`__all__`, imported on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)  # import cost: load only what is used (_LAZY)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def load(path: str | Path, *, model: nn.Module | None = None,
         device: str | torch.device = "cpu", backend: str = "torch") -> LoadedModel:
    """A trained model back from its run folder (:func:`cnnkit.run.load_run`), on a backend.

    Args:
        path: the run folder (``--out`` of ``cnnkit train``).
        model: an untrained instance, only for a model without an ``architecture`` dict.
        device: where to put the model.
        backend: what runs ``predict*``: ``"torch"``, ``"onnxruntime"`` (the run's verified ONNX
            export, cached in ``RUN/.cache``) or ``"auto"`` (onnxruntime where it is installed
            and the export verifies, else torch); see :mod:`cnnkit.export.runtime`. On a CPU
            the torch backend restrides the conv weights channels-last and, as training does,
            raises glibc's malloc thresholds for the whole process (switches
            ``cnnkit.run.folder.EAGER_CHANNELS_LAST``,
            ``cnnkit.export.runtime.EAGER_KEEP_FREED_MEMORY``).

    Raises:
        CheckpointError: not a run folder, missing/corrupt files, or weights that do not fit.
        ValueError / ExportError: a bad ``backend``, or ``"onnxruntime"`` that cannot be used.

    Example:
        >>> model = cnnkit.load("runs/digits", backend="auto")  # doctest: +SKIP
        >>> model.predict(images)  # doctest: +SKIP
    """
    from cnnkit.export.runtime import CACHE_DIR, use_backend  # import cost: only what is used
    from cnnkit.run.folder import load_run  # import cost: only what is used

    loaded = load_run(path, model=model, device=device)
    return use_backend(loaded, backend, cache_dir=Path(path) / CACHE_DIR)


__all__ = ["Sequential", "TrainConfig", "Trainer", "data", "layers", "load", "models", "summary",
           "transfer"]
