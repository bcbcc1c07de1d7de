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
from cnnkit._lazy import lazy_attributes

# public name -> the module that defines it, imported on first use (cnnkit._lazy)
_MODULE_OF = {
    "LoadedModel": "cnnkit.run.folder",
    "load_run": "cnnkit.run.folder",
    "Callback": "cnnkit.train.callbacks",
    "CSVLogger": "cnnkit.train.callbacks",
    "EarlyStopping": "cnnkit.train.callbacks",
    "JSONLinesLogger": "cnnkit.train.callbacks",
    "LambdaCallback": "cnnkit.train.callbacks",
    "ModelCheckpoint": "cnnkit.train.callbacks",
    "ReduceLROnPlateau": "cnnkit.train.callbacks",
    "load_checkpoint": "cnnkit.train.checkpoint",
    "restore_checkpoint": "cnnkit.train.checkpoint",
    "save_checkpoint": "cnnkit.train.checkpoint",
    "TrainConfig": "cnnkit.train.config",
    "get_loss": "cnnkit.train.losses",
    "find_lr": "cnnkit.train.lr_finder",
    "build_optimizer": "cnnkit.train.optimizers",
    "RunResult": "cnnkit.train.pipeline",
    "train": "cnnkit.train.pipeline",
    "build_schedule": "cnnkit.train.schedules",
    "History": "cnnkit.train.trainer",
    "Trainer": "cnnkit.train.trainer",
}
__getattr__, __dir__ = lazy_attributes(__name__, _MODULE_OF, globals())

__all__ = [
    "CSVLogger", "Callback", "EarlyStopping", "History", "JSONLinesLogger",
    "LambdaCallback", "LoadedModel", "ModelCheckpoint", "ReduceLROnPlateau", "RunResult",
    "TrainConfig", "Trainer", "build_optimizer", "build_schedule", "find_lr", "get_loss",
    "load_checkpoint", "load_run", "restore_checkpoint", "save_checkpoint", "train",
]
