"""The door every request passes: who is calling (token), and may they do what they ask.

An ASGI layer in front of everything else (the hot Nacos paths included). The token comes as
Nacos clients send it — the `accessToken` parameter (query or form body) or header — or as
`Authorization: Bearer`. Refusals speak the caller's dialect: Nacos paths answer 403 with
Nacos's plain-text reason (`user not found!`, `token invalid!`, `token expired!`,
`authorization failed!`, as its AuthFilter); the Kubernetes-style API answers as the API server,
401 `Unauthorized` for a missing or bad token and 403 `Forbidden` naming the user and verb.

The principal is left in the ASGI scope (`remora.principal`) for the handlers whose needs
depend on the body (bulk apply, a proxy's subscription), which call `require`; the parameters
(`remora.params`) for the Nacos handlers, which would otherwise parse them again.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_plus

from starlette.requests import Request

from remora.controlplane.access import (
    ANONYMOUS_ADMIN,
    PARAMS,
    Need,
    Principal,
    need_for,
    parse_kube,
)
from remora.controlplane.auth import Auth
from remora.controlplane.resources import ResourceError
from remora.controlplane.tokens import TokenError

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PRINCIPAL = "remora.principal"
FORM = "application/x-www-form-urlencoded"
MAX_FORM = 12 * 1024 * 1024
"""Largest form body read to find a token (Nacos's 10 MB config content plus its fields)."""
NACOS_FORBIDDEN = "authorization failed!"


class ForbiddenError(ResourceError):
    code, reason = 403, "Forbidden"


class AuthGate:
    """ASGI middleware: authenticate and authorize, then hand the request on."""

    def __init__(self, app: Any, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        params = query_params(scope.get("query_string", b"").decode("latin-1"))
        body: bytes | None = None
        if path.startswith("/nacos/") and FORM in _header(scope, b"content-type"):
            body = await _read_body(receive)
            if body is None:
                await _plain(send, 413, "request body too large")
                return
            params.update(query_params(body.decode("utf-8", "replace")))
            receive = _replay(body, receive)
        scope[PARAMS] = params
        need = need_for(method, path, params)
        if need is not None:
            token = params.get("accessToken") or _header(scope, b"accesstoken") or \
                _bearer(_header(scope, b"authorization"))
            try:
                principal = self.auth.principal(token)
            except TokenError as exc:
                await self._refuse(send, path, method, None, exc.reason)
                return
            if not principal.allows(need):
                await self._refuse(send, path, method, principal, NACOS_FORBIDDEN)
                return
            scope[PRINCIPAL] = principal
        await self.app(scope, receive, send)

    async def _refuse(self, send: Send, path: str, method: str, principal: Principal | None,
                      reason: str) -> None:
        if path.startswith("/nacos/"):
            await _plain(send, 403, reason)
        elif principal is None:
            await _status(send, 401, "Unauthorized", "Unauthorized")
        else:
            await _status(send, 403, "Forbidden", forbidden_message(principal, method, path))


def require(request: Request, need: Need, what: str) -> None:
    """For handlers: ForbiddenError unless the caller may `need` (`what` names it)."""
    state = request.app.state.controlplane
    principal = request.scope.get(PRINCIPAL)
    if principal is None:
        if getattr(state, "auth", None) is not None:  # auth on, yet nobody authenticated
            raise ForbiddenError(f"{what} is forbidden: no authenticated user")
        principal = ANONYMOUS_ADMIN
    if not principal.allows(need):
        raise ForbiddenError(f'{what} is forbidden: User "{principal.username}" cannot '
                             f"{need.describe()}")


def forbidden_message(principal: Principal, method: str, path: str) -> str:
    """The API server's wording: `virtualservices.networking.istio.io "r" is forbidden: User
    "bob" cannot get resource "virtualservices" in API group "networking.istio.io" in the
    namespace "default"`."""
    target = parse_kube(path)
    if target is None:
        return f'{path} is forbidden: User "{principal.username}" cannot {method} it'
    verb = {"GET": "get" if target.name else "list", "POST": "create", "PUT": "update",
            "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())
    resource = f"{target.plural}.{target.group}" if target.group else target.plural
    subject = f'{resource} "{target.name}"' if target.name else resource
    scope = f' in the namespace "{target.namespace}"' if target.namespace else ""
    plural = f"{target.plural}/{target.subresource}" if target.subresource else target.plural
    return (f'{subject} is forbidden: User "{principal.username}" cannot {verb} resource '
            f'"{plural}" in API group "{target.group}"{scope}')


def query_params(raw: str) -> dict[str, str]:
    """`dict(parse_qsl(raw, keep_blank_values=True))` at a third of its cost: most pairs of
    the hot Nacos calls need no unquoting, and this runs on every request."""
    params: dict[str, str] = {}
    for pair in raw.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        if "%" in pair or "+" in pair:
            key, value = unquote_plus(key), unquote_plus(value)
        params[key] = value
    return params


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


def _bearer(value: str) -> str:
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None when it is over MAX_FORM."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, then: Receive) -> Receive:
    """A receive that gives the body already read, then the real one (a disconnect)."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await then()

    return receive


async def _plain(send: Send, status: int, text: str) -> None:
    await _send(send, status, text.encode(), b"text/plain; charset=utf-8")


async def _status(send: Send, code: int, reason: str, message: str) -> None:
    body = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {},
                       "status": "Failure", "message": message, "reason": reason,
                       "code": code}).encode()
    await _send(send, code, body, b"application/json")


async def _send(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
