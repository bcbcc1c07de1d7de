"""Classification metrics: an alias of :mod:`cnnkit.tasks.classification`, where the code lives.

They sit below the run folder so that evaluating a run (:mod:`cnnkit.run.evaluate`) needs no
module of :mod:`cnnkit.train`.
"""
from cnnkit.tasks.classification import (ClassReport, MetricAccumulator, accuracy,
                                         confusion_matrix, format_confusion, hard_labels,
                                         top_k_accuracy, top_k_correct)

__all__ = ["ClassReport", "MetricAccumulator", "accuracy", "confusion_matrix", "format_confusion",
           "hard_labels", "top_k_accuracy", "top_k_correct"]
