"""Export trained models to ONNX, TorchScript and ``torch.export`` files, each verified.

Every exported file takes raw pixels (uint8 0–255, (N, C, H, W), any N) and returns logits
(N, K): the run's normalisation is folded in (:mod:`cnnkit.export.wrapper`). Localise, segment
and detect runs export to ONNX only, with the task's decoding in the graph and named outputs
(probabilities + boxes; logits + mask; boxes, scores, labels, with NMS as a documented
post-step; see :mod:`cnnkit.export.onnx`). Each export is
checked against PyTorch on several batch sizes and fails with :class:`ExportError` (and no file)
when the outputs differ. The run folder (safetensors + JSON, ``cnnkit.load``) remains the
native format; these files are for other runtimes. :mod:`cnnkit.export.runtime` runs
``cnnkit.load(RUN, backend="auto")``'s predictions in onnxruntime on a cached export.

Example:
    >>> from cnnkit.export import export_onnx
    >>> export_onnx("runs/digits", "digits.onnx")  # doctest: +SKIP
"""
from cnnkit._lazy import lazy_attributes

# public name -> the module that defines it, imported on first use (cnnkit._lazy)
_MODULE_OF = {
    "ExportError": "cnnkit.export.errors",
    "export_onnx": "cnnkit.export.onnx", "onnx_session": "cnnkit.export.onnx",
    "read_onnx_metadata": "cnnkit.export.onnx", "verify_onnx": "cnnkit.export.onnx",
    "BACKENDS": "cnnkit.export.runtime", "use_backend": "cnnkit.export.runtime",
    "export_program": "cnnkit.export.torchscript",
    "export_torchscript": "cnnkit.export.torchscript",
    "TASK_OUTPUTS": "cnnkit.export.wrapper", "PreprocessedModel": "cnnkit.export.wrapper",
    "TaskOutputs": "cnnkit.export.wrapper",
}
__getattr__, __dir__ = lazy_attributes(__name__, _MODULE_OF, globals())

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "torch.export": ".pt2"}


def export(run_or_loaded, path, *, format: str = "onnx", **kwargs):  # noqa: A002 - CLI's name
    """Export in ``format`` (a key of :data:`FORMATS`); kwargs go to the format's function.

    Raises:
        ValueError: an unknown format.
    """
    functions = {"onnx": "export_onnx", "torchscript": "export_torchscript",
                 "torch.export": "export_program"}
    if format not in functions:
        raise ValueError(f"format must be one of {sorted(functions)}, got {format!r}")
    return __getattr__(functions[format])(run_or_loaded, path, **kwargs)


__all__ = ["BACKENDS", "FORMATS", "TASK_OUTPUTS", "ExportError", "PreprocessedModel",
           "TaskOutputs", "export", "export_onnx", "export_program", "export_torchscript",
           "onnx_session", "read_onnx_metadata", "use_backend", "verify_onnx"]
