"""Old home of the run folder, kept as an alias: the code is in :mod:`cnnkit.run.folder`.

``summary.txt`` and ``curves.png`` are written by :mod:`cnnkit.train.pipeline`
(:func:`~cnnkit.train.pipeline.write_summary`, :func:`~cnnkit.train.pipeline.write_curves`).
"""
from cnnkit.run.folder import (CHECKPOINT_DIR, CONFIG_FILE, CURVES_FILE, METRICS_FILE, MODEL_FILE,
                               RESULTS_FILE, SUMMARY_FILE, WEIGHTS_FILE, CorruptWeightsError,
                               LoadedModel, load_run, load_weights, model_metadata, read_json,
                               read_metrics, save_weights, tensors_digest, truncate_metrics,
                               write_json)

__all__ = [
    "CHECKPOINT_DIR", "CONFIG_FILE", "CURVES_FILE", "METRICS_FILE", "MODEL_FILE", "RESULTS_FILE",
    "SUMMARY_FILE", "WEIGHTS_FILE", "CorruptWeightsError", "LoadedModel", "load_run",
    "load_weights", "model_metadata", "read_json", "read_metrics", "save_weights",
    "tensors_digest", "truncate_metrics", "write_json",
]
