"""Load test of ``cnnkit serve`` on loopback, and predict speed: PyTorch vs onnxruntime.

Section 1 (load): trains a small CNN on the built-in digits (a few seconds; or ``--run RUN``,
or ``--model resnet18``: a zoo model with random weights), starts the server in a subprocess
(uvicorn on 127.0.0.1), and runs ``--clients`` concurrent HTTP clients for ``--seconds`` each
against four server settings, alternated: dynamic batching (max batch 32, wait 2 ms) with
``--backend auto`` and with ``--backend torch``, the first with onnxruntime's idle threads
spinning inside each run (``ServeConfig(spinning="run")``, ``cnnkit predict``'s default; the
server's is ``"never"``), and no batching (max batch 1, auto). The
clients mix JSON pixel arrays, multipart PNG uploads and JSON batches of 4 images. Reported:
requests/s, images/s, p50/p99 latency, HTTP errors, and lost requests (sent but never answered).

Section 2 (predict): images/s at batch 256 and single-image p50/p99 latency of LeNet-5 (28x28x1)
and ResNet-18 (32x32x3): the network alone in PyTorch eager (``torch.inference_mode``) and in
onnxruntime (the export ``backend="auto"`` caches), and ``cnnkit.load(RUN, backend=...)``
``.predict_proba`` on uint8 pixels with backend torch and auto (what ``cnnkit predict`` and the
server run), alternated, median of the repeats. Random weights: speed does not depend on them.

Section 3 (cli): wall time of the whole ``cnnkit predict RUN FILES --backend B`` command in a
fresh process for 1 and 1024 PNG files: torch, auto (the default) and onnxruntime without the
run's cached export, and auto with it.

Section 4 (``--only formats``, ~10 minutes): every registered model exported to ONNX,
TorchScript and torch.export, each verified against PyTorch; a table of what works.

Run from the repo root:
    python -m bench.serve_load                   # sections 1, 2 and 3
    python -m bench.serve_load --only predict --repeats 5 --threads 1
    python -m bench.serve_load --only cli --repeats 3 --threads 1
    python -m bench.serve_load --only formats
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench._common import alternate, machine_note, median_of, print_table

SERVER_CODE = """
import sys, uvicorn
from cnnkit.serve import BatchConfig, ServeConfig, create_app
run, port, max_batch, backend = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
config = ServeConfig(batch=BatchConfig(max_batch=max_batch, max_wait_ms=2.0), backend=backend,
                     spinning=sys.argv[5])
uvicorn.run(create_app(run, config), host="127.0.0.1", port=port, log_level="warning")
"""


# ------------------------------------------------------------------------------- section 1: load
def train_quick_run(folder: Path) -> Path:
    from cnnkit.train import TrainConfig, train

    train(TrainConfig(data="digits", epochs=3, device="cpu", out=str(folder)), progress=False)
    return folder


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(run: Path, max_batch: int, backend: str,
                 spinning: str = "never") -> tuple[subprocess.Popen, str]:
    """uvicorn in a subprocess; returns once /health answers."""
    import httpx

    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", SERVER_CODE, str(run), str(port),
                                str(max_batch), backend, spinning])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the server did not start on {url}")


def request_mix(input_shape) -> list[dict]:
    """Valid requests of three kinds: JSON pixels, a multipart PNG, a JSON batch of 4."""
    from PIL import Image

    rng = np.random.default_rng(0)
    c, h, w = input_shape
    pixels = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if c == 1 else pixels).save(buffer, format="PNG")
    one = {"pixels": pixels.tolist()}
    return [
        {"json": one, "images": 1},
        {"files": {"file": ("x.png", buffer.getvalue(), "image/png")}, "images": 1},
        {"json": {"images": [one] * 4}, "images": 4},
    ]


async def drive(url: str, mix: list[dict], clients: int, seconds: float) -> dict:
    """``clients`` concurrent loops sending the mix for ``seconds``; counts every outcome."""
    import httpx

    latencies: list[float] = []
    counts = {"sent": 0, "ok": 0, "http_errors": 0, "failed": 0, "images": 0}
    stop_at = time.monotonic() + seconds

    async def client(k: int, http: httpx.AsyncClient):
        i = k
        while time.monotonic() < stop_at:
            kind = mix[i % len(mix)]
            i += 1
            counts["sent"] += 1
            start = time.perf_counter()
            try:
                response = await http.post(url + "/predict", json=kind.get("json"),
                                           files=kind.get("files"))
            except httpx.HTTPError:
                counts["failed"] += 1
                continue
            latencies.append(time.perf_counter() - start)
            if response.status_code == 200 and response.json():
                counts["ok"] += 1
                counts["images"] += kind["images"]
            else:
                counts["http_errors"] += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(k, http) for k in range(clients)))
        elapsed = time.perf_counter() - start
    lat = np.array(latencies) * 1000
    answered = counts["ok"] + counts["http_errors"] + counts["failed"]
    return {"req_per_s": counts["ok"] / elapsed, "img_per_s": counts["images"] / elapsed,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "errors": counts["http_errors"] + counts["failed"], "lost": counts["sent"] - answered,
            "requests": counts["ok"]}


def load_section(run: Path | None, clients: int, seconds: float, repeats: int,
                 model: str | None = None) -> None:
    import cnnkit

    with tempfile.TemporaryDirectory() as tmp:
        if model is not None:
            run = write_random_run(Path(tmp) / model, model, dict(PREDICT_MODELS)[model])
        run = run or train_quick_run(Path(tmp) / "digits")
        mix = request_mix(cnnkit.load(run).input_shape)
        servers = {"dynamic batching (max 32, 2 ms), auto": start_server(run, 32, "auto"),
                   "dynamic batching (max 32, 2 ms), torch": start_server(run, 32, "torch"),
                   "dynamic batching, auto, onnxruntime spinning in runs": start_server(
                       run, 32, "auto", "run"),
                   "no batching (max 1), auto": start_server(run, 1, "auto")}
        try:
            results = alternate({name: (lambda _r, url=url: asyncio.run(
                drive(url, mix, clients, seconds))) for name, (_, url) in servers.items()},
                repeats)
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(timeout=30)
    rows = [[name, f"{median_of(r, 'req_per_s'):.0f}", f"{median_of(r, 'img_per_s'):.0f}",
             f"{median_of(r, 'p50_ms'):.1f}", f"{median_of(r, 'p99_ms'):.1f}",
             str(sum(x["errors"] for x in r)), str(sum(x["lost"] for x in r)),
             str(sum(x["requests"] for x in r))] for name, r in results.items()]
    print_table(f"Server load: {clients} clients x {seconds:.0f} s x {repeats} rounds, loopback "
                "(median of rounds; errors/lost/requests summed)",
                ["server", "req/s", "images/s", "p50 ms", "p99 ms", "errors", "lost",
                 "requests"], rows)


# ---------------------------------------------------------------------------- section 2: predict
PREDICT_MODELS = [("lenet5", (1, 28, 28)), ("resnet18", (3, 32, 32))]


def write_random_run(folder: Path, name: str, shape) -> Path:
    """A run folder (model.json + weights.safetensors) of a zoo model with random weights."""
    from cnnkit.data.normalization import Normalization
    from cnnkit.models import create
    from cnnkit.train.run_folder import MODEL_FILE, WEIGHTS_FILE, model_metadata, save_weights, \
        write_json

    folder.mkdir(parents=True)
    model = create(name, num_classes=10, in_channels=shape[0], input_size=shape[1:])
    save_weights(model, folder / WEIGHTS_FILE)
    norm = Normalization((0.5,) * shape[0], (0.25,) * shape[0])
    write_json(folder / MODEL_FILE, model_metadata(model, [str(k) for k in range(10)], norm,
                                                   shape))
    return folder


def measure_predict(run_fn, big, singles: list, min_seconds: float = 1.0) -> Callable[[int], dict]:
    """images/s on ``big`` (calls repeated for ``min_seconds``, at least 2) and p50/p99 ms of
    one call per single image.

    Each round first runs both shapes once: oneDNN and onnxruntime prepare per input shape.
    """
    def fn(_repeat):
        run_fn(big)
        run_fn(singles[0])
        calls, start = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - start < min_seconds:
            run_fn(big)
            calls += 1
        throughput = calls * len(big) / (time.perf_counter() - start)
        latencies = []
        for x in singles:
            start = time.perf_counter()
            run_fn(x)
            latencies.append((time.perf_counter() - start) * 1000)
        return {"img_per_s": throughput, "p50_ms": statistics.median(latencies),
                "p99_ms": float(np.percentile(latencies, 99))}
    return fn


def predict_section(repeats: int, batch: int, singles: int) -> None:
    """Network alone (PyTorch eager, onnxruntime) and ``cnnkit.load(RUN, backend=...)``.

    The first two rows run the network on normalised float32 batches; the ``cnnkit predict``
    rows take uint8 pixels through ``LoadedModel.predict_proba`` (what ``cnnkit predict`` and
    the server call: normalisation, the network on the chosen backend, softmax).
    """
    from cnnkit.export.runtime import CACHE_DIR
    from cnnkit.train.run_folder import load_run

    threads = torch.get_num_threads()
    rows = []
    for name, shape in PREDICT_MODELS:
        with tempfile.TemporaryDirectory() as tmp:
            run = write_random_run(Path(tmp) / name, name, shape)
            eager = load_run(run, backend="torch")
            auto = load_run(run, backend="auto")
            session = auto.forward.session if auto.backend == "onnxruntime" else None
            print(f"{name} {shape}: backend auto chose {auto.backend} "
                  f"({sorted(p.name for p in (run / CACHE_DIR).glob('*'))})", flush=True)
        pixels = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8)
        floats = eager.normalization.apply(pixels)
        one_pixels = [pixels[i:i + 1].clone() for i in range(min(singles, batch))]
        one_floats = [floats[i:i + 1].clone() for i in range(min(singles, batch))]

        def torch_run(x, model=eager.model):
            with torch.inference_mode():
                return model(x)

        contenders = {
            "pytorch eager": measure_predict(torch_run, floats, one_floats),
            "cnnkit predict, backend torch": measure_predict(
                lambda x, m=eager: m.predict_proba(x, batch_size=batch), pixels, one_pixels),
            "cnnkit predict, backend auto": measure_predict(
                lambda x, m=auto: m.predict_proba(x, batch_size=batch), pixels, one_pixels),
        }
        if session is not None:
            contenders["onnxruntime"] = measure_predict(
                lambda x, s=session: s.run(None, {"images": x.numpy()}), floats, one_floats)
        results = alternate(contenders, repeats)
        base = median_of(results["pytorch eager"], "img_per_s")
        for runtime, r in results.items():
            label = f"{runtime} ({auto.backend})" if runtime.endswith("auto") else runtime
            rows.append([name, label, f"{median_of(r, 'img_per_s'):.0f}",
                         f"{median_of(r, 'img_per_s') / base:.2f}x",
                         f"{median_of(r, 'p50_ms'):.2f}", f"{median_of(r, 'p99_ms'):.2f}"])
    print_table(f"Predict: fp32 CPU, {threads} threads, batch {batch} / {singles} single "
                f"images, median of {repeats}",
                ["model", "runtime", f"images/s @{batch}", "vs pytorch eager", "single p50 ms",
                 "single p99 ms"], rows)


def cli_section(repeats: int, counts: list[int], threads: int) -> None:
    """Wall time of the whole ``cnnkit predict RUN FILES [--backend B]`` command, per backend.

    "nothing cached" starts without the run's cached export (``RUN/.cache``): ``auto`` then
    exports only for ``AUTO_EXPORT_MIN_IMAGES`` files or more, ``onnxruntime`` always; "cached"
    starts with it. Each command is a fresh process (imports included).
    """
    from PIL import Image

    from cnnkit.export.runtime import CACHE_DIR

    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    rng = np.random.default_rng(0)
    rows = []
    for name, shape in PREDICT_MODELS:
        with tempfile.TemporaryDirectory() as tmp:
            run = write_random_run(Path(tmp) / name, name, shape)
            folder = Path(tmp) / "images"
            folder.mkdir()
            c, h, w = shape
            for k in range(max(counts)):
                pixels = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
                Image.fromarray(pixels.squeeze(-1) if c == 1 else pixels).save(
                    folder / f"{k:05d}.png")
            files = sorted(folder.iterdir())

            def predict(backend: str | None, count: int) -> float:
                argv = [sys.executable, "-m", "cnnkit", "predict", str(run),
                        *map(str, files[:count]), "--json"]
                argv += ["--backend", backend] if backend else []
                start = time.perf_counter()
                subprocess.run(argv, check=True, env=env, capture_output=True)
                return time.perf_counter() - start

            def command(backend: str | None, count: int, cached: bool):
                def fn(_repeat):
                    if not cached:
                        shutil.rmtree(run / CACHE_DIR, ignore_errors=True)
                    elif not (run / CACHE_DIR).is_dir():
                        predict("onnxruntime", 1)  # makes the cached export, not timed
                    return {"seconds": predict(backend, count)}
                return fn

            for count in counts:
                print(f"{name}, {count} files:", flush=True)
                results = alternate({
                    "torch": command("torch", count, cached=False),
                    "auto (default), nothing cached": command(None, count, cached=False),
                    "onnxruntime, nothing cached": command("onnxruntime", count, cached=False),
                    "auto (default), cached": command(None, count, cached=True)}, repeats)
                base = median_of(results["torch"], "seconds")
                rows += [[name, str(count), backend, f"{median_of(r, 'seconds'):.2f}",
                          f"{median_of(r, 'seconds') / base:.2f}x"]
                         for backend, r in results.items()]
    print_table(f"cnnkit predict RUN FILES --backend B, whole command (fresh process), "
                f"{threads} threads, median of {repeats}",
                ["model", "files", "--backend", "seconds", "vs torch"], rows)


# ---------------------------------------------------------------------------- section 3: formats
def formats_section() -> None:
    """Export every registered model in every format (each export verifies itself)."""
    from cnnkit.export import FORMATS, ExportError, export
    from cnnkit.models import registry
    from cnnkit.train.run_folder import LoadedModel

    rows = []
    for name in registry.names():
        model = registry.create(name, num_classes=10).eval()
        shape = (model.in_channels, *model.input_size)
        loaded = LoadedModel(model, [str(k) for k in range(10)], None, shape, {})
        row = [name, "x".join(map(str, shape[1:])) + f"x{shape[0]}"]
        for fmt, suffix in FORMATS.items():
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    export(loaded, Path(tmp) / f"model{suffix}", format=fmt)
                    row.append("ok")
                except ExportError as error:
                    row.append(f"FAIL: {str(error).splitlines()[0][:90]}")
        print("  " + " | ".join(row), flush=True)
        rows.append(row)
    print_table("Export formats (each verified against PyTorch on batch sizes 1, 3, 8)",
                ["model", "input", *FORMATS], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("load", "predict", "cli", "formats"), default=None,
                        help="one section; 'formats' (every zoo model, ~10 min) runs only so")
    parser.add_argument("--run", type=Path, default=None,
                        help="serve this run (default: train one on digits)")
    parser.add_argument("--model", choices=[name for name, _ in PREDICT_MODELS], default=None,
                        help="serve this zoo model with random weights (default: train one)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--singles", type=int, default=200)
    parser.add_argument("--cli-files", default="1,1024",
                        help="image counts of the cnnkit predict command section (comma-separated)")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads of PyTorch and onnxruntime (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(machine_note(), f"pid {os.getpid()}", flush=True)
    if args.only in (None, "load"):
        load_section(args.run, args.clients, args.seconds, args.repeats, args.model)
    if args.only in (None, "predict"):
        predict_section(args.repeats, args.batch, args.singles)
    if args.only in (None, "cli"):
        cli_section(args.repeats, [int(n) for n in args.cli_files.split(",")],
                    torch.get_num_threads())
    if args.only == "formats":
        formats_section()


if __name__ == "__main__":
    main()
