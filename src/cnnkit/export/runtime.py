"""Predict backends: the network's forward pass in PyTorch or in onnxruntime.

``LoadedModel.predict_proba`` (used by ``cnnkit.load(RUN).predict*``, ``cnnkit predict`` and
``cnnkit serve``) prepares the images itself (channels, resize, normalisation), runs the
network, and turns its output into probabilities (softmax, flip TTA). A backend replaces only
the middle step, so both backends share every other step (onnxruntime's classifier without TTA
skips the general loop's walk over the PyTorch modules: its graph's output kind is fixed at
export, :attr:`OnnxForward.output_kind`):

* ``"torch"``: eager PyTorch, the model itself (on a CPU with its conv weights channels-last,
  :func:`cnnkit.run.folder.eager_channels_last`, and freed memory kept in the process,
  :data:`EAGER_KEEP_FREED_MEMORY`).
* ``"onnxruntime"``: the network exported by :func:`~cnnkit.export.onnx.export_onnx` (the bare
  network: normalised float32 input, dynamic batch), verified against PyTorch, run by an
  onnxruntime ``InferenceSession`` with PyTorch's intra-op thread count. On the CPU provider;
  a model on a GPU uses onnxruntime's CUDA provider (the ``onnxruntime-gpu`` package).
* ``"auto"``: onnxruntime when it is installed, the model's device has an onnxruntime provider
  and the export verifies; else torch. The choice and its reason are logged
  (``cnnkit -v``). bench/serve_load.py measures why: about 2× the images/s of PyTorch eager
  for LeNet-5 and ResNet-18 on a CPU, and half its single-image latency or less. The one cost
  is the first export of a run (3–7 s), so ``cnnkit predict`` exports only for
  :data:`AUTO_EXPORT_MIN_IMAGES` images or more and otherwise uses onnxruntime only if the
  export is already cached; ``cnnkit serve`` (long-running) always does.

onnxruntime runs the weights as they were when the backend was chosen: after changing
``loaded.model`` call :func:`use_backend` again.

Task runs (localise, segment, detect) choose their backend the same way. Their export is the
network with its decoding (:class:`~cnnkit.export.wrapper.TaskOutputs`, without the
normalisation: probabilities + boxes; logits + mask; the detector's padded top-D boxes, scores
and labels), run by :class:`OnnxTaskForward`; the PyTorch backend runs the same decoding in
eager mode, and ``cnnkit.run.task_predict`` applies one post-step to either (NMS, boxes scaled
and masks resized back onto each image's own pixels). bench/inference.py measured the exported
task graphs 1.6–5× faster than eager on a CPU. The raw network outputs
(``LoadedModel.outputs``: losses, score maps) stay in PyTorch: the graph has only the decoded
ones.

The exported file is cached in the run folder, ``RUN/.cache/onnx-<key>.onnx``, where the key is
the SHA-256 of the weights (the digest ``weights.safetensors`` stores), the model's structure
and the input shape: the first prediction exports (a few seconds), later ones load the file
and check it against PyTorch on one small batch. Files are written atomically under that
name only (never over a user's file); entries of other weights are removed. When the folder is
read-only, or for a model that is not from a run folder, the export goes to a temporary file
that is deleted once onnxruntime has read it.

Example:
    >>> model = cnnkit.load("runs/digits", backend="auto")  # doctest: +SKIP
    >>> model.backend  # doctest: +SKIP
    'onnxruntime'
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from cnnkit.export import single_image
from cnnkit.export.errors import ExportError
from cnnkit.export.onnx import DEFAULT_OPSET, export_onnx, onnx_session, verify_onnx
from cnnkit.export.single_image import PIXELS, PROBABILITIES
from cnnkit.export.wrapper import TASK_OUTPUTS
from cnnkit.run.folder import LoadedModel, eager_channels_last, runs_on_cpu, tensors_digest
from cnnkit.run.outputs import LOGITS, output_kind, to_probabilities
from cnnkit.train.allocator import keep_freed_memory

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime")
CACHE_DIR = ".cache"  # inside the run folder
CACHE_PREFIX = "onnx-"
CACHE_CHECK_BATCH = (2,)  # batch size of the check of a cached file (export checks 1, 3, 8)
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}

#: The torch backend on a CPU keeps freed tensor memory in the process
#: (:func:`cnnkit.train.allocator.keep_freed_memory`, process-wide, as training does): a
#: batch's activations then reuse the pages of the batch before instead of page-faulting fresh
#: ones in. ``python -m bench.eager_allocator`` on a 2-core EPYC: 1.35-2.6x the images/s at
#: batch 256 (LeNet-5, ResNet-18, the segmentation and detection networks), 2.5x segmentation
#: at batch 32. False leaves malloc alone.
EAGER_KEEP_FREED_MEMORY = True
# ``cnnkit predict --backend auto`` exports a run that has no cached export only for at least
# this many images: a first export costs 3-7 s; at 32x32, ResNet-18 gains that back from about
# 1,000 images on 2 CPU cores and LeNet-5 never in one command (bench/RESULTS.md, section 4).
AUTO_EXPORT_MIN_IMAGES = 1024


def check_backend(backend: str) -> str:
    """Return ``backend`` if it is one of :data:`BACKENDS`, else raise ValueError."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}; "
                         "'auto' uses onnxruntime where it is installed and the model exports")
    return backend


class OnnxForward:
    """The network's forward pass in onnxruntime, called like the model.

    Args:
        session: an ``InferenceSession`` of a bare-network export (input ``images``, output
            ``logits``).
        path: the file it was read from (for messages).
        output_kind: what the exported network's last layer gives (``"logits"``, ``"probs"``
            or ``"log_probs"``, :func:`cnnkit.run.outputs.output_kind` of the model when it
            was exported): ``LoadedModel.predict_proba`` turns it into probabilities without
            looking at the PyTorch modules again.
        pixel_session: a one-thread session of the graph of uint8 pixels to probabilities
            for single images (:mod:`cnnkit.export.single_image`), or None.

    Shape:
        normalised float (N, C, H, W) on any device -> (N, K) float32 on the same device.
    """

    #: The network runs in onnxruntime: PyTorch's steps around it take one thread
    #: (cnnkit.run.threads).
    computes_outside_torch = True

    def __init__(self, session, path: Path | str, output_kind: str = LOGITS, *,
                 pixel_session=None):
        self.session = session
        self.path = str(path)
        self.output_kind = output_kind
        self.pixel_session = pixel_session

    def numpy_forward(self, pixels: np.ndarray) -> np.ndarray:
        """The logits of normalised float32 pixels, NumPy in and out.

        Shape:
            (N, C, H, W) float32 -> (N, K) float32.
        """
        (logits,) = self.session.run(["logits"], {"images": pixels})
        return logits

    def pixel_probabilities(self, pixels: np.ndarray) -> np.ndarray | None:
        """The probabilities of one uint8 image from the one-thread pixel graph
        (:mod:`cnnkit.export.single_image`), or None when there is none (the caller then
        normalises, runs :meth:`numpy_forward` and turns its output into probabilities).

        Shape:
            (1, C, H, W) uint8 -> (1, K) float32.
        """
        if self.pixel_session is None:
            return None
        (probabilities,) = self.pixel_session.run([PROBABILITIES], {PIXELS: pixels})
        return probabilities

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        pixels = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.numpy_forward(pixels)).to(x.device)

    def __repr__(self) -> str:
        return f"OnnxForward({self.path!r})"


class OnnxTaskForward:
    """A task network with its decoding in onnxruntime; its raw outputs in PyTorch.

    ``cnnkit.run.task_predict`` calls :meth:`decoded` for predictions; calling the object
    (``LoadedModel.outputs``, e.g. the losses of ``cnnkit evaluate``) runs ``network`` in
    PyTorch, because the exported graph has only the decoded outputs.

    Args:
        session: an ``InferenceSession`` of a task export without the normalisation (input
            ``images``, the outputs of :data:`~cnnkit.export.wrapper.TASK_OUTPUTS`).
        path: the file it was read from (for messages).
        output_names: the graph's output names, in order.
        network: the task model (for the raw outputs).
        single_session: a one-thread session of the same graph for single images, where
            ``use_backend`` measured it faster (:mod:`cnnkit.export.single_image`), or None.

    Shape:
        decoded: normalised float (N, C, H, W) -> {name: (N, ...)} on the input's device, e.g.
        localize ``probabilities (N, K), boxes (N, 4)``; segment ``logits (N, K, H, W), mask
        (N, H, W)``; detect ``boxes (N, D, 4), scores (N, D), labels (N, D)``.
    """

    def __init__(self, session, path: Path | str, output_names: tuple[str, ...],
                 network: torch.nn.Module, *, single_session=None):
        self.session = session
        self.path = str(path)
        self.output_names = tuple(output_names)
        self.network = network
        self.single_session = single_session

    def decoded(self, x: torch.Tensor,
                names: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        """The graph's outputs ``names`` (default: all) for the batch ``x``.

        onnxruntime hands back only the outputs asked for: a segmentation batch whose masks
        are the answer as they are skips copying out its logits (``(N, K, H, W)`` float32,
        104 MB at 256 images of 96×96 with 11 classes).
        """
        wanted = self.output_names if names is None else tuple(names)
        unknown = [n for n in wanted if n not in self.output_names]
        if unknown:
            raise ValueError(f"the graph {self.path} has no output {unknown[0]!r}; its outputs "
                             f"are {list(self.output_names)}")
        pixels = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        session = self.single_session if len(pixels) == 1 and self.single_session else self.session
        arrays = session.run(list(wanted), {"images": pixels})
        return {name: torch.from_numpy(a).to(x.device) for name, a in zip(wanted, arrays)}

    def __call__(self, x: torch.Tensor):
        return self.network(x)

    def __repr__(self) -> str:
        return f"OnnxTaskForward({self.path!r})"


def cache_key(loaded: LoadedModel) -> str:
    """Hex SHA-256 of what the exported graph depends on: weights, structure, input shape."""
    model = loaded.model
    digest = hashlib.sha256()
    digest.update(tensors_digest(model.state_dict()).encode())
    structure = {"architecture": getattr(model, "architecture", None),
                 "class": f"{type(model).__module__}.{type(model).__qualname__}",
                 "repr": repr(model), "input_shape": list(loaded.input_shape),
                 "opset": DEFAULT_OPSET}
    digest.update(json.dumps(structure, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _export_to(loaded: LoadedModel, path: Path) -> Path:
    """Export and verify in a private folder beside ``path``, then rename onto ``path``."""
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=path.parent))
    try:
        written = export_onnx(loaded, staging / path.name, fold_normalization=False)
        _fsync(written)
        os.replace(written, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _remove_other_entries(keep: Path) -> None:
    """Delete cache entries of other weights (ours only: ``onnx-<64 hex>.onnx``)."""
    for old in keep.parent.glob(f"{CACHE_PREFIX}*.onnx"):
        stem = old.stem[len(CACHE_PREFIX):]
        if old != keep and len(stem) == 64 and all(c in "0123456789abcdef" for c in stem):
            old.unlink(missing_ok=True)


def _session_for(loaded: LoadedModel, path: Path, providers: list[str], check: bool,
                 spinning: str | None = None):
    """An ``InferenceSession`` of ``path`` (optionally checked against PyTorch on one batch).

    Raises:
        ExportError: onnxruntime cannot read the file, or (``check``) it differs from PyTorch.
    """
    try:
        session = onnx_session(path, threads=torch.get_num_threads(), providers=providers,
                               spinning=spinning)
    except Exception as error:  # onnxruntime raises its own exception types
        raise ExportError(f"onnxruntime cannot load {str(path)!r}: {error}") from error
    if check:
        verify_onnx(path, loaded, fold_normalization=False, batch_sizes=CACHE_CHECK_BATCH,
                    session=session)
    return session


def _pixel_session(loaded: LoadedModel, path: Path | str, session, kind: str):
    """The one-thread :func:`~cnnkit.export.single_image.pixel_graph` session for a
    classifier's single images, when measured faster than ``session`` and equal to it on a
    random image; else None."""
    if not single_image.SINGLE_IMAGE_SESSION or not single_image.worth_trying(session):
        return None  # the graph below is built only for networks that may gain
    graph = single_image.pixel_graph(path, loaded.normalization, kind)
    pixels = single_image.single_image_session(path, session, graph=graph, checked=True)
    if pixels is None:
        return None
    image = np.random.default_rng(0).integers(0, 256, (1, *loaded.input_shape), dtype=np.uint8)
    (direct,) = pixels.run([PROBABILITIES], {PIXELS: image})
    (logits,) = session.run(["logits"], {"images": loaded.normalize_numpy(image)})
    steps = to_probabilities(torch.from_numpy(logits), kind).numpy()
    if not np.allclose(direct, steps, rtol=1e-4, atol=1e-6):
        logger.warning("the pixel graph of %s differs from its network (largest difference "
                       "%.3g); single images take the usual steps", path,
                       float(np.abs(direct - steps).max()))
        return None
    logger.info("onnxruntime: single images through a one-thread graph of pixels to "
                "probabilities (measured faster)")
    return pixels


def onnx_forward(loaded: LoadedModel, *, cache_dir: str | Path | None = None,
                 export: bool = True,
                 spinning: str | None = None) -> OnnxForward | OnnxTaskForward | None:
    """Export (or reuse) ``loaded``'s network as ONNX and return its onnxruntime forward.

    A classifier gets an :class:`OnnxForward` (the bare network), a task run an
    :class:`OnnxTaskForward` (the network and its decoding).

    Args:
        loaded: the trained model (any device; exported from a CPU copy).
        cache_dir: the folder of the cache (``RUN/.cache``); None: a temporary file.
        export: False: only reuse a cached export; return None when there is none.
        spinning: how onnxruntime's idle threads wait (``cnnkit.export.onnx.onnx_session``;
            None: ``cnnkit.export.onnx.SPINNING``, spinning inside a run only).

    Raises:
        ExportError: the export fails or does not match PyTorch.
        ImportError: onnx, onnxscript or onnxruntime is not installed.
    """
    device = next(loaded.model.parameters(), torch.empty(0)).device
    providers = [PROVIDERS[device.type]] if device.type != "cpu" else []
    providers.append(PROVIDERS["cpu"])
    network = loaded.model

    def wrap(session, path, file=None):  # file: where to read a second session (path)
        if loaded.task == "classify":
            kind = output_kind(network)
            pixels = _pixel_session(loaded, file or path, session, kind)
            return OnnxForward(session, path, kind, pixel_session=pixels)
        single = (single_image.single_image_session(file or path, session)
                  if single_image.SINGLE_IMAGE_SESSION else None)
        if single is not None:
            logger.info("onnxruntime: single images on a one-thread session (measured faster)")
        return OnnxTaskForward(session, path, TASK_OUTPUTS[loaded.task], network,
                               single_session=single)

    if device.type != "cpu":  # the exporter traces on the CPU
        loaded = dataclasses.replace(loaded, model=copy.deepcopy(loaded.model).cpu())
    if cache_dir is not None:
        path = Path(cache_dir) / f"{CACHE_PREFIX}{cache_key(loaded)}.onnx"
        if path.is_file():
            try:
                session = _session_for(loaded, path, providers, check=True, spinning=spinning)
                logger.info("onnxruntime: reusing %s", path)
                return wrap(session, path)
            except ExportError as error:
                logger.warning("the cached export %s does not match the model (%s); exporting "
                               "again", path, error)
        if not export:
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _export_to(loaded, path)
        except OSError as error:  # a read-only run folder: export without caching
            logger.info("cannot cache the ONNX export in %s (%s); using a temporary file",
                        path.parent, error)
        else:
            _remove_other_entries(path)
            logger.info("onnxruntime: exported %s (once for these weights)", path)
            return wrap(_session_for(loaded, path, providers, check=False, spinning=spinning),
                        path)
    if not export:
        return None
    with tempfile.TemporaryDirectory(prefix="cnnkit-onnx-") as tmp:
        path = export_onnx(loaded, Path(tmp) / "model.onnx", fold_normalization=False)
        session = _session_for(loaded, path, providers, check=False, spinning=spinning)
        return wrap(session, "(temporary file)", path)


def _unavailable_reason(loaded: LoadedModel) -> str | None:
    """Why onnxruntime cannot run ``loaded`` here, or None if it can."""
    if loaded.task not in TASK_OUTPUTS:
        return (f"the run's model does {loaded.task!r}, which has no ONNX export (expected one "
                f"of {', '.join(TASK_OUTPUTS)})")
    missing = [name for name in ("onnxruntime", "onnx", "onnxscript")
               if importlib.util.find_spec(name) is None]
    if missing:
        return (f"{', '.join(missing)} not installed (pip install 'cnnkit[onnx]' for "
                "onnxruntime)")
    device = next(loaded.model.parameters(), torch.empty(0)).device
    if device.type not in PROVIDERS:
        return f"the model is on {device.type}, which onnxruntime does not run"
    if device.type != "cpu":
        import onnxruntime  # optional extra: onnxruntime

        if PROVIDERS[device.type] not in onnxruntime.get_available_providers():
            return (f"the model is on {device.type} and onnxruntime has no "
                    f"{PROVIDERS[device.type]} (install onnxruntime-gpu)")
    return None


def use_backend(loaded: LoadedModel, backend: str = "auto", *,
                cache_dir: str | Path | None = None, export: bool = True,
                spinning: str | None = None) -> LoadedModel:
    """Make ``loaded.predict*`` run on ``backend``; ``loaded.backend`` says which it got.

    Args:
        loaded: the model (changed in place and returned).
        backend: ``"auto"``, ``"torch"`` or ``"onnxruntime"`` (see the module docstring).
        cache_dir: where the ONNX export is cached (``RUN/.cache``; None: not cached).
        export: False: ``"auto"`` uses onnxruntime only if an export is already cached (for
            small jobs, which the few seconds of a first export would slow down);
            ``"onnxruntime"`` always exports when it must.
        spinning: how onnxruntime's idle intra-op threads wait, one of
            ``cnnkit.export.onnx.SPINNING_MODES`` (None: ``SPINNING``, ``"run"``: busy-wait
            inside a run only, the fastest for predictions one after another); ``cnnkit
            serve`` uses ``"never"``, which leaves the cores to the event loop.

    Raises:
        ValueError: an unknown backend, or ``"onnxruntime"`` where it cannot run.
        ExportError: ``"onnxruntime"`` and the model does not export faithfully.

    Example:
        >>> use_backend(cnnkit.load("runs/digits"), "onnxruntime").backend  # doctest: +SKIP
        'onnxruntime'
    """
    check_backend(backend)
    if backend == "torch":
        return _torch_backend(loaded)
    reason = _unavailable_reason(loaded)
    if reason is not None:
        if backend == "onnxruntime":
            raise ValueError(f"backend='onnxruntime' cannot be used: {reason}; use "
                             "backend='torch' or 'auto'")
        return _fall_back(loaded, reason, logging.INFO)
    try:
        forward = onnx_forward(loaded, cache_dir=cache_dir,
                               export=export or backend == "onnxruntime", spinning=spinning)
    except (ExportError, ImportError) as error:
        if backend == "onnxruntime":
            raise
        return _fall_back(loaded, f"the ONNX export failed ({error})", logging.WARNING)
    if forward is None:
        return _fall_back(loaded, "no export is cached yet and the job is too small to pay "
                                  "for one", logging.INFO)
    loaded.forward = forward
    loaded.backend = "onnxruntime"
    logger.info("predict backend: onnxruntime (backend=%r; the verified export %s)", backend,
                loaded.forward.path)
    return loaded


def _torch_backend(loaded: LoadedModel) -> LoadedModel:
    """Run ``loaded`` in eager PyTorch; on a CPU with its conv weights channels-last
    (``eager_channels_last``) and freed memory kept in the process (``EAGER_KEEP_FREED_MEMORY``)."""
    loaded.forward, loaded.backend = None, "torch"
    if EAGER_KEEP_FREED_MEMORY and runs_on_cpu(loaded.model):
        keep_freed_memory()
    return eager_channels_last(loaded)


def _fall_back(loaded: LoadedModel, reason: str, level: int) -> LoadedModel:
    _torch_backend(loaded)
    logger.log(level, "predict backend: torch (backend='auto' and %s)", reason)
    return loaded
