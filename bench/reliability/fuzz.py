"""Mutation fuzzing of every reader of untrusted input: only the documented errors may escape.

Run from the repository root:  .venv/bin/python -m bench.reliability.fuzz [--inputs 100000]

Each target starts from small valid files (IDX, CIFAR pickle/binary/tar, PNG/JPEG/BMP/GIF/WebP,
image folders, .npz/.npy, CSV, architecture strings), mutates them with a seeded
``random.Random`` (bit flips, random bytes, "interesting" integers such as 0xFFFFFFFF written
over headers, chunk deletion/duplication/insertion, truncation, splices of tokens) and calls the
reader. A reader may accept the input or raise its documented clean error (``DataError`` for
the data readers, ``SpecError`` for the spec parser, a 4xx answer for the server's request
parsing, driven in-process through ``/predict`` and ``/features``); any other exception, a
5xx answer, a ``MemoryError`` under the address-space limit, or an input that takes longer than
``--timeout`` seconds is a crash. Crashes are grouped by (exception type, innermost cnnkit
frame); the index of one input of each is printed, and ``fuzz_target`` replays input ``i``
from its index alone.

The process limits its own address space (``--memory-gb``, default 3) so that an input that
makes a reader allocate without bound fails here instead of exhausting the machine.
"""
from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import logging
import pickle
import random
import resource
import signal
import struct
import sys
import tarfile
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cnnkit.data.arrays import from_arrays, load_npy, load_npz
from cnnkit.data.cifar import load_cifar
from cnnkit.data.csv_source import load_csv
from cnnkit.data.folder import decode_image, load_image_folder
from cnnkit.data.idx import load_idx, read_idx
from cnnkit.errors import DataError
from cnnkit.models.spec import SpecError, parse_spec

INTERESTING_32 = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000,
                  0xFFFFFFFF)


class InputTimeout(Exception):
    """An input took longer than the per-input time limit."""


# ---------------------------------------------------------------------------- mutation
def mutate(data: bytes, rng: random.Random, tokens: tuple[bytes, ...] = ()) -> bytes:
    """Apply 1-4 random mutations to ``data`` (bit flips, byte sets, integers, chunk edits)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9 if tokens else 8)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 2:  # an interesting big-endian or little-endian 32-bit integer
            order = rng.choice((">I", "<I"))
            buf[pos:pos + 4] = struct.pack(order, rng.choice(INTERESTING_32))
        elif op == 3:
            del buf[pos:pos + rng.randint(1, 64)]
        elif op == 4:
            end = min(len(buf), pos + rng.randint(1, 64))
            buf[pos:pos] = buf[pos:end] * rng.randint(1, 4)
        elif op == 5:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 6:
            del buf[rng.randrange(len(buf) + 1):]
        elif op == 7 and buf:  # a header-sized region overwritten with random bytes
            start = rng.randrange(min(len(buf), 64))
            buf[start:start + 4] = rng.randbytes(4)
        elif op == 8:
            buf[pos:pos] = rng.choice(tokens)
    return bytes(buf)


# ---------------------------------------------------------------------------- valid seeds
def _idx(array: np.ndarray, code: int) -> bytes:
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def _cifar_pickle(n: int, protocol: int) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(n)
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": [int(k) for k in
                                                                   rng.integers(0, 3, n)],
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
    meta = {b"label_names": [b"cat", b"dog", b"eel"], b"num_vis": 3072, b"num_cases_per_batch": n}
    return pickle.dumps(batch, protocol=protocol), pickle.dumps(meta, protocol=protocol)


def _image_bytes(fmt: str, mode: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    shape = (6, 5) if mode == "L" else (6, 5, {"RGB": 3, "RGBA": 4}[mode])
    image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


IMAGE_SEEDS = [(fmt, _image_bytes(fmt, mode, i)) for i, (fmt, mode) in enumerate(
    [("PNG", "L"), ("PNG", "RGB"), ("PNG", "RGBA"), ("JPEG", "RGB"), ("JPEG", "L"),
     ("BMP", "RGB"), ("GIF", "L"), ("WEBP", "RGB"), ("TIFF", "RGB")])]
SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "GIF": ".gif", "WEBP": ".webp",
          "TIFF": ".png"}  # a TIFF named .png: readers must go by content, not by name


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


SPEC_SEEDS = ["conv(16,3) relu maxpool(2) fc(10)",
              "conv(32,3,padding=same) bn relu conv(32,3,stride=2) relu dropout(0.25) "
              "flatten fc(128) relu fc(10)",
              "Input -> Conv -> ReLU -> Pool -> FC", "Input -> Conv(3x3, 64) -> Pool -> FC(10)",
              "conv(8,5,dilation=2) tanh avgpool(3,stride=2) gap fc(4) softmax",
              "conv(6,5) sigmoid avgpool(2) conv(16,5) sigmoid avgpool(2) fc(120) fc(84) fc(10)"]
SPEC_TOKENS = tuple(t.encode() for t in (
    "(", ")", ",", "=", "->", " ", "x", "conv", "fc", "pool", "relu", "padding=", "stride=",
    "same", "valid", "0", "-1", "99999999999999999999", "1e309", "nan", "3x3", "\u00e9", "\x00",
    "(((((((((((", "))", "dropout(", "bn", "maxpool(", "Input", "->->", "\n", "\t", "'"))
CSV_TOKENS = tuple(t.encode() for t in (
    ",", "\n", '"', "..", "../", "/", "/etc/passwd", "\x00", "99999999999999999999", "-1",
    "\ufeff", "imgs/", "a.png", "\r\n", "label", "path", "\u0663", " ", "C:\\", "~"))


# ---------------------------------------------------------------------------- targets
@dataclass
class Target:
    """A reader under test: how to turn one random input into one call."""

    name: str
    run: Callable[[random.Random, Path], None]
    clean: tuple[type[BaseException], ...] = (DataError,)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _idx_target(rng: random.Random, work: Path) -> None:
    images = _idx(np.arange(48).reshape(3, 4, 4) % 256, 0x08)
    labels = rng.choice([_idx(np.array([0, 1, 2]), 0x08), _idx(np.array([0, 1, 2]), 0x0C),
                         _idx(np.array([[0.5, 1.0]]), 0x0D)])
    which = rng.randrange(2)
    pair = [images, labels]
    pair[which] = mutate(pair[which], rng)
    if rng.random() < 0.2:
        pair[which] = gzip.compress(pair[which], compresslevel=1)
        if rng.random() < 0.5:
            pair[which] = mutate(pair[which], rng)
    image_path = _write(work / "images.idx", pair[0])
    label_path = _write(work / "labels.idx", pair[1])
    read_idx(image_path if which == 0 else label_path)
    load_idx(image_path, label_path)


def _cifar_folder(work: Path, name: str) -> Path:
    folder = work / name
    folder.mkdir(exist_ok=True)
    for stale in folder.iterdir():
        stale.unlink()
    return folder


def _cifar_pickle_target(rng: random.Random, work: Path) -> None:
    batch, meta = _cifar_pickle(rng.randint(1, 3), rng.choice((2, 4, 5)))
    if rng.random() < 0.8:
        batch = mutate(batch, rng)
    else:
        meta = mutate(meta, rng)
    folder = _cifar_folder(work, "cifar-10-batches-py")
    _write(folder / "test_batch", batch)
    _write(folder / "batches.meta", meta)
    load_cifar(work, split="test")


def _cifar_binary_target(rng: random.Random, work: Path) -> None:
    cifar100 = rng.random() < 0.3
    record = 3074 if cifar100 else 3073
    classes = 100 if cifar100 else 2
    batch = bytes(rng.randrange(classes) if i % record < (2 if cifar100 else 1) else 7
                  for i in range(record * 2))
    names = "".join(f"class{k}\n" for k in range(classes)).encode()
    if rng.random() < 0.8:
        batch = mutate(batch, rng)
    else:
        names = mutate(names, rng)
    if cifar100:
        folder = _cifar_folder(work, "cifar-100-binary")
        _write(folder / "test.bin", batch)
        _write(folder / "fine_label_names.txt", names)
    else:
        folder = _cifar_folder(work, "cifar-10-batches-bin")
        _write(folder / "test_batch.bin", batch)
        _write(folder / "batches.meta.txt", names)
    load_cifar(folder, split="test", label_mode="fine")


def _cifar_tar_seed() -> bytes:
    batch, meta = _cifar_pickle(2, 2)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in (("test_batch", batch), ("batches.meta", meta)):
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


CIFAR_TAR = _cifar_tar_seed()


def _cifar_tar_target(rng: random.Random, work: Path) -> None:
    data = mutate(CIFAR_TAR, rng)
    if rng.random() < 0.2:
        data = gzip.compress(data, compresslevel=1)
    load_cifar(_write(work / "cifar.tar.gz", data), split="test")


def _image_target(rng: random.Random, work: Path) -> None:
    fmt, seed = rng.choice(IMAGE_SEEDS)
    path = _write(work / f"image{SUFFIX[fmt]}", mutate(seed, rng))
    decode_image(path, channels=rng.choice((None, 1, 3)),
                 size=rng.choice((None, 4, (3, 7))), resize=rng.choice(("crop", "pad", "stretch")),
                 max_pixels=rng.choice((1_000_000, 40)))


def _image_folder_target(rng: random.Random, work: Path) -> None:
    root = work / "folder"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
    files = []
    for i, cls in enumerate(("a", "b", "a")):
        fmt, seed = IMAGE_SEEDS[(i * 3) % len(IMAGE_SEEDS)]
        files.append((root / cls / f"{i}{SUFFIX[fmt]}", seed))
    victim = rng.randrange(len(files))
    for i, (path, seed) in enumerate(files):
        _write(path, mutate(seed, rng) if i == victim else seed)
    load_image_folder(root, size=rng.choice((None, 5)), channels=rng.choice((None, 1, 3)),
                      strict=rng.random() < 0.5)


def _npz_target(rng: random.Random, work: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (3, 4, 4), dtype=np.uint8)
    seeds = [_npz({"x": images, "y": np.array([0, 1, 2])}),
             _npz({"x_train": images, "y_train": np.array([0, 1, 1]), "x_test": images[:1],
                   "y_test": np.array([1]), "class_names": np.array(["a", "b"])})]
    if rng.random() < 0.5:
        load_npz(_write(work / "data.npz", mutate(rng.choice(seeds), rng)))
    else:
        x = _write(work / "x.npy", mutate(_npy(images), rng) if rng.random() < 0.7
                   else _npy(images))
        y = _write(work / "y.npy", mutate(_npy(np.array([0, 1, 2])), rng))
        load_npy(x, y)


_DTYPES = (np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint16, np.float16, np.float32,
           np.float64, np.bool_, np.complex64, np.str_, np.object_)
_SPECIAL = (0, 1, -1, 255, 256, 0.5, 1e300, -1e300, float("nan"), float("inf"), 2**62)


def _random_array(rng: random.Random, max_dims: int) -> np.ndarray:
    shape = tuple(rng.choice((0, 1, 2, 3, 4, 28)) for _ in range(rng.randint(0, max_dims)))
    dtype = rng.choice(_DTYPES)
    values = np.random.default_rng(rng.randrange(2**32)).integers(0, 256, shape).astype(float)
    flat = values.reshape(-1)  # (...) -> (size,): a view, to plant special values
    for _ in range(min(flat.size, rng.randint(0, 3))):
        flat[rng.randrange(flat.size)] = rng.choice(_SPECIAL)
    with np.errstate(all="ignore"):
        try:
            return values.astype(dtype)
        except (ValueError, OverflowError, TypeError):
            return np.zeros(shape, dtype=np.uint8)


def _arrays_target(rng: random.Random, work: Path) -> None:
    images = _random_array(rng, 5)
    labels = _random_array(rng, 2)
    names = rng.choice((None, ["a", "b"], [], ["a", "a"], [str(i) for i in range(300)]))
    layout = rng.choice(("auto", "auto", "NCHW", "NHWC", "NHW"))
    with np.errstate(all="ignore"):
        from_arrays(images, labels, class_names=names, layout=layout)


def _csv_target(rng: random.Random, work: Path) -> None:
    imgs = work / "csvroot" / "imgs"
    if not imgs.is_dir():
        imgs.mkdir(parents=True)
        for i in range(2):
            _write(imgs / f"{i}.png", IMAGE_SEEDS[i][1])
    seed = rng.choice((b"path,label\nimgs/0.png,cat\nimgs/1.png,dog\n",
                       b"\xef\xbb\xbfFile,Class\n\"imgs/0.png\",1\nimgs/1.png,0\n"))
    csv_path = _write(work / "csvroot" / "labels.csv", mutate(seed, rng, CSV_TOKENS))
    load_csv(csv_path, size=rng.choice((None, 6)))


def _spec_target(rng: random.Random, work: Path) -> None:
    text = mutate(rng.choice(SPEC_SEEDS).encode(), rng, SPEC_TOKENS)
    parse_spec(text.decode("utf-8", errors="replace"), num_classes=rng.choice((1, 10)),
               image_input=rng.choice((None, True, False)))


class ServerFault(Exception):
    """The server answered 5xx to a request (a crash, unlike a 4xx refusal)."""


class RequestRefused(Exception):
    """The server answered 4xx: the documented clean refusal of a bad request."""


_SERVER: dict[str, object] = {}


def _serve_client(work: Path):
    """One in-process client of ``create_app`` on a small run folder, made on first use."""
    if "client" not in _SERVER:
        import torch
        from fastapi.testclient import TestClient

        from cnnkit.data.normalization import Normalization
        from cnnkit.models import Sequential
        from cnnkit.serve import create_app
        from cnnkit.train.run_folder import model_metadata, save_weights, write_json

        run = work / "serve-run"
        run.mkdir(exist_ok=True)
        torch.manual_seed(0)
        model = Sequential.from_spec("conv(4,3,padding=same) relu maxpool(2) flatten fc(3)",
                                     "8x8x1")
        save_weights(model, run / "weights.safetensors")
        write_json(run / "model.json", model_metadata(model, ["a", "b", "c"],
                                                      Normalization((0.5,), (0.25,)), (1, 8, 8)))
        client = TestClient(create_app(run))
        client.__enter__()
        _SERVER["client"] = client
    return _SERVER["client"]


_PIXELS = [[(x * 7 + y * 3) % 256 for x in range(8)] for y in range(8)]
_PNG_B64 = base64.b64encode(IMAGE_SEEDS[0][1]).decode()
SERVE_JSON_SEEDS = [json.dumps(body).encode() for body in (
    {"pixels": _PIXELS}, {"image": _PNG_B64},
    {"images": [{"pixels": _PIXELS}, {"image": _PNG_B64}]})]
JSON_TOKENS = tuple(t.encode() for t in (
    "{", "}", "[", "]", ",", ":", '"', "null", "true", "1e999", "-1", "256", "[[[[[[[[[[",
    '"images"', '"pixels"', '"image"', "\\u0000", "NaN", "Infinity", " "))
SERVE_TYPES = ("application/json", "image/png", "image/jpeg", "multipart/form-data",
               "text/plain", "", "application/json; charset=utf-8", "image/x-anything")


def _multipart(parts: list[bytes], boundary: str) -> bytes:
    lines = []
    for i, part in enumerate(parts):
        lines.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                     f"filename=\"{i}.png\"\r\nContent-Type: image/png\r\n\r\n".encode()
                     + part + b"\r\n")
    return b"".join(lines) + f"--{boundary}--\r\n".encode()


def _serve_target(rng: random.Random, work: Path) -> None:
    client = _serve_client(work)
    kind = rng.randrange(4)
    if kind == 0:
        body, content_type = mutate(rng.choice(SERVE_JSON_SEEDS), rng, JSON_TOKENS), \
            "application/json"
    elif kind == 1:
        fmt, seed = rng.choice(IMAGE_SEEDS)
        body, content_type = mutate(seed, rng), f"image/{fmt.lower()}"
    elif kind == 2:
        boundary = "cnnkitfuzz"
        body = mutate(_multipart([s for _, s in rng.sample(IMAGE_SEEDS, rng.randint(1, 3))],
                                 boundary), rng)
        content_type = f"multipart/form-data; boundary={boundary}"
    else:
        body = mutate(rng.choice(SERVE_JSON_SEEDS + [IMAGE_SEEDS[0][1]]), rng)
        content_type = rng.choice(SERVE_TYPES)
    path = rng.choice(("/predict", "/predict", "/features", "/predict?top_k=2",
                       "/predict?top_k=-1"))
    response = client.post(path, content=body, headers={"content-type": content_type})
    if response.status_code >= 500:
        raise ServerFault(f"{response.status_code}: {response.text[:200]}")
    if response.status_code >= 400:
        raise RequestRefused(response.status_code)


TARGETS = {t.name: t for t in (
    Target("idx", _idx_target), Target("cifar-pickle", _cifar_pickle_target),
    Target("cifar-binary", _cifar_binary_target), Target("cifar-tar", _cifar_tar_target),
    Target("image", _image_target), Target("image-folder", _image_folder_target),
    Target("npz/npy", _npz_target), Target("arrays", _arrays_target, (DataError,)),
    Target("csv", _csv_target), Target("spec", _spec_target, (SpecError,)),
    Target("serve", _serve_target, (RequestRefused,)),
)}


# ---------------------------------------------------------------------------- the loop
@dataclass
class FuzzResult:
    """Counts for one target."""

    name: str
    inputs: int = 0
    accepted: int = 0
    clean_errors: int = 0
    crashes: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)
    seconds: float = 0.0


def _signature(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "cnnkit" in f.filename and "bench" not in f.filename]
    where = ours[-1] if ours else frames[-1]
    return f"{type(exc).__name__} at {Path(where.filename).name}:{where.lineno} ({where.name})"


def _on_alarm(signum, frame):
    raise InputTimeout("input took too long")


def fuzz_target(target: Target, inputs: int, *, seed: int = 0, timeout: float = 5.0,
                work: Path | None = None) -> FuzzResult:
    """Feed ``inputs`` random inputs to ``target``; count accepted, clean errors and crashes.

    Input ``i`` is drawn from ``random.Random(f"{seed}:{name}:{i}")``, so a crash replays
    from its index alone.
    """
    result = FuzzResult(target.name)
    start = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    with tempfile.TemporaryDirectory(prefix="cnnkit-fuzz-", dir=work) as tmp:
        for i in range(inputs):
            rng = random.Random(f"{seed}:{target.name}:{i}")
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                target.run(rng, Path(tmp))
                result.accepted += 1
            except target.clean:
                result.clean_errors += 1
            except (Exception, MemoryError) as exc:  # noqa: BLE001 - every other error is a crash
                key = _signature(exc)
                result.crashes[key] += 1
                result.examples.setdefault(key, (i, f"{type(exc).__name__}: {exc}"[:300]))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            result.inputs += 1
    signal.signal(signal.SIGALRM, previous)
    result.seconds = time.perf_counter() - start
    return result


def _limit_memory(gigabytes: float) -> None:
    limit = int(gigabytes * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs per target")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help=f"comma-separated subset of {', '.join(TARGETS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per input")
    parser.add_argument("--memory-gb", type=float, default=3.0, help="address-space limit")
    args = parser.parse_args(argv)
    _limit_memory(args.memory_gb)
    logging.disable(logging.WARNING)  # skipped-file warnings: one per bad image
    warnings.simplefilter("ignore")  # Pillow's warnings about the corrupt files it reads
    work = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    rows, total_crashes = [], 0
    for name in args.targets.split(","):
        result = fuzz_target(TARGETS[name], args.inputs, seed=args.seed, timeout=args.timeout,
                             work=work)
        crashes = sum(result.crashes.values())
        total_crashes += crashes
        rows.append(result)
        print(f"{name:<13} {result.inputs:>8} inputs  {result.accepted:>7} accepted  "
              f"{result.clean_errors:>7} clean errors  {crashes:>5} crashes  "
              f"{result.seconds:>6.0f} s", flush=True)
        for key, count in result.crashes.most_common():
            index, message = result.examples[key]
            print(f"    {count:>6} x {key}  (input {index}: {message})", flush=True)
    print(f"\n{'target':<13} {'inputs':>8} {'accepted':>9} {'clean err':>10} {'crashes':>8} "
          f"{'s':>6}")
    for r in rows:
        print(f"{r.name:<13} {r.inputs:>8} {r.accepted:>9} {r.clean_errors:>10} "
              f"{sum(r.crashes.values()):>8} {r.seconds:>6.0f}")
    return 1 if total_crashes else 0


if __name__ == "__main__":
    sys.exit(main())
