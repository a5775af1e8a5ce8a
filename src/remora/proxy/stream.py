"""One request through the filter chain, from the downstream head to the last byte back
(Envoy's active stream in the connection manager).

The stream chooses the route (remora.proxy.routing: Envoy's cached route) and the cluster,
prepares the headers the upstream gets (x-forwarded-*, x-request-id, Envoy's sanitizing), then
runs the chain's phases: request headers first to last, the body after them (held while a
filter has stopped the request), the response last to first, the log filters at the end. It
writes what the filters let through, with HTTP/1.1 framing and back-pressure both ways, and is
the router's `CallSink`: the upstream call reports the response, or its failure, here.
Failures become Envoy's local replies, and a break after the response started closes the
client connection (UC, or UT when the route timeout cut it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from remora.mesh.snapshot import PASSTHROUGH_CLUSTER, RouteAction
from remora.policy.flags import ResponseFlag
from remora.proxy.codec.events import Data, EndOfMessage, RequestHead, ResponseHead
from remora.proxy.codec.forwarding import (
    UPSTREAM_RESPONSE_DROP,
    added_request_headers,
    kept_request_lines,
    kept_response_lines,
    upstream_request_headers,
)
from remora.proxy.codec.http1 import (
    LAST_CHUNK,
    encode_chunk,
    encode_response_head,
    encode_trailers,
    strip_hop_by_hop,
)
from remora.proxy.codec.http1_encode import encode_response_lines
from remora.proxy.context import RequestContext
from remora.proxy.filter import CONTINUE, STOP, LocalReply
from remora.proxy.routing import decide

if TYPE_CHECKING:
    from remora.mesh.snapshot import Listener
    from remora.proxy.chain import ActiveConfig, FilterChain
    from remora.proxy.clusters import ClusterState
    from remora.proxy.codec.events import ProtocolError, ResponseEvent
    from remora.proxy.env import ProxyEnv
    from remora.proxy.mtls import PeerCertificate

EARLY_LIMIT = 256 * 1024  # body bytes held while a filter holds the request, before reading pauses
NO_BODY_STATUSES = frozenset({204, 304})
CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"
CLUSTER_NOT_FOUND = LocalReply(503, ResponseFlag.NC, details="cluster_not_found")
UPSTREAM_CUT = "upstream_reset_after_response_started"
STREAM_IDLE = "stream_idle_timeout"  # Envoy's response code details
STREAM_IDLE_REPLY = LocalReply(408, ResponseFlag.SI, b"stream timeout", details=STREAM_IDLE)
REQUEST_TIMEOUT = LocalReply(408, ResponseFlag.NONE, b"request timeout",
                             details="request_overall_timeout")


class Downstream(Protocol):
    """The client connection a stream answers on."""

    @property
    def draining(self) -> bool: ...

    @property
    def destination(self) -> tuple[str, int] | None: ...

    def write(self, data: bytes) -> None: ...

    def cork(self) -> None: ...

    def uncork(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def stream_done(self, stream: HttpStream) -> None: ...


class HttpStream:
    """Drives one request's context through its listener's chain."""

    __slots__ = ("active", "chain", "chunked_out", "ctx", "decoding", "downstream", "early",
                 "early_size", "env", "held_by")

    def __init__(self, env: ProxyEnv, downstream: Downstream, head: RequestHead, *,
                 listener: Listener, active: ActiveConfig, scheme: str, client_ip: str,
                 peer_cert: PeerCertificate | None = None) -> None:
        self.env = env
        self.downstream = downstream
        self.chain: FilterChain = active.chains[listener.direction]  # per port once routed
        self.active = active
        ctx = self.ctx = RequestContext(head, listener, active.tables, self, scheme, client_ip,
                                        env.loop.time())
        ctx.request_done = not head.chunked and not head.content_length
        ctx.peer_certificate = peer_cert
        ctx.keep_alive = head.keep_alive
        self.decoding = True  # the request headers phase is not over (a filter may hold it)
        self.held_by = 0  # the filter holding the request: a local reply passes those before
        self.early: list[tuple[bytes, bool]] | None = None  # body held meanwhile
        self.early_size = 0
        self.chunked_out = False

    # the way in --------------------------------------------------------------------------------
    def begin(self) -> None:
        ctx = self.ctx
        tables = ctx.tables
        destination = self.downstream.destination
        decision = decide(tables.snapshot, ctx.listener, ctx.head, scheme=ctx.scheme,
                          rng=self.env.rng, memo=tables.decisions,
                          destination_port=destination[1] if destination else None)
        if isinstance(decision, LocalReply):  # not routable at all: before any filter
            self.local_reply(decision, index=0)
            return
        ctx.route = decision.route
        request = ctx.request = decision.request
        active = self.active
        if active.port_chains and request is not None:
            self.chain = active.chain(ctx.listener, request.port)
        target = decision.target
        if decision.reply is not None or target is None:
            ctx.no_route = decision.reply
        else:
            ctx.target = target
            ctx.path = decision.path
            ctx.authority = decision.authority
            self.choose_cluster(target.cluster)
        self.decode_headers(0)

    def choose_cluster(self, name: str) -> None:
        ctx = self.ctx
        tables = ctx.tables
        state = tables.states.get(name)
        if state is None:
            ctx.no_route = CLUSTER_NOT_FOUND
            return
        if not state.cluster.endpoints and name == PASSTHROUGH_CLUSTER:
            destination = self.downstream.destination  # captured: where the app dialled
            state = tables.passthrough(
                f"{destination[0]}:{destination[1]}" if destination else ctx.authority,
                ctx.scheme)
        ctx.cluster = state
        assert ctx.route is not None and isinstance(ctx.route.action, RouteAction)
        ctx.policies = tables.policies(ctx.route.action,
                                       consistent_hash=state.hash_policy is not None)
        head = ctx.head
        edge = ctx.listener.direction == "gateway"  # Istio: use_remote_address at gateways
        plain = kept_request_lines(head.raw, head.headers) if head.raw is not None else None
        if plain is not None:  # forwarded as received, with what the proxy adds after them
            ctx.upstream_raw, proto, request_id = plain
            ctx.upstream_headers, ctx.request_id = added_request_headers(
                proto=proto, request_id=request_id, client_ip=ctx.client_ip, scheme=ctx.scheme,
                request_id_factory=self.env.request_id, edge=edge)
            return
        ctx.upstream_headers, ctx.request_id = upstream_request_headers(
            head.headers,
            authority=ctx.authority,
            client_ip=ctx.client_ip,
            scheme=ctx.scheme,
            request_id_factory=self.env.request_id,
            edge=edge,
        )

    def decode_headers(self, start: int) -> None:
        ctx = self.ctx
        for index, phase in self.chain.request_headers:
            if index < start:
                continue
            result = phase(ctx)
            if result is CONTINUE:
                continue
            self.held_by = index
            if result is not STOP:
                assert isinstance(result, LocalReply)
                self.local_reply(result, index=index)
            return
        self.decoding = False
        self.held_by = self.chain.router_index
        early, self.early = self.early, None
        if early:
            for data, end in early:
                self.decode_body(data, end)
            if self.early_size > EARLY_LIMIT:
                self.downstream.resume_reading()

    def decode_body(self, data: bytes, end: bool) -> None:
        ctx = self.ctx
        for _, phase in self.chain.request_body:
            data = phase(ctx, data, end)

    def on_request_event(self, event: Data | EndOfMessage) -> None:
        ctx = self.ctx
        if ctx.finished:
            return  # the response is complete (or a local reply went out): the rest is dropped
        if isinstance(event, Data):
            data, end = event.data, False
            ctx.bytes_received += len(data)
        else:
            data, end = b"", True
            ctx.request_done = True
            ctx.request_trailers = event.trailers or None
        if not self.decoding:
            self.decode_body(data, end)
            return
        early = self.early
        if early is None:
            early = self.early = []
        early.append((data, end))
        self.early_size += len(data)
        if self.early_size > EARLY_LIMIT:
            self.downstream.pause_reading()

    # StreamControl: what filters ask -----------------------------------------------------------
    def continue_request(self) -> None:
        if not self.ctx.finished:
            self.decode_headers(self.held_by + 1)

    def send_local_reply(self, reply: LocalReply) -> None:
        if not self.ctx.finished:
            self.local_reply(reply, index=self.held_by)

    def send_continue(self) -> None:
        self.downstream.write(CONTINUE_100)

    def reset(self, flag: ResponseFlag, details: str | None) -> None:
        ctx = self.ctx
        if flag is not ResponseFlag.NONE:
            ctx.flags.append(flag)
        if details is not None:
            ctx.details = details
        ctx.keep_alive = False
        self.finish()

    def pause_request_body(self) -> None:
        self.downstream.pause_reading()

    def resume_request_body(self) -> None:
        self.downstream.resume_reading()

    # CallSink: what the router's upstream call reports -----------------------------------------
    def on_host(self, state: ClusterState, host: int) -> None:
        ctx = self.ctx
        ctx.endpoint = state.cluster.endpoints[host]
        ctx.endpoint_index = host

    def on_upstream_principal(self, principal: str) -> None:
        self.ctx.upstream_principal = principal

    def upstream_service(self, seconds: float) -> None:
        self.ctx.upstream_service_ms = seconds * 1000

    def upstream_failed(self, reply: LocalReply) -> None:
        self.ctx.upstream = None
        self.local_reply(reply, index=self.chain.router_index)

    def upstream_cut(self, *, protocol_error: bool) -> None:
        # Envoy's router: the flag and the details of the reset reason
        if protocol_error:
            self.reset(ResponseFlag.UPE, UPSTREAM_CUT + "{protocol_error}")
        else:
            self.reset(ResponseFlag.UC, UPSTREAM_CUT + "{connection_termination}")

    def add_flag(self, flag: ResponseFlag) -> None:
        self.ctx.flags.append(flag)

    def on_response_events(self, events: list[ResponseEvent]) -> None:
        """One read's worth of response events, written downstream in one send."""
        downstream = self.downstream
        downstream.cork()
        try:
            for event in events:
                if isinstance(event, Data):
                    self.encode_body(event.data, end=False)
                elif isinstance(event, ResponseHead):
                    if event.status >= 200:  # 100 Continue went out already; 1xx are dropped
                        self.encode_headers(event)
                else:
                    self.encode_end(event)
        finally:
            downstream.uncork()

    # the way out -------------------------------------------------------------------------------
    def encode_headers(self, head: ResponseHead) -> None:
        ctx = self.ctx
        kept = kept_response_lines(head.raw, head.headers) if head.raw is not None else None
        if kept is not None:  # forwarded as received, with what the filters add after them
            ctx.response_raw = kept
            ctx.response_headers = []
        else:
            ctx.response_headers = strip_hop_by_hop(head.headers, drop=UPSTREAM_RESPONSE_DROP)
        ctx.response_status = status = head.status
        for index, phase in self.chain.response_headers:
            result = phase(ctx, head)
            if isinstance(result, LocalReply):
                self.abandon_upstream()
                self.local_reply(result, index=index)
                return
        headers = ctx.response_headers
        bodyless = ctx.head.method == "HEAD" or status in NO_BODY_STATUSES
        if not bodyless and (head.chunked or head.content_length is None):
            if ctx.head.http_version == "1.1":
                self.chunked_out = True
                headers.append(("transfer-encoding", "chunked"))
            else:
                ctx.keep_alive = False  # HTTP/1.0 client: the close delimits the body
        self.add_connection_header(headers)
        ctx.response_head_sent = True
        raw = ctx.response_raw
        self.downstream.write(encode_response_head(status, head.reason, headers) if raw is None
                              else encode_response_lines(status, head.reason, raw, headers))

    def encode_body(self, data: bytes, *, end: bool) -> bytes:
        ctx = self.ctx
        for _, phase in self.chain.response_body:
            data = phase(ctx, data, end)
        if data:
            ctx.bytes_sent += len(data)
            self.downstream.write(encode_chunk(data) if self.chunked_out else data)
        return data

    def encode_end(self, end: EndOfMessage) -> None:
        if self.chain.response_body:
            self.encode_body(b"", end=True)
        if self.chunked_out:
            self.downstream.write(encode_trailers(end.trailers) if end.trailers else LAST_CHUNK)
        self.finish()

    def add_connection_header(self, headers: list[tuple[str, str]]) -> None:
        """`connection: close` on the last response of the connection; `keep-alive` for an
        HTTP/1.0 client that asked to persist: without it the client closes (RFC 9112 §9.3)."""
        ctx = self.ctx
        if not ctx.request_done or self.downstream.draining:
            ctx.keep_alive = False
        if not ctx.keep_alive:
            headers.append(("connection", "close"))
        elif ctx.head.http_version == "1.0":
            headers.append(("connection", "keep-alive"))

    def local_reply(self, reply: LocalReply, *, index: int) -> None:
        """An Envoy local reply from the filter at `index`: the filters before it see its head
        and body on the way out, as they would an upstream's."""
        ctx = self.ctx
        if reply.flag is not ResponseFlag.NONE:
            ctx.flags.append(reply.flag)
        ctx.flags.extend(reply.extra_flags)
        ctx.details = reply.details
        ctx.local = True
        ctx.response_status = reply.status
        ctx.response_raw = None  # not an upstream's head that a filter replaced with this one
        ctx.response_headers = list(reply.headers or ())
        body = reply.body
        chain = self.chain
        if index:
            head = ResponseHead(reply.status, "", ctx.response_headers, "1.1", True, False,
                                len(body))
            for at, phase in chain.response_headers:
                if at < index:
                    phase(ctx, head)
            for at, body_phase in chain.response_body:
                if at < index:
                    body = body_phase(ctx, body, True)
        headers = ctx.response_headers
        names = {name for name, _ in headers}
        if body and "content-type" not in names:
            headers.append(("content-type", "text/plain"))
        # a reply with a stored head (the cache's) keeps its length, also for HEAD; a 304 or
        # 204 carries none (RFC 9110 §8.6)
        if "content-length" not in names and reply.status not in NO_BODY_STATUSES:
            headers.append(("content-length", str(len(body))))
        self.add_connection_header(headers)
        ctx.response_head_sent = True
        ctx.bytes_sent = len(body)
        data = encode_response_head(reply.status, "", headers)
        self.downstream.write(data + body if ctx.head.method != "HEAD" else data)
        self.finish()

    # back-pressure and ending ------------------------------------------------------------------
    def on_downstream_writable(self, writable: bool) -> None:
        upstream = self.ctx.upstream
        if upstream is not None:
            if writable:
                upstream.resume_reading()
            else:
                upstream.pause_reading()

    def abandon_upstream(self) -> None:
        """The request ends without its upstream call: reset it (its connection is closed)."""
        ctx = self.ctx
        upstream, ctx.upstream = ctx.upstream, None
        if upstream is not None:
            upstream.abandon()

    def on_downstream_lost(self) -> None:
        """The client closed its connection before the response was complete (flag DC)."""
        ctx = self.ctx
        if ctx.finished:
            return
        self.abandon_upstream()
        self.reset(ResponseFlag.DC, None)

    def on_stream_idle(self) -> None:
        """Envoy's stream_idle_timeout fired: a 408 "stream timeout" when no response has
        started, a reset when one has; flag SI either way, and the upstream request reset."""
        self.time_out(STREAM_IDLE_REPLY)

    def on_request_timeout(self) -> None:
        """Envoy's request_timeout fired (the whole request had not arrived): a 408 "request
        timeout" when no response has started, a reset when one has; Envoy sets no flag."""
        self.time_out(REQUEST_TIMEOUT)

    def time_out(self, reply: LocalReply) -> None:
        ctx = self.ctx
        if ctx.finished:
            return
        self.abandon_upstream()
        if ctx.response_head_sent:
            self.reset(reply.flag, reply.details)
            return
        ctx.keep_alive = False
        self.local_reply(reply, index=self.chain.router_index)

    def finish(self) -> None:
        ctx = self.ctx
        if ctx.finished:
            return
        ctx.finished = True
        ctx.end = self.env.loop.time()
        timer, ctx.timer = ctx.timer, None
        if timer is not None:
            timer.cancel()
        for log in self.chain.log:
            log(ctx)
        self.downstream.stream_done(self)


REJECTED_HEAD = RequestHead("-", "-", [], "1.1", False, False, False, None)


def log_rejected(env: ProxyEnv, *, listener: Listener, client_ip: str, scheme: str,
                 error: ProtocolError, control: Downstream,
                 flag: ResponseFlag = ResponseFlag.DPE) -> None:
    """A request refused before it had a stream (the codec's 400, 431...): counted and logged
    like any other, by the log filters of its listener's chain, with `flag` (Envoy's DPE for
    a protocol error)."""
    active = env.active
    stream = HttpStream(env, control, REJECTED_HEAD, listener=listener, active=active,
                        scheme=scheme, client_ip=client_ip)
    ctx = stream.ctx
    if flag is not ResponseFlag.NONE:
        ctx.flags.append(flag)
    ctx.details = error.reason
    ctx.response_status = error.status
    ctx.local = True
    ctx.finished = True
    ctx.end = ctx.start
    for log in stream.chain.log:
        log(ctx)
