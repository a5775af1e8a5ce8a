"""Downstream side of the proxy: one asyncio protocol per client connection.

It feeds bytes to the I/O-free codec, starts a stream per request head (remora.proxy.stream:
the filter chain), hands body events to it, answers pipelined requests in order, and turns
codec errors into 400/431/426 + close, in their turn: a broken request pipelined behind a valid
one is refused after the valid one's response. Timeouts (Envoy's request headers, stream idle,
request, idle and max connection duration) are enforced by the runtime's sweeper from the
stamps kept here, with the listener's settings (ProxyOptions.for_listener).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, cast

from remora.policy.flags import ResponseFlag
from remora.proxy.codec.events import Data, EndOfMessage, ProtocolError, RequestHead
from remora.proxy.codec.http1 import RequestDecoder, encode_response_head
from remora.proxy.mtls import PeerCertificate
from remora.proxy.origdst import original_destination
from remora.proxy.stream import HttpStream, log_rejected
from remora.proxy.tcp import TcpRelay, looks_like_http, relay_target
from remora.proxy.upstream import WRITE_HIGH_WATER

if TYPE_CHECKING:
    from remora.mesh.snapshot import Listener
    from remora.proxy.env import ProxyEnv, ProxyOptions

Event = RequestHead | Data | EndOfMessage | ProtocolError
HEADER_TIMEOUT = ProtocolError(408, "request_header_timeout", body=b"request header timeout")
"""Envoy's answer when request_headers_timeout fires (its response code details)."""


class DownstreamConnection(asyncio.Protocol):
    """A client connection to one of the proxy's listeners."""

    __slots__ = (
        "active_at",
        "client_ip",
        "close_timer",
        "closing",
        "connections",
        "corked",
        "created",
        "decoder",
        "destination",
        "env",
        "expired",
        "header_started",
        "idle_since",
        "listener",
        "options",
        "out",
        "paused",
        "peer_cert",
        "peer_closed",
        "queue",
        "relay",
        "scheme",
        "sniff",
        "stream",
        "transport",
        "write_blocked",
    )

    def __init__(self, env: ProxyEnv, listener: Listener, *, scheme: str,
                 connections: set[DownstreamConnection],
                 options: ProxyOptions | None = None) -> None:
        self.env = env
        self.listener = listener
        self.options = options = options or env.options  # the listener's (for_listener)
        self.scheme = scheme
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.decoder = RequestDecoder(max_header_bytes=options.max_header_bytes,
                                      max_header_count=options.max_header_count,
                                      accept_http_10=options.accept_http_10)
        self.stream: HttpStream | None = None
        self.queue: deque[Event] = deque()  # pipelined requests waiting for the current one
        self.client_ip = "unknown"
        self.destination: tuple[str, int] | None = None  # captured: where the client dialled
        self.sniff = False  # captured: its first bytes tell HTTP from a byte stream to relay
        self.relay: TcpRelay | None = None  # not HTTP: bytes both ways (remora.proxy.tcp)
        self.closing = False
        self.close_timer: asyncio.TimerHandle | None = None  # a delayed close's end
        self.paused = False
        self.peer_cert: PeerCertificate | None = None  # a mutual TLS client's certificate
        self.peer_closed = False  # the client half-closed: answer what it sent, then close
        self.corked = False  # writes are gathered and sent as one (one syscall per batch)
        self.write_blocked = False  # the client reads slower than we answer (high water)
        self.out: list[bytes] = []
        self.idle_since = 0.0
        self.created = 0.0
        self.expired = False  # older than max_connection_duration: closed after this response
        self.header_started = 0.0  # when the first byte of a not yet complete head arrived
        self.active_at = 0.0  # when bytes last moved either way (stream idle timeout)

    @property
    def draining(self) -> bool:
        """Whether the response in flight is the connection's last (`connection: close`)."""
        return self.env.draining or self.expired

    # asyncio callbacks -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is no subclass
        limit = self.env.options.max_connections
        if limit is not None and len(self.connections) >= limit:
            # over the proxy's connection limit: closed before a byte is read, counted as
            # Envoy's downstream_global_cx_overflow; the connections being served go on
            overflow = self.env.cx_overflow
            overflow[self.listener.name] = overflow.get(self.listener.name, 0) + 1
            self.closing = True
            self.transport.close()
            return
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.client_ip = str(peer[0])
        if self.listener.direction == "inbound":  # mutual TLS, when the client opened it
            self.peer_cert = PeerCertificate.of(self.transport.get_extra_info("ssl_object"))
        if self.options.original_dst:
            self.destination = original_destination(self.transport)
            self.sniff = self.destination is not None
        self.idle_since = self.created = self.env.loop.time()
        self.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self.sniff:
            self.sniff = False
            if self.relayed(data):
                return
        elif self.relay is not None:
            self.relay.from_client(data)
            return
        self.active_at = self.env.loop.time()
        decoder = self.decoder
        try:
            events = decoder.feed(data)
        except ProtocolError as error:
            self.dispatch(error)
            return
        if self.stream is None and not self.header_started:
            self.header_started = self.env.loop.time()
        for event in events:
            self.dispatch(event)
        if decoder.error is not None:  # a broken request after the ones just decoded
            self.dispatch(decoder.error)

    def relayed(self, data: bytes) -> bool:
        """A captured connection's first bytes: unless they are HTTP on a port served as
        HTTP, the connection becomes a TCP relay (Envoy's http_inspector, then tcp_proxy),
        out of the HTTP connection manager's timeouts."""
        destination, listener, env = self.destination, self.listener, self.env
        assert destination is not None and self.transport is not None
        if listener.direction == "inbound":
            identity = env.active.snapshot.identity
            served = identity.container_port or identity.app_port
            if destination[1] == served and looks_like_http(data):
                return False
        elif looks_like_http(data):
            return False
        self.connections.discard(self)
        target = relay_target(env, listener, destination)
        if target is None:  # REGISTRY_ONLY: BlackHoleCluster
            self.closing = True
            self.transport.close()
            return True
        self.relay = TcpRelay(env, self.transport, target, data)
        return True

    def eof_received(self) -> bool:
        # A client may half-close after sending its request; keep writing the response then.
        # One that leaves in the middle of a request (an aborted upload) ends the exchange
        # now, as Envoy does (flag DC; the upstream request is reset): waiting would hold the
        # socket in CLOSE_WAIT and the upstream connection open for ever.
        self.peer_closed = True
        if self.relay is not None:
            self.relay.client_done()
            return True
        if self.closing:  # a delayed close: the client has read the refusal and gone
            return False
        stream = self.stream
        if stream is None or stream.ctx.request_done:
            return stream is not None
        stream.on_downstream_lost()
        self.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.connections.discard(self)
        if self.relay is not None:
            self.relay.close()
        timer, self.close_timer = self.close_timer, None
        if timer is not None:
            timer.cancel()
        stream = self.stream
        if stream is not None:
            stream.on_downstream_lost()

    def pause_writing(self) -> None:
        self.write_blocked = True
        if self.stream is not None:
            self.stream.on_downstream_writable(False)

    def resume_writing(self) -> None:
        self.write_blocked = False
        if self.stream is not None:
            self.stream.on_downstream_writable(True)
        elif self.queue:
            self.next_request()

    # requests ----------------------------------------------------------------------------------
    def dispatch(self, event: Event) -> None:
        if self.queue or (self.stream is not None and self.waits(event)):
            self.queue.append(event)  # pipelined: answered after the one in flight
            self.pause_reading()
            return
        self.handle(event)

    def waits(self, event: Event) -> bool:
        """Whether `event` belongs after the response in flight: a next request, or an error
        in what follows a complete request (an error inside its body ends it now)."""
        stream = self.stream
        if stream is None:
            return False
        return isinstance(event, RequestHead) or (
            isinstance(event, ProtocolError) and stream.ctx.request_done)

    def handle(self, event: Event) -> None:
        if isinstance(event, RequestHead):
            self.header_started = 0.0
            env = self.env
            stream = self.stream = HttpStream(
                env, self, event, listener=self.listener, active=env.active, scheme=self.scheme,
                client_ip=self.client_ip, peer_cert=self.peer_cert,
            )
            stream.begin()
        elif isinstance(event, ProtocolError):
            self.reject(event)
        elif self.stream is not None:
            self.stream.on_request_event(event)

    def stream_done(self, stream: HttpStream) -> None:
        """The response is complete: keep the connection for the next request, or close it."""
        if stream is not self.stream:
            return
        if not stream.ctx.keep_alive or self.closing or (self.peer_closed and not self.queue):
            self.close()
            return
        self.stream = None
        self.idle_since = self.env.loop.time()
        if self.draining:
            self.close()
            return
        self.next_request()

    def next_request(self) -> None:
        """Start the pipelined request that waits, unless the client has not read the
        responses written so far (they would pile up in memory): then on resume_writing."""
        if self.write_blocked:
            return
        queue = self.queue
        while queue and not self.waits(queue[0]):
            self.handle(queue.popleft())  # not dispatch(): it would queue the event again
        if self.stream is None and self.decoder.started:
            # the start of the next head came with the last request: its headers timeout
            # runs from now, as Envoy's from the stream the buffered bytes begin
            self.header_started = self.env.loop.time()
        if not queue:
            self.resume_reading()

    def reject(self, error: ProtocolError, flag: ResponseFlag = ResponseFlag.DPE) -> None:
        """Malformed input: answer with the codec's status (400, 431, ...) and close; the
        access log's flag is `flag` (none for a head that timed out, as in Envoy)."""
        stream = self.stream
        if stream is None or not stream.ctx.response_head_sent:
            body = error.body
            head = encode_response_head(
                error.status,
                "",
                [("content-type", "text/plain"), ("content-length", str(len(body))),
                 ("connection", "close")],
            )
            headless = stream is not None and stream.ctx.head.method == "HEAD"
            self.write(head if headless else head + body)  # RFC 9110 §9.3.2
            log_rejected(self.env, listener=self.listener, client_ip=self.client_ip,
                         scheme=self.scheme, error=error, control=self, flag=flag)
        self.close_delayed()

    # used by the stream and the runtime ------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.corked:
            self.out.append(data)
        elif self.transport is not None and not self.closing:
            self.active_at = self.env.loop.time()
            self.transport.write(data)

    def cork(self) -> None:
        """Gather writes until `uncork`: a response head and body leave in one send."""
        self.corked = True

    def uncork(self) -> None:
        self.corked = False
        out = self.out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self.write(data)

    def pause_reading(self) -> None:
        if not self.paused and self.transport is not None and not self.closing:
            self.paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.paused and self.transport is not None and not self.closing:
            self.paused = False
            self.transport.resume_reading()

    def close_delayed(self) -> None:
        """Close after a refusal as Envoy's delayed close does: flush, half-close (FIN), and
        read and drop what the client still sends for up to delayed_close_timeout. Closing
        with unread input sends a reset, and a client still sending (the rest of a too large
        head) might never read the 400/431."""
        transport = self.transport
        if transport is None or transport.is_closing() or not transport.can_write_eof():
            self.close()
            return
        if self.corked:
            self.uncork()
        self.closing = True  # what arrives now is dropped (data_received)
        transport.write_eof()
        if self.paused:
            self.paused = False
            transport.resume_reading()
        self.close_later()

    def close(self) -> None:
        """Close after what was written is flushed; what the client has not read within
        delayed_close_timeout is dropped (Envoy's FlushWriteAndDelay): a client that never
        reads would otherwise hold the socket for ever."""
        if self.corked:
            self.uncork()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
            if transport.get_write_buffer_size():
                self.close_later()
        self.closing = True

    def close_later(self) -> None:
        """finish_close after delayed_close_timeout (once)."""
        if self.close_timer is None:
            self.close_timer = self.env.loop.call_later(self.options.delayed_close_timeout,
                                                        self.finish_close)

    def finish_close(self) -> None:
        """The end of a delayed close: close, dropping what the client has still not read."""
        self.close_timer = None
        transport = self.transport
        if transport is None:
            return
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    def idle(self) -> bool:
        return self.stream is None and not self.header_started

    def expire(self, now: float) -> bool:
        """The connection's timeouts at `now`, as Envoy's connection manager has them: a
        request on which nothing moved (stream_idle_timeout: 408 or a reset, flag SI), one
        not whole in time (request_timeout: 408), a head too slow (request_headers_timeout: 408),
        a keep-alive connection idle too long (idle_timeout), and one open too long
        (max_connection_duration: closed when idle, else after the response in flight).
        True when one fired."""
        if self.closing:
            return False
        options = self.options
        stream = self.stream
        most = options.max_connection_duration
        if most and now - self.created > most:
            if stream is None:
                self.close()
                return True
            self.expired = True
        if stream is not None:
            ctx = stream.ctx
            limit = options.stream_idle_timeout
            if limit and now - max(self.active_at, ctx.start) > limit:
                stream.on_stream_idle()
                return True
            limit = options.request_timeout
            if limit and not ctx.request_done and now - ctx.start > limit:
                stream.on_request_timeout()
                return True
        elif self.header_started:
            limit = options.headers_timeout
            if limit and now - self.header_started > limit:
                self.reject(HEADER_TIMEOUT, ResponseFlag.NONE)
                return True
        elif options.idle_timeout and now - self.idle_since > options.idle_timeout:
            self.close()
            return True
        return False
