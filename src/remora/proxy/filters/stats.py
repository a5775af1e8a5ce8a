"""Istio's standard metrics (istio.stats): each finished request counted under its labels.

Log phase only. The sidecar's outbound side and gateways report as `source`, the inbound side
as `destination` (istio.io "Istio Standard Metrics"); labels come from remora.proxy.labels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from remora.policy.flags import join_flags
from remora.proxy.filter import HttpFilter
from remora.proxy.labels import (
    UNKNOWN,
    UNKNOWN_DESTINATION,
    UNKNOWN_SIDE,
    destination_labels,
    service_labels,
)

if TYPE_CHECKING:
    from remora.proxy.context import RequestContext
    from remora.proxy.env import ProxyEnv


def flags_text(ctx: RequestContext) -> str:
    """%RESPONSE_FLAGS%: "-" when there is none."""
    return join_flags(ctx.flags) if ctx.flags else "-"


def with_principal(side: tuple[str, ...], principal: str) -> tuple[str, ...]:
    """A side's 8 labels with its principal (the SPIFFE identity its certificate proved)."""
    return (*side[:2], principal or UNKNOWN, *side[3:])


class IstioStats(HttpFilter):
    name: ClassVar[str] = "istio.stats"

    def __init__(self, env: ProxyEnv, *, inbound: bool) -> None:
        self.env = env
        self.inbound = inbound

    def labels(self, ctx: RequestContext, flags: str) -> tuple[str, ...]:
        labels = self.env.labels
        identity = ctx.tables.snapshot.identity
        code = str(ctx.response_status)
        state = ctx.cluster
        if self.inbound:
            # the local app's side; the caller's as its sidecar described itself, if it did
            own = labels.self_side(identity)
            source = ctx.peer or UNKNOWN_SIDE
            peer, workload, policy = ctx.peer_certificate, self.env.tls, "none"
            if peer is not None and workload is not None:
                source = with_principal(source, peer.uri)
                own, policy = with_principal(own, workload.identity), "mutual_tls"
            return ("destination", *source, *destination_labels(own, service_labels(state)),
                    "http", code, "", flags, policy)
        if state is not None and ctx.endpoint is not None:
            destination = labels.endpoint_side(state, ctx.endpoint_index, ctx.endpoint, identity)
        elif state is not None:
            destination = destination_labels(UNKNOWN_SIDE, service_labels(state))
        else:
            destination = UNKNOWN_DESTINATION
        source = labels.self_side(identity)
        workload = self.env.tls
        if ctx.upstream_principal and workload is not None:
            source = with_principal(source, workload.identity)
            destination = (*destination[:2], ctx.upstream_principal, *destination[3:])
        return ("source", *source, *destination, "http", code, "", flags, "unknown")

    def log(self, ctx: RequestContext) -> None:
        self.env.metrics.record(
            self.labels(ctx, flags_text(ctx)),
            duration_ms=ctx.duration_ms,
            request_bytes=ctx.bytes_received,
            response_bytes=ctx.bytes_sent,
        )
