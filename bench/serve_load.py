"""Load test of ``cnnkit serve`` on loopback, and predict throughput: PyTorch vs onnxruntime.

Section 1 (load): trains a small CNN on the built-in digits (a few seconds; or ``--run RUN``),
starts the server in a subprocess (uvicorn on 127.0.0.1), and runs ``--clients`` concurrent
HTTP clients for ``--seconds`` each against two server settings, alternated: dynamic batching
(max batch 32, wait 2 ms) and no batching (max batch 1). The clients mix JSON pixel arrays,
multipart PNG uploads and JSON batches of 4 images. Reported: requests/s, images/s, p50/p99
latency, HTTP errors, and lost requests (sent but never answered).

Section 2 (predict): images/s at batch 256 and single-image p50/p99 latency of LeNet-5 (28x28x1)
and ResNet-18 (32x32x3), PyTorch eager (``torch.inference_mode``) vs onnxruntime on the file
``cnnkit.export.export_onnx`` writes, alternated, median of the repeats. Random weights: speed
does not depend on them.

Section 3 (``--only formats``, ~10 minutes): every registered model exported to ONNX,
TorchScript and torch.export, each verified against PyTorch; a table of what works.

Run from the repo root:
    python -m bench.serve_load                   # sections 1 and 2
    python -m bench.serve_load --only predict --repeats 5
    python -m bench.serve_load --only formats
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench._common import alternate, machine_note, median_of, print_table

SERVER_CODE = """
import sys, uvicorn
from cnnkit.serve import BatchConfig, ServeConfig, create_app
run, port, max_batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
config = ServeConfig(batch=BatchConfig(max_batch=max_batch, max_wait_ms=2.0))
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


def start_server(run: Path, max_batch: int) -> tuple[subprocess.Popen, str]:
    """uvicorn in a subprocess; returns once /health answers."""
    import httpx

    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", SERVER_CODE, str(run), str(port),
                                str(max_batch)])
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


def load_section(run: Path | None, clients: int, seconds: float, repeats: int) -> None:
    import cnnkit

    with tempfile.TemporaryDirectory() as tmp:
        run = run or train_quick_run(Path(tmp) / "digits")
        mix = request_mix(cnnkit.load(run).input_shape)
        servers = {"dynamic batching (max 32, 2 ms)": start_server(run, 32),
                   "no batching (max 1)": start_server(run, 1)}
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
def predict_section(repeats: int, batch: int, singles: int) -> None:
    """PyTorch eager vs onnxruntime: images/s at ``batch`` and single-image latency."""
    from cnnkit.export import export_onnx, onnx_session
    from cnnkit.models import create
    from cnnkit.train.run_folder import LoadedModel

    threads = torch.get_num_threads()
    rows = []
    for name, shape in [("lenet5", (1, 28, 28)), ("resnet18", (3, 32, 32))]:
        model = create(name, num_classes=10, in_channels=shape[0], input_size=shape[1:]).eval()
        loaded = LoadedModel(model, [str(k) for k in range(10)], None, shape, {})
        with tempfile.TemporaryDirectory() as tmp:
            session = onnx_session(export_onnx(loaded, Path(tmp) / f"{name}.onnx",
                                               input_dtype="float32"), threads=threads)
        big = torch.rand(batch, *shape)
        one = [torch.rand(1, *shape) for _ in range(singles)]

        def torch_run(x):
            with torch.inference_mode():
                return model(x)

        def ort_run(x):
            return session.run(None, {"images": x.numpy()})

        def measure(run_fn):
            def fn(_repeat):
                run_fn(big[:8])  # warm-up
                start = time.perf_counter()
                run_fn(big)
                throughput = batch / (time.perf_counter() - start)
                latencies = []
                for x in one:
                    start = time.perf_counter()
                    run_fn(x)
                    latencies.append((time.perf_counter() - start) * 1000)
                return {"img_per_s": throughput, "p50_ms": statistics.median(latencies),
                        "p99_ms": float(np.percentile(latencies, 99))}
            return fn

        print(f"{name} {shape}:", flush=True)
        results = alternate({"pytorch": measure(torch_run), "onnxruntime": measure(ort_run)},
                            repeats)
        base = median_of(results["pytorch"], "img_per_s")
        for runtime, r in results.items():
            rows.append([name, runtime, f"{median_of(r, 'img_per_s'):.0f}",
                         f"{median_of(r, 'img_per_s') / base:.2f}x",
                         f"{median_of(r, 'p50_ms'):.2f}", f"{median_of(r, 'p99_ms'):.2f}"])
    print_table(f"Predict: PyTorch eager vs onnxruntime, fp32 CPU, {threads} threads, batch "
                f"{batch} / {singles} single images, median of {repeats}",
                ["model", "runtime", f"images/s @{batch}", "vs pytorch", "single p50 ms",
                 "single p99 ms"], rows)


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
    parser.add_argument("--only", choices=("load", "predict", "formats"), default=None,
                        help="one section; 'formats' (every zoo model, ~10 min) runs only so")
    parser.add_argument("--run", type=Path, default=None,
                        help="serve this run (default: train one on digits)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--singles", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads of PyTorch and onnxruntime (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(machine_note(), f"pid {os.getpid()}", flush=True)
    if args.only in (None, "load"):
        load_section(args.run, args.clients, args.seconds, args.repeats)
    if args.only in (None, "predict"):
        predict_section(args.repeats, args.batch, args.singles)
    if args.only == "formats":
        formats_section()


if __name__ == "__main__":
    main()
