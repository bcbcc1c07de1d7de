"""A short version of ``python -m bench.reliability.serve_load``: ``cnnkit serve`` in its own
process, four clients sending valid and hostile requests for a few seconds on loopback. Every
valid request is answered 200 with its predictions, every hostile one 4xx, never a 5xx, and the
server's memory stays flat."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")

from bench.reliability.serve_load import (format_report, free_port, hammer,  # noqa: E402
                                          start_server, write_run)


def test_concurrent_valid_and_hostile_requests(tmp_path):
    port = free_port()
    server = start_server(write_run(tmp_path / "run"), port)
    try:
        report = hammer("127.0.0.1", port, server.pid, seconds=4, clients=4)
        assert server.poll() is None, "the server died under load"
    finally:
        server.terminate()
        server.wait(timeout=30)
    summary = format_report(report)
    assert report.sent["valid"] > 20 and report.sent["hostile"] > 20, summary
    assert not report.failures, summary  # no lost valid request, no 5xx, no broken connection
    assert report.memory_growth_mib < 30, summary


def test_the_tiff_that_crashes_pillow_is_a_4xx(tmp_path):
    from fastapi.testclient import TestClient

    from cnnkit.serve import create_app

    bad = (Path(__file__).parent / "data" / "tiff_float_strip_offset.tif").read_bytes()
    with TestClient(create_app(write_run(tmp_path / "run")), raise_server_exceptions=False) as c:
        response = c.post("/predict", content=bad, headers={"content-type": "image/tiff"})
    assert 400 <= response.status_code < 500, response.text
