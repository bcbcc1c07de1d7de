"""Multi-process training on ``torch.distributed``: join the group, shard, reduce, write once.

cnnkit does not launch or coordinate processes itself: ``torchrun`` (``torch.distributed.run``)
starts one process per device and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``; :func:`init_from_env` reads them and joins the process group
(NCCL for CUDA tensors, gloo for CPU tensors) with a timeout, so a dead peer becomes an error
instead of a hang. Inside the group:

- the model is wrapped in ``DistributedDataParallel`` (:func:`wrap_model`), which averages the
  gradients of the ranks after every backward;
- every rank loads ``batch_size / world_size`` images per step (:func:`per_rank_batch_size`),
  taking every ``world_size``-th index of the epoch's permutation, so the union of the ranks'
  batches at step ``t`` *is* the one-process batch ``t`` (same global batch, same learning rate);
- evaluation data is split without padding (:func:`shard_data`) and the metric sums
  (loss·n, correct, n, confusion) are all-reduced (:func:`reduce_metrics`), so the printed
  accuracy is over the whole set;
- only rank 0 writes files (checkpoints hold the unwrapped module's weights, without the
  ``module.`` prefix, so any number of processes can resume them).

Example (two processes on one machine)::

    torchrun --standalone --nproc-per-node 2 -m cnnkit train --data digits --epochs 3
"""
from __future__ import annotations

import datetime
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cnnkit._checks import check_positive_int
from cnnkit.data.dataset import ImageData

if TYPE_CHECKING:
    from cnnkit.tasks.classification import MetricAccumulator

log = logging.getLogger(__name__)

#: How long a collective waits for the other ranks before failing (a dead or stuck peer).
DEFAULT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the job.

    Args:
        rank: this process's index among all processes, 0..world_size-1.
        local_rank: its index on this machine (selects the GPU ``cuda:local_rank``).
        world_size: the number of processes (1: no distribution).

    Example:
        >>> DistributedContext().is_main, DistributedContext().enabled
        (True, False)
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes files and prints."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}; "
                         "launch with torchrun, which sets it") from None


def env_context() -> DistributedContext:
    """The context torchrun describes in ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` (1 if unset).

    Raises:
        ValueError: the variables are not integers, or ``RANK`` is outside ``[0, WORLD_SIZE)``.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank!r} must lie in [0, WORLD_SIZE={world_size!r}); "
                         "launch with torchrun, which sets both")
    return DistributedContext(rank, _env_int("LOCAL_RANK", rank), world_size)


def current() -> DistributedContext:
    """The context of the initialised process group (one process when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistributedContext()
    return DistributedContext(dist.get_rank(), _env_int("LOCAL_RANK", dist.get_rank()),
                              dist.get_world_size())


def _backend() -> str:
    # One group for both kinds of tensor: gloo moves CPU tensors, NCCL moves CUDA tensors.
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def init_from_env(timeout_s: float = DEFAULT_TIMEOUT_S) -> DistributedContext:
    """Join the process group torchrun describes; do nothing in a single process.

    Idempotent: an already initialised group is reused. On other ranks than 0, cnnkit's
    loggers are raised to WARNING so that one process speaks for the job.

    Args:
        timeout_s: seconds a collective waits for the other ranks before raising (a peer that
            died or hangs then stops the job instead of blocking it forever).

    Returns:
        The :class:`DistributedContext` of this process.

    Raises:
        ValueError: malformed ``RANK``/``WORLD_SIZE``, or ``timeout_s`` <= 0.
        RuntimeError: torch.distributed is not available in this PyTorch build.

    Example:
        >>> init_from_env()  # in a plain `python` process  # doctest: +SKIP
        DistributedContext(rank=0, local_rank=0, world_size=1)
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0 seconds, got {timeout_s!r}")
    if dist.is_available() and dist.is_initialized():
        return current()
    ctx = env_context()
    if not ctx.enabled:
        return ctx
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed; "
                           "install a build with distributed support or run one process")
    if torch.cuda.is_available():
        torch.cuda.set_device(ctx.local_rank % torch.cuda.device_count())
    dist.init_process_group(_backend(), rank=ctx.rank, world_size=ctx.world_size,
                            timeout=datetime.timedelta(seconds=timeout_s))
    if not ctx.is_main:
        logging.getLogger("cnnkit").setLevel(logging.WARNING)
    log.info("joined process group: rank %d of %d (%s)", ctx.rank, ctx.world_size,
             dist.get_backend())
    return ctx


def shutdown() -> None:
    """Leave the process group (a no-op when none is initialised)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every rank gets here (a no-op in one process)."""
    if current().enabled:
        dist.barrier()


def local_device(device: torch.device, ctx: DistributedContext) -> torch.device:
    """This rank's device: ``cuda:local_rank`` for CUDA in a distributed job, else ``device``."""
    if ctx.enabled and device.type == "cuda":
        return torch.device("cuda", ctx.local_rank % torch.cuda.device_count())
    return device


def per_rank_batch_size(batch_size: int, world_size: int) -> int:
    """Images each rank loads per step so that together they make the global ``batch_size``.

    Raises:
        ValueError: ``batch_size`` is not a multiple of ``world_size``.

    Example:
        >>> per_rank_batch_size(128, 4)
        32
    """
    check_positive_int(batch_size, "batch_size")
    check_positive_int(world_size, "world_size")
    if batch_size % world_size:
        lower = batch_size - batch_size % world_size
        raise ValueError(f"batch_size={batch_size!r} must be a multiple of the number of "
                         f"processes ({world_size}) so every process gets the same share; "
                         f"use batch_size={lower or world_size} or "
                         f"{lower + world_size}")
    return batch_size // world_size


def shard_data(data, ctx: DistributedContext):
    """Rank ``ctx.rank``'s part of an evaluation set: every ``world_size``-th image, no padding.

    ``data`` is an ``ImageData`` or an ``AnnotatedData`` (localise/segment/detect). Together
    the shards hold each image exactly once, so summed metrics equal one-process
    metrics (training shards are padded instead; see ``InMemoryLoader(rank=, world_size=)``).

    Shape:
        images ``(N, C, H, W)`` -> ``(ceil((N - rank) / world_size), C, H, W)``.
    """
    if not ctx.enabled:
        return data
    if callable(getattr(data, "targets", None)):  # AnnotatedData: boxes / masks go along
        return data.subset(range(ctx.rank, len(data), ctx.world_size))
    return ImageData(data.images[ctx.rank::ctx.world_size],
                     data.labels[ctx.rank::ctx.world_size], list(data.class_names),
                     source=data.source)


def wrap_model(model: nn.Module, ctx: DistributedContext, *, sync_bn: bool = False) -> nn.Module:
    """``model`` inside ``DistributedDataParallel`` (``model`` itself in one process).

    Args:
        model: the module, already on this rank's device.
        ctx: this process's context.
        sync_bn: convert BatchNorm layers to ``SyncBatchNorm`` (CUDA only: statistics over the
            global batch); on CPU it is skipped with a warning and each rank normalises with
            its own batch statistics.

    Returns:
        The module to call for training steps; parameters stay shared with ``model``.
    """
    if not ctx.enabled:
        return model
    device = next(model.parameters()).device
    if sync_bn:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            log.warning("sync_bn needs CUDA tensors (torch's SyncBatchNorm); on %s each process "
                        "normalises with the statistics of its own batch", device.type)
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def broadcast_buffers(model: nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics), in place.

    DDP broadcasts them at the start of each training forward, but the last step's update is
    each rank's own: before evaluating, every rank takes the buffers rank 0 saves, so the
    all-reduced metrics are those of the saved model. A no-op in one process.
    """
    if not current().enabled:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def no_sync(model: nn.Module) -> AbstractContextManager:
    """Skip DDP's gradient all-reduce inside the block (for the non-final accumulation steps)."""
    ddp = model._orig_mod if hasattr(model, "_orig_mod") else model
    if isinstance(ddp, DistributedDataParallel):
        return ddp.no_sync()
    return nullcontext()


def reduce_metrics(metrics: MetricAccumulator) -> None:
    """Sum a :class:`~cnnkit.tasks.classification.MetricAccumulator` over all ranks, in place.

    Afterwards ``metrics.compute()`` gives the loss and accuracy over every rank's images
    (one all-reduce of ``[loss·n, correct, n, top-k hits]`` and one of the confusion matrix).
    Every rank must call it, in the same order; a no-op in one process. A task's metrics
    (:class:`~cnnkit.tasks.objective.TaskMetrics`) are summed through their ``state()``;
    detection's, which keep every detection, are gathered to every rank instead.
    """
    if not current().enabled:
        return
    if hasattr(metrics, "load_state"):
        _reduce_task_metrics(metrics)
        return
    device = metrics.loss_sum.device if metrics.loss_sum is not None else _collective_device()
    zero = torch.zeros((), device=device)
    sums = torch.stack([
        (metrics.loss_sum if metrics.loss_sum is not None else zero).double(),
        (metrics.correct if metrics.correct is not None else zero).double(),
        torch.tensor(float(metrics.count), dtype=torch.float64, device=device),
        (metrics.top_k_hits if metrics.top_k_hits is not None else zero).double(),
    ])  # (4,) float64: exact for counts up to 2**53
    dist.all_reduce(sums)
    metrics.loss_sum, metrics.correct = sums[0], sums[1]
    metrics.count = int(sums[2].item())
    if metrics.top_k:
        metrics.top_k_hits = sums[3]
    if metrics.confusion_enabled and metrics.cm is not None:
        dist.all_reduce(metrics.cm)


def _reduce_task_metrics(metrics) -> None:
    """All-reduce a TaskMetrics' sums; detection gathers every rank's detections as well."""
    state = metrics.state().to(_collective_device())
    dist.all_reduce(state)
    metrics.load_state(state)
    if metrics.gathers:
        gathered: list = [None] * current().world_size
        dist.all_gather_object(gathered, metrics.inner)
        metrics.replace_inner(gathered)


def _collective_device() -> torch.device:
    if dist.get_backend() != "gloo" and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def torchrun_command(nproc: int, module_args: Sequence[str]) -> list[str]:
    """The ``torchrun`` command that runs ``python -m MODULE ARGS`` in ``nproc`` processes here.

    Example:
        >>> " ".join(torchrun_command(2, ["cnnkit", "train"])[1:])
        '-m torch.distributed.run --standalone --nproc-per-node 2 -m cnnkit train'
    """
    check_positive_int(nproc, "nproc")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", str(nproc), "-m", *module_args]


def launch(nproc: int, module_args: Sequence[str]) -> int:
    """Run :func:`torchrun_command` and wait; return torchrun's exit code (0: every rank ok).

    torchrun's agent watches the workers: when one fails or is killed it stops the others and
    exits non-zero, naming the failed rank and its exit code or signal. Unless the caller set
    ``OMP_NUM_THREADS``, each process gets ``cpu_count // nproc`` threads (torchrun's default
    is 1, which starves CPU training).
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    command = torchrun_command(nproc, module_args)
    log.info("launching: %s", " ".join(command))
    return subprocess.run(command, env=env, check=False).returncode
