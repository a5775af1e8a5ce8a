"""Downstream side of the proxy: one asyncio protocol per client connection.

It feeds bytes to the I/O-free codec, starts an exchange per request head, hands body events to
it, answers pipelined requests in order, and turns codec errors into 400/431/426 + close, in
their turn: a broken request pipelined behind a valid one is refused after the valid one's
response. Timeouts
(slow headers, idle keep-alive) are enforced by the runtime's sweeper from the stamps kept here.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, cast

from remora.proxy.codec.events import Data, EndOfMessage, ProtocolError, RequestHead
from remora.proxy.codec.http1 import RequestDecoder, encode_response_head
from remora.proxy.exchange import Exchange
from remora.proxy.upstream import WRITE_HIGH_WATER

if TYPE_CHECKING:
    from remora.mesh.snapshot import Listener
    from remora.proxy.runtime import ProxyRuntime

Event = RequestHead | Data | EndOfMessage | ProtocolError


class DownstreamConnection(asyncio.Protocol):
    """A client connection to one of the proxy's listeners."""

    __slots__ = (
        "client_ip",
        "closing",
        "corked",
        "decoder",
        "exchange",
        "header_started",
        "idle_since",
        "listener",
        "out",
        "paused",
        "peer_closed",
        "queue",
        "runtime",
        "scheme",
        "transport",
    )

    def __init__(self, runtime: ProxyRuntime, listener: Listener, *, scheme: str) -> None:
        self.runtime = runtime
        self.listener = listener
        self.scheme = scheme
        self.transport: asyncio.Transport | None = None
        self.decoder = RequestDecoder(max_header_bytes=runtime.options.max_header_bytes,
                                      accept_http_10=runtime.options.accept_http_10)
        self.exchange: Exchange | None = None
        self.queue: deque[Event] = deque()  # pipelined requests waiting for the current one
        self.client_ip = "unknown"
        self.closing = False
        self.paused = False
        self.peer_closed = False  # the client half-closed: answer what it sent, then close
        self.corked = False  # writes are gathered and sent as one (one syscall per batch)
        self.out: list[bytes] = []
        self.idle_since = 0.0
        self.header_started = 0.0  # when the first byte of a not yet complete head arrived

    @property
    def draining(self) -> bool:
        return self.runtime.draining

    # asyncio callbacks -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is no subclass
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.client_ip = str(peer[0])
        self.idle_since = self.runtime.loop.time()
        self.runtime.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        decoder = self.decoder
        try:
            events = decoder.feed(data)
        except ProtocolError as error:
            self.dispatch(error)
            return
        if self.exchange is None and not self.header_started:
            self.header_started = self.runtime.loop.time()
        for event in events:
            self.dispatch(event)
        if decoder.error is not None:  # a broken request after the ones just decoded
            self.dispatch(decoder.error)

    def eof_received(self) -> bool:
        # A client may half-close after sending its request; keep writing the response then.
        self.peer_closed = True
        return self.exchange is not None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.runtime.connections.discard(self)
        exchange = self.exchange
        if exchange is not None:
            exchange.on_downstream_lost()

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.on_downstream_writable(False)

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.on_downstream_writable(True)

    # requests ----------------------------------------------------------------------------------
    def dispatch(self, event: Event) -> None:
        if self.queue or (self.exchange is not None and self.waits(event)):
            self.queue.append(event)  # pipelined: answered after the one in flight
            self.pause_reading()
            return
        self.handle(event)

    def waits(self, event: Event) -> bool:
        """Whether `event` belongs after the response in flight: a next request, or an error
        in what follows a complete request (an error inside its body ends it now)."""
        exchange = self.exchange
        if exchange is None:
            return False
        return isinstance(event, RequestHead) or (
            isinstance(event, ProtocolError) and exchange.request_done)

    def handle(self, event: Event) -> None:
        if isinstance(event, RequestHead):
            self.header_started = 0.0
            runtime = self.runtime
            exchange = self.exchange = Exchange(
                self, event, listener=self.listener, tables=runtime.tables
            )
            exchange.begin()
        elif isinstance(event, ProtocolError):
            self.reject(event)
        elif self.exchange is not None:
            self.exchange.on_request_event(event)

    def exchange_done(self, exchange: Exchange) -> None:
        """The response is complete: keep the connection for the next request, or close it."""
        if exchange is not self.exchange:
            return
        if not exchange.keep_alive or self.closing or (self.peer_closed and not self.queue):
            self.close()
            return
        self.exchange = None
        self.idle_since = self.runtime.loop.time()
        if self.draining:
            self.close()
            return
        queue = self.queue
        while queue and not self.waits(queue[0]):
            self.handle(queue.popleft())  # not dispatch(): it would queue the event again
        if not queue:
            self.resume_reading()

    def reject(self, error: ProtocolError) -> None:
        """Malformed input: answer with the codec's status (400, 431, ...) and close."""
        exchange = self.exchange
        if exchange is None or not exchange.response_head_sent:
            body = error.body
            head = encode_response_head(
                error.status,
                "",
                [("content-type", "text/plain"), ("content-length", str(len(body))),
                 ("connection", "close")],
            )
            self.write(head + body)
            self.runtime.observe_rejected(self, error)
        self.close()

    # used by the exchange and the runtime ------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.corked:
            self.out.append(data)
        elif self.transport is not None and not self.closing:
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

    def close(self) -> None:
        """Close after what was written is flushed."""
        if self.corked:
            self.uncork()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self.closing = True

    def idle(self) -> bool:
        return self.exchange is None and not self.header_started
