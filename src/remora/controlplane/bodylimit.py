"""One bound on every request body, before any API reads it: 413 past `limit` bytes.

Each API may bound its bodies tighter (the resource API reads at most status.MAX_BODY, as the
Kubernetes API server's 3 MiB); this wrapper makes sure none reads without a bound, including
the framework's own parsing of JSON bodies. A declared Content-Length over the limit is refused
unread; a chunked body is cut off as soon as it passes the limit (the application then sees the
client as gone, and its answer is replaced by the 413). The refusal is worded as the API that
was asked would word it: Nacos's plain-text `caused: ...;`, else a Kubernetes Status.
"""

from __future__ import annotations

import json
from typing import Any

from remora.controlplane.status import status

MAX_BODY = 32 * 1024 * 1024
"""Room for the largest config Nacos accepts (10 MiB) sent form-encoded (up to 3 bytes a byte)."""

_DISCONNECT = {"type": "http.disconnect"}


class BodyLimit:
    """ASGI wrapper refusing request bodies over `limit` bytes with a 413."""

    def __init__(self, app: Any, *, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _declared_length(scope) > self.limit:
            await self._refuse(scope, send)
            return
        received = 0
        refused = started = False

        async def bounded_receive() -> dict[str, Any]:
            nonlocal received, refused
            if refused:
                return _DISCONNECT
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    return _DISCONNECT
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if not refused:
                started = True
                await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except Exception:
            if not refused:
                raise
        if refused and not started:
            await self._refuse(scope, send)

    async def _refuse(self, scope: dict[str, Any], send: Any) -> None:
        message = f"request entity too large: limit is {self.limit} bytes"
        if scope["path"].startswith("/nacos/"):
            body, media = f"caused: {message};".encode(), b"text/plain; charset=utf-8"
        else:
            body, media = json.dumps(status(413, message)).encode(), b"application/json"
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", media), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _declared_length(scope: dict[str, Any]) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0
