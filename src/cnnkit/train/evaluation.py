"""Evaluating a run: an alias of :mod:`cnnkit.run.evaluate`, where the code lives."""
from cnnkit.run.evaluate import (IMAGE_SUFFIXES, EvaluationReport, evaluate_images, evaluate_run,
                                 expand_inputs, predict_files)

__all__ = ["IMAGE_SUFFIXES", "EvaluationReport", "evaluate_images", "evaluate_run",
           "expand_inputs", "predict_files"]
