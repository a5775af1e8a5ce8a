"""Istio's metadata exchange (istio.metadata_exchange; remora.telemetry.peer): who is calling
and who answered, told in headers between sidecars so each side's metrics name the other.

Inbound, the caller's headers become `ctx.peer` and the app never sees them; outbound and at
gateways, ours replace any the app sent, except towards MESH_EXTERNAL services. On the way
back the upstream sidecar's headers are for us only, and an inbound caller that described
itself hears who answered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from remora.proxy.filter import CONTINUE, HeadersResult, HttpFilter
from remora.telemetry.peer import HEADERS as PEER_HEADERS
from remora.telemetry.peer import PEER_METADATA

if TYPE_CHECKING:
    from remora.proxy.codec.events import ResponseHead
    from remora.proxy.context import RequestContext
    from remora.proxy.env import ProxyEnv


class MetadataExchange(HttpFilter):
    name: ClassVar[str] = "istio.metadata_exchange"

    def __init__(self, env: ProxyEnv, *, inbound: bool) -> None:
        self.env = env
        self.inbound = inbound

    def request_headers(self, ctx: RequestContext) -> HeadersResult:
        headers = ctx.upstream_headers
        if headers is None:
            return CONTINUE
        if ctx.upstream_raw is not None:  # the lines as received hold no peer header
            if not self.inbound and not (ctx.cluster is None or ctx.cluster.cluster.mesh_external):
                headers.extend(self.env.labels.peer_headers(ctx.tables.snapshot.identity))
            return CONTINUE
        kept = [h for h in headers if h[0] not in PEER_HEADERS]
        if self.inbound:
            value = next((v for k, v in headers if k == PEER_METADATA), None)
            ctx.peer = self.env.labels.peer_side(value) if value is not None else None
            ctx.upstream_headers = kept
            return CONTINUE
        if ctx.cluster is None or ctx.cluster.cluster.mesh_external:
            return CONTINUE
        kept.extend(self.env.labels.peer_headers(ctx.tables.snapshot.identity))
        ctx.upstream_headers = kept
        return CONTINUE

    def response_headers(self, ctx: RequestContext, head: ResponseHead) -> HeadersResult:
        if ctx.local:
            return CONTINUE
        if not self.inbound:
            if ctx.response_raw is None:  # (the lines as received hold no peer header)
                ctx.response_headers = [h for h in ctx.response_headers
                                        if h[0] not in PEER_HEADERS]
        elif ctx.peer is not None:
            ctx.response_headers.extend(self.env.labels.peer_headers(ctx.tables.snapshot.identity))
        return CONTINUE
