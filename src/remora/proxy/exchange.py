"""One request through the proxy: from the downstream head to the last byte of the response.

The exchange asks the router where the request goes, applies the route's fault injection and
timeout, hands the upstream side to an `UpstreamCall` (host choice, circuit breakers, retries),
streams the body each way with back-pressure, and reports the outcome (status, response flags,
bytes, timings) to telemetry. Failures become Envoy's local replies: 503 UH without endpoints,
503 UF when the connection fails, 503 UC when the upstream closes before answering, 503 UO on
overflow, 504 UT on timeout, the fault's status with FI; a break after the response started
closes the client connection (UC, or UT when the route timeout cut it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from remora.mesh.snapshot import PASSTHROUGH_CLUSTER, RouteAction
from remora.policy.flags import ResponseFlag
from remora.proxy.call import UpstreamCall
from remora.proxy.codec.events import Data, EndOfMessage, RequestHead, ResponseHead
from remora.proxy.codec.forwarding import UPSTREAM_RESPONSE_DROP, upstream_request_headers
from remora.proxy.codec.http1 import (
    LAST_CHUNK,
    encode_chunk,
    encode_request_head,
    encode_response_head,
    encode_trailers,
    strip_hop_by_hop,
)
from remora.proxy.mirror import send_mirrors
from remora.proxy.router import Forward, LocalReply, decide, split_target
from remora.telemetry.peer import HEADERS as PEER_HEADERS
from remora.telemetry.peer import PEER_METADATA

if TYPE_CHECKING:
    import asyncio

    from remora.mesh.snapshot import Endpoint, Listener, Route, WeightedCluster
    from remora.policy.match import RequestAttributes
    from remora.proxy.clusters import ClusterState, ClusterTable, RoutePolicies
    from remora.proxy.server import DownstreamConnection
    from remora.proxy.upstream import EndpointPool

EARLY_LIMIT = 256 * 1024  # body bytes held while a fault delay runs, before reading pauses
NO_BODY_STATUSES = frozenset({204, 304})
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
FAULT_ABORT = b"fault filter abort"


class Exchange:
    """State of one request; the downstream connection feeds it, the upstream one answers."""

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "call",
        "chunked_out",
        "cluster",
        "details",
        "downstream",
        "early",
        "early_size",
        "endpoint",
        "endpoint_index",
        "finished",
        "flags",
        "head",
        "keep_alive",
        "listener",
        "peer",
        "pool",
        "request",
        "request_done",
        "request_id",
        "response_head_sent",
        "response_status",
        "route",
        "runtime",
        "set_cookie",
        "start",
        "tables",
        "target",
        "timer",
        "upstream_chunked",
        "upstream_head",
        "upstream_service_ms",
    )

    def __init__(
        self,
        downstream: DownstreamConnection,
        head: RequestHead,
        *,
        listener: Listener,
        tables: ClusterTable,
    ) -> None:
        self.downstream = downstream
        self.runtime = downstream.runtime
        self.head = head
        self.listener = listener
        self.tables = tables  # the snapshot this request started with, whatever swaps later
        self.start = self.runtime.loop.time()
        # RFC 9112 §6.3: neither Content-Length nor chunked → no body; the request is complete
        # at its head, so a local reply (404, 503...) leaves the connection reusable.
        self.request_done = not head.chunked and not head.content_length
        self.keep_alive = head.keep_alive
        self.early: list[bytes] | None = None  # body arriving before the call starts
        self.early_size = 0
        self.call: UpstreamCall | None = None
        self.timer: asyncio.TimerHandle | None = None  # route timeout, or a fault delay
        self.upstream_head = b""
        self.upstream_chunked = head.chunked
        self.pool: EndpointPool | None = None
        self.cluster: ClusterState | None = None
        self.endpoint: Endpoint | None = None
        self.endpoint_index = -1
        self.route: Route | None = None
        self.target: WeightedCluster | None = None
        self.request: RequestAttributes | None = None
        self.request_id = ""
        self.set_cookie: str | None = None
        self.flags: list[ResponseFlag] = []
        self.details = ""
        self.response_status = 0
        self.response_head_sent = False
        self.chunked_out = False
        self.bytes_received = 0
        self.bytes_sent = 0
        self.finished = False
        self.upstream_service_ms: float | None = None
        self.peer: tuple[str, ...] | None = None  # inbound: the caller's labels, if it said

    # the decision ------------------------------------------------------------------------------
    def begin(self) -> None:
        runtime = self.runtime
        decision = decide(
            self.tables.snapshot,
            self.listener,
            self.head,
            scheme=self.downstream.scheme,
            rng=runtime.rng,
        )
        if isinstance(decision, LocalReply):
            self.route = decision.route
            self.local_reply(decision)
            return
        self.forward(decision)

    def forward(self, decision: Forward) -> None:
        self.route = decision.route
        self.target = target = decision.target
        self.request = decision.request
        state = self.tables.states.get(target.cluster)
        if state is None:
            self.local_reply(LocalReply(503, ResponseFlag.NC, details="cluster_not_found"))
            return
        if not state.cluster.endpoints and target.cluster == PASSTHROUGH_CLUSTER:
            state = self.tables.passthrough(decision.authority, self.downstream.scheme)
        self.cluster = state
        action = decision.route.action
        assert isinstance(action, RouteAction)
        policies = self.tables.policies(action, consistent_hash=state.hash_policy is not None)
        self.upstream_head = self.build_upstream_head(decision)
        fault = policies.fault
        if fault is not None:
            injected = fault.decide(self.runtime.rng)
            if injected.delay is not None:
                self.flags.append(ResponseFlag.DI)
                self.early = []
                self.timer = self.runtime.loop.call_later(
                    injected.delay, self.after_delay, decision, policies, injected.abort_status)
                return
            if injected.abort_status is not None:
                self.abort(injected.abort_status)
                return
        self.call_upstream(decision, policies)

    def after_delay(self, decision: Forward, policies: RoutePolicies,
                    abort_status: int | None) -> None:
        """Envoy's fault filter: the delay first, then the abort if one was drawn too."""
        self.timer = None
        if self.finished:
            return
        if abort_status is not None:
            self.abort(abort_status)
            return
        self.call_upstream(decision, policies)

    def abort(self, status: int) -> None:
        self.local_reply(
            LocalReply(status, ResponseFlag.FI, FAULT_ABORT, details="fault_filter_abort")
        )

    def call_upstream(self, decision: Forward, policies: RoutePolicies) -> None:
        state = self.cluster
        assert state is not None
        key = None
        if state.hash_policy is not None:
            from remora.proxy.clusters import request_hash  # noqa: PLC0415 - rare path

            key, self.set_cookie = request_hash(
                state.hash_policy, decision.request, client_ip=self.downstream.client_ip
            )
        if policies.timeout is not None:
            self.timer = self.runtime.loop.call_later(policies.timeout, self.on_route_timeout)
        if self.head.expect_continue:
            self.downstream.write(CONTINUE)  # Envoy answers 100-continue itself by default
        self.call = call = UpstreamCall(
            self, state, head=self.upstream_head, method=self.head.method, retry=policies.retry,
            key=key, body_done=self.request_done,
        )
        action = policies.action
        if action.mirrors:
            self.mirror(action, decision)
        early, self.early = self.early, None
        if early:
            for data in early[:-1]:
                call.send(data, end=False)
            call.send(early[-1], end=self.request_done)
            if self.early_size > EARLY_LIMIT:
                self.downstream.resume_reading()
        call.start()

    def mirror(self, action: RouteAction, decision: Forward) -> None:
        """Shadow copies (Istio mirror/mirrors): only bodiless requests here, fire and forget."""
        if not self.request_done or self.head.content_length:
            return
        send_mirrors(self.runtime, self.tables, action.mirrors, head=self.head,
                     path=decision.path, authority=decision.authority,
                     client_ip=self.downstream.client_ip, scheme=self.downstream.scheme,
                     edge=self.listener.direction == "gateway")

    def on_host(self, state: ClusterState, host: int) -> None:
        """The call picked a host for a try (telemetry reports the last one)."""
        self.pool = state.pools[host]
        self.endpoint = state.cluster.endpoints[host]
        self.endpoint_index = host

    def build_upstream_head(self, decision: Forward) -> bytes:
        head = self.head
        headers, self.request_id = upstream_request_headers(
            head.headers,
            authority=decision.authority,
            client_ip=self.downstream.client_ip,
            scheme=self.downstream.scheme,
            request_id_factory=self.runtime.request_id,
            edge=self.listener.direction == "gateway",  # Istio: use_remote_address at gateways
        )
        headers = self.exchange_peer_metadata(headers)
        headers = decision.target.request_headers.apply(headers)
        headers = decision.route.request_headers.apply(headers)
        if head.chunked:
            headers.append(("transfer-encoding", "chunked"))
        return encode_request_head(head.method, decision.path, headers)

    def exchange_peer_metadata(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Istio's metadata exchange (telemetry.peer): inbound, the caller's headers become
        `peer` and the app never sees them; outbound and at gateways, ours replace any the
        app sent, except towards MESH_EXTERNAL services."""
        observer = self.runtime.observer
        kept = [h for h in headers if h[0] not in PEER_HEADERS]
        if self.listener.direction == "inbound":
            value = next((v for k, v in headers if k == PEER_METADATA), None)
            self.peer = observer.peer_side(value) if value is not None else None
            return kept
        if self.cluster is None or self.cluster.cluster.mesh_external:
            return headers
        kept.extend(observer.peer_headers())
        return kept

    # request body from downstream --------------------------------------------------------------
    def on_request_event(self, event: Data | EndOfMessage) -> None:
        if self.finished:
            return  # the response is complete (or a local reply went out): the rest is dropped
        if isinstance(event, Data):
            data = event.data
            self.bytes_received += len(data)
            out = encode_chunk(data) if self.upstream_chunked else data
        else:
            self.request_done = True
            if self.upstream_chunked:
                out = encode_trailers(event.trailers) if event.trailers else LAST_CHUNK
            else:
                out = b""
        call = self.call
        if call is not None:
            call.send(out, end=self.request_done)
            return
        early = self.early
        if early is None:
            return  # no call (a local reply is on its way)
        early.append(out)
        self.early_size += len(out)
        if self.early_size > EARLY_LIMIT:
            self.downstream.pause_reading()

    def pause_body(self) -> None:
        self.downstream.pause_reading()

    def resume_body(self) -> None:
        self.downstream.resume_reading()

    # response from upstream --------------------------------------------------------------------
    def on_response_events(self, events: list[ResponseHead | Data | EndOfMessage]) -> None:
        """One read's worth of response events, written downstream in one send."""
        downstream = self.downstream
        downstream.cork()
        try:
            for event in events:
                self.on_response_event(event)
        finally:
            downstream.uncork()

    def on_response_event(self, event: ResponseHead | Data | EndOfMessage) -> None:
        if isinstance(event, Data):
            data = event.data
            self.bytes_sent += len(data)
            self.downstream.write(encode_chunk(data) if self.chunked_out else data)
        elif isinstance(event, ResponseHead):
            if event.status >= 200:  # 100 Continue went out already; other 1xx are dropped
                self.send_response_head(event)
        else:
            if self.chunked_out:
                self.downstream.write(encode_trailers(event.trailers) if event.trailers
                                      else LAST_CHUNK)
            self.finish()

    def upstream_service(self, seconds: float) -> None:
        self.upstream_service_ms = seconds * 1000

    def upstream_failed(self, reply: LocalReply) -> None:
        """Every try failed (or none could be made): Envoy's local reply."""
        self.call = None
        self.local_reply(reply)

    def upstream_cut(self) -> None:
        """The upstream broke off a response already on its way: close the client (UC)."""
        self.flags.append(ResponseFlag.UC)
        self.details = "upstream_reset_after_response_started"
        self.keep_alive = False
        self.finish()

    def on_route_timeout(self) -> None:
        """VirtualService `timeout` (Envoy route timeout): 504 UT, or a cut if answering."""
        self.timer = None
        if self.finished:
            return
        call, self.call = self.call, None
        if call is not None:
            call.abandon()
        if not self.response_head_sent:
            self.local_reply(LocalReply(504, ResponseFlag.UT, b"upstream request timeout",
                                        details="upstream_response_timeout"))
            return
        self.flags.append(ResponseFlag.UT)
        self.keep_alive = False
        self.finish()

    def send_response_head(self, event: ResponseHead) -> None:
        headers = strip_hop_by_hop(event.headers, drop=UPSTREAM_RESPONSE_DROP)
        if self.listener.direction != "inbound":  # the upstream sidecar's, for us only
            headers = [h for h in headers if h[0] not in PEER_HEADERS]
        elif self.peer is not None:  # a caller that described itself hears who answered
            headers.extend(self.runtime.observer.peer_headers())
        if self.target is not None:
            headers = self.target.response_headers.apply(headers)
        route = self.route
        if route is not None:
            headers = route.response_headers.apply(headers)
            if route.cors is not None and self.request is not None:
                headers.extend(route.cors.response_headers(self.request))
        if self.set_cookie is not None:
            headers.append(("set-cookie", self.set_cookie))
        if self.upstream_service_ms is not None:
            headers.append(("x-envoy-upstream-service-time", str(int(self.upstream_service_ms))))
        status = event.status
        bodyless = self.head.method == "HEAD" or status in NO_BODY_STATUSES
        if not bodyless and (event.chunked or event.content_length is None):
            if self.head.http_version == "1.1":
                self.chunked_out = True
                headers.append(("transfer-encoding", "chunked"))
            else:
                self.keep_alive = False  # HTTP/1.0 client: the close delimits the body
        self.add_connection_header(headers)
        self.response_status = status
        self.response_head_sent = True
        self.downstream.write(encode_response_head(status, event.reason, headers))

    def add_connection_header(self, headers: list[tuple[str, str]]) -> None:
        """`connection: close` on the last response of the connection; `keep-alive` for an
        HTTP/1.0 client that asked to persist: without it the client closes (RFC 9112 §9.3)."""
        if not self.request_done or self.downstream.draining:
            self.keep_alive = False
        if not self.keep_alive:
            headers.append(("connection", "close"))
        elif self.head.http_version == "1.0":
            headers.append(("connection", "keep-alive"))

    # back-pressure from the client side ------------------------------------------------------
    def on_downstream_writable(self, writable: bool) -> None:
        upstream = self.call.connection if self.call is not None else None
        if upstream is not None:
            if writable:
                upstream.resume_reading()
            else:
                upstream.pause_reading()

    def on_downstream_lost(self) -> None:
        """The client closed its connection before the response was complete (flag DC)."""
        if self.finished:
            return
        self.flags.append(ResponseFlag.DC)
        self.keep_alive = False
        call, self.call = self.call, None
        if call is not None:
            call.abandon()
        self.finish()

    # ending ------------------------------------------------------------------------------------
    def local_reply(self, reply: LocalReply) -> None:
        """Envoy-style local reply: status, flag, a short text body."""
        if reply.flag is not ResponseFlag.NONE:
            self.flags.append(reply.flag)
        self.flags.extend(reply.extra_flags)
        self.details = reply.details
        body = reply.body
        headers = list(reply.headers or ())
        route = self.route
        if route is not None and reply.status < 500:
            headers = route.response_headers.apply(headers)
        if body:
            headers.append(("content-type", "text/plain"))
        headers.append(("content-length", str(len(body))))
        self.add_connection_header(headers)
        self.response_status = reply.status
        self.response_head_sent = True
        self.bytes_sent = len(body)
        data = encode_response_head(reply.status, "", headers)
        self.downstream.write(data + body if self.head.method != "HEAD" else data)
        self.finish()

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        timer, self.timer = self.timer, None
        if timer is not None:
            timer.cancel()
        self.runtime.observe(self)
        self.downstream.exchange_done(self)

    # what telemetry reads ----------------------------------------------------------------------
    def duration_ms(self) -> float:
        return (self.runtime.loop.time() - self.start) * 1000

    @property
    def path(self) -> str:
        """%REQ(:PATH)%: an absolute-form target (`curl -x`) is logged by its path, as Envoy's
        codec splits it into :authority and :path, also when the proxy answered itself."""
        if self.request is not None:
            return self.request.path
        split = split_target(self.head, scheme=self.downstream.scheme)
        return split[1] if split is not None else self.head.target

