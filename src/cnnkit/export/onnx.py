"""ONNX export with the normalisation folded in, a dynamic batch axis, and verification.

The exported graph has one input ``"images"`` (N, C, H, W) — uint8 0–255 pixels by default, see
:mod:`cnnkit.export.wrapper` — and named outputs: ``"logits"`` (N, K) for a classifier; for a
task run the decoded outputs of :data:`~cnnkit.export.wrapper.TASK_OUTPUTS`:

* localize: ``probabilities`` (N, K) and ``boxes`` (N, 4) pixel xyxy (decoding in the graph);
* segment: ``logits`` (N, K, H, W) and ``mask`` (N, H, W) int64 per-pixel argmax;
* detect: ``boxes`` (N, D, 4), ``scores`` (N, D), ``labels`` (N, D) from ``Detector.decode``
  in the graph. Class-aware NMS is a documented post-step, not in the graph (the greedy loop
  of ``cnnkit.tasks.nms.batched_nms`` is data-dependent and does not export cleanly): drop the
  zero scores and apply NMS at the metadata's ``nms_iou``.

Its ``metadata_props`` hold ``cnnkit`` (a JSON object: class names, input shape and dtype,
normalisation; for task runs also ``task``, ``outputs`` and, for detection, ``postprocess``) so
the file is self-describing. ``torch.onnx.export(..., dynamo=True)`` (the torch.export-based
exporter, the default since PyTorch 2.9; it needs ``onnxscript``) writes it, and
:func:`verify_onnx` runs onnxruntime on several batch sizes and compares every output with
PyTorch before the file is trusted.
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import torch

from cnnkit.export.errors import ExportError
from cnnkit.export.verify import (DEFAULT_ATOL, DEFAULT_RTOL, check_close, check_detections,
                                 check_mask_agreement)
from cnnkit.export.wrapper import export_metadata, export_module, resolve_loaded, sample_inputs

logger = logging.getLogger(__name__)


class _NoTorchvisionNotice(logging.Filter):
    """Drop the exporter's "torchvision is not installed. Skipping torchvision::nms" lines.

    The exporter logs one per torchvision op the first time it runs; cnnkit never uses those
    ops (and does not depend on torchvision), so the lines only alarm users.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("torchvision is not installed")


_EXPORTER_REGISTRY_LOGGER = "torch.onnx._internal.exporter._registration"

DEFAULT_OPSET = 18
METADATA_KEY = "cnnkit"
VERIFY_BATCH_SIZES = (1, 3, 8)


def export_onnx(run_or_loaded, path, *, fold_normalization: bool = True,
                input_dtype: str = "uint8", opset: int = DEFAULT_OPSET,
                verify: bool = True) -> Path:
    """Write a trained model as ONNX (dynamic batch, class names in the metadata) and verify it.

    Args:
        run_or_loaded: a run folder or a ``LoadedModel`` (``cnnkit.load(RUN)``).
        path: the ``.onnx`` file to write (its folder is created).
        fold_normalization: apply the run's normalisation inside the graph (recommended); False
            exports the bare network, whose input must be normalised float32.
        input_dtype: ``"uint8"`` (0–255 pixels) or ``"float32"`` (0–1 pixels).
        opset: the ONNX opset version (18 or later for the dynamo exporter).
        verify: run :func:`verify_onnx` and delete the file if it fails.

    Shape:
        graph input ``images`` (N, C, H, W) -> output ``logits`` (N, K) for a classifier, or
        a task run's named outputs (see the module docstring; a detector's NMS is left to the
        caller); N is dynamic.

    Raises:
        ExportError: the exporter failed, or onnxruntime's outputs differ from PyTorch's.
        ValueError: a bad ``input_dtype``.

    Example:
        >>> export_onnx("runs/digits", "digits.onnx")  # doctest: +SKIP
        PosixPath('digits.onnx')
    """
    import onnx  # optional extra: onnx

    registry_logger = logging.getLogger(_EXPORTER_REGISTRY_LOGGER)
    if not any(isinstance(f, _NoTorchvisionNotice) for f in registry_logger.filters):
        registry_logger.addFilter(_NoTorchvisionNotice())
    loaded = resolve_loaded(run_or_loaded)
    wrapped, output_names = export_module(loaded, input_dtype=input_dtype,
                                          fold_normalization=fold_normalization)
    metadata = export_metadata(loaded, input_dtype, fold_normalization)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = sample_inputs(loaded.input_shape, 2, metadata["input_dtype"])
    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(
                wrapped, (example,), dynamo=True, opset_version=opset, verbose=False,
                input_names=["images"], output_names=list(output_names),
                dynamic_shapes={"x": {0: batch}}, external_data=False)
    except Exception as error:  # the exporter raises many types; all mean "no file"
        raise ExportError(f"torch.onnx.export failed for {type(loaded.model).__name__}: "
                          f"{type(error).__name__}: {error}") from error
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(metadata)})
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(proto, tmp)
    os.replace(tmp, path)
    if verify:
        try:
            verify_onnx(path, loaded, fold_normalization=fold_normalization,
                        input_dtype=input_dtype)
        except ExportError:
            path.unlink(missing_ok=True)
            raise
    logger.info("wrote %s (%d classes, input %s %s)", path, len(loaded.class_names),
                metadata["input_dtype"], loaded.input_shape)
    if "postprocess" in metadata:
        logger.info("%s: %s", path, metadata["postprocess"])
    return path


def read_onnx_metadata(path) -> dict:
    """The ``cnnkit`` metadata of an exported ONNX file (class names, input, normalisation).

    Raises:
        ExportError: the file has no cnnkit metadata.
    """
    import onnx  # optional extra: onnx

    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise ExportError(f"{str(path)!r} has no {METADATA_KEY!r} metadata; export it with "
                          "cnnkit export RUN --format onnx")
    return json.loads(props[METADATA_KEY])


#: How onnxruntime's idle intra-op threads wait for work, :func:`onnx_session`'s default:
#: ``"run"`` busy-waits inside a run (the hand-offs between a graph's operators) and stops at
#: its end; ``"always"`` (onnxruntime's own default) busy-waits between runs too; ``"never"``
#: blocks at once. ``"run"`` is as fast as ``"always"`` on one image after another (a
#: CenterNet image on 2 cores: 1.12 vs 1.09 ms, ``"never"`` 1.35 ms) and, like ``"never"``,
#: leaves the cores free between runs: with ``"always"``, the threads spinning after each run
#: took the CPU from ``cnnkit serve``'s event loop (0.7x PyTorch's requests/s on 2 cores).
SPINNING = "run"
SPINNING_MODES = ("never", "run", "always")


def onnx_session(path, *, threads: int | None = None, providers=("CPUExecutionProvider",),
                 spinning: str | bool | None = None):
    """An onnxruntime ``InferenceSession`` for ``path``.

    Args:
        path: the ``.onnx`` file (or a serialised model, ``bytes``).
        threads: intra-op threads (None: onnxruntime's default, one per physical core).
        providers: onnxruntime execution providers in order of preference (default: CPU).
        spinning: how idle intra-op threads wait, one of :data:`SPINNING_MODES` (None:
            :data:`SPINNING`, ``"run"``); True and False mean ``"always"`` and ``"never"``.

    Raises:
        ValueError: an unknown ``spinning``.
    """
    import onnxruntime as ort  # optional extra: onnx (onnxruntime)

    if spinning is None:
        spinning = SPINNING
    elif isinstance(spinning, bool):
        spinning = "always" if spinning else "never"
    if spinning not in SPINNING_MODES:
        raise ValueError(f"spinning must be one of {', '.join(SPINNING_MODES)} (or a bool), got "
                         f"{spinning!r}; 'run' busy-waits only inside a run")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    if spinning == "never":
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    elif spinning == "run":  # spin while a run hands work between operators, not after it
        options.add_session_config_entry("session.force_spinning_stop", "1")
    model = path if isinstance(path, bytes) else str(path)  # a file, or a serialised model
    return ort.InferenceSession(model, options, providers=list(providers))


def verify_onnx(path, run_or_loaded, *, fold_normalization: bool = True,
                input_dtype: str = "uint8", batch_sizes=VERIFY_BATCH_SIZES,
                rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
                session=None) -> float:
    """Run onnxruntime on random inputs of several batch sizes and compare with PyTorch.

    Args:
        path: the exported ``.onnx`` file.
        run_or_loaded: the run folder or ``LoadedModel`` it was exported from.
        fold_normalization, input_dtype: as given to :func:`export_onnx`.
        batch_sizes: batch sizes to try (checks the dynamic batch axis).
        rtol, atol: tolerance on the logits, probabilities and boxes (``numpy.allclose``);
            a ``mask`` output must agree on at least 99.9 % of its pixels, a detector's
            outputs are compared by :func:`~cnnkit.export.verify.check_detections`.
        session: an ``InferenceSession`` of ``path`` already open (None: open one on the CPU).

    Returns:
        The largest absolute difference seen (over the float outputs).

    Raises:
        ExportError: onnxruntime cannot load or run the file, or the outputs differ.
    """
    loaded = resolve_loaded(run_or_loaded)
    wrapped, output_names = export_module(loaded, input_dtype=input_dtype,
                                          fold_normalization=fold_normalization)
    if session is None:
        try:
            session = onnx_session(path)
        except Exception as error:  # onnxruntime raises its own exception types
            raise ExportError(f"onnxruntime cannot load {str(path)!r}: {error}") from error
    dtype = wrapped.input_dtype
    worst = 0.0
    for seed, batch_size in enumerate(batch_sizes):
        x = sample_inputs(loaded.input_shape, batch_size, dtype, seed=seed)
        with torch.inference_mode():
            expected = wrapped(x)
        expected = [t.numpy() for t in (expected if isinstance(expected, tuple) else (expected,))]
        try:
            actual = session.run(list(output_names), {"images": x.numpy()})
        except Exception as error:
            raise ExportError(f"onnxruntime failed on {str(path)!r} with batch size "
                              f"{batch_size}: {error}") from error
        what = f"ONNX {str(path)!r} at batch size {batch_size}"
        worst = max(worst, _compare(loaded, output_names, expected, actual, what, rtol, atol))
    logger.info("verified %s: max |onnxruntime - torch| = %.3g", path, worst)
    return worst


def _compare(loaded, output_names, expected, actual, what: str, rtol: float,
             atol: float) -> float:
    """Compare every named output with PyTorch's; the largest float difference."""
    if loaded.task == "detect":
        return check_detections(expected, actual, score_threshold=loaded.model.score_threshold,
                                what=what, rtol=rtol, atol=atol)
    worst = 0.0
    for name, e, a in zip(output_names, expected, actual):
        if name == "mask":
            check_mask_agreement(e, a, what=f"{what} (mask)")
        else:
            label = what if loaded.task == "classify" else f"{what} ({name})"
            worst = max(worst, check_close(e, a, rtol=rtol, atol=atol, what=label))
    return worst
