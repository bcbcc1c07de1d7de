"""A client trickling its body (slowloris) gets 408 after ``read_timeout_s``; others are served."""
import json
import select
import socket
import threading
import time

import httpx
import numpy as np

from cnnkit.serve import ServeConfig

READ_TIMEOUT_S = 0.5


def _trickle_until_answered(port: int, path: str, content_type: str, prefix: bytes = b"",
                            byte: bytes = b"{") -> bytes:
    """Send headers announcing a 100 kB body and ``prefix``, then one ``byte`` per 20 ms for
    most of the server's read timeout (or until it answers); then wait for its answer (20 s at
    most) and return everything the server sent.

    The trickle stops before the deadline: a byte sent after the server has answered and closed
    makes its kernel reset the connection, which can discard the answer before it is read.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}"
                     "\r\nContent-Length: 100000\r\n\r\n".encode() + prefix)
        deadline = time.monotonic() + 0.6 * READ_TIMEOUT_S
        while time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0.02)  # the trickle's pace
            if readable:
                break
            try:
                sock.sendall(byte)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = b""
        while chunk := sock.recv(65536):  # the server closes the connection after its answer
            answer += chunk
        return answer


def test_a_slow_body_gets_408_and_the_server_keeps_serving(run_dir, make_live_server):
    server = make_live_server(run_dir, ServeConfig(read_timeout_s=READ_TIMEOUT_S))
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8).tolist()
    answers = {}
    slow = threading.Thread(target=lambda: answers.setdefault(
        "slow", _trickle_until_answered(server.port, "/predict", "application/json")))
    slow.start()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        served = 0
        while slow.is_alive() or served == 0:  # other clients are answered meanwhile
            assert http.post("/predict", json={"pixels": pixels}).status_code == 200
            served += 1
        slow.join()
        assert http.get("/health").json()["status"] == "ok"

    head, _, body = answers["slow"].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), head
    assert b"connection: close" in head.lower()
    error = json.loads(body)
    assert error["error"] == "read_timeout"
    assert "0.5 s" in error["detail"] and "--read-timeout" in error["detail"]
    assert served >= 1


def test_multipart_and_features_bodies_have_the_deadline_too(run_dir, make_live_server):
    server = make_live_server(run_dir, ServeConfig(read_timeout_s=READ_TIMEOUT_S))
    part = (b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n")  # then the file's bytes, one at a time
    for path, content_type, prefix in [("/features", "application/json", b""),
                                       ("/predict", "multipart/form-data; boundary=x", part)]:
        answer = _trickle_until_answered(server.port, path, content_type, prefix, b"\0")
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"read_timeout"' in answer
