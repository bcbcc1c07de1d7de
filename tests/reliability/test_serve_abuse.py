"""A short version of ``python -m bench.reliability.serve_load``: ``cnnkit serve`` in its own
process, four clients sending valid and hostile requests for a few seconds on loopback. Every
valid request is answered 200 with its predictions, every hostile one 4xx, never a 5xx, and the
server's memory stays flat."""
from __future__ import annotations

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
