"""One request through the proxy: from the downstream head to the last byte of the response.

The exchange asks the router where the request goes, takes an upstream connection from the
endpoint's pool (or opens one), streams the body each way with back-pressure, and reports the
outcome (status, response flags, bytes, timings) to telemetry. Failures become Envoy's local
replies: 503 UH without endpoints, 503 UF when the connection fails, 503 UC when the upstream
closes before answering; a break after the response started closes the client connection (UC).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from remora.policy.flags import ResponseFlag
from remora.proxy.events import Data, EndOfMessage, ProtocolError, RequestHead, ResponseHead
from remora.proxy.forwarding import upstream_request_headers
from remora.proxy.http1 import (
    LAST_CHUNK,
    encode_chunk,
    encode_request_head,
    encode_response_head,
    encode_trailers,
    strip_hop_by_hop,
)
from remora.proxy.router import Forward, LocalReply, decide

if TYPE_CHECKING:
    from remora.mesh.snapshot import Endpoint, Listener, Route, WeightedCluster
    from remora.policy.match import RequestAttributes
    from remora.proxy.clusters import ClusterState, ClusterTable
    from remora.proxy.server import DownstreamConnection
    from remora.proxy.upstream import EndpointPool, UpstreamConnection

BUFFER_LIMIT = 256 * 1024  # request body bytes held while the upstream connection opens
NO_BODY_STATUSES = frozenset({204, 304})
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
UPSTREAM_RESET = "upstream connect error or disconnect/reset before headers. reset reason: "


class Exchange:
    """State of one request; the downstream connection feeds it, the upstream one answers."""

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "chunked_out",
        "cluster",
        "details",
        "downstream",
        "endpoint",
        "endpoint_index",
        "finished",
        "flags",
        "head",
        "keep_alive",
        "listener",
        "pending",
        "pending_size",
        "pool",
        "request",
        "request_done",
        "request_id",
        "response_head_sent",
        "response_status",
        "reused",
        "route",
        "runtime",
        "set_cookie",
        "start",
        "tables",
        "target",
        "upstream",
        "upstream_chunked",
        "upstream_head",
        "upstream_keep_alive",
        "upstream_sent_at",
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
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.upstream: UpstreamConnection | None = None
        self.upstream_head = b""
        self.upstream_chunked = head.chunked
        self.upstream_keep_alive = False
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
        self.reused = False
        self.finished = False
        self.upstream_sent_at = 0.0
        self.upstream_service_ms: float | None = None

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
        self.cluster = state
        key = None
        if state.hash_policy is not None:
            from remora.proxy.clusters import request_hash  # noqa: PLC0415 - rare path

            key, self.set_cookie = request_hash(
                state.hash_policy, decision.request, client_ip=self.downstream.client_ip
            )
        index = state.pick(rng=self.runtime.rng, key=key)
        if index is None:
            self.local_reply(
                LocalReply(503, ResponseFlag.UH, b"no healthy upstream",
                           details="no_healthy_upstream")
            )
            return
        self.pool = pool = state.pools[index]
        self.endpoint = state.cluster.endpoints[index]
        self.endpoint_index = index
        pool.active += 1
        pool.rq_total += 1
        self.upstream_head = self.build_upstream_head(decision)
        if self.head.expect_continue:
            self.downstream.write(CONTINUE)  # Envoy answers 100-continue itself by default
        connection = pool.take_idle()
        if connection is not None:
            self.reused = True
            self.attach(connection)
        else:
            self.runtime.spawn(self.connect())

    def build_upstream_head(self, decision: Forward) -> bytes:
        head = self.head
        headers, self.request_id = upstream_request_headers(
            head.headers,
            authority=decision.authority,
            client_ip=self.downstream.client_ip,
            scheme=self.downstream.scheme,
            request_id_factory=self.runtime.request_id,
        )
        headers = decision.target.request_headers.apply(headers)
        headers = decision.route.request_headers.apply(headers)
        if head.chunked:
            headers.append(("transfer-encoding", "chunked"))
        return encode_request_head(head.method, decision.path, headers)

    async def connect(self) -> None:
        pool = self.pool
        assert pool is not None
        try:
            connection = await pool.connect(timeout=self.runtime.connect_timeout)
        except (OSError, TimeoutError):
            if not self.finished:
                self.local_reply(
                    LocalReply(
                        503,
                        ResponseFlag.UF,
                        (UPSTREAM_RESET + "connection failure").encode(),
                        details="upstream_reset_before_response_started{connection_failure}",
                    )
                )
            return
        if self.finished:  # the client went away while we connected
            connection.release(reusable=True)
            return
        self.attach(connection)

    def attach(self, connection: UpstreamConnection) -> None:
        self.upstream = connection
        connection.start(self, method=self.head.method)
        self.upstream_sent_at = self.runtime.loop.time()
        pending = self.pending
        if pending:
            connection.write(self.upstream_head + b"".join(pending))
            self.pending = []
            if self.pending_size > BUFFER_LIMIT:
                self.downstream.resume_reading()
            self.pending_size = 0
        else:
            connection.write(self.upstream_head)

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
            if not self.upstream_chunked:
                return
            out = encode_trailers(event.trailers) if event.trailers else LAST_CHUNK
        upstream = self.upstream
        if upstream is not None:
            upstream.write(out)
            return
        self.pending.append(out)
        self.pending_size += len(out)
        if self.pending_size > BUFFER_LIMIT:
            self.downstream.pause_reading()

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
            if event.status < 200:
                return  # 100 Continue went out already; other 1xx are not forwarded
            self.upstream_service_ms = (self.runtime.loop.time() - self.upstream_sent_at) * 1000
            self.upstream_keep_alive = event.keep_alive
            self.send_response_head(event)
        else:
            if self.chunked_out:
                self.downstream.write(encode_trailers(event.trailers) if event.trailers
                                      else LAST_CHUNK)
            upstream = self.upstream
            assert upstream is not None
            reusable = self.request_done and self.upstream_keep_alive
            self.upstream = None
            upstream.release(reusable=reusable)
            self.finish()

    def send_response_head(self, event: ResponseHead) -> None:
        headers = strip_hop_by_hop(event.headers)
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

    def on_upstream_error(self, *, error: ProtocolError | None, eof: bool) -> None:
        if self.finished:
            return
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.release(reusable=False)
        if not self.response_head_sent:
            if self.reused and not self.bytes_received and self.request_done:
                # a pooled connection the upstream had just closed: send it again on a new one
                self.reused = False
                self.runtime.spawn(self.connect())
                return
            flag = ResponseFlag.UPE if error is not None and not eof else ResponseFlag.UC
            reason = "protocol error" if flag is ResponseFlag.UPE else "connection termination"
            # Envoy answers an upstream protocol error with 502 (envoyproxy/envoy#15033)
            status = 502 if flag is ResponseFlag.UPE else 503
            self.local_reply(LocalReply(status, flag, (UPSTREAM_RESET + reason).encode(),
                                        details="upstream_reset_before_response_started"))
            return
        self.flags.append(ResponseFlag.UC)
        self.details = "upstream_reset_after_response_started"
        self.keep_alive = False
        self.finish()

    def on_upstream_writable(self, writable: bool) -> None:
        if writable:
            self.downstream.resume_reading()
        else:
            self.downstream.pause_reading()

    # back-pressure from the client side ------------------------------------------------------
    def on_downstream_writable(self, writable: bool) -> None:
        upstream = self.upstream
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
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.release(reusable=False)
        self.finish()

    # ending ------------------------------------------------------------------------------------
    def local_reply(self, reply: LocalReply) -> None:
        """Envoy-style local reply: status, flag, a short text body."""
        if reply.flag is not ResponseFlag.NONE:
            self.flags.append(reply.flag)
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
        pool = self.pool
        if pool is not None:
            pool.active -= 1
            if self.response_status >= 500 or ResponseFlag.UC in self.flags:
                pool.rq_error += 1
        self.runtime.observe(self)
        self.downstream.exchange_done(self)

    # what telemetry reads ----------------------------------------------------------------------
    def duration_ms(self) -> float:
        return (self.runtime.loop.time() - self.start) * 1000

    @property
    def path(self) -> str:
        return self.request.path if self.request is not None else self.head.target

