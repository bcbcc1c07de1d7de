"""Old home of :class:`~cnnkit.data.loader.TensorBatches`, kept so that
``from cnnkit.train.batches import TensorBatches`` keeps working; it now lives in
:mod:`cnnkit.data.loader` beside the other loaders (and shares their base,
:class:`cnnkit.data.batching.EpochLoader`).
"""
from __future__ import annotations

from cnnkit.data.loader import TensorBatches

__all__ = ["TensorBatches"]
