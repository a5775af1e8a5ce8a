"""Requests answered before the web framework: the ones every proxy sends on every push.

FastAPI's routing, middleware and dependency machinery cost about a millisecond per request on
this kind of machine; an ACK from each of a hundred proxies after a push pays that a hundred
times in a row. Paths listed here are answered straight from the ASGI scope, with the same
logic (and the same answers) as their documented routes.
"""

from __future__ import annotations

from typing import Any

from remora.controlplane.api_push import answer_ack
from remora.controlplane.state import ControlPlane
from remora.mesh.wire import ACK_PATH

MAX_BODY = 64 * 1024


class FastPaths:
    """ASGI wrapper: answers the hot paths itself, hands everything else to `app`."""

    def __init__(self, app: Any, state: ControlPlane) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (scope["type"] != "http" or scope["path"] != ACK_PATH or scope["method"] != "POST"
                or self.state.push is None):
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY:
                await respond(send, 413, b'{"message":"request body too large"}')
                return
        status, payload = answer_ack(self.state.push, body)
        await respond(send, status, payload)


async def respond(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
