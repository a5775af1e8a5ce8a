"""HTTP endpoints of the push channel: subscribe (a stream), ACK/NACK, and who runs what."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from remora.controlplane.push import PushServer

router = APIRouter(prefix="/api/remora/v1", tags=["push"])


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


class DiscoveryRequest(BaseModel):
    node: Node
    version: str = ""  # what the proxy runs now (a reconnect)


class Ack(BaseModel):
    node: str
    version: str
    error: str | None = None


def push_server(request: Request) -> PushServer:
    push = getattr(request.app.state.controlplane, "push", None)
    if push is None:
        raise HTTPException(503, "push is not running on this control plane")
    return push  # type: ignore[no-any-return]


@router.post("/discovery", response_class=StreamingResponse,
             summary="Subscribe a proxy: NDJSON snapshots of its configuration")
async def discovery(body: DiscoveryRequest, request: Request) -> StreamingResponse:
    stream = push_server(request).subscribe(body.node.model_dump())
    return StreamingResponse(stream, media_type="application/x-ndjson")


@router.post("/discovery/ack", summary="ACK (error null) or NACK a pushed version")
async def ack(body: Ack, request: Request) -> dict[str, Any]:
    if not push_server(request).ack(body.node, body.version, body.error):
        raise HTTPException(404, f"proxy {body.node} is not connected")
    return {"node": body.node, "version": body.version, "accepted": body.error is None}


@router.get("/proxies", summary="Connected proxies with the versions they were sent and run")
async def proxies(request: Request) -> list[dict[str, Any]]:
    return push_server(request).status()
