"""Benchmark: a training step in NCHW vs channels-last (NHWC), per network, side by side.

Run from the repository root:
    .venv/bin/python -m bench.layout [--only mnist-fast,resnet18] [--repeats 3] [--steps 15]

What ``TrainConfig.channels_last=None`` chooses rests on this table
(``cnnkit.train.device.resolve_channels_last``). For each network it times, in one process
and alternating round by round, one training step (forward, backward, fused Adam) on random
data at the recipe's batch size with the weights and input in PyTorch's NCHW and with both
restrided channels-last (``model.to(memory_format=torch.channels_last)``, the input
``.contiguous(memory_format=torch.channels_last)``: what the Trainer does). Each round's figure
is the median step after three warm-up steps; the table shows the median over the rounds and
``nhwc / nchw`` (below 1: channels-last is faster). Precision: fp32, and bf16 autocast too
where the CPU computes bf16 natively (``cnnkit.train.device.native_bf16``).

The classifiers train on cross-entropy; the task networks (``segment``, ``detect``) on the
mean of their outputs: the same backward graph through every layer, without the task loss's
target encoding (the same in both layouts).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from bench._common import machine_note, print_table
from cnnkit.models import Sequential, create
from cnnkit.tasks.build import task_model
from cnnkit.train import recipes
from cnnkit.train.device import native_bf16


def _spec(spec: str, shape: tuple[int, int, int]) -> Sequential:
    c, h, w = shape
    return Sequential.from_spec(spec, input_shape=(h, w, c))


# name: (builder, input shape (C, H, W), batch size, task) — the recipes' networks and batches
NETWORKS = {
    "mnist-fast": (lambda: _spec(recipes.MNIST_FAST_MODEL, (1, 28, 28)), (1, 28, 28), 256, None),
    "fashion-fast": (lambda: _spec(recipes.FASHION_FAST_MODEL, (1, 28, 28)), (1, 28, 28), 128,
                     None),
    "keras_mnist": (lambda: create("keras_mnist", 10, in_channels=1, input_size=28),
                    (1, 28, 28), 128, None),
    "lenet5": (lambda: create("lenet5", 10, in_channels=1, input_size=28), (1, 28, 28), 128,
               None),
    "resnet18": (lambda: create("resnet18", 10, in_channels=3, input_size=32), (3, 32, 32),
                 128, None),
    "segment": (lambda: task_model("segment", _spec(recipes.MNIST_SEGMENT_BACKBONE, (1, 96, 96)),
                                   11, head="fcn"), (1, 96, 96), 32, "segment"),
    "detect": (lambda: task_model("detect", _spec(recipes.MNIST_DETECT_BACKBONE, (1, 96, 96)),
                                  10, head="centernet"), (1, 96, 96), 32, "detect"),
}


def _mean_of(outputs) -> torch.Tensor:
    """The mean of every tensor in a (nested) model output: one scalar to backpropagate."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float().mean()
    values = outputs.values() if isinstance(outputs, dict) else outputs
    return sum(_mean_of(v) for v in values if isinstance(v, (torch.Tensor, dict, list, tuple)))


def step_ms(name: str, channels_last: bool, dtype: torch.dtype | None, steps: int) -> float:
    """The median training-step time (ms) of network ``name`` in one layout and precision."""
    build, shape, batch, task = NETWORKS[name]
    torch.manual_seed(0)
    model = build().train()
    x = torch.rand(batch, *shape)  # (N, C, H, W)
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)  # same shape, NHWC strides
    optimizer = torch.optim.Adam(model.parameters(), 1e-3, fused=True)
    times = []
    for _ in range(steps + 3):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            out = model(x)
            loss = _mean_of(out) if task else F.cross_entropy(out.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[3:]) * 1e3


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help=f"comma-separated, from {','.join(NETWORKS)}")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--steps", type=int, default=15, help="timed steps per round")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(NETWORKS)
    unknown = [n for n in names if n not in NETWORKS]
    if unknown:
        parser.error(f"unknown network {unknown[0]!r}; choose from {','.join(NETWORKS)}")
    precisions = {"fp32": None}
    if native_bf16(torch.device("cpu")):
        precisions["bf16"] = torch.bfloat16
    print(machine_note(), flush=True)
    rows = []
    for name in names:
        for label, dtype in precisions.items():
            times = {False: [], True: []}
            for _ in range(args.repeats):  # alternate: load hits both alike
                for channels_last in (False, True):
                    times[channels_last].append(step_ms(name, channels_last, dtype, args.steps))
            nchw, nhwc = statistics.median(times[False]), statistics.median(times[True])
            rows.append([name, label, str(NETWORKS[name][2]), f"{nchw:.2f}", f"{nhwc:.2f}",
                         f"{nhwc / nchw:.2f}"])
            print(f"  {name} {label}: {nchw:.2f} / {nhwc:.2f} ms", flush=True)
    print_table(f"Training step, NCHW vs channels-last (median of {args.repeats} alternating "
                f"rounds, {args.steps} steps each)",
                ["network", "precision", "batch", "NCHW ms/step", "NHWC ms/step", "nhwc / nchw"],
                rows)


if __name__ == "__main__":
    main()
