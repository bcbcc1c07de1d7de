"""A self-contained model for export: raw pixels in, logits out, normalisation inside.

Exported files are used outside cnnkit (onnxruntime, C++, a phone), where nobody knows the
training set's mean and std. :class:`PreprocessedModel` folds them into the graph:

* ``input_dtype="uint8"`` (default): the input is uint8 pixels 0–255, (N, C, H, W), and the model
  computes ``((x / 255) - mean[c]) / std[c]`` before the network;
* ``input_dtype="float32"``: the input is float32 pixels on the 0–1 scale, and the model computes
  ``(x - mean[c]) / std[c]``.

Either way the output is the network's logits (N, K); apply a softmax for probabilities.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnkit.train.run_folder import LoadedModel, load_run

INPUT_DTYPES = ("uint8", "float32")


def resolve_loaded(run_or_loaded) -> LoadedModel:
    """A :class:`LoadedModel` from a run folder path or an already loaded model.

    Raises:
        TypeError: neither a path nor a ``LoadedModel``.
        CheckpointError: the run folder cannot be loaded.
    """
    if isinstance(run_or_loaded, LoadedModel):
        return run_or_loaded
    if isinstance(run_or_loaded, (str, Path)):
        return load_run(run_or_loaded)
    raise TypeError(f"run must be a run folder path or a cnnkit LoadedModel (cnnkit.load(RUN)), "
                    f"got {type(run_or_loaded).__name__}: {run_or_loaded!r}")


def check_input_dtype(input_dtype: str) -> str:
    """Return ``input_dtype`` if it is one of :data:`INPUT_DTYPES`, else raise ValueError."""
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"input_dtype must be one of {INPUT_DTYPES}, got {input_dtype!r}; use "
                         "'uint8' for raw 0-255 pixels or 'float32' for 0-1 pixels")
    return input_dtype


class PreprocessedModel(nn.Module):
    """Pixels -> (optional) normalisation -> network logits.

    Args:
        loaded: the trained model with its normalisation.
        input_dtype: ``"uint8"`` (0–255) or ``"float32"`` (0–1); see the module docstring.
        fold_normalization: False: no preprocessing at all, the input must already be
            normalised float32 like the training batches (``input_dtype`` is then ignored).

    Shape:
        (N, C, H, W) pixels -> (N, K) logits.

    Example:
        >>> wrapped = PreprocessedModel(cnnkit.load("runs/digits"))  # doctest: +SKIP
        >>> wrapped(torch.zeros(2, 1, 8, 8, dtype=torch.uint8)).shape  # doctest: +SKIP
        torch.Size([2, 10])
    """

    def __init__(self, loaded: LoadedModel, *, input_dtype: str = "uint8",
                 fold_normalization: bool = True):
        super().__init__()
        self.network = loaded.model
        self.input_dtype = check_input_dtype(input_dtype) if fold_normalization else "float32"
        self.fold_normalization = fold_normalization
        channels = loaded.input_shape[0]
        norm = loaded.normalization
        mean = torch.tensor(norm.mean if norm is not None else (0.0,) * channels)
        std = torch.tensor(norm.std if norm is not None else (1.0,) * channels)
        # Constants of the graph, not parameters: (C,) -> (1, C, 1, 1) to broadcast over N, H, W.
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.reshape(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fold_normalization:
            x = x.float()
            if self.input_dtype == "uint8":
                x = x / 255.0
            x = (x - self.mean) / self.std
        return self.network(x)


def unshadow_submodules(model: nn.Module) -> nn.Module:
    """Make every submodule reachable by attribute, for tools that look them up that way.

    ``torch.export`` finds submodules with ``getattr``; in AlexNet, VGG and DenseNet the zoo
    models' ``features(x)`` method has the name of torchvision's ``features`` submodule and
    hides it. An instance attribute wins over a class's method, so on ``model`` (an export
    copy: the user's model keeps its ``features(x)``) each hidden submodule is set as one.
    """
    for module in model.modules():
        for name, child in module.named_children():
            if callable(getattr(type(module), name, None)):
                module.__dict__[name] = child
    return model


def sample_inputs(input_shape, batch_size: int, input_dtype: str, *,
                  seed: int = 0) -> torch.Tensor:
    """Random pixels of the exported model's input type, for tracing and verification.

    Shape:
        (batch_size, C, H, W): uint8 0–255 or float32 0–1 (``input_dtype``).
    """
    generator = torch.Generator().manual_seed(seed)
    shape = (batch_size, *input_shape)
    if input_dtype == "uint8":
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    return torch.rand(shape, generator=generator)


def export_metadata(loaded: LoadedModel, input_dtype: str, fold_normalization: bool) -> dict:
    """What a user of the exported file needs: classes, input shape/type, normalisation."""
    norm = loaded.normalization
    return {
        "class_names": list(loaded.class_names),
        "input_shape": list(loaded.input_shape),
        "input_dtype": input_dtype if fold_normalization else "float32",
        "normalization_folded": fold_normalization,
        "normalization": None if norm is None else {"mean": list(norm.mean), "std": list(norm.std)},
        "output": "logits (apply softmax for probabilities)",
    }
