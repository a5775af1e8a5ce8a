"""Connections to upstream endpoints: one pool of keep-alive connections per endpoint address.

An `UpstreamConnection` moves bytes and hands decoded response events to the exchange that owns
it; the pool hands idle connections out again. Nothing here decides where a request goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections import deque
from typing import TYPE_CHECKING, NoReturn, Protocol, cast

from remora.proxy.codec.events import Data, EndOfMessage, ProtocolError, ResponseHead
from remora.proxy.codec.http1 import ResponseDecoder
from remora.proxy.mtls import PeerCertificate, UpstreamPeer, expected_peer, origination_problem

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from remora.policy.circuit import Breaker, PoolLimits, TcpKeepalive
    from remora.proxy.mtls import WorkloadTls

log = logging.getLogger("remora.proxy")

WRITE_HIGH_WATER = 256 * 1024  # bytes buffered towards a peer before we stop reading the other


PoolKey = tuple[str, int, UpstreamPeer | None]


class Connector(Protocol):
    """How a pool opens a connection, in loop.create_connection's shape. The seam lets tests
    put the proxy on an in-memory network (tests/unit/proxy/harness.py)."""

    def __call__(self, factory: Callable[[], asyncio.Protocol], host: str, port: int, /
                 ) -> Awaitable[tuple[asyncio.BaseTransport, asyncio.Protocol]]: ...


class Waiter(Protocol):
    """A request queued for a connection of a pool (an Envoy pending request)."""

    def on_connection(self, connection: UpstreamConnection) -> None: ...
    def on_connection_slot(self) -> bool: ...


class ResponseSink(Protocol):
    """What an upstream connection reports to: the exchange using it."""

    def on_response_events(self, events: list[ResponseHead | Data | EndOfMessage]) -> None: ...
    def on_upstream_error(self, *, error: ProtocolError | None, eof: bool) -> None: ...
    def on_upstream_writable(self, writable: bool) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One TCP connection to an endpoint; carries one request at a time (HTTP/1.1)."""

    __slots__ = ("breaker", "closed", "created", "decoder", "idle_until", "peer_uri", "pool",
                 "requests", "sink", "transport")

    def __init__(self, pool: EndpointPool, *, breaker: Breaker | None = None,
                 created: float = 0.0) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.decoder = ResponseDecoder()
        self.sink: ResponseSink | None = None
        self.requests = 0
        self.closed = False
        self.breaker = breaker  # the cluster whose max_connections counts this connection
        self.created = created
        self.idle_until = float("inf")  # connectionPool idleTimeout: closed if idle past this
        self.peer_uri = ""  # mutual TLS: the identity the endpoint's certificate proved

    def reusable(self, limits: PoolLimits, now: float) -> bool:
        """DestinationRule maxRequestsPerConnection and tcp.maxConnectionDuration allow more."""
        most = limits.max_requests_per_connection
        if most and self.requests >= most:
            return False
        duration = limits.max_connection_duration
        return duration is None or now - self.created < duration

    # asyncio callbacks -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is no subclass
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:  # bytes on an idle connection: the peer is not speaking HTTP to us
            self.close()
            return
        try:
            events = self.decoder.feed(data)
        except ProtocolError as exc:
            self.sink = None
            self.close()
            sink.on_upstream_error(error=exc, eof=False)
            return
        if events:
            sink.on_response_events(events)

    def eof_received(self) -> bool:
        return False  # close our side too; HTTP/1.1 has no half-closed exchanges

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.forget()
        sink, self.sink = self.sink, None
        if sink is None:
            return
        try:
            events = self.decoder.feed_eof()
        except ProtocolError as error:
            sink.on_upstream_error(error=error, eof=True)
            return
        if events:
            sink.on_response_events(events)
        if self.sink is None and not any(isinstance(e, EndOfMessage) for e in events):
            sink.on_upstream_error(error=None, eof=True)

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.on_upstream_writable(False)

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.on_upstream_writable(True)

    # used by the exchange ----------------------------------------------------------------------
    def start(self, sink: ResponseSink, *, method: str) -> None:
        """Bind the connection to one exchange and expect the response to `method`."""
        self.sink = sink
        self.requests += 1
        self.decoder.start(method=method)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def release(self, *, reusable: bool, idle_until: float = float("inf")) -> None:
        """The exchange is done with this connection: to a queued request, idle, or closed.
        An idle connection is closed once `idle_until` passes (DestinationRule idleTimeout)."""
        self.sink = None
        pool = self.pool
        if reusable and not self.closed and not pool.closed:
            self.resume_reading()
            if pool.waiters:
                pool.waiters.popleft().on_connection(self)
            else:
                self.idle_until = idle_until
                pool.idle.append(self)
        else:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.forget()
            if self.transport is not None:
                self.transport.close()

    def forget(self) -> None:
        """Leave the pool and give the cluster's connection slot back (once)."""
        self.pool.forget(self)
        breaker, self.breaker = self.breaker, None
        if breaker is not None:
            breaker.connections -= 1
            self.pool.wake()


class EndpointPool:
    """Keep-alive connections to one endpoint address, with the counters /clusters shows."""

    __slots__ = (
        "active",
        "address",
        "closed",
        "connections",
        "connector",
        "cx_connect_fail",
        "cx_total",
        "idle",
        "peer",
        "port",
        "rq_error",
        "rq_total",
        "waiters",
    )

    def __init__(self, address: str, port: int, *, connector: Connector | None = None,
                 peer: UpstreamPeer | None = None) -> None:
        self.address = address
        self.port = port
        self.peer = peer
        self.connector = connector
        self.idle: deque[UpstreamConnection] = deque()
        self.connections: set[UpstreamConnection] = set()
        self.closed = False
        self.active = 0  # requests in flight to this endpoint (least-request balancing reads it)
        self.cx_total = 0
        self.cx_connect_fail = 0
        self.rq_total = 0
        self.rq_error = 0
        self.waiters: deque[Waiter] = deque()  # requests queued for a connection

    def take_idle(self) -> UpstreamConnection | None:
        """An idle keep-alive connection, most recently used first (it is the least likely to
        have been closed by the peer's idle timer)."""
        idle = self.idle
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    @property
    def key(self) -> PoolKey:
        return self.address, self.port, self.peer

    async def connect(self, *, timeout: float, breaker: Breaker | None = None,
                      keepalive: TcpKeepalive | None = None,
                      workload: WorkloadTls | None = None) -> UpstreamConnection:
        """Open a new connection, in mutual TLS with `workload`'s certificate to a `peer`
        endpoint; raises OSError (refused, unreachable, a failed handshake or the wrong
        identity: Envoy's UF all) or TimeoutError. `breaker` has counted it already; the
        connection gives the slot back when it closes."""
        loop = asyncio.get_running_loop()
        self.cx_total += 1
        peer = self.peer
        context = peer.context(workload) if peer is not None else None
        try:
            async with asyncio.timeout(timeout):
                if peer is not None and peer.origination is not None \
                        and peer.origination.problem:
                    raise ssl.SSLError(peer.origination.problem)
                if peer is None or context is None:
                    connect: Connector = self.connector or loop.create_connection
                    transport, protocol = await connect(
                        lambda: UpstreamConnection(self, breaker=breaker, created=loop.time()),
                        self.address, self.port,
                    )
                else:
                    transport, protocol = await loop.create_connection(
                        lambda: UpstreamConnection(self, breaker=breaker, created=loop.time()),
                        self.address, self.port, ssl=context, server_hostname=peer.sni,
                        ssl_handshake_timeout=timeout)
                    cast("UpstreamConnection", protocol).peer_uri = verify_peer(transport, peer)
        except (OSError, TimeoutError) as exc:
            self.cx_connect_fail += 1
            if isinstance(exc, ssl.SSLError):
                log.warning("TLS to %s:%d refused: %s", self.address, self.port,
                            getattr(exc, "verify_message", None) or getattr(exc, "reason", None)
                            or exc)
            raise
        if keepalive is not None:
            set_keepalive(transport.get_extra_info("socket"), keepalive)
        connection = cast("UpstreamConnection", protocol)
        self.connections.add(connection)
        return connection

    def wake(self) -> None:
        """A connection closed: queued requests may open one now (breaker permitting)."""
        while self.waiters and self.waiters[0].on_connection_slot():
            self.waiters.popleft()

    def drop_waiter(self, waiter: Waiter) -> None:
        with contextlib.suppress(ValueError):
            self.waiters.remove(waiter)

    def forget(self, connection: UpstreamConnection) -> None:
        self.connections.discard(connection)
        with contextlib.suppress(ValueError):
            self.idle.remove(connection)

    def close(self) -> None:
        """Close every connection (the endpoint left the configuration or the proxy stops)."""
        self.closed = True
        for connection in list(self.connections):
            connection.close()

    def close_idle(self) -> None:
        while self.idle:
            self.idle.pop().close()

    def close_expired(self, now: float) -> None:
        """Close the idle connections whose idle timeout has passed."""
        for connection in [c for c in self.idle if c.idle_until <= now]:
            connection.close()

    def retire(self) -> None:
        """The endpoint left the configuration: close idle connections now; busy ones finish
        the request they carry (it started on the old snapshot) and close when released."""
        self.closed = True
        self.close_idle()


class Pools:
    """All endpoint pools of a proxy, keyed by (address, port, mTLS peer), shared by every
    cluster."""

    def __init__(self, *, connector: Connector | None = None) -> None:
        self._pools: dict[PoolKey, EndpointPool] = {}
        self.connector = connector

    def get(self, address: str, port: int, peer: UpstreamPeer | None = None) -> EndpointPool:
        key = (address, port, peer)
        pool = self._pools.get(key)
        if pool is None or pool.closed:
            pool = self._pools[key] = EndpointPool(address, port, connector=self.connector,
                                                   peer=peer)
        return pool

    def retain(self, keep: Callable[[PoolKey], bool]) -> None:
        """Retire pools of endpoints no longer in the configuration."""
        for key in [key for key in self._pools if not keep(key)]:
            self._pools.pop(key).retire()

    def close_idle(self) -> None:
        for pool in self._pools.values():
            pool.close_idle()

    def close_expired(self, now: float) -> None:
        for pool in self._pools.values():
            if pool.idle:
                pool.close_expired(now)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


def verify_peer(transport: asyncio.BaseTransport, peer: UpstreamPeer) -> str:
    """The certificate chains to a root (the handshake checked that); is it who we meant?
    The identity it proved (ISTIO_MUTUAL; "" for origination); SSLError (closed) if not."""
    ssl_object = transport.get_extra_info("ssl_object")
    if peer.origination is not None:
        problem = origination_problem(ssl_object, peer)
        if problem is not None:
            refuse(transport, problem)
        return ""
    found = PeerCertificate.of(ssl_object)
    problem = expected_peer(found, peer.expected, peer.trust_domain)
    if problem is not None:
        refuse(transport, problem)
    assert found is not None
    return found.uri


def refuse(transport: asyncio.BaseTransport, problem: str) -> NoReturn:
    """Close a connection whose server is not who the cluster expects (Envoy: a failed
    handshake, flag UF)."""
    transport.close()
    error = ssl.SSLCertVerificationError(problem)
    error.verify_message = problem
    raise error


def set_keepalive(sock: socket.socket | None, keepalive: TcpKeepalive) -> None:
    """DestinationRule tcp.tcpKeepalive: SO_KEEPALIVE with probes, time and interval."""
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if keepalive.probes is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, keepalive.probes)
    if keepalive.time is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, int(keepalive.time)))
    if keepalive.interval is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, int(keepalive.interval)))
