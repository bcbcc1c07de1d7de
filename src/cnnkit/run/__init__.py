"""The run folder: save and load a trained model, its config and metrics (models + data only).

Training (:mod:`cnnkit.train`) writes a run folder through this package; everything after
training (evaluate, predict, export, serve, the CLI) reads one back with :func:`load_run`.

Example:
    >>> from cnnkit.run import load_run
    >>> loaded = load_run("runs/digits")  # doctest: +SKIP
    >>> loaded.predict(images_uint8)  # ['3', '7', ...]  # doctest: +SKIP
"""
from cnnkit._lazy import lazy_attributes

# public name -> the module that defines it, imported on first use (cnnkit._lazy)
_MODULE_OF = {
    "CHECKPOINT_DIR": "cnnkit.run.folder",
    "CONFIG_FILE": "cnnkit.run.folder",
    "CURVES_FILE": "cnnkit.run.folder",
    "METRICS_FILE": "cnnkit.run.folder",
    "MODEL_FILE": "cnnkit.run.folder",
    "RESULTS_FILE": "cnnkit.run.folder",
    "SUMMARY_FILE": "cnnkit.run.folder",
    "WEIGHTS_FILE": "cnnkit.run.folder",
    "CorruptWeightsError": "cnnkit.run.folder",
    "LoadedModel": "cnnkit.run.folder",
    "load_run": "cnnkit.run.folder",
    "load_weights": "cnnkit.run.folder",
    "model_metadata": "cnnkit.run.folder",
    "read_json": "cnnkit.run.folder",
    "read_metrics": "cnnkit.run.folder",
    "save_weights": "cnnkit.run.folder",
    "tensors_digest": "cnnkit.run.folder",
    "truncate_metrics": "cnnkit.run.folder",
    "write_json": "cnnkit.run.folder",
    "expand_inputs": "cnnkit.run.predict",
    "predict_files": "cnnkit.run.predict",
    "class_areas": "cnnkit.run.task_predict",
    "predict_task_files": "cnnkit.run.task_predict",
    "predict_task_images": "cnnkit.run.task_predict",
}
__getattr__, __dir__ = lazy_attributes(__name__, _MODULE_OF, globals())

__all__ = [
    "CHECKPOINT_DIR", "CONFIG_FILE", "CURVES_FILE", "METRICS_FILE", "MODEL_FILE", "RESULTS_FILE",
    "SUMMARY_FILE", "WEIGHTS_FILE", "CorruptWeightsError", "LoadedModel", "class_areas", "expand_inputs",
    "load_run", "load_weights", "model_metadata", "predict_files", "predict_task_files",
    "predict_task_images", "read_json", "read_metrics",
    "save_weights", "tensors_digest", "truncate_metrics", "write_json",
]
