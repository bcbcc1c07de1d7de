"""Hostile files: none runs code, exhausts memory or writes outside the run folder.

- a ``torch.save`` pickle whose unpickling would create a marker file, offered to every cnnkit
  path that accepts weights;
- CIFAR batches crafted to run code, in a folder and in an archive;
- decompression bombs: PNGs claiming 100000×100000 pixels or inflating to 48 Mpx, a gzipped IDX
  file inflating far beyond its header, a tar member claiming a gigabyte;
- path traversal: CSV paths and tar members with ``..``, class folders named like paths.
"""
from __future__ import annotations

import gzip
import io
import json
import pickle
import re
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.cli import main
from cnnkit.data.cifar import load_cifar
from cnnkit.data.csv_source import load_csv
from cnnkit.data.folder import decode_image, load_image_folder
from cnnkit.data.idx import read_idx
from cnnkit.data.open import open_data
from cnnkit.errors import CheckpointError, DataError
from cnnkit.models import Sequential
from cnnkit.train.atomic import sha256_file
from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.config import TrainConfig
from cnnkit.train.pipeline import train
from cnnkit.train.run_folder import load_run, load_weights

from reliability_helpers import files_under, peak_rss_mib, write_code_running_pickle, RunsCode

SRC = Path(__file__).resolve().parents[2] / "src" / "cnnkit"
MEMORY_BUDGET_MIB = 200  # far below what decoding any of the bombs would take


# ---------------------------------------------------------------------------- pickles
def test_the_payload_is_real(tmp_path):
    """Control: the file does run code when unpickled without restriction."""
    path = write_code_running_pickle(tmp_path / "evil.pt", tmp_path / "ran")
    torch.load(path, weights_only=False)
    assert (tmp_path / "ran").exists()


def test_torch_load_weights_only_refuses_it(tmp_path, marker):
    path = write_code_running_pickle(tmp_path / "evil.pt", marker)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def _evil_run(small_run: Path, marker: Path) -> Path:
    write_code_running_pickle(small_run / "weights.safetensors", marker)
    return small_run


def test_load_weights_and_load_run_refuse_a_pickle(small_run, tmp_path, marker):
    evil = write_code_running_pickle(tmp_path / "evil.pt", marker)
    model = Sequential.from_spec("conv(4,3,padding=same) relu maxpool(2) flatten fc(3)", "8x8x1")
    with pytest.raises(CheckpointError, match="evil.pt.*corrupt"):
        load_weights(model, evil)
    with pytest.raises(CheckpointError, match="weights.safetensors.*corrupt"):
        load_run(_evil_run(small_run, marker))


def test_load_checkpoint_refuses_a_pickle_even_with_a_matching_hash(small_run, marker):
    """An attacker who also rewrites last.json (hash included) still gets no code run."""
    folder = small_run / "checkpoint"
    write_code_running_pickle(folder / "last.safetensors", marker)
    write_code_running_pickle(folder / "prev.safetensors", marker)
    for slot in ("last", "prev"):
        meta = json.loads((folder / f"{slot}.json").read_text())
        meta["tensors_sha256"] = sha256_file(folder / f"{slot}.safetensors")
        (folder / f"{slot}.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(folder)


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_cli_refuses_a_run_with_pickled_weights(small_run, marker, tmp_path, command, capsys):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    argv = [command, str(_evil_run(small_run, marker))]
    argv += [str(image)] if command == "predict" else ["--data", "digits"]
    assert main(argv) == 2
    assert "corrupt" in capsys.readouterr().err


def test_transfer_learning_refuses_the_pickle_with_a_checkpoint_error(tmp_path, marker):
    from cnnkit.transfer_learning.weights import read_state_dict

    with pytest.raises(CheckpointError, match="evil.pth"):
        read_state_dict(write_code_running_pickle(tmp_path / "evil.pth", marker))


def test_no_unrestricted_unpickling_anywhere_in_the_source():
    """Every torch.load says weights_only=True; no pickle.load(s), no allow_pickle=True."""
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for call in re.finditer(r"torch\.load\((?:[^()]|\([^()]*\))*\)", text):
            assert "weights_only=True" in call.group(0), f"{path}: {call.group(0)}"
        assert not re.search(r"\bpickle\.loads?\(", text), path
        assert "allow_pickle=True" not in text, path


def _cifar_folder(tmp_path: Path, batch: bytes) -> Path:
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in ["test_batch", *(f"data_batch_{i}" for i in range(1, 6))]:
        (folder / name).write_bytes(batch)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}))
    return folder.parent


def test_crafted_cifar_pickle_is_refused_through_open_data_and_archives(tmp_path, marker):
    batch = pickle.dumps({b"data": RunsCode(marker), b"labels": [0]}, protocol=2)
    folder = _cifar_folder(tmp_path, batch)
    with pytest.raises(DataError, match="refusing to unpickle"):
        open_data(str(folder))
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_cifar(archive, split="test")


# ---------------------------------------------------------------------------- bombs
def _png(width: int, height: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def _zlib_zeros(rows: int, row_bytes: int) -> bytes:
    """Compressed scanlines of zeros (filter byte + pixels): inflates ~1000x."""
    compressor, parts = zlib.compressobj(9), []
    row = bytes(row_bytes + 1)
    for _ in range(rows):
        parts.append(compressor.compress(row))
    return b"".join(parts) + compressor.flush()


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    claims = folder / "claims" / "a"
    claims.mkdir(parents=True)
    (claims / "huge.png").write_bytes(_png(100_000, 100_000, zlib.compress(bytes(101))))
    inflates = folder / "inflates" / "a"
    inflates.mkdir(parents=True)
    (inflates / "big.png").write_bytes(_png(8000, 6000, _zlib_zeros(6000, 8000)))
    return {"claims": claims / "huge.png", "inflates": inflates / "big.png"}


@pytest.mark.parametrize("kind", ["claims", "inflates"])
def test_decompression_bombs_are_refused_before_decoding(bombs, kind, tmp_path, capsys):
    bomb = bombs[kind]
    assert bomb.stat().st_size < 200_000
    before = peak_rss_mib()
    with pytest.raises(DataError, match="refusing to decode"):
        decode_image(bomb)
    with pytest.raises(DataError, match="refusing to decode"):
        load_image_folder(bomb.parent.parent, strict=True)
    with pytest.raises(DataError, match=r"no readable images .*1 skipped"):
        load_image_folder(bomb.parent.parent)
    assert peak_rss_mib() - before < MEMORY_BUDGET_MIB


def test_predict_cli_refuses_a_bomb(small_run, bombs, capsys):
    before = peak_rss_mib()
    assert main(["predict", str(small_run), str(bombs["claims"])]) == 2
    assert "refusing to decode" in capsys.readouterr().err
    assert peak_rss_mib() - before < MEMORY_BUDGET_MIB


def test_gzipped_idx_inflating_past_its_header_is_read_no_further(tmp_path):
    header = bytes([0, 0, 8, 1]) + struct.pack(">I", 4)
    zeros = gzip.compress(bytes(1 << 20))  # gzip members concatenate: 1024 x 1 MiB = 1 GiB
    bomb = tmp_path / "labels-idx1-ubyte.gz"
    bomb.write_bytes(gzip.compress(header + bytes(4)) + zeros * 1024)
    before = peak_rss_mib()
    with pytest.raises(DataError, match="has trailing bytes"):
        read_idx(bomb)
    assert peak_rss_mib() - before < MEMORY_BUDGET_MIB


def test_idx_header_claiming_terabytes_is_refused(tmp_path):
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">III", 2**20, 2**10,
                                                                     2**10)))
    with pytest.raises(DataError, match="MAX_IDX_BYTES"):
        read_idx(path)


def test_tar_member_claiming_a_gigabyte_is_refused(tmp_path):
    info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
    info.size = 1 << 30
    archive = tmp_path / "cifar.tar"
    archive.write_bytes(info.tobuf() + bytes(512 * 4))  # the header, not the gigabyte
    with pytest.raises(DataError, match="MAX_MEMBER_BYTES"):
        load_cifar(archive, split="test")


@pytest.mark.parametrize("labels", [b"path,label\na.png,99999999999999999999\n",
                                    b"path,label\na.png,2147483647\n"])
def test_huge_integer_label_is_refused_not_expanded(tmp_path, labels):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_bytes(labels)
    with pytest.raises(DataError, match="too large"):
        load_csv(tmp_path / "labels.csv")


# ---------------------------------------------------------------------------- traversal
@pytest.mark.parametrize("bad", ["../outside.png", "imgs/../../outside.png", "/etc/passwd",
                                 "imgs/\x00.png"])
def test_csv_paths_outside_root_are_refused(tmp_path, bad):
    root = tmp_path / "root"
    (root / "imgs").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "outside.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "imgs" / "ok.png")
    (root / "labels.csv").write_text(f"path,label\nimgs/ok.png,a\n{bad},b\n")
    with pytest.raises(DataError, match="outside|NUL"):
        load_csv(root / "labels.csv")


def test_tar_members_with_dotdot_are_refused(tmp_path):
    archive = tmp_path / "cifar.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/../../escape")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(DataError, match="unsafe member name"):
        load_cifar(archive, split="test")
    assert not (tmp_path.parent / "escape").exists()


def test_class_folders_named_like_paths_never_become_paths(tmp_path):
    # (names starting with "." are hidden folders, which the reader skips by its rules)
    names = ["%2e%2e%2fescape", "x..%2f..%2fescape", "a\\..\\..\\b", "-rf", "con", "a b",
             "\u00fcber", "~root"]
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for name in names:
        (data / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(
                data / name / f"{i}.png")
    before = files_under(tmp_path)
    run = tmp_path / "run"
    train(TrainConfig(data=str(data), model="conv(4,3) relu flatten fc(8)", epochs=1,
                      val_split=0.2, device="cpu", out=str(run)), progress=False)
    new = files_under(tmp_path) - before
    assert new and all(p.startswith("run/") for p in new), sorted(new)
    assert load_run(run).class_names == sorted(names)


def test_a_tiff_that_crashes_pillow_is_a_data_error(tmp_path):
    """Found by the fuzzer: Pillow raises TypeError loading this 230-byte TIFF."""
    bad = tmp_path / "a" / "x.png"  # readers go by content, not by the name
    bad.parent.mkdir()
    bad.write_bytes((Path(__file__).parent / "data" / "tiff_float_strip_offset.tif").read_bytes())
    with pytest.raises(DataError, match="x.png"):
        decode_image(bad)
    with pytest.raises(DataError, match="no readable images"):
        load_image_folder(tmp_path)
