"""TorchScript (``torch.jit.trace``) and ``torch.export`` (``.pt2``) files, each verified.

Both wrap the model in :class:`~cnnkit.export.wrapper.PreprocessedModel`, so they take raw
pixels (uint8 0–255 by default) and return logits, like the ONNX export. Both formats are
PyTorch's own and load with ``torch.jit.load`` / ``torch.export.load``, which execute code from
the file: load only files you made yourself. The run folder's safetensors + JSON stays the
format to share; these are for deployment with libtorch or PyTorch's AOT tooling.
"""
from __future__ import annotations

import copy
import logging
import os
import warnings
from pathlib import Path

import torch

from cnnkit.export.errors import ExportError
from cnnkit.export.verify import DEFAULT_ATOL, DEFAULT_RTOL, check_close
from cnnkit.export.wrapper import (PreprocessedModel, resolve_loaded, sample_inputs,
                                   unshadow_submodules)

logger = logging.getLogger(__name__)

VERIFY_BATCH_SIZES = (1, 3, 8)


def _wrapped(run_or_loaded, input_dtype: str, fold_normalization: bool):
    loaded = resolve_loaded(run_or_loaded)
    if loaded.task != "classify":
        raise ValueError(f"TorchScript and torch.export files are made for classifiers; this run "
                         f"does {loaded.task!r}: export it with format='onnx' (cnnkit export RUN "
                         "--format onnx), whose graph includes the task's decoding")
    wrapped = PreprocessedModel(loaded, input_dtype=input_dtype,
                                fold_normalization=fold_normalization).eval()
    return loaded, wrapped


def _verify(run_callable, wrapped: PreprocessedModel, input_shape, what: str,
            rtol: float, atol: float) -> float:
    """Compare ``run_callable(x)`` with the eager wrapper on several batch sizes."""
    worst = 0.0
    for seed, batch_size in enumerate(VERIFY_BATCH_SIZES):
        x = sample_inputs(input_shape, batch_size, wrapped.input_dtype, seed=seed)
        with torch.inference_mode():
            expected = wrapped(x).numpy()
            actual = run_callable(x).numpy()
        worst = max(worst, check_close(expected, actual, rtol=rtol, atol=atol,
                                       what=f"{what} at batch size {batch_size}"))
    return worst


def _atomic_save(save, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # keeps the suffix torch checks
    save(tmp)
    os.replace(tmp, path)


def export_torchscript(run_or_loaded, path, *, fold_normalization: bool = True,
                       input_dtype: str = "uint8", rtol: float = DEFAULT_RTOL,
                       atol: float = DEFAULT_ATOL) -> Path:
    """Trace the model with ``torch.jit.trace``, save it with ``torch.jit.save``, verify it.

    Args:
        run_or_loaded: a run folder or a ``LoadedModel``.
        path: the ``.pt`` file to write.
        fold_normalization, input_dtype: see :mod:`cnnkit.export.wrapper`.
        rtol, atol: tolerance of the check against the eager model.

    Shape:
        (N, C, H, W) pixels -> (N, K) logits; any N (traced models have no batch-dependent
        control flow in cnnkit's zoo).

    Raises:
        ExportError: tracing failed or the reloaded file's outputs differ.
        ValueError: a localise, segment or detect run (export those to ONNX).

    Example:
        >>> export_torchscript("runs/digits", "digits.pt")  # doctest: +SKIP
    """
    loaded, wrapped = _wrapped(run_or_loaded, input_dtype, fold_normalization)
    path = Path(path)
    example = sample_inputs(loaded.input_shape, 2, wrapped.input_dtype)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript is deprecated upstream; it still works
            traced = torch.jit.trace(wrapped, (example,), check_trace=False)
            _atomic_save(lambda p: torch.jit.save(traced, str(p)), path)
            reloaded = torch.jit.load(str(path))
    except Exception as error:
        path.unlink(missing_ok=True)
        raise ExportError(f"TorchScript export of {type(loaded.model).__name__} failed: "
                          f"{type(error).__name__}: {error}") from error
    try:
        _verify(reloaded, wrapped, loaded.input_shape, f"TorchScript {str(path)!r}", rtol, atol)
    except ExportError:
        path.unlink(missing_ok=True)
        raise
    logger.info("wrote %s", path)
    return path


def export_program(run_or_loaded, path, *, fold_normalization: bool = True,
                   input_dtype: str = "uint8", rtol: float = DEFAULT_RTOL,
                   atol: float = DEFAULT_ATOL) -> Path:
    """Capture the model with ``torch.export.export`` (dynamic batch), save a ``.pt2``, verify it.

    Args:
        run_or_loaded: a run folder or a ``LoadedModel``.
        path: the ``.pt2`` file to write.
        fold_normalization, input_dtype: see :mod:`cnnkit.export.wrapper`.
        rtol, atol: tolerance of the check against the eager model.

    Shape:
        (N, C, H, W) pixels -> (N, K) logits; N is a dynamic dimension.

    Raises:
        ExportError: capture failed or the reloaded program's outputs differ.
        ValueError: ``path`` does not end in ``.pt2``, or a task run (export those to ONNX).

    Example:
        >>> export_program("runs/digits", "digits.pt2")  # doctest: +SKIP
    """
    path = Path(path)
    if path.suffix != ".pt2":
        raise ValueError(f"path must end in .pt2 (torch.export.load requires it), got "
                         f"{str(path)!r}; rename it, e.g. {str(path.with_suffix('.pt2'))!r}")
    loaded, wrapped = _wrapped(run_or_loaded, input_dtype, fold_normalization)
    example = sample_inputs(loaded.input_shape, 2, wrapped.input_dtype)
    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        capture = unshadow_submodules(copy.deepcopy(wrapped))
        program = torch.export.export(capture, (example,), dynamic_shapes={"x": {0: batch}})
        _atomic_save(lambda p: torch.export.save(program, str(p)), path)
        reloaded = torch.export.load(str(path)).module()
    except Exception as error:
        path.unlink(missing_ok=True)
        raise ExportError(f"torch.export of {type(loaded.model).__name__} failed: "
                          f"{type(error).__name__}: {error}") from error
    try:
        _verify(reloaded, wrapped, loaded.input_shape, f"torch.export {str(path)!r}", rtol, atol)
    except ExportError:
        path.unlink(missing_ok=True)
        raise
    logger.info("wrote %s", path)
    return path
