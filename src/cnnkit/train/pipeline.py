"""``train(config)``: data → model → Trainer → run folder, the whole of ``cnnkit train``.

Steps: seed everything; open the data (``cnnkit.data.open.open_data``) and fit the
normalisation on the training images; build the model (a registry name or a spec string);
write config.json, model.json and summary.txt; train with checkpoints every epoch; evaluate on
the test split; write weights.safetensors, results.json and curves.png.
``train(resume="RUN")`` reads RUN/config.json and continues from RUN/checkpoint.
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnkit._checks import format_shape_hwc
from cnnkit.errors import CheckpointError
from cnnkit.train import distributed
from cnnkit.train import run_folder as rf
from cnnkit.train.callbacks import Callback, EarlyStopping, JSONLinesLogger
from cnnkit.train.checkpoint import has_checkpoint, load_checkpoint
from cnnkit.train.config import TrainConfig
from cnnkit.train.device import resolve_device
from cnnkit.train.trainer import History, Trainer

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


def build_model(name_or_spec: str, *, num_classes: int, input_shape: tuple[int, int, int]):
    """A registry model (``"lenet5"``) or a Sequential from a spec string, sized for the data.

    Raises:
        ValueError: neither a registry name nor a valid spec (the spec parser's message).
    """
    from cnnkit.models import registry

    c, h, w = input_shape
    if name_or_spec in registry.names():
        return registry.create(name_or_spec, num_classes=num_classes, in_channels=c,
                               input_size=(h, w))
    from cnnkit.models.sequential import Sequential

    return Sequential.from_spec(name_or_spec, format_shape_hwc(input_shape),
                                num_classes=num_classes)


class EpochAugment:
    """An augmentation rebuilt each epoch with seed ``f(seed, epoch)``, so resuming is exact.

    Shape:
        ``(x, y) -> (x, y)`` as ``cnnkit.augment`` (y may become (N, K) soft labels).
    """

    def __init__(self, spec: str, *, num_classes: int, seed: int):
        from cnnkit.augment import parse_augment

        self._parse = parse_augment
        self.spec, self.num_classes, self.seed = spec, num_classes, seed
        self.pipeline = parse_augment(spec, num_classes=num_classes, seed=seed)

    def set_epoch(self, epoch: int) -> None:
        self.pipeline = self._parse(self.spec, num_classes=self.num_classes,
                                    seed=self.seed * 100_003 + epoch)

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
    has_run = (out / rf.CONFIG_FILE).exists() or (out / rf.CHECKPOINT_DIR).exists()
    if has_run and not resume and not overwrite:
        raise ValueError(f"run folder {str(out)!r} already holds a run; continue it with "
                         f"--resume {out}, choose another --out, or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass
class _TrainingData:
    """What the training run needs from its data, whether held in memory or streamed."""

    class_names: list[str]
    input_shape: tuple[int, int, int]
    normalization: Any
    sample: torch.Tensor  # uint8 (n <= 5000, C, H, W) training images, for prepare_model
    n_train: int
    train_loader: Any
    val_loader: Any
    test_loader: Any
    streamed: bool


def _open_training_data(config: TrainConfig, ctx, device) -> _TrainingData:
    """Open ``config.data`` and build the loaders: in memory, or streamed for big image folders.

    Training loaders: rank r takes every world_size-th index of the epoch's permutation,
    B/world_size per step, so the ranks' batches at step t together are the one-process batch t.
    """
    from cnnkit.data.open import image_folder_root

    root = image_folder_root(config.data)
    stream = config.stream
    if stream and root is None:
        raise ValueError(f"stream=True needs a folder of class sub-folders of images, got "
                         f"data={config.data!r}; other sources are read into memory (drop "
                         "--stream)")
    if stream is None and root is not None:
        from cnnkit.data.stream import STREAM_ABOVE_BYTES, decoded_bytes, folder_file_splits

        files = folder_file_splits(root).train
        size = None if config.input_size is None else (config.input_size, config.input_size)
        stream = decoded_bytes(files, size=size) > STREAM_ABOVE_BYTES
    per_rank = distributed.per_rank_batch_size(config.batch_size, ctx.world_size)
    common = {"seed": config.seed, "device": device, "channels_last": config.channels_last}
    if stream:
        return _streamed_data(root, config, ctx, per_rank, common)

    from cnnkit.data.loader import InMemoryLoader
    from cnnkit.data.normalization import Normalization
    from cnnkit.data.open import open_data

    splits = open_data(config.data, data_dir=config.data_dir, val_split=config.val_split,
                       seed=config.seed, size=config.input_size, download=config.download)
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
    return _TrainingData(list(splits.train.class_names),
                         tuple(splits.train.images.shape[1:]),  # (N, C, H, W) -> (C, H, W)
                         normalization, splits.train.images[:5000], len(splits.train),
                         train_loader, evaluation(splits.val), evaluation(splits.test), False)


def _streamed_data(root, config: TrainConfig, ctx, per_rank: int, common: dict) -> _TrainingData:
    """Loaders that decode ``root``'s files in worker processes every epoch (big folders)."""
    from cnnkit.data.stream import StreamingLoader, fit_normalization, folder_file_splits

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
    return _TrainingData(parts.class_names, train_loader.input_shape, normalization, sample,
                         len(parts.train), train_loader, evaluation(parts.val),
                         evaluation(parts.test), True)


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None,
          callbacks: Iterable[Callback] = (), progress: bool | None = None,
          overwrite: bool = False,
          model_builder: Callable[[int, tuple[int, int, int]], nn.Module] | None = None
          ) -> RunResult:
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
    if resume is not None:
        run = Path(resume)
        if not (run / rf.CONFIG_FILE).is_file():
            raise CheckpointError(f"cannot resume {str(run)!r}: it has no {rf.CONFIG_FILE} "
                                  "(give the --out folder of an earlier cnnkit train)")
        config = TrainConfig.from_dict({**rf.read_json(run / rf.CONFIG_FILE), "out": str(run)})
        if has_checkpoint(run / rf.CHECKPOINT_DIR):
            checkpoint = load_checkpoint(run / rf.CHECKPOINT_DIR)
        else:  # stopped during its first epoch: nothing to lose, start the same run again
            log.warning("%s has no checkpoint yet (the run stopped before its first one was "
                        "written): starting it again from epoch 1", run)
            resume, overwrite = None, True
    config = config or TrainConfig()
    # Under torchrun: join the process group; rank 0 alone writes files (distributed.py).
    ctx = distributed.init_from_env()
    out = _prepare_out(config, resume is not None, overwrite)
    distributed.barrier()  # every rank has checked the folder before rank 0 writes into it
    seed_everything(config.seed)

    trainer_device = distributed.local_device(resolve_device(config.device), ctx)
    data = _open_training_data(config, ctx, trainer_device)
    class_names, input_shape, normalization = data.class_names, data.input_shape, data.normalization
    if model_builder is not None:
        model = model_builder(len(class_names), input_shape)
    else:
        model = build_model(config.model, num_classes=len(class_names), input_shape=input_shape)
    # Models that set themselves up from data (airbench's frozen patch-whitening conv) do it
    # here, before the optimizer sees which parameters are trainable; resume then overwrites
    # the weights from the checkpoint.
    from cnnkit.train.recipes import prepare_model

    prepare_model(model, normalization.apply(data.sample))
    log.info("data %s: %d train images %s, %d classes%s; model %s", config.data, data.n_train,
             format_shape_hwc(input_shape), len(class_names),
             " (streamed from disk)" if data.streamed else "", config.model)

    if resume is None:
        config = config.replace(out=str(out))
    if ctx.is_main and resume is None:
        rf.write_json(out / rf.CONFIG_FILE, config.to_dict())
        rf.write_json(out / rf.MODEL_FILE, rf.model_metadata(model, class_names, normalization,
                                                             input_shape))
        rf.write_summary(out, model, input_shape)
    elif ctx.is_main:
        rf.truncate_metrics(out, checkpoint.epoch)

    own_callbacks: list[Callback] = []
    if ctx.is_main:
        own_callbacks.append(JSONLinesLogger(out / rf.METRICS_FILE, append=resume is not None))
    if config.augment.strip():
        # Each rank draws its own augmentations (seeds differ by rank).
        augment = EpochAugment(config.augment, num_classes=len(class_names),
                               seed=config.seed + 1_000_003 * ctx.rank)
        own_callbacks.append(_SetAugmentEpoch(augment))
        data.train_loader.augment = augment
    if config.early_stopping:
        monitor = "val_loss" if data.val_loader is not None else "loss"
        own_callbacks.append(EarlyStopping(monitor=monitor, patience=config.early_stopping))

    train_loader, val_loader = data.train_loader, data.val_loader
    trainer = Trainer(model, config, callbacks=[*own_callbacks, *callbacks],
                      checkpoint_dir=out / rf.CHECKPOINT_DIR, progress=progress,
                      checkpoint_extra={"data": config.data, "seed": config.seed})
    history = trainer.fit(train_loader, val_loader,
                          resume_from=out / rf.CHECKPOINT_DIR if resume is not None else None)

    final = trainer.eval_model
    if ctx.is_main:
        rf.save_weights(final, out / rf.WEIGHTS_FILE)
    results: dict[str, Any] = {"epochs": trainer.epoch, "global_step": trainer.global_step}
    if history.epoch:
        results.update({k: v[-1] for k, v in history.history.items()})
    if data.test_loader is not None:
        test = trainer.evaluate(data.test_loader, confusion=True)
        results.update({f"test_{k}": v for k, v in test.items() if k != "confusion_matrix"})
        results["test_confusion_matrix"] = test["confusion_matrix"].tolist()
    if ctx.is_main:
        rf.write_json(out / rf.RESULTS_FILE, results)
        rf.write_curves(out)
    distributed.barrier()  # no rank leaves the group while rank 0 still writes
    return RunResult(out, final, history, results, class_names)
