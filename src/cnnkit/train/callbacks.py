"""Callbacks: small objects the Trainer calls at fixed points of the loop.

Hooks (all optional): ``on_train_begin(trainer)``, ``on_epoch_begin(trainer, epoch)``,
``on_batch_end(trainer, step, logs)``, ``on_epoch_end(trainer, epoch, logs)``,
``on_train_end(trainer, logs)``, and on a resume ``on_resume(trainer, epoch)``. ``epoch`` counts
from 1; ``logs`` is the epoch's metrics dict (``loss``, ``accuracy``, ``val_loss``,
``val_accuracy``, ``lr``, ...). A callback stops training by setting
``trainer.stop_training = True`` (Keras' name).

State: a callback that remembers something between epochs (a best value, a wait counter) returns
it from ``state_dict()`` (a dict of JSON values and tensors; the base class returns None:
nothing to save) and takes it back in ``load_state_dict(state)``. The Trainer saves the state of
every such callback in its checkpoints and restores it on a resume, so a resumed run makes the
same decisions as an uninterrupted one.
"""
from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnkit.errors import CheckpointError
from cnnkit.run.folder import save_weights

log = logging.getLogger(__name__)
# Decisions a user should see without --verbose (the CLI shows this logger at INFO).
events = logging.getLogger("cnnkit.train.events")


class Callback:
    """Base class: override the hooks you need (Keras-style)."""

    def on_train_begin(self, trainer) -> None:
        """Called once before the first epoch."""

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        """Called before each epoch (``epoch`` from 1)."""

    def on_batch_end(self, trainer, step: int, logs: dict[str, Any]) -> None:
        """Called after each optimizer step on the logging steps (``logs`` has ``loss``)."""

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        """Called after each epoch with its metrics."""

    def on_train_end(self, trainer, logs: dict[str, Any]) -> None:
        """Called once after the last epoch (also after early stopping)."""

    def on_resume(self, trainer, epoch: int) -> None:
        """Called when training resumes after ``epoch`` epochs, before ``on_train_begin``.

        The callback's own state is already loaded; the model, optimizer and scheduler state
        are not yet: rebuild here what the callback had built by then (gradual unfreezing adds
        the optimizer parameter groups the checkpoint holds).
        """

    def state_dict(self) -> dict[str, Any] | None:
        """What to save in checkpoints (JSON values and tensors), or None: nothing."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state_dict` returned (when resuming from a checkpoint)."""


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    if math.isnan(value):
        return False
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _check_mode(monitor: str, mode: str) -> str:
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode


class _Monitor(Callback):
    """Shared logic: follow one metric and count epochs without improvement."""

    def __init__(self, monitor: str, mode: str, min_delta: float):
        self.monitor = monitor
        self.mode = _check_mode(monitor, mode)
        self.min_delta = float(min_delta)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0

    def _value(self, logs: dict[str, Any]) -> float | None:
        if self.monitor not in logs:
            log.warning("%s: metric %r is not in the epoch logs (have: %s); skipping",
                        type(self).__name__, self.monitor, ", ".join(logs))
            return None
        return float(logs[self.monitor])

    def _update(self, value: float) -> bool:
        """Record ``value``; return True if it is a new best."""
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.wait = value, 0
            return True
        self.wait += 1
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "mode": self.mode, "best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = (state["monitor"], state["mode"])
        if saved != (self.monitor, self.mode):
            raise CheckpointError(
                f"{type(self).__name__} followed {saved[0]!r} (mode {saved[1]!r}) in the "
                f"checkpoint, but this one follows {self.monitor!r} (mode {self.mode!r}); resume "
                f"with {type(self).__name__}(monitor={saved[0]!r}, mode={saved[1]!r}), or start "
                "a new run to follow another metric")
        self.best, self.wait = float(state["best"]), int(state["wait"])


class EarlyStopping(_Monitor):
    """Stop training after ``patience`` epochs without improvement of ``monitor``.

    Args:
        monitor: metric name in the epoch logs (``val_loss`` by default).
        patience: epochs without improvement to tolerate.
        mode: ``min``, ``max`` or ``auto`` (``max`` for accuracies).
        min_delta: smallest change that counts as an improvement.
        restore_best_weights: at the end, load the weights of the best epoch.

    Example:
        >>> EarlyStopping(monitor="val_loss", patience=3)  # doctest: +ELLIPSIS
        <...EarlyStopping object at ...>
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, mode: str = "auto",
                 min_delta: float = 0.0, restore_best_weights: bool = False):
        super().__init__(monitor, mode, min_delta)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self.best_state: dict | None = None
        self.stopped_epoch: int | None = None
        self._resumed_stopped = False

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "stopped_epoch": self.stopped_epoch,
                "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.stopped_epoch = state["stopped_epoch"]
        self.best_state = state["best_state"]
        self._resumed_stopped = self.stopped_epoch is not None

    def on_train_begin(self, trainer):
        if self._resumed_stopped:  # the checkpoint was written when this callback stopped
            self._resumed_stopped = False
            trainer.stop_training = True
            log.info("the run was early-stopped at epoch %d: nothing left to train",
                     self.stopped_epoch)

    def on_epoch_end(self, trainer, epoch, logs):
        value = self._value(logs)
        if value is None:
            return
        if self._update(value):
            if self.restore_best_weights:
                self.best_state = {k: v.detach().clone()
                                   for k, v in trainer.model.state_dict().items()}
        elif self.wait >= max(1, self.patience):
            self.stopped_epoch = epoch
            trainer.stop_training = True
            events.info("early stopping at epoch %d: %s did not improve for %d epochs "
                        "(best %.4f)", epoch, self.monitor, self.wait, self.best)

    def on_train_end(self, trainer, logs):
        if self.restore_best_weights and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)


class ModelCheckpoint(_Monitor):
    """Save the model's weights (safetensors) whenever ``monitor`` improves.

    Args:
        path: the ``.safetensors`` file to write (atomically).
        monitor: metric to follow (``val_loss`` by default).
        mode: ``min``, ``max`` or ``auto``.
        save_best_only: False saves after every epoch.
    """

    def __init__(self, path: str | Path, monitor: str = "val_loss", mode: str = "auto",
                 save_best_only: bool = True):
        super().__init__(monitor, mode, 0.0)
        self.path = Path(path)
        self.save_best_only = save_best_only
        self.best_epoch: int | None = None

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.best_epoch = state["best_epoch"]

    def on_epoch_end(self, trainer, epoch, logs):
        value = self._value(logs)
        if value is None:
            return
        if self._update(value) or not self.save_best_only:
            save_weights(trainer.model, self.path)
            self.best_epoch = epoch
            log.info("epoch %d: %s=%.4f, saved %s", epoch, self.monitor, value, self.path)


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement.

    Works together with the per-step schedule: it scales the scheduler's base rates too, so the
    reduction survives the next scheduler step and is saved in checkpoints.

    Args:
        monitor: metric to follow (``val_loss`` by default).
        factor: multiplier in (0, 1).
        patience: epochs without improvement before reducing.
        min_lr: never go below this rate.
        cooldown: epochs after a reduction that do not count towards ``patience``.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 2,
                 mode: str = "auto", min_delta: float = 0.0, min_lr: float = 0.0,
                 cooldown: int = 0):
        super().__init__(monitor, mode, min_delta)
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        if isinstance(cooldown, bool) or not isinstance(cooldown, int) or cooldown < 0:
            raise ValueError(f"cooldown must be an int >= 0 (epochs), got {cooldown!r}")
        self.factor = float(factor)
        self.patience = int(patience)
        self.min_lr = float(min_lr)
        self.cooldown = cooldown
        self.cooldown_counter = 0

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.cooldown_counter = int(state["cooldown_counter"])

    def on_epoch_end(self, trainer, epoch, logs):
        value = self._value(logs)
        if value is None:
            return
        improved = self._update(value)
        in_cooldown = self.cooldown_counter > 0
        if in_cooldown:  # epochs right after a reduction do not count
            self.cooldown_counter -= 1
            self.wait = 0
        if improved or in_cooldown or self.wait < self.patience:
            return
        self.wait = 0
        self.cooldown_counter = self.cooldown
        scheduler = getattr(trainer, "scheduler", None)
        before = trainer.optimizer.param_groups[0]["lr"]
        for i, group in enumerate(trainer.optimizer.param_groups):
            new_lr = max(self.min_lr, group["lr"] * self.factor)
            ratio = new_lr / group["lr"] if group["lr"] else 1.0
            group["lr"] = new_lr
            if scheduler is not None and hasattr(scheduler, "base_lrs"):
                scheduler.base_lrs[i] *= ratio
        events.info("epoch %d: %s plateaued for %d epochs, learning rate dropped %.3g -> %.3g",
                    epoch, self.monitor, self.patience, before,
                    trainer.optimizer.param_groups[0]["lr"])


class CSVLogger(Callback):
    """Append one row per epoch to a CSV file (header from the first epoch's keys)."""

    def __init__(self, path: str | Path, append: bool = False):
        self.path = Path(path)
        self.append = append
        self._fields: list[str] | None = None

    def on_train_begin(self, trainer):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.append:
            self.path.write_text("", encoding="utf-8")

    def on_epoch_end(self, trainer, epoch, logs):
        row = {"epoch": epoch, **logs}
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        if self._fields is None:
            self._fields = list(row)
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=self._fields, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)


class JSONLinesLogger(Callback):
    """Append one JSON object per epoch (``{"epoch": 1, "loss": ..., ...}``) to a file."""

    def __init__(self, path: str | Path, append: bool = False):
        self.path = Path(path)
        self.append = append

    def on_train_begin(self, trainer):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.append:
            self.path.write_text("", encoding="utf-8")

    def on_epoch_end(self, trainer, epoch, logs):
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"epoch": epoch, **logs}) + "\n")
                f.flush()
        except OSError as exc:  # e.g. the disk is full: a user problem, not a crash
            raise CheckpointError(f"cannot append epoch {epoch} to the metrics log "
                                  f"{self.path}: {exc}; free some space and resume the run "
                                  "(the last checkpoint is intact)") from exc


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda t, e, l: ...)``."""

    def __init__(self, on_train_begin: Callable | None = None,
                 on_epoch_begin: Callable | None = None, on_batch_end: Callable | None = None,
                 on_epoch_end: Callable | None = None, on_train_end: Callable | None = None):
        for name, fn in (("on_train_begin", on_train_begin), ("on_epoch_begin", on_epoch_begin),
                         ("on_batch_end", on_batch_end), ("on_epoch_end", on_epoch_end),
                         ("on_train_end", on_train_end)):
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"{name} must be callable, got {fn!r}")
                setattr(self, name, fn)
