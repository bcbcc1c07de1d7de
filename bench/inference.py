"""Benchmark: inference speed of exported models, onnxruntime vs PyTorch eager, side by side.

Run from the repository root:
    .venv/bin/python -m bench.inference [--only lenet5,resnet18,segment,detect,...]
                                        [--repeats 5] [--batches 1,32,256]

For each model it builds the network (weights do not change the speed), exports it with
``cnnkit.export.export_onnx`` exactly as ``cnnkit export`` does (uint8 pixels in, the
normalisation and the task's decoding inside the graph, verified against PyTorch) and then
times, alternately in one process, the same graph in two runtimes:

* ``eager``: the exported module (``cnnkit.export.wrapper.export_module``: preprocessing, the
  network and the decoding) called in PyTorch under ``torch.inference_mode``;
* ``onnxruntime``: the ``.onnx`` file in an onnxruntime CPU session with the same thread count
  and onnxruntime's own default of idle threads spinning between runs (the fastest for calls
  back to back; ``cnnkit`` spins only inside a run, ``cnnkit.export.onnx.SPINNING``);
* ``onnxruntime, 1 thread``: the same file in a session on one intra-op thread (faster than
  all threads for a small network's single image: no other thread to wake);
* ``cnnkit predict``: what ``cnnkit predict`` / ``cnnkit serve`` run per batch of decoded
  images, with the backend ``--backend auto`` chooses (``cnnkit.export.runtime.use_backend``):
  ``LoadedModel.predict_proba`` of a classifier, ``predict_task_images`` of a task run (the
  decoded graph plus the post-step: boxes scaled back, masks, NMS).
* ``predict, all torch threads``: the same with ``cnnkit.run.threads.ONNX_TORCH_THREADS =
  None``, so the steps around onnxruntime run on PyTorch's whole thread pool (the switch off).

Per batch size it reports images/s (median over the repeats), ``predict / best`` against the
fastest of eager, onnxruntime and onnxruntime on one thread, and at batch 1 also the p50 and
p99 latency of single-image calls (over all repeats' calls). For detection the eager and
onnxruntime timings stop at the graph's outputs (``cnnkit predict`` includes the post-step);
the NMS post-step outside the graph is also timed separately (``NMS`` columns of the
detection rows: per image, ``padded_nms`` over the row's batch of decoded top-k as ``cnnkit
predict`` runs it (in NumPy on the CPU), beside it the same in torch ops (its switch
``cnnkit.tasks.nms.NUMPY_ON_CPU = False``) and the way before both, ``batched_nms`` image by
image).

The models: ``lenet5`` (28×28×1, 10 classes), ``resnet18`` (the zoo's, 32×32×3 small stem,
10 classes), ``segment`` (the ``mnist-segment`` recipe's FCN, 96×96×1, 11 classes),
``detect`` (the ``mnist-detect`` recipe's CenterNet, 96×96×1, 10 classes) and, when the FCOS
head is registered, ``detect-fcos`` (the same backbone with the FCOS head).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench._common import machine_note, print_table
from cnnkit.export.onnx import export_onnx, onnx_session
from cnnkit.export.runtime import use_backend
from cnnkit.export.wrapper import export_module
from cnnkit.models import Sequential, create
from cnnkit.run import threads as run_threads
from cnnkit.run.folder import LoadedModel
from cnnkit.run.task_predict import predict_task_images
from cnnkit.tasks.build import HEADS, task_model
from cnnkit.tasks import nms
from cnnkit.tasks.nms import batched_nms, padded_nms
from cnnkit.train.recipes import MNIST_DETECT_BACKBONE, MNIST_SEGMENT_BACKBONE


def _task_loaded(task: str, head: str, spec: str, shape: tuple[int, int, int],
                 num_classes: int) -> LoadedModel:
    c, h, w = shape
    backbone = Sequential.from_spec(spec, input_shape=(h, w, c))
    model = task_model(task, backbone, num_classes, head=head).eval()
    names = [str(i) for i in range(num_classes)]
    return LoadedModel(model, names, None, shape, {}, task=task)


def build(name: str) -> LoadedModel:
    """The named benchmark model as a LoadedModel (random weights, eval mode)."""
    torch.manual_seed(0)
    if name == "lenet5":
        return LoadedModel(create("lenet5", 10, in_channels=1, input_size=28).eval(),
                           [str(i) for i in range(10)], None, (1, 28, 28), {})
    if name == "resnet18":
        return LoadedModel(create("resnet18", 10, in_channels=3, input_size=32).eval(),
                           [str(i) for i in range(10)], None, (3, 32, 32), {})
    if name == "segment":
        return _task_loaded("segment", "fcn", MNIST_SEGMENT_BACKBONE, (1, 96, 96), 11)
    if name == "detect":
        return _task_loaded("detect", "centernet", MNIST_DETECT_BACKBONE, (1, 96, 96), 10)
    if name == "detect-fcos":
        return _task_loaded("detect", "fcos", MNIST_DETECT_BACKBONE, (1, 96, 96), 10)
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")


MODELS = ("lenet5", "resnet18", "segment", "detect", "detect-fcos")


def add_model_options(parser: argparse.ArgumentParser, *, repeats: int, batches: str) -> None:
    """``--only``, ``--repeats`` and ``--batches``, as the eager-inference benchmarks take them."""
    parser.add_argument("--only", help=f"comma-separated, from {','.join(MODELS)}")
    parser.add_argument("--repeats", type=int, default=repeats,
                        help="alternating rounds (median)")
    parser.add_argument("--batches", default=batches, help="comma-separated batch sizes")


def chosen_models(parser: argparse.ArgumentParser,
                  args: argparse.Namespace) -> tuple[list[str], list[int]]:
    """The models (default: all but FCOS) and batch sizes asked for; an unknown model is an
    argparse error (exit code 2)."""
    names = args.only.split(",") if args.only else [m for m in MODELS if m != "detect-fcos"]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; choose from {','.join(MODELS)}")
    return names, [int(b) for b in args.batches.split(",")]


def _calls(fn, batch: np.ndarray, seconds: float, min_calls: int) -> list[float]:
    """Call ``fn(batch)`` for about ``seconds`` (at least ``min_calls`` times); each call's time."""
    fn(batch)  # warm-up (first-call allocations, onnxruntime's graph optimisation)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - t0)
    return times


def measure(name: str, batches: list[int], repeats: int, seconds: float) -> list[dict]:
    """Time eager, onnxruntime and cnnkit predict for one model; a dict per (runtime, batch)."""
    loaded = build(name)
    module, outputs = export_module(loaded)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(loaded, Path(tmp) / f"{name}.onnx")
        session = onnx_session(path, threads=threads, spinning="always")  # onnxruntime's own
        session_1 = onnx_session(path, threads=1)
        input_name = session.get_inputs()[0].name
        predictor = use_backend(build(name), "auto", cache_dir=Path(tmp) / "cache")
        forward = predictor.forward
        kept = (getattr(forward, "pixel_session", None) or getattr(forward, "single_session",
                                                                   None)) is not None
        print(f"  {name}: cnnkit predict runs single images on "
              f"{'a one-thread session (measured faster)' if kept else 'the main session'}",
              flush=True)

        def eager(x: np.ndarray):
            with torch.inference_mode():
                return module(torch.from_numpy(x))

        def ort(x: np.ndarray):
            return session.run(None, {input_name: x})

        def ort_1(x: np.ndarray):
            return session_1.run(None, {input_name: x})

        def cnnkit_predict(x: np.ndarray):
            pixels = torch.from_numpy(x)  # (N, C, H, W) uint8
            if predictor.task == "classify":
                return predictor.predict_proba(pixels, batch_size=256)
            return predict_task_images(predictor, list(pixels), batch_size=256)

        def predict_torch_threads(x: np.ndarray):  # the switch off: the steps around
            run_threads.ONNX_TORCH_THREADS = None  # onnxruntime on the whole pool
            try:
                return cnnkit_predict(x)
            finally:
                run_threads.ONNX_TORCH_THREADS = 1

        runtimes = {"eager": eager, "onnxruntime": ort, "onnxruntime, 1 thread": ort_1,
                    "cnnkit predict": cnnkit_predict,
                    "predict, all torch threads": predict_torch_threads}
        rng = np.random.default_rng(0)
        rows = []
        for batch in batches:
            x = rng.integers(0, 256, (batch, *loaded.input_shape), dtype=np.uint8)
            speeds = {r: [] for r in runtimes}
            latencies = {r: [] for r in runtimes}
            for _ in range(repeats):  # alternate: load hits both alike
                for runtime, fn in runtimes.items():
                    times = _calls(fn, x, seconds, min_calls=3)
                    speeds[runtime].append(batch * len(times) / sum(times))
                    latencies[runtime].extend(times)
            for runtime in runtimes:
                lat = np.asarray(latencies[runtime]) * 1e3
                rows.append({"model": name, "runtime": runtime, "batch": batch,
                             "images_per_s": statistics.median(speeds[runtime]),
                             "p50_ms": float(np.percentile(lat, 50)) if batch == 1 else None,
                             "p99_ms": float(np.percentile(lat, 99)) if batch == 1 else None})
        if loaded.task == "detect":
            post = {batch: _nms_ms(loaded, module, batch) for batch in batches}
            for row in rows:
                row.update(post[row["batch"]])
    return rows


def _nms_ms(loaded: LoadedModel, module, batch: int) -> dict[str, float]:
    """Median ms per image of the class-aware NMS post-step on the graph's decoded top-k of
    ``batch`` images, three ways alternating: as ``predict_task_images`` runs it
    (:func:`cnnkit.tasks.nms.padded_nms`, in NumPy on the CPU), the same in torch ops (its
    switch ``NUMPY_ON_CPU`` off) and the way before both, image by image (``batched_nms``)."""
    x = torch.randint(0, 256, (batch, *loaded.input_shape), dtype=torch.uint8)
    with torch.inference_mode():
        boxes, scores, labels = module(x)

    def torch_ops():
        nms.NUMPY_ON_CPU = False
        try:
            padded_nms(boxes, scores, labels, 0.5)
        finally:
            nms.NUMPY_ON_CPU = True

    def image_by_image():
        for b, s, lab in zip(boxes, scores, labels):
            keep = s > 0
            batched_nms(b[keep], s[keep], lab[keep], 0.5)

    ways = {"nms_ms": lambda: padded_nms(boxes, scores, labels, 0.5),
            "nms_torch_ops_ms": torch_ops, "nms_image_by_image_ms": image_by_image}
    times: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(max(21, 2000 // batch)):  # alternating
        for way, fn in ways.items():
            t0 = time.perf_counter()
            fn()
            times[way].append(time.perf_counter() - t0)
    return {way: statistics.median(times[way]) * 1e3 / batch for way in ways}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated models (default: all)")
    parser.add_argument("--batches", default="1,32,256", help="batch sizes")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="seconds of calls per runtime per round")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(MODELS)
    if ("detect", "fcos") not in HEADS and "detect-fcos" in names:
        names.remove("detect-fcos")
    batches = [int(b) for b in args.batches.split(",")]
    print(machine_note())
    results = []
    for name in names:
        print(f"{name}: exporting and timing ...", flush=True)
        results.extend(measure(name, batches, args.repeats, args.seconds))
    rows = []
    for name in names:
        for batch in batches:
            pair = {r["runtime"]: r for r in results if r["model"] == name and r["batch"] == batch}
            e, o, c = pair["eager"], pair["onnxruntime"], pair["cnnkit predict"]
            o1, t = pair["onnxruntime, 1 thread"], pair["predict, all torch threads"]
            lat = [f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}" if batch == 1 else ""
                   for r in (e, o, o1, c)]
            best = max(e["images_per_s"], o["images_per_s"], o1["images_per_s"])
            rows.append([name, batch, f"{e['images_per_s']:.0f}", f"{o['images_per_s']:.0f}",
                         f"{o['images_per_s'] / e['images_per_s']:.2f}",
                         f"{o1['images_per_s']:.0f}",
                         f"{c['images_per_s']:.0f}", f"{c['images_per_s'] / best:.2f}",
                         f"{t['images_per_s'] / best:.2f}", *lat,
                         *(f"{e[key]:.3f}" if key in e else "" for key in
                           ("nms_ms", "nms_torch_ops_ms", "nms_image_by_image_ms"))])
    print_table(f"Inference, images/s (median of {args.repeats} alternating rounds; "
                f"{torch.get_num_threads()} threads each)",
                ["model", "batch", "eager img/s", "onnxruntime img/s", "ort / eager",
                 "ort 1 thread img/s",
                 "cnnkit predict img/s", "predict / best", "all torch threads / best",
                 "eager p50 / p99 ms", "ort p50 / p99 ms", "ort 1 thread p50 / p99 ms",
                 "predict p50 / p99 ms", "NMS ms/image",
                 "NMS torch ops", "NMS image by image"], rows)


if __name__ == "__main__":
    main()
