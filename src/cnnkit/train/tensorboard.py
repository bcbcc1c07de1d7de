"""TensorBoard event files for a training run (the optional ``tensorboard`` extra).

:class:`TensorBoardLogger` is a callback writing ``RUN/tensorboard/events.out.tfevents.*``
through ``torch.utils.tensorboard.SummaryWriter``:

* ``step/<metric>`` every logging step (running ``loss``, ``accuracy``, and ``step/lr``),
* ``epoch/<metric>`` every epoch (``loss``, ``val_loss``, ``val_accuracy``, ``lr``, ...),
* the model's graph (traced once on a small batch; a model that cannot be traced is skipped
  with a warning, training goes on),
* ``mistakes/val``: up to ``max_images`` validation images the final model gets wrong, with
  their true and predicted class as ``mistakes/val`` text (classification only).

View them with ``tensorboard --logdir RUN/tensorboard``.
"""
from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from cnnkit.data.normalization import Normalization
from cnnkit.train.callbacks import Callback

log = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"


def tensorboard_available() -> bool:
    """True when the ``tensorboard`` package is installed (found without importing it)."""
    return importlib.util.find_spec("tensorboard") is not None


def resolve_tensorboard(setting: bool | None) -> bool:
    """Whether a run writes event files: ``setting``, or with None whether tensorboard is installed.

    Raises:
        ValueError: ``setting`` is True but the ``tensorboard`` package is not installed.

    Example:
        >>> resolve_tensorboard(False)
        False
    """
    if setting is None:
        return tensorboard_available()
    if setting and not tensorboard_available():
        raise ValueError("tensorboard=True needs the tensorboard package, which is not "
                         "installed; install it with pip install 'cnnkit[tensorboard]', or pass "
                         "--no-tensorboard")
    return bool(setting)


def _numbers(logs: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in logs.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoardLogger(Callback):
    """Write loss, metrics, learning rate, the graph and mistaken images as TensorBoard events.

    Args:
        log_dir: the folder of the event files (``RUN/tensorboard``).
        example: a float batch (n, C, H, W), normalised like the training batches, to trace
            the graph with (None: no graph).
        mistakes: validation ``(x, y)`` batches to look for mistakes in at the end of training
            (classification; None: no images).
        normalization: undoes the batches' normalisation for display (None: shown as they are).
        class_names: names of the classes in the mistakes' captions (None: the indices).
        max_images: at most this many mistaken images.

    Shape:
        example (n, C, H, W) float; mistakes' x (B, C, H, W) float, y (B,) int64; the images
        written are (M, C', H, W) on the 0–1 scale, M <= max_images, C' = C for 1 or 3
        channels, else 1 (the first channel).

    Raises:
        ValueError: ``max_images`` is not an int >= 0.

    Example:
        >>> cb = TensorBoardLogger("runs/demo/tensorboard")  # doctest: +SKIP
        >>> Trainer(model, config, callbacks=[cb]).fit(train_batches)  # doctest: +SKIP
    """

    def __init__(self, log_dir: str | Path, *, example: torch.Tensor | None = None,
                 mistakes: Iterable | None = None, normalization: Normalization | None = None,
                 class_names: Sequence[str] | None = None, max_images: int = 8):
        if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 0:
            raise ValueError(f"max_images must be an int >= 0, got {max_images!r}")
        self.log_dir = Path(log_dir)
        self.example = example
        self.mistakes = mistakes
        self.normalization = normalization
        self.class_names = list(class_names) if class_names is not None else None
        self.max_images = max_images
        self.writer = None

    # ------------------------------------------------------------------ hooks
    def on_train_begin(self, trainer) -> None:
        # optional extra: tensorboard (torch's writer imports the tensorboard package)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        if self.example is not None and trainer.global_step == 0:  # once, not on a resume
            self._add_graph(trainer.model, self.example.to(trainer.device))

    def on_batch_end(self, trainer, step, logs) -> None:
        for key, value in _numbers(logs).items():
            self.writer.add_scalar(f"step/{key}", value, step)
        self.writer.add_scalar("step/lr", trainer.optimizer.param_groups[0]["lr"], step)

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        for key, value in _numbers(logs).items():
            self.writer.add_scalar(f"epoch/{key}", value, epoch)
        self.writer.flush()  # a crash later loses nothing already logged

    def on_train_end(self, trainer, logs) -> None:
        if self.mistakes is not None and self.max_images:
            self._add_mistakes(trainer)
        self.writer.close()

    # ------------------------------------------------------------------ parts
    def _add_graph(self, model: torch.nn.Module, example: torch.Tensor) -> None:
        was_training = model.training
        try:  # traced in eval mode: BatchNorm statistics and dropout's RNG stay untouched
            model.eval()
            with torch.no_grad(), warnings.catch_warnings():
                # shape checks in Python are constants in a trace: right for one input size
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                self.writer._get_file_writer().add_graph(graph_def(model, example))
        except Exception as exc:  # any tracing failure: no graph, but training goes on
            log.warning("TensorBoard: could not trace the model's graph (%s: %s); the event "
                        "files have no graph", type(exc).__name__, exc)
        finally:
            model.train(was_training)

    @torch.no_grad()
    def _add_mistakes(self, trainer) -> None:
        model = trainer.eval_model
        was_training = model.training
        model.eval()
        images, truth, predicted = [], [], []
        try:
            for x, y in self.mistakes:
                x, y = x.to(trainer.device), y.to(trainer.device)
                pred = model(x).argmax(dim=1)  # (B, K) -> (B,)
                wrong = (pred != y).nonzero().flatten()[: self.max_images - len(images)]
                images += list(x[wrong].float().cpu())
                truth += y[wrong].tolist()
                predicted += pred[wrong].tolist()
                if len(images) >= self.max_images:
                    break
        finally:
            model.train(was_training)
        if not images:
            log.info("TensorBoard: no mistakes on the validation split to show")
            return
        batch = torch.stack(images)  # M x (C, H, W) -> (M, C, H, W)
        if self.normalization is not None:
            batch = self.normalization.inverse(batch)  # back on the 0–1 scale
        if batch.shape[1] not in (1, 3):
            batch = batch[:, :1]  # (M, C, H, W) -> (M, 1, H, W)
        step = trainer.epoch
        self.writer.add_images("mistakes/val", batch.clamp(0, 1), step, dataformats="NCHW")
        names = self.class_names
        lines = [f"{i + 1}. true **{names[t] if names else t}**, predicted "
                 f"**{names[p] if names else p}**"
                 for i, (t, p) in enumerate(zip(truth, predicted))]
        self.writer.add_text("mistakes/val", "\n".join(lines), step)


def graph_def(model: torch.nn.Module, example: torch.Tensor):
    """The ``(GraphDef, RunMetadata)`` pair that ``SummaryWriter.add_graph`` logs for ``model``.

    The same protos as torch's ``torch.utils.tensorboard._pytorch_graph.graph`` with
    ``use_strict_trace=False``, built from a trace made with ``check_trace=False``: the check
    re-runs the model and compares outputs through ``torch.testing.assert_close``, whose first
    call imports ``torch.distributed.tensor`` and sympy — 0.75 s of the 0.8 s that logging the
    graph cost at the start of every run (bench/RESULTS.md, time to 99 %). A graph for display
    needs no such check. Call it with ``model`` in eval mode and under ``torch.no_grad()``.
    """
    from torch.utils.tensorboard import _pytorch_graph as tb_graph  # optional extra: tensorboard (torch's graph parser)

    trace = torch.jit.trace(model, example, strict=False, check_trace=False)
    graph = trace.graph
    torch._C._jit_pass_inline(graph)
    nodes = tb_graph.parse(graph, trace, example)
    stats = tb_graph.RunMetadata(step_stats=tb_graph.StepStats(
        dev_stats=[tb_graph.DeviceStepStats(device="/device:CPU:0")]))
    return tb_graph.GraphDef(node=nodes, versions=tb_graph.VersionDef(producer=22)), stats
