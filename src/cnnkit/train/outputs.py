"""Old home of :mod:`cnnkit.run.outputs` (logits, probabilities, ``predict_proba``): an alias."""
from cnnkit.run.outputs import (LOG_PROBS, LOGITS, PROBS, flip_tta, output_kind, predict_proba,
                                to_probabilities)

__all__ = ["LOGITS", "LOG_PROBS", "PROBS", "flip_tta", "output_kind", "predict_proba",
           "to_probabilities"]
