"""An ASGI middleware that refuses request bodies over a byte limit before they are read."""
from __future__ import annotations

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
