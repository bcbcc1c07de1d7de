"""``train(config)``: data → model → Trainer → run folder, the whole of ``cnnkit train``.

``train`` runs four named steps, each a function of its own so that a new task (boxes, masks)
can replace one without copying the others:

1. :func:`open_training_data` — open ``config.data``, fit the normalisation on the training
   images and build the loaders (in memory, or streamed for big image folders); returns a
   :class:`TrainingData`.
2. :func:`build_run_model` — the registry model or spec-string ``Sequential`` sized for the
   data (or ``model_builder``'s), set up from a sample of the data (``prepare_model``).
3. :func:`fit_model` — the run folder's own callbacks (metrics.jsonl, augmentation epochs,
   early stopping, TensorBoard event files) and ``Trainer.fit`` with a checkpoint every epoch.
4. :func:`write_results` — weights.safetensors, the test evaluation, results.json and
   curves.png.

Before step 3, :func:`write_run_files` writes config.json, model.json and summary.txt.
``train(resume="RUN")`` reads RUN/config.json and continues from RUN/checkpoint.
"""
from __future__ import annotations

import difflib
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnkit import run as rf
from cnnkit._checks import format_shape_hwc
from cnnkit.augment import parse_augment
from cnnkit.augment.targets import parse_task_augment
from cnnkit.data.open_annotated import infer_task, open_annotated
from cnnkit.data.loader import InMemoryLoader
from cnnkit.data.normalization import Normalization
from cnnkit.data.open import image_folder_root, open_data
from cnnkit.data.stream import (STREAM_ABOVE_BYTES, StreamingLoader, decoded_bytes,
                                fit_normalization, folder_file_splits)
from cnnkit.errors import CheckpointError
from cnnkit.inspect.summary import summary
from cnnkit.models import registry
from cnnkit.models.sequential import Sequential
from cnnkit.run.atomic import atomic_write_text
from cnnkit.train import distributed
from cnnkit.train.callbacks import Callback, EarlyStopping, JSONLinesLogger
from cnnkit.train.checkpoint import Checkpoint, has_checkpoint, load_checkpoint
from cnnkit.tasks.build import DEFAULT_BACKBONE, task_model
from cnnkit.tasks.objective import MAIN_METRIC, objective_for
from cnnkit.train.config import DEFAULT_MODEL, TrainConfig
from cnnkit.train.device import resolve_device
from cnnkit.train.recipes import prepare_model
from cnnkit.train.tensorboard import TENSORBOARD_DIR, TensorBoardLogger, resolve_tensorboard
from cnnkit.train.trainer import History, Trainer
from cnnkit.viz import curves_job

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What ``train`` returns: the folder, the trained model and its metrics."""

    out: Path
    model: nn.Module
    history: History
    results: dict[str, Any]
    class_names: list[str]


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), Python's ``random`` and NumPy with one number."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def build_model(name_or_spec: str, *, num_classes: int, input_shape: tuple[int, int, int],
                stem: str = "auto", rounding: str = "warn"):
    """A registry model (``"lenet5"``) or a Sequential from a spec string, sized for the data.

    Args:
        stem: ``TrainConfig.stem``; anything but ``"auto"`` is passed to the registry model
            (ResNets take it).
        rounding: ``TrainConfig.rounding`` for an architecture string's layers.

    Raises:
        ValueError: neither a registry name nor a valid spec (the spec parser's message), or a
            ``stem`` for a model without one.
    """
    c, h, w = input_shape
    options = {} if stem == "auto" else {"stem": stem}
    if name_or_spec in registry.names():
        try:
            return registry.create(name_or_spec, num_classes=num_classes, in_channels=c,
                                   input_size=(h, w), **options)
        except TypeError as error:
            if options and "stem" in str(error):
                raise ValueError(f"stem={stem!r}: {name_or_spec} has no choice of stem (the "
                                 "ResNets have one); remove --stem") from error
            raise
    if options:
        raise ValueError(f"stem={stem!r} applies to registry ResNets, not to the architecture "
                         f"string {name_or_spec!r}; remove --stem")
    try:
        model = Sequential.from_spec(name_or_spec, format_shape_hwc(input_shape),
                                     num_classes=num_classes, rounding=rounding)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z_][\w-]*", name_or_spec.strip()):
            raise
        # one bare word that is no layer: a model name, probably mistyped
        close = difflib.get_close_matches(name_or_spec.strip(), registry.names(), n=3)
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        raise ValueError(f"unknown model {name_or_spec!r}; {hint}`cnnkit models` lists the "
                         "models, or give an architecture string such as "
                         "'conv(16,3) relu maxpool(2) fc(10)'") from None
    outputs = model.num_classes  # None for a backbone without a classifier (task models)
    if outputs is not None and outputs != num_classes:
        if name_or_spec != DEFAULT_MODEL:
            raise ValueError(f"the model ends in {outputs} outputs but the data has {num_classes} "
                             f"classes; end the architecture string with fc({num_classes})")
        model.reset_head(num_classes)  # the default spec's fc(10) stands for "one per class"
    return model


class EpochAugment:
    """An augmentation rebuilt each epoch with seed ``f(seed, epoch)``, so resuming is exact.

    Shape:
        ``(x, y) -> (x, y)`` as ``cnnkit.augment`` (y may become (N, K) soft labels); for
        the other tasks ``y`` is the dict of boxes / masks, moved with the image.
    """

    def __init__(self, spec: str, *, num_classes: int, seed: int, task: str = "classify"):
        self.spec, self.num_classes, self.seed, self.task = spec, num_classes, seed, task
        self.pipeline = self._parse(seed)

    def _parse(self, seed: int):
        if self.task == "classify":
            return parse_augment(self.spec, num_classes=self.num_classes, seed=seed)
        # localize/segment/detect: geometric ops move the boxes and masks with the image
        return parse_task_augment(self.spec, self.task, seed=seed)

    def set_epoch(self, epoch: int) -> None:
        self.pipeline = self._parse(self.seed * 100_003 + epoch)

    def __call__(self, x: torch.Tensor, y: torch.Tensor):
        return self.pipeline(x, y)


class _SetAugmentEpoch(Callback):
    def __init__(self, augment: EpochAugment):
        self.augment = augment

    def on_epoch_begin(self, trainer, epoch):
        self.augment.set_epoch(epoch - 1)


def default_run_folder() -> Path:
    """Where a run goes without ``out``: ``runs/run-<date>-<time>``."""
    return Path("runs") / time.strftime("run-%Y%m%d-%H%M%S")


def _prepare_out(config: TrainConfig, resume: bool, overwrite: bool) -> Path:
    out = Path(config.out) if config.out else default_run_folder()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file, not a folder; choose a folder for the "
                         "run (a new one, or an earlier run's)")
    has_run = (out / rf.CONFIG_FILE).exists() or (out / rf.CHECKPOINT_DIR).exists()
    if has_run and not resume and not overwrite:
        raise ValueError(f"run folder {str(out)!r} already holds a run; continue it with "
                         f"--resume {out}, choose another --out, or pass --overwrite")
    if not has_run and not overwrite and out.is_dir() and any(out.iterdir()):
        # never write a run between a user's own files unless asked to (nothing is deleted)
        raise ValueError(f"--out {str(out)!r} is a folder of other files, not a run; choose a "
                         "new or empty folder, or pass --overwrite to add the run's files to it "
                         "(nothing there is deleted)")
    if has_run:
        # an earlier run's curves.png may still be drawing (curves="background"): let it land
        # now, not over this run's files later
        curves_job.wait_for(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass
class TrainingData:
    """What the training run needs from its data, whether held in memory or streamed.

    The result of step 1 (:func:`open_training_data`); a task with other targets (boxes,
    masks) returns its own loaders in the same fields.
    """

    class_names: list[str]
    input_shape: tuple[int, int, int]
    normalization: Any
    sample: torch.Tensor  # uint8 (n <= 5000, C, H, W) training images, for prepare_model
    n_train: int
    train_loader: Any
    val_loader: Any
    test_loader: Any
    streamed: bool
    task: str = "classify"


def resolve_task(config: TrainConfig) -> str:
    """``config.task``, or with ``auto`` the task the data is laid out for (cheap: no decoding).

    Raises:
        DataError: ``config.data`` names nothing that exists.
    """
    if config.task != "auto":
        return config.task
    return infer_task(config.data)


def open_training_data(config: TrainConfig, ctx: distributed.DistributedContext,
                       device: torch.device) -> TrainingData:
    """Step 1: open ``config.data`` and build the loaders (in memory, or streamed from disk).

    Image folders above ``STREAM_ABOVE_BYTES`` decoded (or ``config.stream=True``) are streamed
    by worker processes; every other source is read into memory. Training loaders: rank r
    takes every world_size-th index of the epoch's permutation, B/world_size per step, so the
    ranks' batches at step t together are the one-process batch t.

    Raises:
        ValueError / DataError: bad ``config.data``, or ``stream=True`` on a non-folder source.

    Example:
        >>> ctx = distributed.init_from_env()  # doctest: +SKIP
        >>> data = open_training_data(TrainConfig(), ctx, torch.device("cpu"))  # doctest: +SKIP
    """
    task = resolve_task(config)
    if task != "classify":
        return _annotated_data(config, task, ctx, device)
    root = image_folder_root(config.data)
    stream = config.stream
    if stream and root is None:
        raise ValueError(f"stream=True needs a folder of class sub-folders of images, got "
                         f"data={config.data!r}; other sources are read into memory (drop "
                         "--stream)")
    if stream is None and root is not None:
        files = folder_file_splits(root).train
        size = None if config.input_size is None else (config.input_size, config.input_size)
        stream = decoded_bytes(files, size=size) > STREAM_ABOVE_BYTES
    per_rank = distributed.per_rank_batch_size(config.batch_size, ctx.world_size)
    common = {"seed": config.seed, "device": device, "channels_last": config.channels_last}
    if stream:
        return _streamed_data(root, config, ctx, per_rank, common)

    splits = open_data(config.data, data_dir=config.data_dir, val_split=config.val_split,
                       seed=config.seed, size=config.input_size, download=config.download,
                       allow_label_gaps=config.allow_label_gaps)
    normalization = Normalization.fit(splits.train.images)

    def evaluation(part):
        # Several processes: each evaluates its own unpadded shard (metrics are all-reduced).
        if part is None:
            return None
        return InMemoryLoader(distributed.shard_data(part, ctx), batch_size=config.batch_size,
                              shuffle=False, normalization=normalization, **common)

    train_loader = InMemoryLoader(splits.train, batch_size=per_rank, shuffle=True,
                                  normalization=normalization, rank=ctx.rank,
                                  world_size=ctx.world_size, **common)
    return TrainingData(list(splits.train.class_names),
                         tuple(splits.train.images.shape[1:]),  # (N, C, H, W) -> (C, H, W)
                         normalization, splits.train.images[:5000], len(splits.train),
                         train_loader, evaluation(splits.val), evaluation(splits.test), False)


def _annotated_data(config: TrainConfig, task: str, ctx: distributed.DistributedContext,
                    device: torch.device) -> TrainingData:
    """In-memory loaders of a localise / segment / detect dataset (targets are dicts)."""
    if config.stream:
        raise ValueError(f"stream=True is for folders of class sub-folders; {task} data is read "
                         "into memory (drop --stream)")
    size = None if config.input_size is None else (config.input_size, config.input_size)
    splits = open_annotated(config.data, task=task, val_split=config.val_split, seed=config.seed,
                            size=size, data_dir=config.data_dir, image_root=config.image_root)
    normalization = Normalization.fit(splits.train.images)
    per_rank = distributed.per_rank_batch_size(config.batch_size, ctx.world_size)
    common = {"seed": config.seed, "device": device, "channels_last": config.channels_last,
              "normalization": normalization}

    def evaluation(part):
        if part is None:
            return None
        return InMemoryLoader(distributed.shard_data(part, ctx), batch_size=config.batch_size, shuffle=False, **common)

    train_loader = InMemoryLoader(splits.train, batch_size=per_rank, shuffle=True,
                                  rank=ctx.rank, world_size=ctx.world_size, **common)
    return TrainingData(list(splits.class_names), splits.input_shape, normalization,
                        splits.train.images[:5000], len(splits.train), train_loader,
                        evaluation(splits.val), evaluation(splits.test), False, task)


def _streamed_data(root, config: TrainConfig, ctx, per_rank: int, common: dict) -> TrainingData:
    """Loaders that decode ``root``'s files in worker processes every epoch (big folders)."""
    parts = folder_file_splits(root, val_split=config.val_split, seed=config.seed)
    size = config.input_size
    shard = {"rank": ctx.rank, "world_size": ctx.world_size}
    train_loader = StreamingLoader(parts.train, parts.class_names, batch_size=per_rank,
                                   shuffle=True, size=size, **shard, **common)
    normalization = fit_normalization(train_loader, seed=config.seed)
    train_loader.normalization = normalization

    def evaluation(files):
        # Several processes: each evaluates its shard; the last one repeats up to N-1 files.
        if files is None:
            return None
        return StreamingLoader(files, parts.class_names, batch_size=config.batch_size,
                               shuffle=False, size=train_loader.input_shape[1:],
                               channels=train_loader.input_shape[0],
                               normalization=normalization, **shard, **common)

    sample = torch.stack([train_loader.dataset[i][0] for i in range(min(64, len(parts.train)))
                          if train_loader.dataset[i][0] is not None])
    return TrainingData(parts.class_names, train_loader.input_shape, normalization, sample,
                         len(parts.train), train_loader, evaluation(parts.val),
                         evaluation(parts.test), True)


def build_run_model(config: TrainConfig, data: TrainingData,
                    model_builder: Callable[[int, tuple[int, int, int]], nn.Module] | None = None
                    ) -> nn.Module:
    """Step 2: the model for ``data`` (``config.model``, or ``model_builder``'s), set up from it.

    Models that set themselves up from data (airbench's frozen patch-whitening conv) do it
    here, before the optimizer sees which parameters are trainable; a resumed run then
    overwrites the weights from its checkpoint.

    Args:
        config: ``config.model`` is a registry name or a spec string.
        data: step 1's result (classes, input shape, normalisation, a sample of images).
        model_builder: ``(num_classes, input_shape (C, H, W)) -> model`` instead of
            ``config.model``.

    Shape:
        the model maps (N, C, H, W) = (N, *data.input_shape) -> (N, len(data.class_names)).

    Raises:
        ValueError: ``config.model`` is neither a registry name nor a valid spec.

    Example:
        >>> model = build_run_model(TrainConfig(model="lenet5"), data)  # doctest: +SKIP
    """
    num_classes = len(data.class_names)
    if model_builder is not None:
        model = model_builder(num_classes, data.input_shape)
    elif data.task != "classify":
        # the default spec is the digits classifier: a task gets its own default backbone
        spec = DEFAULT_BACKBONE if config.model == DEFAULT_MODEL else config.model
        backbone = build_model(spec, num_classes=num_classes, input_shape=data.input_shape,
                               rounding=config.rounding)
        model = task_model(data.task, backbone, num_classes, config.head)
    else:
        model = build_model(config.model, num_classes=num_classes, input_shape=data.input_shape,
                            stem=config.stem, rounding=config.rounding)
    prepare_model(model, data.normalization.apply(data.sample))
    log.info("data %s (%s): %d train images %s, %d classes%s; model %s", config.data,
             data.task, data.n_train, format_shape_hwc(data.input_shape), num_classes,
             " (streamed from disk)" if data.streamed else "", config.model)
    return model


def write_summary(run: str | Path, model: nn.Module, input_shape: Sequence[int]) -> None:
    """Write ``RUN/summary.txt`` with ``cnnkit.inspect.summary`` (skipped if it cannot trace)."""
    try:
        text = str(summary(model, format_shape_hwc(tuple(input_shape))))
    except (ValueError, TypeError, RuntimeError) as exc:
        log.warning("could not write the model summary: %s", exc)
        return
    atomic_write_text(Path(run) / rf.SUMMARY_FILE, text + "\n")


CURVES_WHEN = ("now", "background")


def write_curves(run: str | Path, *, when: str = "now") -> Path | None:
    """Draw ``RUN/curves.png`` from ``metrics.jsonl`` (``cnnkit.viz.curves``; None: no epochs).

    ``when="background"`` starts a process that draws it (:mod:`cnnkit.viz.curves_job`, the
    same picture) and returns at once: ``cnnkit train`` exits ~0.9 s sooner (#19 item 1).
    """
    if when not in CURVES_WHEN:
        raise ValueError(f"curves must be one of {', '.join(CURVES_WHEN)}, got {when!r}")
    records = rf.read_metrics(run)
    if not records:
        return None
    if when == "background":
        curves_job.start(Path(run) / rf.METRICS_FILE, Path(run) / rf.CURVES_FILE)
        return Path(run) / rf.CURVES_FILE
    # import cost: matplotlib takes ~0.5 s to import (bench/RESULTS.md), paid only here
    from cnnkit.viz.curves import plot_training_curves  # lazy: import cost

    path = Path(run) / rf.CURVES_FILE
    plot_training_curves(records, path=path)
    return path


def write_run_files(out: Path, config: TrainConfig, model: nn.Module, data: TrainingData) -> None:
    """Write what a new run folder holds before training: config.json, model.json, summary.txt."""
    rf.write_json(out / rf.CONFIG_FILE, config.to_dict())
    rf.write_json(out / rf.MODEL_FILE, rf.model_metadata(model, data.class_names,
                                                         data.normalization, data.input_shape,
                                                         task=data.task))
    # a task model's output is a dict or a map: the summary shows its backbone's layers
    write_summary(out, model if data.task == "classify" else model.backbone, data.input_shape)


def fit_model(config: TrainConfig, model: nn.Module, data: TrainingData, out: Path, *,
              ctx: distributed.DistributedContext, resume: bool = False,
              callbacks: Iterable[Callback] = (), progress: bool | None = None
              ) -> tuple[Trainer, History]:
    """Step 3: train ``model`` on ``data`` with the run folder's callbacks and checkpoints.

    The run's own callbacks come first: ``metrics.jsonl`` (rank 0 only), the per-epoch
    augmentation seed (``config.augment``), early stopping (``config.early_stopping``, on
    ``val_loss`` when there is a validation split), TensorBoard event files in
    ``out/tensorboard`` (``config.tensorboard``, rank 0 only); then ``callbacks``.

    Args:
        config: the run's settings (epochs, optimizer, ...).
        model: step 2's model.
        data: step 1's loaders (``data.train_loader.augment`` is set here).
        out: the run folder; checkpoints go to ``out/checkpoint``.
        ctx: the process group (``distributed.init_from_env()``).
        resume: continue from ``out/checkpoint`` and append to ``metrics.jsonl``.
        callbacks: extra callbacks.
        progress: show a progress bar (None: on a terminal only).

    Returns:
        The :class:`Trainer` (its ``eval_model`` holds the final weights) and its history.

    Raises:
        TrainingError: NaN/inf loss (the last good checkpoint is kept).
        ValueError: ``config.tensorboard`` is True but tensorboard is not installed.

    Example:
        >>> trainer, history = fit_model(config, model, data, out, ctx=ctx)  # doctest: +SKIP
    """
    num_classes = len(data.class_names)
    own_callbacks: list[Callback] = []
    if ctx.is_main:
        own_callbacks.append(JSONLinesLogger(out / rf.METRICS_FILE, append=resume))
    if config.augment.strip():
        # Each rank draws its own augmentations (seeds differ by rank).
        augment = EpochAugment(config.augment, num_classes=num_classes,
                               seed=config.seed + 1_000_003 * ctx.rank, task=data.task)
        own_callbacks.append(_SetAugmentEpoch(augment))
        data.train_loader.augment = augment
    if config.early_stopping:
        # classify: the validation loss; the other tasks: their main metric (mIoU, mAP@0.5)
        if data.val_loader is None:
            monitor, mode = "loss", "min"
        elif data.task == "classify":
            monitor, mode = "val_loss", "min"
        else:
            monitor, mode = f"val_{MAIN_METRIC[data.task]}", "max"
        own_callbacks.append(EarlyStopping(monitor=monitor, patience=config.early_stopping,
                                           mode=mode))
    if resolve_tensorboard(config.tensorboard) and ctx.is_main:
        own_callbacks.append(_tensorboard_logger(data, out))
    trainer = Trainer(model, config, callbacks=[*own_callbacks, *callbacks],
                      checkpoint_dir=out / rf.CHECKPOINT_DIR, progress=progress,
                      checkpoint_extra={"data": config.data, "seed": config.seed},
                      objective=objective_for(model, data.task, data.input_shape,
                                              data.class_names))
    history = trainer.fit(data.train_loader, data.val_loader,
                          resume_from=out / rf.CHECKPOINT_DIR if resume else None)
    return trainer, history


def _tensorboard_logger(data: TrainingData, out: Path) -> TensorBoardLogger:
    """The run's TensorBoard callback: graph traced on two training images, mistakes of the
    validation split for classification (the other tasks' outputs are not one class)."""
    if data.task != "classify":
        log.info("TensorBoard: no mistaken images for %s runs (scalars and graph only)", data.task)
    return TensorBoardLogger(
        out / TENSORBOARD_DIR, example=data.normalization.apply(data.sample[:2]),
        mistakes=data.val_loader if data.task == "classify" else None,
        normalization=data.normalization, class_names=data.class_names)


def write_results(out: Path, trainer: Trainer, history: History, data: TrainingData, *,
                  ctx: distributed.DistributedContext, curves: str = "now") -> dict[str, Any]:
    """Step 4: save the final weights, evaluate the test split, write results.json and curves.png.

    Only rank 0 writes files; every rank takes part in the (all-reduced) test evaluation.
    ``curves``: draw curves.png ``"now"`` or in a ``"background"`` process (:func:`write_curves`).

    Returns:
        ``results.json``'s content: epochs, global_step, the last epoch's metrics and, with a
        test split, ``test_*`` metrics and ``test_confusion_matrix`` (K×K nested lists).

    Example:
        >>> results = write_results(out, trainer, history, data, ctx=ctx)  # doctest: +SKIP
    """
    if ctx.is_main:
        rf.save_weights(trainer.eval_model, out / rf.WEIGHTS_FILE)
    results: dict[str, Any] = {"epochs": trainer.epoch, "global_step": trainer.global_step}
    if history.epoch:
        results.update({k: v[-1] for k, v in history.history.items()})
    if data.test_loader is not None:
        # in fp32 like `cnnkit evaluate`, so both report the same test figures (#18 item 8)
        test = trainer.evaluate(data.test_loader, confusion=True, fp32=True)
        results.update({f"test_{k}": v for k, v in test.items() if k != "confusion_matrix"})
        if "confusion_matrix" in test:
            results["test_confusion_matrix"] = test["confusion_matrix"].tolist()
    if ctx.is_main:
        rf.write_json(out / rf.RESULTS_FILE, results)
        write_curves(out, when=curves)
    return results


def _resumed_config(run: Path) -> tuple[TrainConfig, Checkpoint | None]:
    """The config of the run folder ``run`` and its last checkpoint (None: none written yet)."""
    if not (run / rf.CONFIG_FILE).is_file():
        raise CheckpointError(f"cannot resume {str(run)!r}: it has no {rf.CONFIG_FILE} "
                              "(give the --out folder of an earlier cnnkit train)")
    config = TrainConfig.from_dict({**rf.read_json(run / rf.CONFIG_FILE), "out": str(run)})
    if has_checkpoint(run / rf.CHECKPOINT_DIR):
        return config, load_checkpoint(run / rf.CHECKPOINT_DIR)
    return config, None


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None,
          callbacks: Iterable[Callback] = (), progress: bool | None = None,
          overwrite: bool = False,
          model_builder: Callable[[int, tuple[int, int, int]], nn.Module] | None = None,
          curves: str = "now") -> RunResult:
    """Run a whole training job from a config and write its run folder.

    Args:
        config: the settings (default: ``TrainConfig()``, digits with a small CNN).
        resume: a run folder to continue (its config.json replaces ``config``).
        callbacks: extra callbacks (after the run folder's own logger).
        progress: show a progress bar (None: on a terminal only).
        overwrite: allow writing into a folder that already holds a run.
        model_builder: ``(num_classes, input_shape (C, H, W)) -> model`` used instead of
            building ``config.model`` (transfer learning starts from a pretrained model); the
            model needs an ``architecture`` so the run folder can rebuild it.
        curves: draw curves.png ``"now"`` (before returning) or in a ``"background"`` process
            that outlives this call (``cnnkit train``'s default: the command exits sooner);
            ``cnnkit.viz.curves_job.wait_all()`` waits for it.

    Returns:
        A :class:`RunResult` with the run folder, the trained model and the final metrics.

    Raises:
        ValueError / DataError: bad settings or data.
        CheckpointError: ``resume`` is not a resumable run folder.
        TrainingError: NaN/inf loss (the last good checkpoint is kept).

    Example:
        >>> result = train(TrainConfig(epochs=2, out="runs/demo"))  # doctest: +SKIP
        >>> result.results["test_accuracy"]  # doctest: +SKIP
    """
    checkpoint = None
    if curves not in CURVES_WHEN:  # said before training, not after it
        raise ValueError(f"curves must be one of {', '.join(CURVES_WHEN)}, got {curves!r}")
    if resume is not None:
        config, checkpoint = _resumed_config(Path(resume))
        if checkpoint is None:  # stopped during its first epoch: nothing to lose, start again
            log.warning("%s has no checkpoint yet (the run stopped before its first one was "
                        "written): starting it again from epoch 1", resume)
            resume, overwrite = None, True
    config = config or TrainConfig()
    # Under torchrun: join the process group; rank 0 alone writes files (distributed.py).
    ctx = distributed.init_from_env()
    out = _prepare_out(config, resume is not None, overwrite)
    distributed.barrier()  # every rank has checked the folder before rank 0 writes into it
    seed_everything(config.seed)

    data = open_training_data(config, ctx, distributed.local_device(resolve_device(config.device),
                                                                    ctx))
    model = build_run_model(config, data, model_builder)
    if resume is None:
        # the run folder keeps the task and the head it resolved to
        head = model.architecture.get("head", "auto") if data.task != "classify" else "auto"
        config = config.replace(out=str(out), task=data.task, head=head)
        if ctx.is_main:
            write_run_files(out, config, model, data)
    elif ctx.is_main:
        rf.truncate_metrics(out, checkpoint.epoch)
    trainer, history = fit_model(config, model, data, out, ctx=ctx, resume=resume is not None,
                                 callbacks=callbacks, progress=progress)
    results = write_results(out, trainer, history, data, ctx=ctx, curves=curves)
    distributed.barrier()  # no rank leaves the group while rank 0 still writes
    return RunResult(out, trainer.eval_model, history, results, data.class_names)
