"""A real HTTP server on 127.0.0.1 for download tests, with scripted misbehaviour.

Each path has a body and a queue of behaviours, one per request (the last one repeats):
``"ok"`` serves the body, ``"corrupt"`` the same number of wrong bytes, ``"truncate"`` announces
the full Content-Length but sends half and closes, ``"500"`` answers a server error. Unknown
paths answer 404.
"""
from __future__ import annotations

import http.server
import threading
from collections import defaultdict


class ScriptedServer:
    """``ThreadingHTTPServer`` on a free port; ``add(path, body, *behaviours)`` scripts a path."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.scripts: dict[str, list[str]] = {}
        self.hits: dict[str, int] = defaultdict(int)
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, path: str, body: bytes, *behaviours: str) -> str:
        self.bodies[path] = body
        self.scripts[path] = list(behaviours or ("ok",))
        return self.url + path

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _handler_class(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                path = self.path
                if path not in server.bodies:
                    self.send_error(404, "Not Found")
                    return
                n = server.hits[path]
                server.hits[path] += 1
                script = server.scripts[path]
                behaviour = script[min(n, len(script) - 1)]
                body = server.bodies[path]
                if behaviour == "500":
                    self.send_error(500, "Internal Server Error")
                    return
                if behaviour == "corrupt":
                    body = bytes(b ^ 0xFF for b in body)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if behaviour == "truncate":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, format, *args):  # keep test output quiet
                pass

        return Handler
