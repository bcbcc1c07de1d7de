"""Training: losses, optimizers, schedules, metrics, callbacks, checkpoints, Trainer, ``train``.

Entry points:

* :func:`train` (``cnnkit train``): a whole run from a :class:`TrainConfig`, written to a run
  folder.
* :class:`Trainer`: the loop for any ``nn.Module`` and any iterable of ``(x, y)`` batches.
* :func:`load_run`: a trained model back from its run folder (an alias of
  :func:`cnnkit.run.load_run`; safetensors + JSON only).

Keras' ``compile`` / ``fit`` / ``evaluate`` / ``predict``:
:class:`cnnkit.keras.training.KerasModelMixin`.
"""
from cnnkit.run.folder import LoadedModel, load_run
from cnnkit.train.callbacks import (Callback, CSVLogger, EarlyStopping, JSONLinesLogger,
                                    LambdaCallback, ModelCheckpoint, ReduceLROnPlateau)
from cnnkit.train.checkpoint import load_checkpoint, restore_checkpoint, save_checkpoint
from cnnkit.train.config import TrainConfig
from cnnkit.train.losses import get_loss
from cnnkit.train.lr_finder import find_lr
from cnnkit.train.optimizers import build_optimizer
from cnnkit.train.pipeline import RunResult, train
from cnnkit.train.schedules import build_schedule
from cnnkit.train.trainer import History, Trainer

__all__ = [
    "CSVLogger", "Callback", "EarlyStopping", "History", "JSONLinesLogger",
    "LambdaCallback", "LoadedModel", "ModelCheckpoint", "ReduceLROnPlateau", "RunResult",
    "TrainConfig", "Trainer", "build_optimizer", "build_schedule", "find_lr", "get_loss",
    "load_checkpoint", "load_run", "restore_checkpoint", "save_checkpoint", "train",
]
