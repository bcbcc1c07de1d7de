"""ASGI middlewares bounding request bodies: in size (413) and in the time they take (408)."""
from __future__ import annotations

import asyncio

from starlette.responses import JSONResponse


class BodyTooLarge(Exception):
    """The request body grew past the limit while it was being received."""


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes``: at once from ``Content-Length`` (413 JSON), or, for
    chunked uploads, as soon as the received bytes pass the limit (raises :class:`BodyTooLarge`
    inside the endpoint's read, which the app turns into a 413 JSON response).

    Args:
        app: the ASGI app.
        max_bytes: the largest accepted body.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = JSONResponse(
                {"error": "body_too_large",
                 "detail": f"the body is {declared.decode('latin-1')} bytes, the server accepts "
                           f"at most {self.max_bytes}; send a smaller image"},
                status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(f"the body passed {self.max_bytes} bytes, the server's "
                                       "limit; send a smaller image")
            return message

        await self.app(scope, limited_receive, send)


class BodyReadTimeout(Exception):
    """The request body was still arriving when the read deadline passed."""


class ReadDeadlineMiddleware:
    """Give every request body ``timeout_s`` seconds, counted from the end of its headers.

    uvicorn waits for a body as long as bytes keep coming, so a client that trickles one byte
    at a time (slowloris) would hold its connection indefinitely. Here every read of the body
    waits at most until the deadline; past it :class:`BodyReadTimeout` is raised inside the
    endpoint's read, which the app answers with a 408 JSON response and closes the connection.
    Reads after the body is complete (disconnect polling) are not limited.

    Args:
        app: the ASGI app.
        timeout_s: seconds a whole body may take to arrive.
    """

    def __init__(self, app, timeout_s: float):
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        body_done = False

        async def timed_receive():
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except asyncio.TimeoutError:
                raise BodyReadTimeout(
                    f"the request body did not arrive within {self.timeout_s:g} s (the read "
                    "timeout); send it faster, or raise the limit with cnnkit serve "
                    "--read-timeout SECONDS (ServeConfig(read_timeout_s=...))") from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)
