"""The training loop for any ``torch.nn.Module`` and any iterable of ``(x, y)`` batches.

One epoch, top to bottom::

    model.train()
    for x, y in loader:                                   # x (B, C, H, W), y (B,) or (B, K)
        with autocast(precision):  out = model(x)         # (B, K)
        loss = loss_fn(out, y);  loss.backward()
        clip_grad_norm_(grad_clip);  optimizer.step();  optimizer.zero_grad(set_to_none=True)
        scheduler.step();  ema.update()                   # per-step schedule, weight average
        metrics.update(loss, out, y)                      # on the device: no sync per batch
        every log_every steps (and when a ~10 s progress line is due): one .item(),
        NaN/inf check, progress bar or line

then evaluation on the validation loader, callbacks, and a checkpoint (``checkpoint_every``).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from cnnkit.errors import TrainingError
from cnnkit.train import distributed
from cnnkit.train.callbacks import Callback
from cnnkit.train.checkpoint import (load_checkpoint, restore_callbacks, restore_checkpoint,
                                     save_checkpoint)
from cnnkit.train.config import TrainConfig
from cnnkit.train.allocator import keep_freed_memory
from cnnkit.train.device import (resolve_channels_last, resolve_device, resolve_precision,
                                 use_fused_optimizer)
from cnnkit.train.losses import get_loss
from cnnkit.data.batching import move_targets
from cnnkit.tasks.classification import MetricAccumulator
from cnnkit.tasks.objective import Objective, detach
from cnnkit.train.optimizers import build_optimizer
from cnnkit.train.outputs import PROBS, flip_tta, output_kind, predict_proba
from cnnkit.train.progress import LINE_INTERVAL_S, EpochProgress
from cnnkit.train.schedules import ONECYCLE_PCT_START, build_schedule

log = logging.getLogger(__name__)
# What a user should see during a run even without --verbose (the CLI shows it at INFO):
# early stopping, learning-rate drops.
events = logging.getLogger("cnnkit.train.events")

# A learning rate that falls by this factor or more in one step is announced (the ``step``
# schedule's milestones), unless it is below LR_DROP_FLOOR of the peak: cosine and one-cycle
# fall that fast only in their last few steps, where the rate is already ~0.
LR_DROP_FACTOR = 2.0
LR_DROP_FLOOR = 0.01


class History:
    """Per-epoch metrics, Keras-style: ``history.history["val_accuracy"][-1]``.

    Attributes:
        epoch: the epochs recorded (from 1).
        history: metric name -> list of values, one per epoch.
    """

    def __init__(self):
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in
                                                       self.history.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        out = cls()
        out.epoch = list(d.get("epoch", []))
        out.history = {k: list(v) for k, v in d.get("history", {}).items()}
        return out


class Trainer:
    """Train, evaluate and checkpoint a classifier; the engine behind ``fit`` and ``cnnkit train``.

    Args:
        model: any ``nn.Module`` mapping a float batch (N, C, H, W) to class scores (N, K)
            (logits, or probabilities if it ends in a softmax: detected, see
            :func:`cnnkit.train.outputs.output_kind`).
        config: optimisation settings (optimizer, lr, schedule, precision, ...); the data/model
            fields are not used here.
        optimizer: an existing ``torch.optim.Optimizer`` to use instead of ``config.optimizer``.
        loss: a loss name or callable to use instead of ``config.loss``.
        class_weights: per-class weights for cross-entropy.
        callbacks: :class:`~cnnkit.train.callbacks.Callback` objects (the state of those that
            have one is saved in checkpoints and restored on a resume).
        checkpoint_dir: write resumable checkpoints there (None: no checkpoints).
        checkpoint_extra: JSON-able metadata stored in every checkpoint.
        progress: False: no progress output; None: a bar on a terminal, else a line on
            stderr every ``progress_interval`` seconds; True: a bar.
        log_every: steps between host syncs (running loss, NaN check, progress bar).
        progress_interval: seconds between progress lines when stderr is not a terminal.
        top_k: also report top-k accuracy.
        objective: the task's loss and metrics for localisation, segmentation or detection
            (:func:`cnnkit.tasks.objective.objective_for`); then ``y`` is a dict of target
            tensors and the model's ``loss`` is used (``loss``, ``class_weights`` and ``tta``
            do not apply). None: classification.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        TrainingError: during :meth:`fit`, a NaN or infinite loss.

    Example:
        >>> trainer = Trainer(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)),
        ...                   TrainConfig(epochs=2, schedule="constant"))
        >>> history = trainer.fit(train_batches, val_batches)  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, config: TrainConfig | None = None, *,
                 optimizer: torch.optim.Optimizer | None = None, loss: str | Callable | None = None,
                 class_weights: Sequence[float] | None = None,
                 callbacks: Iterable[Callback] = (), checkpoint_dir: str | Path | None = None,
                 checkpoint_extra: dict[str, Any] | None = None, progress: bool | None = None,
                 log_every: int = 50, top_k: int | None = None,
                 objective: Objective | None = None,
                 progress_interval: float = LINE_INTERVAL_S):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.config = config or TrainConfig()
        self.dist = distributed.current()  # rank / world size (one process: rank 0 of 1)
        self.device = distributed.local_device(resolve_device(self.config.device), self.dist)
        self.precision = resolve_precision(self.config.precision, self.device)
        if self.config.tune_allocator:
            keep_freed_memory()  # reuse freed activation/gradient buffers: no page faults
        if self.config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        self.model = model.to(self.device)
        self.channels_last = resolve_channels_last(self.config.channels_last, self.precision,
                                                   self.device)
        if self.channels_last:  # conv weights NHWC, so the activations follow
            self.model = self.model.to(memory_format=torch.channels_last)
        # Several processes: DDP all-reduces the gradients; self.model stays the plain module.
        trained = distributed.wrap_model(self.model, self.dist, sync_bn=self.config.sync_bn)
        self.forward = torch.compile(trained) if self.config.compile else trained
        self.output_kind = output_kind(model)
        self.objective = objective
        self.loss_fn = objective.loss if objective is not None else get_loss(loss if loss is not None else self.config.loss,
                                label_smoothing=self.config.label_smoothing,
                                class_weights=class_weights,
                                from_probs=self.output_kind == PROBS)
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn = self.loss_fn.to(self.device)
        c = self.config
        self.optimizer = optimizer or build_optimizer(
            c.optimizer, self.model.parameters(), lr=c.lr, momentum=c.momentum,
            nesterov=c.nesterov, weight_decay=c.weight_decay, eager=not c.compile)
        if optimizer is None and c.fused_optimizer:
            use_fused_optimizer(self.optimizer)
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision.use_scaler else None
        self.ema = (AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(c.ema),
                                  use_buffers=True) if c.ema else None)
        self.callbacks = list(callbacks)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_extra = dict(checkpoint_extra or {})
        self.progress = progress
        self.progress_interval = progress_interval
        self.log_every = max(1, int(log_every))
        self.top_k = top_k
        self.history = History()
        self.global_step = 0
        self.epoch = 0
        self.stop_training = False
        self.last_checkpoint_epoch: int | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def eval_model(self) -> nn.Module:
        """The model used for evaluation and the final weights (the EMA copy when enabled)."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def _eval_forward(self) -> Callable:
        # DDP's forward may broadcast buffers (a collective): evaluate the plain module instead.
        return self.forward if self.ema is None and not self.dist.enabled else self.eval_model

    def _to_device(self, x: torch.Tensor, y):
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, (None if y is None else move_targets(y, self.device, non_blocking=True))

    def _new_metrics(self, *, training: bool = False, confusion: bool = False):
        if self.objective is not None:
            return self.objective.metrics(training=training)
        return MetricAccumulator(confusion=confusion, top_k=self.top_k)

    @property
    def main_metric(self) -> str:
        """The metric the task is judged by (``accuracy``, ``mean_iou``, ``miou``, ``map50``)."""
        return "accuracy" if self.objective is None else self.objective.main_metric

    def _call(self, event: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, event)(self, *args)

    def _last_good(self) -> str:
        if self.last_checkpoint_epoch is None:
            return "no checkpoint was written before it"
        return (f"the last good checkpoint (epoch {self.last_checkpoint_epoch}) is in "
                f"{self.checkpoint_dir}")

    def _diverged(self, what: str, epoch: int) -> TrainingError:
        lr = self.optimizer.param_groups[0]["lr"]
        return TrainingError(
            f"{what} at epoch {epoch}, step {self.global_step}: training diverged; "
            f"{self._last_good()}. Lower the learning rate (lr={lr:g}, try {lr / 10:g}) "
            "or set grad_clip (e.g. 1.0)")

    def _out_of_memory(self, exc: RuntimeError, batch: int) -> TrainingError:
        return TrainingError(
            f"out of memory on {self.device} with a batch of {batch} images ({exc}); "
            f"{self._last_good()}. Use a smaller batch size (--batch-size {max(1, batch // 2)}), "
            "a smaller input size or model, or --precision bf16")

    def _check_finite_weights(self, epoch: int) -> None:
        """Refuse to go on (and to checkpoint) when a step left NaN/inf in the weights."""
        bad = [name for name, p in self.model.named_parameters()
               if not torch.isfinite(p).all()]
        if bad:
            raise self._diverged(f"the weights {bad[:3]} hold NaN or inf", epoch)

    # ------------------------------------------------------------------ one epoch
    def _build_scheduler(self, steps_per_epoch: int, epochs: int) -> None:
        warmup = round(self.config.warmup_epochs * steps_per_epoch)
        if warmup and self.config.schedule == "onecycle":
            log.warning("warmup_epochs=%g is not used: the onecycle schedule warms up over its "
                        "own first %d %% of the steps; drop warmup_epochs, or use --schedule "
                        "cosine for a separate linear warm-up", self.config.warmup_epochs,
                        round(ONECYCLE_PCT_START * 100))
        self.scheduler = build_schedule(self.config.schedule, self.optimizer,
                                        total_steps=max(1, steps_per_epoch * epochs),
                                        warmup_steps=min(warmup, steps_per_epoch * epochs))

    def _backward(self, x: torch.Tensor, y: torch.Tensor,
                  weight: float) -> tuple[torch.Tensor, torch.Tensor]:
        with self.precision.autocast(self.device):
            out = self.forward(x)
        loss = self.loss_fn(out if self.objective is not None else out.float(), y)
        scaled = loss * weight if weight != 1.0 else loss
        (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        return loss.detach(), detach(out)

    def _forward_backward(self, x: torch.Tensor,
                          y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients of the batch's mean loss, in ``config.accumulate_steps`` micro-batches.

        Each micro-batch's mean loss is weighted by its share of what the loss averages over
        (images; for segmentation the pixels not ignored, for detection the objects:
        ``Objective.batch_weight``), so the summed gradient equals the whole batch's (a Dice
        term, computed over the whole batch, is the exception); under DDP only the last
        micro-batch all-reduces.

        Shape:
            x (B, C, H, W), y (B,) or (B, K) -> mean loss (), outputs (B, K).
        """
        steps = self.config.accumulate_steps
        if steps == 1:
            return self._backward(x, y, 1.0)
        chunks = [(xc, yc) for xc, yc in zip(x.tensor_split(steps), _split(y, steps))
                  if len(xc)]
        losses, outs = [], []
        share = (self.objective.batch_weight if self.objective is not None
                 else lambda targets: float(len(targets)))
        total = share(y)
        for i, (xc, yc) in enumerate(chunks):
            weight = share(yc) / total if total else len(xc) / len(x)
            with distributed.no_sync(self.forward) if i < len(chunks) - 1 else nullcontext():
                loss, out = self._backward(xc, yc, weight)
            losses.append(loss * weight)
            outs.append(out)
        return torch.stack(losses).sum(), _cat(outs)

    def _announce_lr_drop(self, before: float) -> None:
        """Log (``cnnkit.train.events``) a learning rate that fell >= 2x in this step."""
        after = self.optimizer.param_groups[0]["lr"]
        if after * LR_DROP_FACTOR <= before and after >= LR_DROP_FLOOR * self.config.lr:
            events.info("after step %d (epoch %d): learning rate dropped %.3g -> %.3g (%s "
                        "schedule)",
                        self.global_step, self.epoch + 1, before, after, self.config.schedule)

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lr_before = self.optimizer.param_groups[0]["lr"]
        loss, out = self._forward_backward(x, y)
        if self.scaler is not None:
            if self.config.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            if self.config.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.global_step += 1
        if self.dist.is_main:
            self._announce_lr_drop(lr_before)
        return loss, out

    def train_epoch(self, loader: Iterable, epoch: int, epochs: int) -> dict[str, float]:
        """Run one epoch over ``loader``; return ``{"loss", "accuracy", "images_per_s"}``.

        Raises:
            TrainingError: the loss became NaN or infinite.
        """
        self.model.train()
        metrics = self._new_metrics(training=True)
        total = len(loader) if hasattr(loader, "__len__") else None
        bar = EpochProgress(total, epoch, epochs, enabled=self.progress if self.dist.is_main
                            else False, interval=self.progress_interval)
        try:
            for x, y in loader:
                x, y = self._to_device(x, y)
                try:
                    loss, out = self._train_step(x, y)
                except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError too
                    if not _is_out_of_memory(exc):
                        raise
                    raise self._out_of_memory(exc, len(x)) from exc
                metrics.update(loss, out, y)
                bar.update(len(x))
                log_step = self.global_step % self.log_every == 0
                if log_step or bar.line_due():  # line_due: rank 0 only, never a collective
                    running = metrics.compute()
                    if not math.isfinite(running["loss"]):
                        raise self._diverged(f"the training loss became {running['loss']}", epoch)
                    bar.set_metrics(running["loss"], running.get(self.main_metric),
                                    "acc" if self.objective is None else self.main_metric)
                    if log_step:
                        self._call("on_batch_end", self.global_step, running)
        finally:
            bar.close()
        distributed.reduce_metrics(metrics)  # over every rank's images
        logs = {k: v for k, v in metrics.compute().items() if isinstance(v, (int, float))}
        if not math.isfinite(logs["loss"]):
            raise self._diverged(f"the training loss became {logs['loss']}", epoch)
        logs["images_per_s"] = bar.images_per_second() * self.dist.world_size
        return logs

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, loader: Iterable, *, tta: bool | None = None,
                 confusion: bool = False, fp32: bool = False) -> dict[str, Any]:
        """Mean loss and accuracy over ``loader`` (and the confusion matrix with ``confusion``).

        Args:
            loader: iterable of ``(x, y)`` batches.
            tta: average with the horizontal flip (None: ``config.tta``).
            confusion: add ``"confusion_matrix"``, an int64 (K, K) tensor (rows = true class).
            fp32: evaluate without autocast (as ``cnnkit evaluate`` does), whatever the
                training precision: the final test figures then equal ``cnnkit evaluate``'s.

        Example:
            >>> trainer.evaluate(test_batches)["accuracy"]  # doctest: +SKIP
            0.97
        """
        tta = (self.config.tta if tta is None else tta) and self.objective is None
        model = self.eval_model
        distributed.broadcast_buffers(model)  # every rank evaluates rank 0's BN statistics
        was_training = model.training
        model.eval()
        metrics = self._new_metrics(confusion=confusion)
        forward = self._eval_forward
        try:
            for x, y in loader:
                x, y = self._to_device(x, y)
                with self.precision.autocast(self.device) if not fp32 else nullcontext():
                    out = flip_tta(forward, x, self.output_kind) if tta else forward(x)
                if self.objective is not None:
                    metrics.update(self.loss_fn(out, y), out, y)
                else:
                    metrics.update(self.loss_fn(out.float(), y), out.float(), y)
        finally:
            model.train(was_training)
        distributed.reduce_metrics(metrics)  # each rank evaluated its shard: sum them
        logs: dict[str, Any] = metrics.compute()
        if confusion and metrics.count and self.objective is None:
            logs["confusion_matrix"] = metrics.confusion()
        return logs

    def predict_proba(self, batches: Iterable, *, tta: bool | None = None) -> torch.Tensor:
        """Class probabilities for every input, in order (the EMA model when enabled).

        Args:
            batches: iterable of ``x`` tensors or ``(x, y)`` pairs (``y`` ignored).

        Shape:
            (N, K) float32 on the CPU.
        """
        tta = self.config.tta if tta is None else tta
        forward = self._eval_forward
        return predict_proba(self.eval_model, batches, device=self.device, tta=tta,
                             forward=forward,
                             autocast=lambda: self.precision.autocast(self.device))

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        """Write the resumable state to ``checkpoint_dir`` (history included).

        In a multi-process run only rank 0 writes (all ranks hold the same weights); the
        weights are the plain module's, so any number of processes can resume them.
        """
        if self.checkpoint_dir is None:
            raise ValueError("this Trainer has no checkpoint_dir; create it with "
                             "Trainer(..., checkpoint_dir='run/checkpoint')")
        extra = {**self.checkpoint_extra, "history": self.history.to_dict()}
        if not self.dist.is_main:
            self.last_checkpoint_epoch = self.epoch
            return self.checkpoint_dir / "last.json"
        path = save_checkpoint(self.checkpoint_dir, model=self.model, optimizer=self.optimizer,
                               scheduler=self.scheduler, ema=self.ema, scaler=self.scaler,
                               callbacks=self.callbacks, epoch=self.epoch,
                               global_step=self.global_step, extra=extra)
        self.last_checkpoint_epoch = self.epoch
        return path

    def _resume(self, folder: str | Path) -> None:
        ckpt = load_checkpoint(folder)
        # Callbacks first: their state, then what they had built by this epoch (gradual
        # unfreezing's optimizer groups), so the optimizer and scheduler state fit.
        restore_callbacks(ckpt, self.callbacks)
        for cb in self.callbacks:
            if hasattr(cb, "on_resume"):
                cb.on_resume(self, ckpt.epoch)
        restore_checkpoint(ckpt, model=self.model, optimizer=self.optimizer,
                           scheduler=self.scheduler, ema=self.ema, scaler=self.scaler)
        self.epoch, self.global_step = ckpt.epoch, ckpt.global_step
        self.history = History.from_dict(ckpt.extra.get("history", {}))
        self.last_checkpoint_epoch = ckpt.epoch
        log.info("resumed from %s at epoch %d (step %d)", ckpt.path, self.epoch, self.global_step)

    # ------------------------------------------------------------------ fit
    def fit(self, train_loader: Iterable, val_loader: Iterable | None = None, *,
            epochs: int | None = None, resume_from: str | Path | None = None) -> History:
        """Train for ``epochs`` (default ``config.epochs``), evaluating on ``val_loader``.

        A loader with ``set_epoch(e)`` gets the 0-based epoch before each pass, so its order
        is a function of (seed, epoch) and a resumed run sees the same batches.

        Args:
            train_loader: iterable of ``(x, y)`` batches with a ``len``.
            val_loader: optional validation batches (adds ``val_loss``, ``val_accuracy``).
            epochs: total epochs, counting those already done before a resume.
            resume_from: a checkpoint folder to continue from (same config, data and
                stateful callbacks).

        Returns:
            The :class:`History` (also kept as ``trainer.history``).

        Raises:
            TrainingError: NaN/inf loss (the last good checkpoint is kept).
            CheckpointError: ``resume_from`` has no intact checkpoint or does not fit.
        """
        epochs = self.config.epochs if epochs is None else epochs
        if not hasattr(train_loader, "__len__") or len(train_loader) == 0:
            raise ValueError("train_loader must be a non-empty iterable with a length "
                             f"(len(loader) batches), got {train_loader!r}")
        self._build_scheduler(len(train_loader), epochs)
        if resume_from is not None:
            self._resume(resume_from)
            if self.epoch >= epochs:
                log.info("checkpoint already at epoch %d of %d: nothing to do", self.epoch, epochs)
        self.stop_training = False
        self._call("on_train_begin")
        logs: dict[str, Any] = {}
        try:
            while self.epoch < epochs and not self.stop_training:
                epoch = self.epoch + 1
                self._call("on_epoch_begin", epoch)
                for loader in (train_loader, val_loader):
                    if hasattr(loader, "set_epoch"):
                        loader.set_epoch(epoch - 1)
                start = time.perf_counter()
                logs = self.train_epoch(train_loader, epoch, epochs)
                if val_loader is not None:
                    val = self.evaluate(val_loader)
                    # epoch logs hold numbers only (per-class lists stay in evaluate's result)
                    logs.update({f"val_{k}": v for k, v in val.items()
                                 if isinstance(v, (int, float))})
                logs["lr"] = self.optimizer.param_groups[0]["lr"]
                logs["time_s"] = time.perf_counter() - start
                self._check_finite_weights(epoch)
                self.epoch = epoch
                self.history.append(epoch, logs)
                self._call("on_epoch_end", epoch, logs)
                if self.checkpoint_dir is not None and (
                        epoch % self.config.checkpoint_every == 0 or epoch == epochs
                        or self.stop_training):
                    self.save_checkpoint()
        except KeyboardInterrupt:
            log.warning("interrupted during epoch %d; last checkpoint: epoch %s in %s",
                        self.epoch + 1, self.last_checkpoint_epoch, self.checkpoint_dir)
            raise
        self._call("on_train_end", logs)
        return self.history


def _split(y, steps: int) -> list:
    """``y`` (a tensor or a dict of tensors) in ``steps`` chunks along dim 0."""
    if isinstance(y, torch.Tensor):
        return list(y.tensor_split(steps))
    parts = {key: value.tensor_split(steps) for key, value in y.items()}
    return [{key: chunks[i] for key, chunks in parts.items()} for i in range(steps)]


def _cat(outs: list):
    """Micro-batch outputs (tensors, or dicts of tensors) joined along dim 0."""
    if isinstance(outs[0], torch.Tensor):
        return torch.cat(outs)
    return {key: torch.cat([o[key] for o in outs]) for key in outs[0]}


def _is_out_of_memory(exc: RuntimeError) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's "can't allocate memory"."""
    text = str(exc).lower()
    return (isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text
            or "can't allocate memory" in text)
