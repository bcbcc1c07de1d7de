"""The run folder: everything needed to reuse or resume a training run, and ``load_run``.

::

    RUN/
      config.json           resolved TrainConfig
      model.json            architecture dict, class_names, normalization, input_shape [C, H, W]
      weights.safetensors   final weights (the EMA weights when ``ema`` is on)
      checkpoint/           last.* and prev.* (see cnnkit.train.checkpoint)
      metrics.jsonl         one JSON line per epoch
      results.json          final metrics (validation and test)
      summary.txt           the model summary table (written by cnnkit.train.pipeline)
      curves.png            loss/accuracy curves (written by cnnkit.train.pipeline)
      .cache/               onnx-<key>.onnx for backend="onnxruntime" (cnnkit.export.runtime)

Every file is written atomically, and loading reads only JSON and safetensors: it never
executes code from the folder. This package depends on models and data only: training writes
into a run folder through it, and the onnxruntime backend is attached by the caller
(``cnnkit.load(..., backend=)``, ``cnnkit predict --backend``).
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from cnnkit.data.normalization import Normalization
from cnnkit.data.open import convert_channels, resize_images
from cnnkit.errors import CheckpointError
from cnnkit.models.registry import build_architecture
from cnnkit.run.atomic import atomic_path, atomic_write_text
from cnnkit.run.outputs import predict_proba, to_probabilities
from cnnkit.run.threads import computes_outside_torch, torch_threads_beside
from cnnkit.tasks.build import build_task_model

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
SUMMARY_FILE = "summary.txt"
CURVES_FILE = "curves.png"
CHECKPOINT_DIR = "checkpoint"

#: ``LoadedModel.predict_proba`` on the onnxruntime backend prepares images that need no
#: resize in NumPy (``LoadedModel._numpy_images`` then ``normalize_numpy``: /255 or the
#: normalisation, float32, bit for bit the PyTorch steps) and hands the array straight to the
#: graph; False: always the PyTorch steps. LeNet-5's single image on 2 cores: ~25 µs of ~70 µs (bench/inference.py).
PREPARE_IN_NUMPY = True

#: A run loaded for eager PyTorch inference on a CPU gets its conv weights channels-last
#: (:func:`eager_channels_last`); False leaves them as saved (PyTorch's NCHW).
EAGER_CHANNELS_LAST = True


# ---------------------------------------------------------------------------- weights
class CorruptWeightsError(CheckpointError):
    """A weights file that is truncated, damaged, or does not match its stored digest."""


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """Hex SHA-256 of named tensors: names, dtypes, shapes and bytes, in sorted name order.

    Stored in the metadata of ``weights.safetensors`` so that a flipped bit anywhere in the
    tensor data (which safetensors itself cannot see) is caught on load.
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # any dtype -> raw bytes
    return digest.hexdigest()


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Write ``model.state_dict()`` to a safetensors file (with its digest), atomically.

    Raises:
        CheckpointError: the file could not be written (disk full, ...); a previous file at
            ``path`` is left intact.
    """
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": "cnnkit-weights", "tensors_sha256": tensors_digest(tensors)}
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"could not write the weights to {str(path)!r} ({exc}); any "
                              "previous file there is intact. Free some disk space and try "
                              "again") from exc


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, checked against the digest in its metadata."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise CorruptWeightsError(f"weights file {str(path)!r} is corrupt ({exc})") from None
    want = metadata.get("tensors_sha256")
    if want is not None and tensors_digest(tensors) != want:
        raise CorruptWeightsError(f"weights file {str(path)!r} is corrupt: its tensors do not "
                                  "match the SHA-256 stored when it was written (damaged on "
                                  "disk or in transfer)")
    return tensors


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a safetensors file written by :func:`save_weights` into ``model`` (strict).

    Only the safetensors format is read (never a pickle); the tensors are checked against the
    SHA-256 digest that :func:`save_weights` stores in the file's metadata.

    Raises:
        CheckpointError: missing or corrupt file, or weights that do not fit the model.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} does not exist")
    tensors = _read_weights(path)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise CheckpointError(f"weights in {str(path)!r} do not fit the model: "
                              f"{str(exc).splitlines()[0]}") from None
    return model


# ---------------------------------------------------------------------------- metadata
def write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{str(path)!r} does not exist; is {str(path.parent)!r} a run "
                              "folder written by cnnkit train?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise CheckpointError(f"{str(path)!r} is not valid JSON ({exc})") from None


def model_metadata(model: nn.Module, class_names: Sequence[str], normalization,
                   input_shape: Sequence[int], *, task: str = "classify") -> dict[str, Any]:
    """The content of ``model.json``: how to rebuild the model and feed it images."""
    return {
        "task": task,
        "architecture": getattr(model, "architecture", None),
        "class_names": [str(c) for c in class_names],
        "normalization": None if normalization is None else normalization.to_dict(),
        "input_shape": [int(d) for d in input_shape],
    }


def read_metrics(run: str | Path) -> list[dict[str, Any]]:
    """The per-epoch records of ``RUN/metrics.jsonl`` (empty list if there are none).

    Every record is written as one line ending in a newline; a last line without it was cut
    short (the process was killed mid-write) and is dropped, so that the run can resume.
    """
    path = Path(run) / METRICS_FILE
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    if lines and not text.endswith("\n"):
        log.warning("dropping the last line of %s: it was cut short (%r)", path, lines[-1][:60])
        lines = lines[:-1]
    return [json.loads(line) for line in lines if line]


def truncate_metrics(run: str | Path, last_epoch: int) -> None:
    """Keep only the records of epochs ``<= last_epoch`` (before resuming from that epoch)."""
    records = [r for r in read_metrics(run) if r.get("epoch", 0) <= last_epoch]
    atomic_write_text(Path(run) / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in records))


# ---------------------------------------------------------------------------- loading a run
@dataclass
class LoadedModel:
    """A trained model with what it needs to classify raw images.

    Attributes:
        model: the ``nn.Module`` in eval mode.
        class_names: one name per output.
        normalization: the ``Normalization`` applied to inputs (None: only /255).
        input_shape: (C, H, W) the model was trained on.
        config: the run's config dict (empty if not a training run).
        backend: what runs the network in ``predict*``: ``"torch"`` or ``"onnxruntime"``
            (``cnnkit.load(..., backend=)``, :mod:`cnnkit.export.runtime`).
        forward: the network's forward pass when it is not ``model`` itself (onnxruntime).
        task: what the model does: ``classify``, ``localize``, ``segment`` or ``detect``
            (``cnnkit.run.task_predict`` turns the other tasks' outputs into boxes and masks).

    Example:
        >>> m = load_run("runs/digits")  # doctest: +SKIP
        >>> m.predict(images_uint8)  # ['3', '7', ...]  # doctest: +SKIP
    """

    model: nn.Module
    class_names: list[str]
    normalization: Any
    input_shape: tuple[int, int, int]
    config: dict[str, Any]
    backend: str = "torch"
    forward: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)
    task: str = "classify"

    def _prepare(self, images) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
        if x.ndim == 3:
            x = x.unsqueeze(0)  # (C, H, W) -> (1, C, H, W)
        c, h, w = self.input_shape
        if x.ndim != 4 or x.shape[1] not in (1, 3) or (x.shape[1] != c and c not in (1, 3)):
            raise ValueError(f"images must have shape (N, {c}, H, W) (or one ({c}, H, W) image), "
                             f"got {tuple(x.shape)!r}; images laid out (N, H, W, C) need "
                             "x.permute(0, 3, 1, 2)")
        if tuple(x.shape[1:]) != (c, h, w):
            # The rule the training data went through: grey <-> RGB, then (open_data) resize
            # with the shorter side scaled and the centre cropped; boxes and masks (the other
            # tasks' readers) are stretched, so that they map back onto the whole image.
            if x.dtype != torch.uint8:  # float 0–1 -> uint8 0–255 for the resize
                x = x.float().mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
            x = resize_images(convert_channels(x, c), (h, w),
                              resize="crop" if self.task == "classify" else "stretch")
        if self.normalization is not None:
            return self.normalization.apply(x)
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()

    def _numpy_images(self, images) -> np.ndarray | None:
        """``images`` as a NumPy ``(N, C, H, W)`` array of the model's ``(C, H, W)``, uint8 or
        float32, without a copy; None for anything else (another dtype or shape, a tensor off
        the CPU or needing gradients, a list) or when ``PREPARE_IN_NUMPY`` is False."""
        if not PREPARE_IN_NUMPY:
            return None
        if isinstance(images, torch.Tensor):
            if images.device.type != "cpu" or images.requires_grad:
                return None
            images = images.numpy()
        elif not isinstance(images, np.ndarray):
            return None
        if images.ndim == 3:
            images = images[None]  # (C, H, W) -> (1, C, H, W)
        if (images.ndim != 4 or tuple(images.shape[1:]) != tuple(self.input_shape)
                or images.dtype not in (np.uint8, np.float32)):
            return None
        return images

    def normalize_numpy(self, images: np.ndarray) -> np.ndarray:
        """The run's normalisation (or /255) of uint8 or float32 images in NumPy.

        Shape:
            (N, C, H, W) -> (N, C, H, W) float32, C-contiguous.
        """
        if self.normalization is not None:
            return self.normalization.apply_numpy(images)
        if images.dtype == np.uint8:
            return np.divide(images, np.float32(255.0), dtype=np.float32)
        return np.ascontiguousarray(images)

    def outputs(self, images, *, batch_size: int = 256):
        """The network's raw outputs for uint8 (0–255) or float (0–1) images, in order.

        Shape:
            images (N, C, H, W) -> a tensor ``(N, ...)`` or a dict of ``(N, ...)`` tensors
            (a task model's output, e.g. ``{"logits": (N, K), "boxes": (N, 4)}``).
        """
        forward = self.forward or self.model
        parts = []
        with torch_threads_beside(computes_outside_torch(forward)):
            x = self._prepare(images)
            with torch.inference_mode():
                for i in range(0, len(x), batch_size):
                    parts.append(forward(x[i:i + batch_size]))
        if isinstance(parts[0], torch.Tensor):
            return torch.cat(parts)
        return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}

    def predict_proba(self, images, *, batch_size: int = 256,
                      tta: bool | None = None) -> torch.Tensor:
        """Class probabilities for uint8 (0–255) or float (0–1) images.

        ``tta``: average with the horizontally flipped images; None (the default) does what
        the run was trained to be tested with (its config's ``tta``), so the figures match the
        ones ``cnnkit train`` printed.

        Shape:
            images (N, C, H, W) or (C, H, W) -> (N, K) float32.

        Raises:
            ValueError: the run is not a classifier (its task's boxes and masks come from
                ``cnnkit.run.task_predict.predict_task_images``).
        """
        if self.task != "classify":
            raise ValueError(f"this run's model does {self.task!r}, not classification; get its "
                             "predictions with cnnkit.run.task_predict.predict_task_images "
                             "(or cnnkit predict RUN IMAGES)")
        if tta is None:
            tta = self.trained_with_tta
        kind = getattr(self.forward, "output_kind", None)
        if kind is not None and not tta and computes_outside_torch(self.forward):
            # A fixed graph outside PyTorch that knows its output kind (the onnxruntime
            # backend's OnnxForward): no walk over the modules for their kind and mode, no
            # autograd switch, no device moves. LeNet-5's single-image prediction on
            # onnxruntime: 0.15 -> 0.09 ms p50 (bench/inference.py; the graph alone 0.04 ms).
            arrays = (self._numpy_images(images)
                      if hasattr(self.forward, "numpy_forward") else None)
            direct = getattr(self.forward, "pixel_probabilities", None)
            if (direct is not None and arrays is not None and len(arrays) == 1
                    and arrays.dtype == np.uint8):
                # One uint8 image: the forward's one-thread graph of pixels to probabilities,
                # where use_backend measured it faster (cnnkit.export.single_image).
                probabilities = direct(np.ascontiguousarray(arrays))
                if probabilities is not None:
                    return torch.from_numpy(probabilities)
            with torch_threads_beside(True):
                pixels = self.normalize_numpy(arrays) if arrays is not None else None
                if pixels is not None and len(pixels):
                    # The steps before the graph in NumPy: a dozen PyTorch calls cost more
                    # than a single image's arithmetic (see PREPARE_IN_NUMPY).
                    run = self.forward.numpy_forward
                    logits = (run(pixels) if len(pixels) <= batch_size else np.concatenate(
                        [run(pixels[i:i + batch_size])
                         for i in range(0, len(pixels), batch_size)]))
                    return to_probabilities(torch.from_numpy(logits), kind)
                x = self._prepare(images)
                if len(x) == 0:
                    raise ValueError("predict_proba got no images; give at least one")
                if len(x) <= batch_size:
                    return to_probabilities(self.forward(x), kind)
                return torch.cat([to_probabilities(self.forward(batch), kind)
                                  for batch in x.split(batch_size)])
        with torch_threads_beside(computes_outside_torch(self.forward)):
            x = self._prepare(images)
            batches = (x[i:i + batch_size] for i in range(0, len(x), batch_size))
            return predict_proba(self.model, batches, tta=tta, forward=self.forward)

    @property
    def trained_with_tta(self) -> bool:
        """Whether the run's own test figures average with the flip (its config's ``tta``)."""
        return bool(self.config.get("tta", False)) and self.task == "classify"

    def predict(self, images, **kwargs) -> list[str]:
        """The most probable class name of each image."""
        return [self.class_names[i] for i in self.predict_proba(images, **kwargs).argmax(1)]

    def predict_top(self, images, k: int = 3, **kwargs) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable ``(class name, probability)`` pairs of each image."""
        probs = self.predict_proba(images, **kwargs)
        top = probs.topk(min(k, probs.shape[1]), dim=1)
        return [[(self.class_names[i], float(p)) for p, i in zip(ps.tolist(), idx.tolist())]
                for ps, idx in zip(top.values, top.indices)]


def runs_on_cpu(model: nn.Module) -> bool:
    """True when ``model`` has parameters and every one of them is on the CPU.

    Example:
        >>> runs_on_cpu(nn.Linear(2, 2)), runs_on_cpu(nn.Identity())
        (True, False)
    """
    params = list(model.parameters())
    return bool(params) and all(p.device.type == "cpu" for p in params)


def eager_channels_last(loaded: LoadedModel) -> LoadedModel:
    """Restride ``loaded.model``'s 4-D weights channels-last when it runs in PyTorch on a CPU.

    The conv layers then compute NHWC (PyTorch follows the weights' layout), the layout the
    Trainer trains in on a CPU, and the outputs are the same up to float rounding. Eager
    inference, ``python -m bench.inference_layout`` on a 2-core AVX2 EPYC: 1.23-1.98x the
    images/s of NCHW at batch 256 and 1.03-1.38x for one image (LeNet-5, ResNet-18, the
    segmentation and detection recipes' networks). A no-op on a GPU, or when
    ``EAGER_CHANNELS_LAST`` is False. Saving is unaffected (``save_weights`` writes contiguous
    tensors).

    Example:
        >>> loaded = eager_channels_last(load_run("runs/digits"))  # doctest: +SKIP
    """
    if EAGER_CHANNELS_LAST and runs_on_cpu(loaded.model):
        loaded.model = loaded.model.to(memory_format=torch.channels_last)  # (O, I, kH, kW) NHWC
    return loaded


def load_run(path: str | Path, *, model: nn.Module | None = None,
             device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild a trained model from a run folder, without unpickling anything.

    Args:
        path: the run folder (``--out`` of ``cnnkit train``).
        model: an untrained instance of the architecture, needed only when the model has no
            ``architecture`` dict (a plain ``nn.Module`` trained with ``Trainer``).
        device: where to put the model.

    The network runs in PyTorch; ``cnnkit.load(path, backend="onnxruntime")`` (or
    :func:`cnnkit.export.runtime.use_backend` on the result) swaps in onnxruntime.

    Raises:
        CheckpointError: not a run folder, missing/corrupt files, or weights that do not fit.

    Example:
        >>> m = load_run("runs/digits")  # doctest: +SKIP
    """
    run = Path(path)
    if not run.is_dir():
        raise CheckpointError(f"run folder {str(run)!r} does not exist; give the --out folder "
                              "of a cnnkit train run")
    meta = read_json(run / MODEL_FILE)
    if model is None:
        if not meta.get("architecture"):
            raise CheckpointError(f"{str(run / MODEL_FILE)!r} has no architecture (the model was "
                                  "a plain nn.Module); pass model=<an instance> to load_run")
        arch = meta["architecture"]
        model = build_task_model(arch) if arch.get("type") == "task" else build_architecture(arch)
    try:
        load_weights(model, run / WEIGHTS_FILE)
    except CorruptWeightsError as exc:
        if not (run / CHECKPOINT_DIR / "last.json").is_file():
            raise
        raise CheckpointError(f"{exc}; the run's last checkpoint is in "
                              f"{str(run / CHECKPOINT_DIR)!r}: rewrite the weights from it with "
                              f"'cnnkit train --resume {run}'") from None
    model.to(device).eval()
    normalization = None
    if meta.get("normalization") is not None:
        normalization = Normalization.from_dict(meta["normalization"])
    config = read_json(run / CONFIG_FILE) if (run / CONFIG_FILE).is_file() else {}
    return LoadedModel(model, list(meta["class_names"]), normalization,
                       tuple(meta["input_shape"]), config, task=meta.get("task", "classify"))
