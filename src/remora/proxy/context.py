"""What one request carries through the filter chain: its head, the route chosen for it, the
upstream host it went to, timings, response flags, and the state filters share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from remora.proxy.codec.http1_fast import field_lines

if TYPE_CHECKING:
    import asyncio

    from remora.mesh.snapshot import Endpoint, Listener, Route, WeightedCluster
    from remora.policy.flags import ResponseFlag
    from remora.policy.match import RequestAttributes
    from remora.proxy.clusters import ClusterState, ClusterTable, RoutePolicies
    from remora.proxy.codec.events import Headers, RequestHead
    from remora.proxy.filter import LocalReply, StreamControl
    from remora.proxy.mtls import PeerCertificate


class Upstream(Protocol):
    """The router's side of a request, as the stream sees it (an UpstreamCall)."""

    def abandon(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


@dataclass(slots=True, eq=False)
class RequestContext:
    """State of one request; filters read and write it, the stream drives it."""

    head: RequestHead
    listener: Listener
    tables: ClusterTable  # the snapshot this request started with, whatever swaps later
    stream: StreamControl
    scheme: str
    client_ip: str
    start: float  # loop time of the request head
    # RFC 9112 §6.3: neither Content-Length nor chunked → no body; the request is complete at
    # its head, so a local reply (404, 503...) leaves the connection reusable.
    request_done: bool = False
    keep_alive: bool = True
    # the route decision (Envoy's cached route): set before the first filter runs
    route: Route | None = None
    no_route: LocalReply | None = None  # why there is no route: the router answers with it
    target: WeightedCluster | None = None
    request: RequestAttributes | None = None
    path: str = ""  # towards the upstream: normalized, rewritten
    authority: str = ""
    cluster: ClusterState | None = None
    policies: RoutePolicies | None = None
    # What the router sends upstream: the field lines received (`upstream_raw`, forwarded as
    # they are) and `upstream_headers` after them, or, once a filter asked for the whole list
    # (`upstream_header_list`), all of it in `upstream_headers`. Appending needs neither.
    upstream_raw: bytes | None = None
    upstream_headers: Headers | None = None
    request_trailers: Headers | None = None
    upstream: Upstream | None = None
    timer: asyncio.TimerHandle | None = None  # a fault delay, then the route timeout
    # the upstream host of the last try
    endpoint: Endpoint | None = None
    endpoint_index: int = -1
    upstream_principal: str = ""  # the endpoint's identity, when the try was mutual TLS
    upstream_service_ms: float | None = None
    # the response
    response_raw: bytes | None = None  # as upstream_raw, for the response to the client
    response_headers: Headers = field(default_factory=list)
    response_status: int = 0
    response_head_sent: bool = False
    local: bool = False  # the proxy answered itself
    request_id: str = ""
    flags: list[ResponseFlag] = field(default_factory=list)
    details: str = ""
    bytes_received: int = 0
    bytes_sent: int = 0
    finished: bool = False
    end: float = 0.0  # loop time of the last byte
    peer: tuple[str, ...] | None = None  # inbound: the caller's labels, if it said
    peer_certificate: PeerCertificate | None = None  # inbound: the mTLS client's certificate
    state: dict[str, Any] | None = None  # per-request state of filters, by filter name

    def upstream_header_list(self) -> Headers:
        """All the request headers the upstream will get, as a list a filter may change."""
        headers = self.upstream_headers
        assert headers is not None, "no upstream request"
        raw = self.upstream_raw
        if raw is not None:
            self.upstream_raw = None
            headers = self.upstream_headers = [
                ("host", self.authority), *field_lines(raw), *headers]
        return headers

    def response_header_list(self) -> Headers:
        """All the response headers the client will get, as a list a filter may change."""
        raw = self.response_raw
        if raw is not None:
            self.response_raw = None
            self.response_headers = [*field_lines(raw), *self.response_headers]
        return self.response_headers

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start) * 1000
