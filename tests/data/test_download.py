"""download_file against a real HTTP server on 127.0.0.1: good, corrupt, truncated, flaky, 404."""
from __future__ import annotations

import hashlib
import os

import pytest
from _http_server import ScriptedServer

from cnnkit.data.download import download_file, file_digest
from cnnkit.errors import DataError

BODY = os.urandom(300_000)
MD5 = hashlib.md5(BODY).hexdigest()
SHA256 = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def server():
    srv = ScriptedServer().start()
    yield srv
    srv.stop()


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_good_download_lands_with_the_right_checksum(server, tmp_path):
    url = server.add("/good.bin", BODY)
    dest = download_file(url, tmp_path / "sub" / "good.bin", md5=MD5, sha256=SHA256,
                         progress=False, backoff=0)
    assert dest == tmp_path / "sub" / "good.bin"
    assert dest.read_bytes() == BODY and file_digest(dest, "sha256") == SHA256
    assert _leftovers(dest.parent) == ["good.bin"]


def test_corrupted_download_is_reported_and_nothing_is_left(server, tmp_path):
    url = server.add("/bad.bin", BODY, "corrupt")
    with pytest.raises(DataError, match=rf"after 2 attempt\(s\).*md5 mismatch: expected {MD5}, got [0-9a-f]{{32}}"):
        download_file(url, tmp_path / "bad.bin", md5=MD5, retries=2, progress=False, backoff=0)
    assert _leftovers(tmp_path) == []
    assert server.hits["/bad.bin"] == 2


def test_sha256_is_checked_too(server, tmp_path):
    url = server.add("/bad.bin", BODY, "corrupt")
    with pytest.raises(DataError, match=f"sha256 mismatch: expected {SHA256}"):
        download_file(url, tmp_path / "x.bin", sha256=SHA256, retries=1, progress=False)
    assert _leftovers(tmp_path) == []


def test_truncated_download_is_detected_even_without_a_checksum(server, tmp_path):
    url = server.add("/short.bin", BODY, "truncate")
    with pytest.raises(DataError, match=rf"{url}.*truncated"):
        download_file(url, tmp_path / "short.bin", retries=2, progress=False, backoff=0)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("first", ["truncate", "corrupt", "500"])
def test_a_failure_then_success_is_retried(server, tmp_path, first):
    url = server.add("/flaky.bin", BODY, first, "ok")
    dest = download_file(url, tmp_path / "flaky.bin", md5=MD5, retries=3, progress=False, backoff=0)
    assert dest.read_bytes() == BODY
    assert server.hits["/flaky.bin"] == 2
    assert _leftovers(tmp_path) == ["flaky.bin"]


def test_404_is_not_retried_and_names_the_url(server, tmp_path):
    url = server.url + "/nothing.bin"
    with pytest.raises(DataError, match=rf"{url} answered HTTP 404"):
        download_file(url, tmp_path / "nothing.bin", retries=3, progress=False, backoff=0)
    assert _leftovers(tmp_path) == []


def test_a_bad_download_does_not_replace_an_existing_file(server, tmp_path):
    dest = tmp_path / "keep.bin"
    dest.write_bytes(b"old")
    url = server.add("/keep.bin", BODY, "corrupt")
    with pytest.raises(DataError):
        download_file(url, dest, md5=MD5, retries=1, progress=False)
    assert dest.read_bytes() == b"old" and _leftovers(tmp_path) == ["keep.bin"]


def test_unreachable_server_is_a_data_error(tmp_path):
    srv = ScriptedServer()  # bound but never serving, then closed: the port refuses
    url = srv.url + "/x"
    srv._httpd.server_close()
    with pytest.raises(DataError, match="could not download .* after 1 attempt"):
        download_file(url, tmp_path / "x", retries=1, progress=False, timeout=5)


def test_retries_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="retries must be >= 1, got 0"):
        download_file("http://127.0.0.1:1/x", tmp_path / "x", retries=0)
