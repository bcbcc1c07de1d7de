"""Download one file safely: stream, hash while writing, verify, then move into place.

A download goes to ``<dest>.part-<random>`` in the destination folder, is checked against the
``Content-Length`` and the published MD5/SHA-256, is fsync'ed, and only then renamed onto
``dest`` with ``os.replace`` (atomic on one file system). Every failure path removes the
temporary file, so a truncated or corrupted download never sits in the cache.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from cnnkit._checks import check_positive_int
from cnnkit.errors import DataError

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20  # bytes per read
_USER_AGENT = "cnnkit (https://github.com/cnnkit; dataset download)"


class _RetryableError(Exception):
    """A failure worth another try: network error, truncated body, checksum mismatch."""


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    retries: int = 3,
    progress: bool = True,
    timeout: float = 30,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` to ``dest``, verified, atomically; retry transient failures.

    Args:
        url: ``http(s)://`` or ``file://`` address.
        dest: final path of the file; its folder is created if needed.
        md5, sha256: expected hex digests (the published checksums); checked when given.
        retries: attempts in all (>= 1) for network errors, truncation and checksum mismatch.
            HTTP 4xx answers (e.g. 404) are not retried.
        progress: show a tqdm progress bar (only when stderr is a terminal).
        timeout: seconds to wait for the server on connect and on each read.
        backoff: seconds to wait before retry ``k`` is ``backoff * k`` (0 in tests).

    Returns:
        ``Path(dest)``.

    Raises:
        DataError: the download failed every attempt, or the server answered 4xx; the message
            names the URL and (for a mismatch) the expected and received digests.

    Example:
        >>> download_file("https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
        ...               "data/mnist/t10k-labels-idx1-ubyte.gz",
        ...               md5="ec29112dd5afa0611ce80d1b7f02629c")
    """
    retries = check_positive_int(retries, "retries")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for attempt in range(1, retries + 1):
        try:
            _download_once(url, dest, md5=md5, sha256=sha256, progress=progress, timeout=timeout)
        except _RetryableError as exc:
            errors.append(f"attempt {attempt}: {exc}")
            logger.warning("download of %s failed (attempt %d of %d): %s", url, attempt, retries,
                           exc)
            if attempt < retries and backoff > 0:
                time.sleep(backoff * attempt)
            continue
        logger.info("downloaded %s -> %s", url, dest)
        return dest
    raise DataError(
        f"could not download {url} to {dest} after {retries} attempt(s): " + "; ".join(errors)
        + ". Check the network (or set CNNKIT_DATA_MIRROR to a mirror), or download the file "
        f"yourself and put it at {dest}"
    )


def _download_once(url: str, dest: Path, *, md5: str | None, sha256: str | None,
                   progress: bool, timeout: float) -> None:
    tmp = dest.with_name(f"{dest.name}.part-{secrets.token_hex(4)}")
    hashers = {name: hashlib.new(name) for name, want in (("md5", md5), ("sha256", sha256)) if want}
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length is not None else None
            received = _copy(response, tmp, hashers, total=expected,
                             progress=progress and sys.stderr.isatty(), desc=dest.name)
        if expected is not None and received != expected:
            raise _RetryableError(f"truncated: got {received} of {expected} bytes")
        for name, want in (("md5", md5), ("sha256", sha256)):
            if want and hashers[name].hexdigest() != want.lower():
                raise _RetryableError(
                    f"{name} mismatch: expected {want.lower()}, got {hashers[name].hexdigest()}"
                )
        os.replace(tmp, dest)
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500:
            raise DataError(
                f"{url} answered HTTP {exc.code} {exc.reason}: the file is not there; check the "
                "address (or the mirror in CNNKIT_DATA_MIRROR / base_url)"
            ) from exc
        raise _RetryableError(f"HTTP {exc.code} {exc.reason}") from exc
    except http.client.IncompleteRead as exc:
        raise _RetryableError(f"truncated: the connection closed early ({exc!r})") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise _RetryableError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _copy(response, tmp: Path, hashers: dict, *, total: int | None, progress: bool,
          desc: str) -> int:
    """Stream ``response`` into ``tmp`` (fsync'ed), feeding ``hashers``; return bytes written."""
    received = 0
    with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                    desc=desc, disable=not progress, leave=False) as bar:
        while chunk := response.read(_CHUNK):
            f.write(chunk)
            for h in hashers.values():
                h.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
        f.flush()
        os.fsync(f.fileno())
    return received


def file_digest(path: str | os.PathLike, algorithm: str = "md5") -> str:
    """Hex digest of a file read in 1 MiB chunks (``"md5"`` or ``"sha256"``)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()
