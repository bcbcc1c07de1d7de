"""The run folder: save and load a trained model, its config and metrics (models + data only).

Training (:mod:`cnnkit.train`) writes a run folder through this package; everything after
training (evaluate, predict, export, serve, the CLI) reads one back with :func:`load_run`.

Example:
    >>> from cnnkit.run import load_run
    >>> loaded = load_run("runs/digits")  # doctest: +SKIP
    >>> loaded.predict(images_uint8)  # ['3', '7', ...]  # doctest: +SKIP
"""
from cnnkit.run.folder import (CHECKPOINT_DIR, CONFIG_FILE, CURVES_FILE, METRICS_FILE, MODEL_FILE,
                               RESULTS_FILE, SUMMARY_FILE, WEIGHTS_FILE, CorruptWeightsError,
                               LoadedModel, load_run, load_weights, model_metadata, read_json,
                               read_metrics, save_weights, tensors_digest, truncate_metrics,
                               write_json)
from cnnkit.run.predict import expand_inputs, predict_files
from cnnkit.run.task_predict import class_areas, predict_task_files, predict_task_images

__all__ = [
    "CHECKPOINT_DIR", "CONFIG_FILE", "CURVES_FILE", "METRICS_FILE", "MODEL_FILE", "RESULTS_FILE",
    "SUMMARY_FILE", "WEIGHTS_FILE", "CorruptWeightsError", "LoadedModel", "class_areas", "expand_inputs",
    "load_run", "load_weights", "model_metadata", "predict_files", "predict_task_files",
    "predict_task_images", "read_json", "read_metrics",
    "save_weights", "tensors_digest", "truncate_metrics", "write_json",
]
