"""Benchmark: eager PyTorch inference in NCHW vs channels-last (NHWC), per network, side by side.

Run from the repository root:
    .venv/bin/python -m bench.inference_layout [--only lenet5,segment] [--repeats 5]

What ``cnnkit.run.folder.eager_channels_last`` (the torch predict backend on a CPU) rests on.
For each model of ``bench.inference`` (random weights: they do not change the speed) it builds
the exported module (``cnnkit.export.wrapper.export_module``: the normalisation, the network and
the task's decoding, what the torch backend runs per batch) twice, once with the weights as
built (NCHW) and once after ``model.to(memory_format=torch.channels_last)``, reports the
largest difference of the two networks' outputs (float rounding) and times them alternately
in one process under ``torch.inference_mode`` on uint8 batches: images/s (median of the rounds) and nhwc / nchw
(above 1: channels-last is faster).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from bench._common import machine_note, print_table
from bench.inference import add_model_options, build, chosen_models
from cnnkit.export.wrapper import export_module


def _flat(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    values = out.values() if isinstance(out, dict) else out
    return [t for v in values for t in _flat(v)]


def _max_difference(a, b) -> float:
    """The largest absolute difference of two outputs of the network (before the decoding,
    whose top-k ranks may swap two scores that tie to rounding)."""
    return max(float((x.float() - y.float()).abs().max()) for x, y in zip(_flat(a), _flat(b)))


def measure(name: str, batches: list[int], repeats: int) -> list[list[str]]:
    modules, networks = {}, {}
    for layout in ("nchw", "nhwc"):
        loaded = build(name)
        if layout == "nhwc":
            loaded.model = loaded.model.to(memory_format=torch.channels_last)
        modules[layout], networks[layout] = export_module(loaded)[0], loaded.model
    rows = []
    for batch in batches:
        x = torch.from_numpy(np.random.default_rng(0).integers(
            0, 256, (batch, *loaded.input_shape), dtype=np.uint8))  # (N, C, H, W)

        def run(module):
            with torch.inference_mode():
                return module(x)

        with torch.inference_mode():
            difference = _max_difference(*(networks[k](x.float() / 255) for k in networks))
        calls = max(1, 256 // batch)
        speeds = {layout: [] for layout in modules}
        for _ in range(repeats):  # alternate: load hits both alike
            for layout, module in modules.items():
                start = time.perf_counter()
                for _ in range(calls):
                    run(module)
                speeds[layout].append(batch * calls / (time.perf_counter() - start))
        nchw, nhwc = (statistics.median(speeds[k]) for k in ("nchw", "nhwc"))
        rows.append([name, str(batch), f"{nchw:.0f}", f"{nhwc:.0f}", f"{nhwc / nchw:.2f}",
                     f"{difference:.1e}"])
        print(f"  {name} batch {batch}: {nchw:.0f} / {nhwc:.0f} img/s", flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_options(parser, repeats=5, batches="1,256")
    args = parser.parse_args(argv)
    names, batches = chosen_models(parser, args)
    print(machine_note(), flush=True)
    rows = [row for name in names for row in measure(name, batches, args.repeats)]
    print_table(f"Eager inference, NCHW vs channels-last (median of {args.repeats} alternating "
                "rounds)", ["model", "batch", "NCHW img/s", "NHWC img/s", "nhwc / nchw",
                            "max |output difference|"], rows)


if __name__ == "__main__":
    main()
