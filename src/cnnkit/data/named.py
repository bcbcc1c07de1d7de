"""The named public datasets (``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``).

Each is described by a :class:`DatasetInfo`: the folder it lives in under the data directory,
its files with their published checksums, and the addresses to download them from. The data
directory is ``data_dir`` (``--data-dir``), else ``$CNNKIT_DATA``, else the user cache
(``$XDG_CACHE_HOME/cnnkit/data``, by default ``~/.cache/cnnkit/data``)::

    DATA_DIR/
      mnist/          train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
                      t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz
      fashion-mnist/  (the same four names)
      cifar10/        cifar-10-python.tar.gz   (or the extracted cifar-10-batches-py/)
      cifar100/       cifar-100-python.tar.gz  (or the extracted cifar-100-python/)

Missing files are downloaded (verified, atomically, see :mod:`cnnkit.data.download`) into the
data directory, or into the user cache when the data directory is read-only (a shared,
read-only copy such as ``../shared/data`` is never written to). A mirror (``base_url`` or
``$CNNKIT_DATA_MIRROR``) has the data directory's layout: ``<mirror>/mnist/<file>``.
"""
from __future__ import annotations

import difflib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cnnkit.data.cifar import load_cifar
from cnnkit.data.dataset import DataSplits
from cnnkit.data.download import download_file
from cnnkit.data.idx import load_idx
from cnnkit.errors import DataError

logger = logging.getLogger(__name__)

IDX_ROLES = ("train-images", "train-labels", "test-images", "test-labels")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a named dataset.

    Args:
        name: file name, in the dataset's folder and on every mirror.
        role: ``"train-images"``, ``"train-labels"``, ``"test-images"``, ``"test-labels"``
            (IDX datasets) or ``"archive"`` (CIFAR).
        md5, sha256: the published checksums (hex); at least one should be given.
        size: size in bytes, for messages only.
    """

    name: str
    role: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """How to find, fetch and read one named dataset.

    Args:
        name: the name users type (``--data mnist``).
        folder: its folder under the data directory.
        format: ``"idx"`` (four IDX files) or ``"cifar"`` (one python-version archive).
        files: the files, with checksums.
        mirrors: base URLs, tried in order; a file's URL is ``mirror + file.name``.
        class_names: names of the classes; ``None`` when the files carry them (CIFAR).
        extracted: for archives, the folder the archive extracts to; used instead of the
            archive when present.
        homepage: where the dataset is described.
        aliases: other spellings accepted for ``name``.

    Example:
        >>> tiny = dataclasses.replace(dataset_info("mnist"), files=my_files)
        >>> load_named(tiny, data_dir="data", base_url="http://127.0.0.1:8000")
    """

    name: str
    folder: str
    format: str
    files: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...]
    class_names: tuple[str, ...] | None = None
    extracted: str | None = None
    homepage: str = ""
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.format not in ("idx", "cifar"):
            raise ValueError(f"format must be 'idx' or 'cifar', got {self.format!r}")
        roles = sorted(f.role for f in self.files)
        expected = sorted(IDX_ROLES) if self.format == "idx" else ["archive"]
        if roles != expected:
            raise ValueError(f"dataset {self.name!r} ({self.format}) must have files with roles "
                             f"{expected!r}, got {roles!r}")

    def file(self, role: str) -> RemoteFile:
        """The file playing ``role``."""
        return next(f for f in self.files if f.role == role)

    def urls(self, file: RemoteFile, base_url: str | None = None) -> list[str]:
        """Addresses of ``file``: ``<base_url>/<folder>/<name>`` if a mirror is given, else
        the canonical ones."""
        if base_url:
            return [f"{base_url.rstrip('/')}/{self.folder}/{file.name}"]
        return [mirror + file.name for mirror in self.mirrors]


def _idx_files(sums: dict[str, str], sizes: dict[str, int]) -> tuple[RemoteFile, ...]:
    names = {"train-images": "train-images-idx3-ubyte.gz",
             "train-labels": "train-labels-idx1-ubyte.gz",
             "test-images": "t10k-images-idx3-ubyte.gz",
             "test-labels": "t10k-labels-idx1-ubyte.gz"}
    return tuple(RemoteFile(names[role], role, md5=sums[role], size=sizes[role])
                 for role in IDX_ROLES)


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo, *, replace: bool = False) -> DatasetInfo:
    """Add ``info`` to the named datasets (``replace=True`` to overwrite one).

    Raises:
        ValueError: the name or an alias is taken and ``replace`` is False.
    """
    for key in (info.name, *info.aliases):
        taken = _REGISTRY.get(key)
        if taken is not None and not replace and taken is not info:
            raise ValueError(f"a dataset named {key!r} is already registered ({taken.name}); "
                             "pass replace=True to overwrite it")
    for key in (info.name, *info.aliases):
        _REGISTRY[key] = info
    return info


register_dataset(DatasetInfo(
    name="mnist",
    folder="mnist",
    format="idx",
    files=_idx_files({
        "train-images": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels": "d53e105ee54ea40749a09fcbcd1e9432",
        "test-images": "9fb629c4189551a2d022fa330f9573f3",
        "test-labels": "ec29112dd5afa0611ce80d1b7f02629c",
    }, {"train-images": 9912422, "train-labels": 28881, "test-images": 1648877,
        "test-labels": 4542}),
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    class_names=tuple(str(k) for k in range(10)),
    homepage="http://yann.lecun.com/exdb/mnist/",
))

register_dataset(DatasetInfo(
    name="fashion-mnist",
    folder="fashion-mnist",
    format="idx",
    files=_idx_files({
        "train-images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels": "25c81989df183df01b3e8a0aad5dffbe",
        "test-images": "bef4ecab320f06d8554ea6380940ec79",
        "test-labels": "bb300cfdad3c16e7a12a480ee83cd310",
    }, {"train-images": 26421880, "train-labels": 29515, "test-images": 4422102,
        "test-labels": 5148}),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"),
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    aliases=("fashion_mnist", "fashionmnist"),
))

register_dataset(DatasetInfo(
    name="cifar10",
    folder="cifar10",
    format="cifar",
    files=(RemoteFile("cifar-10-python.tar.gz", "archive",
                      md5="c58f30108f718f92721af3b95e74349a", size=170498071),),
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    extracted="cifar-10-batches-py",
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    aliases=("cifar-10", "cifar_10"),
))

register_dataset(DatasetInfo(
    name="cifar100",
    folder="cifar100",
    format="cifar",
    files=(RemoteFile("cifar-100-python.tar.gz", "archive",
                      md5="eb9058c3a382ffc7106e4002c42a8d85", size=169001437),),
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    extracted="cifar-100-python",
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    aliases=("cifar-100", "cifar_100"),
))


def named_datasets() -> list[str]:
    """Names of the registered datasets (without aliases), e.g. ``['cifar10', ..., 'mnist']``."""
    return sorted({info.name for info in _REGISTRY.values()})


def is_named_dataset(name: str) -> bool:
    """Whether ``name`` (any case, or an alias) is a registered dataset."""
    return isinstance(name, str) and name.lower() in _REGISTRY


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name`` (any case, or an alias such as ``cifar-10``).

    Raises:
        DataError: unknown name (with the closest registered names).
    """
    info = _REGISTRY.get(name.lower()) if isinstance(name, str) else None
    if info is None:
        close = difflib.get_close_matches(str(name).lower(), list(_REGISTRY), n=3)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(f"unknown dataset {name!r}: the named datasets are "
                        f"{named_datasets()!r}{hint}")
    return info


def user_cache_dir() -> Path:
    """The per-user data cache: ``$XDG_CACHE_HOME/cnnkit/data`` (``~/.cache/cnnkit/data``),
    ``%LOCALAPPDATA%\\cnnkit\\data`` on Windows, ``~/Library/Caches/cnnkit/data`` on macOS."""
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cnnkit" / "data"


def default_data_dir() -> Path:
    """``$CNNKIT_DATA`` if set, else :func:`user_cache_dir`."""
    env = os.environ.get("CNNKIT_DATA")
    return Path(env).expanduser() if env else user_cache_dir()


def load_named(
    name: str | DatasetInfo,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
    base_url: str | None = None,
    retries: int = 3,
) -> DataSplits:
    """Load a named dataset's train and test splits, downloading missing files.

    Files are looked for in ``data_dir/<folder>``, in ``data_dir`` itself (when it already is
    that folder), then in the user cache. Missing files are downloaded into ``data_dir/<folder>``,
    or into the user cache when ``data_dir`` is read-only.

    Args:
        name: a registered name (``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``,
            ``"cifar100"``) or a :class:`DatasetInfo`.
        data_dir: the data directory; default :func:`default_data_dir`.
        download: fetch missing files; ``False`` raises instead.
        progress: show download progress bars.
        base_url: a mirror with the data directory's layout; default ``$CNNKIT_DATA_MIRROR``,
            else the canonical addresses.
        retries: download attempts per file and address (see :func:`download_file`).

    Shape:
        MNIST, Fashion-MNIST: (60000, 1, 28, 28) train, (10000, 1, 28, 28) test.
        CIFAR-10/100: (50000, 3, 32, 32) train, (10000, 3, 32, 32) test.

    Raises:
        DataError: unknown name; files missing and ``download=False`` (lists the missing files,
            where it looked and the URLs); no writable folder to download into; a failed
            download.

    Example:
        >>> splits = load_named("mnist", data_dir="../shared/data")
        >>> splits.train.input_shape, splits.test.num_classes
        ((1, 28, 28), 10)
    """
    info = name if isinstance(name, DatasetInfo) else dataset_info(name)
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    base_url = base_url or os.environ.get("CNNKIT_DATA_MIRROR") or None
    folders = _search_folders(info, root)
    extracted = _find_extracted(info, folders)
    if extracted is not None:
        return _read(info, {"archive": extracted})
    found = {f.role: _find_file(f, folders) for f in info.files}
    missing = [f for f in info.files if found[f.role] is None]
    if missing:
        if not download:
            raise DataError(_missing_message(info, missing, folders, base_url,
                                             into=_writable_folder(info, root) or folders[0]))
        target = _download_folder(info, root)
        for f in missing:
            found[f.role] = _fetch(info, f, target, base_url=base_url, progress=progress,
                                   retries=retries)
    return _read(info, found)


def _search_folders(info: DatasetInfo, root: Path) -> list[Path]:
    folders = [root / info.folder]
    if root.name == info.folder or any(_find_file(f, [root]) for f in info.files):
        folders.append(root)
    cache = user_cache_dir() / info.folder
    if cache not in folders:
        folders.append(cache)
    return folders


def _find_extracted(info: DatasetInfo, folders: list[Path]) -> Path | None:
    if info.extracted is None:
        return None
    return next((folder / info.extracted for folder in folders
                 if (folder / info.extracted).is_dir()), None)


def _find_file(file: RemoteFile, folders: list[Path]) -> Path | None:
    """The first of ``<folder>/<name>`` (or its uncompressed ``.gz``-less twin) that exists."""
    names = [file.name]
    if file.name.endswith(".gz") and not file.name.endswith(".tar.gz"):
        names.append(file.name[:-3])
    return next((folder / n for folder in folders for n in names if (folder / n).is_file()), None)


def _is_writable(folder: Path) -> bool:
    """Whether files may be created in ``folder`` (or in its nearest existing ancestor).

    A folder whose permission bits grant nobody write access counts as read-only even for
    root, so a shared read-only copy of the data is never written to.
    """
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            return False
        existing = existing.parent
    mode = existing.stat().st_mode
    return existing.is_dir() and bool(mode & 0o222) and os.access(existing, os.W_OK | os.X_OK)


def _writable_folder(info: DatasetInfo, root: Path) -> Path | None:
    """``root/<folder>`` if writable, else the user cache's if writable, else None."""
    candidates = [root / info.folder, user_cache_dir() / info.folder]
    return next((folder for folder in candidates if _is_writable(folder)), None)


def _download_folder(info: DatasetInfo, root: Path) -> Path:
    folder = _writable_folder(info, root)
    if folder is None:
        raise DataError(
            f"cannot download {info.name}: neither {root / info.folder} nor "
            f"{user_cache_dir() / info.folder} is writable; set CNNKIT_DATA (or --data-dir) to a "
            "writable folder"
        )
    if folder != root / info.folder:
        logger.warning("data directory %s is read-only; downloading %s into the user cache %s "
                       "instead", root, info.name, folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _fetch(info: DatasetInfo, file: RemoteFile, folder: Path, *, base_url: str | None,
           progress: bool, retries: int) -> Path:
    urls = info.urls(file, base_url)
    failures = []
    for url in urls:
        logger.info("downloading %s (%s) from %s", file.name, _size(file), url)
        try:
            return download_file(url, folder / file.name, md5=file.md5, sha256=file.sha256,
                                 progress=progress, retries=retries)
        except DataError as exc:
            failures.append(str(exc))
    raise DataError(f"could not download {info.name}'s {file.name} from any of {urls}: "
                    + " | ".join(failures))


def _read(info: DatasetInfo, found: dict[str, Path]) -> DataSplits:
    if info.format == "idx":
        names = list(info.class_names) if info.class_names else None
        fix = (f"{info.name} has exactly {len(names) if names else 0} classes, so the label "
               "files are corrupt: delete them and download the dataset again")
        train = load_idx(found["train-images"], found["train-labels"], names, fix=fix)
        test = load_idx(found["test-images"], found["test-labels"], names, fix=fix)
    else:
        train = load_cifar(found["archive"], split="train", variant=info.name)
        test = load_cifar(found["archive"], split="test", variant=info.name)
    logger.info("%s: %d train and %d test images, %d classes", info.name, len(train), len(test),
                train.num_classes)
    return DataSplits(train=train, test=test)


def _size(file: RemoteFile) -> str:
    if not file.size:
        return "size unknown"
    return f"{file.size / 1e6:.1f} MB" if file.size >= 1e6 else f"{file.size / 1e3:.1f} kB"


def _missing_message(info: DatasetInfo, missing: list[RemoteFile], folders: list[Path],
                     base_url: str | None, *, into: Path) -> str:
    lines = [f"{info.name}: {len(missing)} of {len(info.files)} file(s) missing: "
             + ", ".join(f.name for f in missing) + f"; looked in {[str(f) for f in folders]}."]
    for f in missing:
        lines.append(f"  {f.name} ({_size(f)}): {' or '.join(info.urls(f, base_url))}")
    lines.append(f"Download them into {into}, or allow downloading (download=True; "
                 "drop --no-download).")
    return "\n".join(lines)

