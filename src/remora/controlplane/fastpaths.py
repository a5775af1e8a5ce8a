"""Requests answered before the web framework: the ones sent by every proxy on every push and
by every Nacos client every few seconds.

FastAPI's routing, middleware and dependency machinery cost about a millisecond per request on
this kind of machine; an ACK from each of a hundred proxies after a push, or the registrations,
beats and list queries of thousands of instances, pay that again and again. Paths listed here
are answered straight from the ASGI scope by the same handlers as their documented routes.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request

from remora.controlplane import nacos
from remora.controlplane.api_push import answer_ack
from remora.controlplane.auth_gate import PRINCIPAL
from remora.controlplane.state import ControlPlane
from remora.mesh.wire import ACK_PATH

log = logging.getLogger("remora.controlplane")

NACOS_HOT_PATHS: dict[tuple[str, str], nacos.Handler] = {
    ("GET", "/nacos/v1/ns/instance/list"): nacos.list_instances,
    ("POST", "/nacos/v1/ns/instance"): nacos.register,
    ("PUT", "/nacos/v1/ns/instance/beat"): nacos.beat,
}

MAX_BODY = 64 * 1024


class FastPaths:
    """ASGI wrapper: answers the hot paths itself, hands everything else to `app`."""

    def __init__(self, app: Any, state: ControlPlane) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        handler = NACOS_HOT_PATHS.get((scope["method"], scope["path"]))
        if handler is not None and self.state.registry is not None:
            await self.nacos(handler, scope, receive, send)
            return
        if scope["path"] != ACK_PATH or scope["method"] != "POST" or self.state.push is None:
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
        status, payload = answer_ack(self.state.push, body, principal=scope.get(PRINCIPAL))
        await respond(send, status, payload)

    async def nacos(self, handler: nacos.Handler, scope: dict[str, Any], receive: Any,
                    send: Any) -> None:
        scope["app"] = self.app  # handlers reach the state as request.app.state.controlplane
        try:
            response = await nacos.answer(handler, Request(scope, receive))
        except Exception:  # a bug: answer 500 and say so, as the app's handler would
            log.exception("error in %s %s", scope["method"], scope["path"])
            await respond(send, 500, b'{"message":"internal error"}')
            return
        await response(scope, receive, send)


async def respond(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

