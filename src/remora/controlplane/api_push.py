"""HTTP endpoints of the push channel: subscribe (a stream), ACK/NACK, and who runs what."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from remora.controlplane import access
from remora.controlplane.access import READ, Need, Principal
from remora.controlplane.auth_gate import PRINCIPAL, require
from remora.controlplane.push import PushServer
from remora.mesh.wire import resource_errors

router = APIRouter(prefix="/api/remora/v1", tags=["push"])
OWNER = "owner"
"""Node field the control plane adds: the user whose token opened the stream."""


class Node(BaseModel):
    """A proxy's identity: who it runs for decides what it is sent."""

    id: str = Field(min_length=1, max_length=512)
    mode: str = Field(pattern="^(sidecar|gateway)$")
    namespace: str = "default"
    labels: dict[str, str] = {}
    workload: str = "unknown"
    serviceAccount: str = "default"  # noqa: N815 - wire name
    ip: str = "127.0.0.1"
    appPort: int | None = None  # noqa: N815 - wire name
    locality: str = ""
    adminPort: int | None = None  # noqa: N815 - wire name; where `remora proxy-config` asks
    # what else the control plane compiles the proxy's snapshot for (remora.mesh.wire
    # node_identity); a proxy that does not send them gets Istio's defaults
    cluster: str = "Kubernetes"
    containerPort: int | None = None  # noqa: N815 - wire name
    containerPortName: str = ""  # noqa: N815 - wire name
    ports: dict[str, int] = {}  # outbound, inbound, admin, health


class DiscoveryRequest(BaseModel):
    node: Node
    version: str = ""  # what the proxy runs now (a reconnect)


class ResourceErrorBody(BaseModel):
    """A resource the proxy skipped in the version it applied, and why."""

    kind: str
    namespace: str
    name: str
    message: str


class Ack(BaseModel):
    node: str
    version: str
    error: str | None = None
    resourceErrors: list[ResourceErrorBody] = []  # noqa: N815 - wire name


def push_server(request: Request) -> PushServer:
    push = getattr(request.app.state.controlplane, "push", None)
    if push is None:
        raise HTTPException(503, "push is not running on this control plane")
    return push  # type: ignore[no-any-return]


@router.post("/discovery", response_class=StreamingResponse,
             summary="Subscribe a proxy: NDJSON snapshots of its configuration")
async def discovery(body: DiscoveryRequest, request: Request) -> StreamingResponse:
    """A proxy may subscribe as a mode and namespace its token is granted: a gateway's view
    carries its namespace's TLS Secrets, so a sidecar's token must not get it."""
    node = body.node
    require(request, Need((access.discovery(node.namespace, node.mode),), READ),
            f"discovery for {node.mode} proxies in namespace {node.namespace!r}")
    subscriber = request.scope.get(PRINCIPAL)
    stream = push_server(request).subscribe(
        {**node.model_dump(), OWNER: subscriber.username if subscriber else None})
    return StreamingResponse(stream, media_type="application/x-ndjson")


@router.post("/discovery/ack", summary="ACK (error null) or NACK a pushed version",
             openapi_extra={"requestBody": {"content": {"application/json": {
                 "schema": Ack.model_json_schema()}}, "required": True}})
async def ack(request: Request) -> Response:
    """(Served by controlplane.fastpaths in front of the app; this route documents it.)"""
    status, body = answer_ack(push_server(request), await request.body(),
                              principal=request.scope.get(PRINCIPAL))
    return Response(body, status_code=status, media_type="application/json")


def answer_ack(push: PushServer, raw: bytes, *,
               principal: Principal | None = None) -> tuple[int, bytes]:
    """Status and JSON body for an ACK/NACK. Every proxy ACKs every push, so this is parsed
    by hand: a validated pydantic body costs several times more per request. With auth on,
    only the user whose token opened a proxy's stream may ACK for it (403 otherwise), so no
    one can mark another proxy synced or hide its errors."""
    try:
        body = json.loads(raw)
        node, version, error = body["node"], body["version"], body.get("error")
        if not isinstance(node, str) or not isinstance(version, str) or not (
                error is None or isinstance(error, str)):
            raise TypeError
        skipped = resource_errors(body.get("resourceErrors"))
    except (ValueError, KeyError, TypeError):
        return 400, (b'{"message":"body must be {node: str, version: str, error: str|null, '
                     b'resourceErrors: [{kind, namespace, name, message}]}"}')
    subscriber = push.subscribers.get(node)
    if principal is not None and subscriber is not None and \
            subscriber.node.get(OWNER) not in (None, principal.username):
        return 403, json.dumps({"message": f'User "{principal.username}" cannot ACK for '
                                           f"proxy {node}"}).encode()
    if not push.ack(node, version, error, skipped):
        return 404, json.dumps({"message": f"proxy {node} is not connected"}).encode()
    return 200, b'{"accepted":%s}' % (b"true" if error is None else b"false")


@router.get("/proxies", summary="Connected proxies with the versions they were sent and run")
async def proxies(request: Request) -> list[dict[str, Any]]:
    return push_server(request).status()
