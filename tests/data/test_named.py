"""Named datasets: lookup in the data dir, download from a local mirror, errors, real MNIST."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import pickle
import struct
import tarfile

import numpy as np
import pytest
from _http_server import ScriptedServer

from cnnkit.data.download import file_digest
from cnnkit.data.named import (
    RemoteFile, dataset_info, default_data_dir, load_named, named_datasets, user_cache_dir,
)
from cnnkit.errors import DataError


@pytest.fixture
def server():
    srv = ScriptedServer().start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """Keep the user cache and the environment out of the tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CNNKIT_DATA", raising=False)
    monkeypatch.delenv("CNNKIT_DATA_MIRROR", raising=False)


def _idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def _tiny_mnist(n_train=12, n_test=5):
    """File name -> gzipped IDX bytes, MNIST's names and layout, 28x28 pixels."""
    rng = np.random.default_rng(0)
    return {
        "train-images-idx3-ubyte.gz": _idx_bytes(rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte.gz": _idx_bytes(np.arange(n_train) % 10),
        "t10k-images-idx3-ubyte.gz": _idx_bytes(rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": _idx_bytes(np.arange(n_test) % 10),
    }


def _with_files(name, contents):
    """The registered dataset with checksums of our tiny files instead of the real ones."""
    info = dataset_info(name)
    files = tuple(RemoteFile(f.name, f.role, md5=hashlib.md5(contents[f.name]).hexdigest(),
                             size=len(contents[f.name])) for f in info.files)
    return dataclasses.replace(info, files=files)


def _serve(server, folder, contents, *behaviours):
    for file_name, body in contents.items():
        server.add(f"/{folder}/{file_name}", body, *behaviours)


def test_download_from_a_mirror_then_load_from_the_cache(server, tmp_path):
    contents = _tiny_mnist()
    _serve(server, "mnist", contents)
    info = _with_files("mnist", contents)
    splits = load_named(info, data_dir=tmp_path / "data", base_url=server.url, progress=False)
    assert splits.train.images.shape == (12, 1, 28, 28) and splits.test.images.shape == (5, 1, 28, 28)
    assert splits.class_names == [str(k) for k in range(10)]
    assert splits.train.labels.tolist() == [k % 10 for k in range(12)]
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == sorted(contents)
    hits = dict(server.hits)
    again = load_named(info, data_dir=tmp_path / "data", download=False)
    assert dict(server.hits) == hits and len(again.train) == 12


def test_a_corrupt_mirror_leaves_nothing_in_the_cache(server, tmp_path):
    contents = _tiny_mnist()
    _serve(server, "mnist", contents, "corrupt")
    with pytest.raises(DataError, match="md5 mismatch"):
        load_named(_with_files("mnist", contents), data_dir=tmp_path, base_url=server.url,
                   progress=False, retries=1)
    assert list((tmp_path / "mnist").iterdir()) == []


def test_mirror_from_the_environment(server, tmp_path, monkeypatch):
    contents = _tiny_mnist()
    _serve(server, "fashion-mnist", contents)
    monkeypatch.setenv("CNNKIT_DATA_MIRROR", server.url + "/")
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path))
    splits = load_named(_with_files("fashion-mnist", contents), progress=False)
    assert splits.class_names[0] == "T-shirt/top" and splits.class_names[9] == "Ankle boot"
    assert (tmp_path / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").is_file()


def test_missing_without_download_lists_files_places_and_urls(tmp_path):
    with pytest.raises(DataError) as err:
        load_named("mnist", data_dir=tmp_path, download=False)
    message = str(err.value)
    assert "mnist: 4 of 4 file(s) missing" in message
    assert str(tmp_path / "mnist") in message and str(user_cache_dir() / "mnist") in message
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz" in message
    assert "drop --no-download" in message


def test_partially_present_names_exactly_the_missing_files(tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name, body in _tiny_mnist().items():
        if "labels" in name:
            (folder / name).write_bytes(body)
    with pytest.raises(DataError, match=r"2 of 4 file\(s\) missing: train-images-idx3-ubyte.gz, "
                                        r"t10k-images-idx3-ubyte.gz;"):
        load_named("fashion-mnist", data_dir=tmp_path, download=False)


def test_data_dir_may_be_the_dataset_folder_itself_with_uncompressed_files(tmp_path):
    folder = tmp_path / "my-mnist-copy"
    folder.mkdir()
    for name, body in _tiny_mnist().items():
        (folder / name.removesuffix(".gz")).write_bytes(gzip.decompress(body))
    splits = load_named("mnist", data_dir=folder, download=False)
    assert len(splits.train) == 12 and len(splits.test) == 5


def test_read_only_data_dir_is_not_written_to(server, tmp_path):
    contents = _tiny_mnist()
    _serve(server, "mnist", contents)
    shared = tmp_path / "shared"
    (shared / "mnist").mkdir(parents=True)
    name = "train-labels-idx1-ubyte.gz"
    (shared / "mnist" / name).write_bytes(contents[name])
    for folder in (shared / "mnist", shared):
        folder.chmod(0o555)
    try:
        splits = load_named(_with_files("mnist", contents), data_dir=shared, base_url=server.url,
                            progress=False)
    finally:
        for folder in (shared, shared / "mnist"):
            folder.chmod(0o755)
    assert len(splits.train) == 12
    assert [p.name for p in (shared / "mnist").iterdir()] == [name]
    assert server.hits[f"/mnist/{name}"] == 0
    assert sorted(p.name for p in (user_cache_dir() / "mnist").iterdir()) == sorted(
        n for n in contents if n != name)


def _cifar10_tar(path, n_per_batch=3):
    rng = np.random.default_rng(1)

    def batch(n):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        return pickle.dumps({b"data": data, b"labels": [k % 10 for k in range(n)]}, protocol=2)

    members = {f"data_batch_{i}": batch(n_per_batch) for i in range(1, 6)}
    members["test_batch"] = batch(4)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    members["batches.meta"] = pickle.dumps({b"label_names": [n.encode() for n in names]}, protocol=2)
    with tarfile.open(path, "w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return path


def test_cifar10_downloads_its_archive(server, tmp_path):
    archive = _cifar10_tar(tmp_path / "src.tar.gz").read_bytes()
    contents = {"cifar-10-python.tar.gz": archive}
    _serve(server, "cifar10", contents)
    splits = load_named(_with_files("cifar10", contents), data_dir=tmp_path / "data",
                        base_url=server.url, progress=False)
    assert splits.train.images.shape == (15, 3, 32, 32) and len(splits.test) == 4
    assert splits.class_names[:2] == ["airplane", "automobile"]


def test_registry_names_aliases_and_suggestions():
    assert named_datasets() == ["cifar10", "cifar100", "fashion-mnist", "mnist"]
    assert dataset_info("Fashion_MNIST").name == "fashion-mnist"
    assert dataset_info("CIFAR-10").folder == "cifar10"
    with pytest.raises(DataError, match=r"unknown dataset 'minst'.*did you mean 'mnist'\?"):
        dataset_info("minst")


def test_default_data_dir_follows_the_environment(tmp_path, monkeypatch):
    assert default_data_dir() == tmp_path / "xdg" / "cnnkit" / "data"
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "d"))
    assert default_data_dir() == tmp_path / "d"


def test_published_checksums_match_the_real_files(mnist_dir):
    for name in ("mnist", "fashion-mnist"):
        folder = mnist_dir.parent / name
        for f in dataset_info(name).files:
            if (folder / f.name).is_file():
                assert file_digest(folder / f.name) == f.md5, f"{name}/{f.name}"
                assert (folder / f.name).stat().st_size == f.size


def test_real_mnist_from_cnnkit_data(mnist_dir, monkeypatch):
    monkeypatch.setenv("CNNKIT_DATA", str(mnist_dir.parent))
    monkeypatch.setenv("CNNKIT_DATA_MIRROR", "http://127.0.0.1:1")  # must not be needed
    splits = load_named("mnist", progress=False)
    assert splits.train.images.shape == (60000, 1, 28, 28)
    assert splits.test.images.shape == (10000, 1, 28, 28)
    assert splits.train.labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert splits.class_names == [str(k) for k in range(10)]
