"""``cnnkit serve`` under load and abuse: concurrent valid and hostile requests on loopback.

Run from the repository root:  .venv/bin/python -m bench.reliability.serve_load [--seconds 60]

Starts ``cnnkit serve`` on a small run folder as a subprocess, then ``--clients`` threads send
requests for ``--seconds``: half are valid (a PNG body, JSON pixels, a two-file multipart
batch), half hostile (garbage bytes, a PNG claiming 100000×100000 pixels, broken JSON, deep
JSON nesting, an over-limit body, too many images, a wrong content type, bad query values,
unknown routes). Every valid request must come back 200 with exactly the predictions the
server gave for it before the load; every hostile one must get a 4xx; nothing may get a 5xx or
a broken connection. The server's resident memory is sampled every second: after the warm-up
it must stay flat. A table summarises requests, answers, failures and memory.
"""
from __future__ import annotations

import argparse
import http.client
import json
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnkit.data.normalization import Normalization
from cnnkit.models import Sequential
from cnnkit.train.run_folder import model_metadata, save_weights, write_json

SPEC = "conv(8,3,padding=same) relu maxpool(2) conv(16,3) relu flatten fc(10)"


def write_run(folder: Path) -> Path:
    """A run folder (random weights, 28x28 grayscale, 10 classes) to serve."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = Sequential.from_spec(SPEC, "28x28x1")
    with torch.no_grad():  # spread the logits so that no two classes nearly tie
        model[-1].weight.mul_(20.0)
    save_weights(model, folder / "weights.safetensors")
    write_json(folder / "model.json", model_metadata(model, [str(k) for k in range(10)],
                                                     Normalization((0.13,), (0.31,)), (1, 28, 28)))
    return folder


# ---------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class Request:
    """One HTTP request of the mix; ``valid`` ones have a known expected answer."""

    name: str
    method: str
    path: str
    body: bytes
    content_type: str
    valid: bool


def _png(array: np.ndarray) -> bytes:
    out = BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def _bomb_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0,
                                                             0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(100))) + chunk(b"IEND", b""))


def _multipart(files: list[bytes], boundary: str = "cnnkitload") -> bytes:
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
             f"filename=\"{i}.png\"\r\nContent-Type: image/png\r\n\r\n".encode() + data + b"\r\n"
             for i, data in enumerate(files)]
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def request_mix(seed: int = 0) -> list[Request]:
    """The valid and hostile requests that the clients draw from."""
    rng = np.random.default_rng(seed)
    digits = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(4)]
    pngs = [_png(d) for d in digits]
    multipart = "multipart/form-data; boundary=cnnkitload"
    valid = [Request(f"png-{i}", "POST", "/predict", png, "image/png", True)
             for i, png in enumerate(pngs)]
    valid += [Request("json-pixels", "POST", "/predict",
                      json.dumps({"pixels": digits[0].tolist()}).encode(), "application/json",
                      True),
              Request("multipart-2", "POST", "/predict", _multipart(pngs[1:3]), multipart, True)]
    hostile = [
        Request("garbage-png", "POST", "/predict", bytes(rng.integers(0, 256, 3000,
                                                                      dtype=np.uint8)),
                "image/png", False),
        Request("bomb-png", "POST", "/predict", _bomb_png(), "image/png", False),
        Request("truncated-png", "POST", "/predict", pngs[0][:60], "image/png", False),
        Request("bad-json", "POST", "/predict", b'{"pixels": [[1, 2,', "application/json",
                False),
        Request("deep-json", "POST", "/predict", b"[" * 100_000 + b"]" * 100_000,
                "application/json", False),
        Request("wrong-shape", "POST", "/predict", json.dumps({"pixels": [[1, 2], [3]]}).encode(),
                "application/json", False),
        Request("too-many", "POST", "/predict",
                json.dumps({"images": [{"pixels": [[0]]}] * 65}).encode(), "application/json",
                False),
        Request("too-big", "POST", "/predict", bytes(9 * 1024 * 1024), "image/png", False),
        Request("text-plain", "POST", "/predict", b"hello", "text/plain", False),
        Request("empty", "POST", "/predict", b"", "image/png", False),
        Request("bad-top-k", "POST", "/predict?top_k=-3", pngs[0], "image/png", False),
        Request("no-file-field", "POST", "/predict", b"--cnnkitload--\r\n", multipart, False),
        Request("unknown-route", "POST", "/../../etc/passwd", pngs[0], "image/png", False),
        Request("get-predict", "GET", "/predict", b"", "", False),
    ]
    return valid + hostile


def _send(conn: http.client.HTTPConnection, req: Request) -> tuple[int, bytes]:
    headers = {"Content-Type": req.content_type} if req.content_type else {}
    conn.request(req.method, req.path, body=req.body or None, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def _predictions(body: bytes) -> list[list[tuple[str, float]]]:
    """The ranked (class, probability) pairs of each image of a /predict answer."""
    answer = json.loads(body)
    results = answer["results"] if "results" in answer else [answer]
    return [[(p["class"], p["probability"]) for p in r["predictions"]] for r in results]


def _same_predictions(got: list, want: list, tolerance: float = 1e-4) -> bool:
    """Same classes in the same order, probabilities equal up to batching round-off (a batch
    of 1 and a batch of 32 take different kernels)."""
    return len(got) == len(want) and all(
        [c for c, _ in g] == [c for c, _ in w]
        and all(abs(p - q) <= tolerance for (_, p), (_, q) in zip(g, w))
        for g, w in zip(got, want))


# ---------------------------------------------------------------------------- the load
@dataclass
class LoadReport:
    """What the clients sent and got back, and the server's memory."""

    seconds: float = 0.0
    sent: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)

    @property
    def valid_ok(self) -> int:
        return self.statuses["valid 200"]

    @property
    def memory_growth_mib(self) -> float:
        """RSS at the end minus RSS after the first quarter (the warm-up)."""
        if len(self.rss_mib) < 4:
            return 0.0
        return self.rss_mib[-1] - self.rss_mib[len(self.rss_mib) // 4]


def _client(host: str, port: int, mix: list[Request], expected: dict[str, list],
            deadline: float, seed: int, report: LoadReport, lock: threading.Lock) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    while time.monotonic() < deadline:
        req = rng.choice(mix)
        try:
            status, body = _send(conn, req)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=30)
            status, body = -1, repr(exc).encode()
        kind = "valid" if req.valid else "hostile"
        problem = None
        if req.valid and status != 200:
            problem = f"valid {req.name} got {status}: {body[:200]!r}"
        elif req.valid and not _same_predictions(_predictions(body), expected[req.name]):
            problem = f"valid {req.name} got different predictions under load"
        elif not req.valid and not 400 <= status < 500:
            problem = f"hostile {req.name} got {status}: {body[:200]!r}"
        with lock:
            report.sent[kind] += 1
            report.statuses[f"{kind} {status}"] += 1
            if problem and len(report.failures) < 50:
                report.failures.append(problem)
    conn.close()


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def hammer(host: str, port: int, pid: int, *, seconds: float, clients: int,
           seed: int = 0) -> LoadReport:
    """Send the request mix from ``clients`` threads for ``seconds``; sample RSS of ``pid``."""
    mix = request_mix(seed)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    expected = {}
    for req in mix:
        if req.valid:
            status, body = _send(conn, req)
            if status != 200:
                raise RuntimeError(f"the server refused the valid {req.name}: {status} {body!r}")
            expected[req.name] = _predictions(body)
    conn.close()
    report, lock = LoadReport(), threading.Lock()
    start = time.monotonic()
    deadline = start + seconds
    threads = [threading.Thread(target=_client, args=(host, port, mix, expected, deadline,
                                                      seed * 1000 + i, report, lock))
               for i in range(clients)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        report.rss_mib.append(_rss_mib(pid))
        time.sleep(min(1.0, seconds / 8))  # memory sampling period, not a timing measurement
    for thread in threads:
        thread.join()
    report.rss_mib.append(_rss_mib(pid))
    report.seconds = time.monotonic() - start
    return report


# `cnnkit serve` through the CLI module itself, also before it is listed in COMMAND_MODULES.
_SERVE_MAIN = ("import argparse, sys; from cnnkit.cli import serve; "
               "parser = argparse.ArgumentParser(prog='cnnkit'); "
               "serve.add_parser(parser.add_subparsers()); "
               "args = parser.parse_args(sys.argv[1:]); sys.exit(args.func(args))")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(run: Path, port: int) -> subprocess.Popen:
    """``cnnkit serve RUN`` on 127.0.0.1:``port``; returns once it answers /health."""
    proc = subprocess.Popen([sys.executable, "-c", _SERVE_MAIN, "serve", str(run), "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"cnnkit serve exited: {proc.stderr.read().decode()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200 and proc.poll() is None:  # ours, not another
                return proc
        except OSError:
            time.sleep(0.2)  # waiting for start-up, not timing anything
    proc.kill()
    raise RuntimeError("cnnkit serve did not answer /health within 60 s")


def format_report(report: LoadReport) -> str:
    rows = [("duration (s)", f"{report.seconds:.0f}"),
            ("valid requests sent", report.sent["valid"]),
            ("  answered 200 with the expected predictions", report.valid_ok
             - sum(1 for f in report.failures if "different predictions" in f)),
            ("hostile requests sent", report.sent["hostile"]),
            ("  answered 4xx", sum(n for k, n in report.statuses.items()
                                   if k.startswith("hostile 4"))),
            ("5xx answers", sum(n for k, n in report.statuses.items() if " 5" in k)),
            ("broken connections", sum(n for k, n in report.statuses.items()
                                       if k.endswith(" -1"))),
            ("failures", len(report.failures)),
            ("server RSS after warm-up / end / max (MiB)",
             f"{report.rss_mib[len(report.rss_mib) // 4]:.0f} / {report.rss_mib[-1]:.0f} / "
             f"{max(report.rss_mib):.0f}"),
            ("RSS growth after warm-up (MiB)", f"{report.memory_growth_mib:+.1f}")]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += [f"  {k}: {n}" for k, n in sorted(report.statuses.items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: a free one)")
    parser.add_argument("--max-growth-mib", type=float, default=50.0,
                        help="RSS growth after warm-up that counts as a leak")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cnnkit-serve-load-") as tmp:
        port = args.port or free_port()
        server = start_server(write_run(Path(tmp) / "run"), port)
        try:
            report = hammer("127.0.0.1", port, server.pid, seconds=args.seconds,
                            clients=args.clients)
            alive = server.poll() is None
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(format_report(report))
    print(f"server still running at the end: {alive}")
    for failure in report.failures:
        print("FAILURE:", failure)
    ok = alive and not report.failures and report.memory_growth_mib < args.max_growth_mib
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
