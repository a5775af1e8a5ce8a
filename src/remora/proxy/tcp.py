"""Captured connections that are not HTTP, as Envoy's listeners handle them in a sidecar:
the http_inspector listener filter tells HTTP/1 from anything else by its first bytes; what is
not HTTP goes through tcp_proxy, byte for byte, to where it was going.

Outbound, a Service's ClusterIP is resolved to one of its endpoints (the Service's cluster, by
its load balancer); any other address is the PassthroughCluster (MeshConfig or Sidecar
outboundTrafficPolicy ALLOW_ANY) or refused (REGISTRY_ONLY: Envoy's BlackHoleCluster closes the
connection). Inbound, a port the sidecar does not serve HTTP on goes to that port of the app
(Istio's InboundPassthroughCluster), whatever it speaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, NamedTuple

from remora.mesh.snapshot import PASSTHROUGH_CLUSTER, RouteAction
from remora.proxy.upstream import verify_peer

if TYPE_CHECKING:
    from remora.mesh.snapshot import Listener
    from remora.proxy.env import ProxyEnv
    from remora.proxy.mtls import UpstreamPeer

log = logging.getLogger("remora.proxy")

METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE",
           b"PATCH", b"PRI", b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK",
           b"UNLOCK")
LOOPBACK = "127.0.0.1"


def looks_like_http(data: bytes) -> bool:
    """Whether the first bytes of a connection are an HTTP/1 request line's method (or, too
    short to tell, the start of one: the HTTP codec then decides)."""
    start = data[:10]
    space = start.find(b" ")
    if space >= 0:
        return start[:space] in METHODS
    return any(method.startswith(start) for method in METHODS)


class RelayTarget(NamedTuple):
    """Where a relayed connection goes, and in which TLS (the endpoint's pool says: Istio
    mTLS to a meshed workload, a DestinationRule's origination; None: plain text)."""

    address: str
    port: int
    peer: UpstreamPeer | None = None


def relay_target(env: ProxyEnv, listener: Listener, destination: tuple[str, int]
                 ) -> RelayTarget | None:
    """Where a non-HTTP captured connection goes; None when nothing may take it."""
    address, port = destination
    if listener.direction == "inbound":
        return RelayTarget(LOOPBACK, port)
    active = env.active
    snapshot = active.snapshot
    name = snapshot.tcp_services.get(destination)
    if name is None:  # an HTTP port of a Service, or no Service's address
        table = snapshot.outbound_table(port)
        vhost = table.find(address) if table is not None else None
        if vhost is None:
            return None
        actions = [r.action for r in vhost.routes if isinstance(r.action, RouteAction)]
        if not actions:  # block_all: REGISTRY_ONLY
            return None
        action = next((a for a in actions if a.clusters), actions[0])
        name = action.clusters[action.choice.pick(env.rng)].cluster
        if name == PASSTHROUGH_CLUSTER:
            return RelayTarget(address, port)
    state = active.tables.states.get(name)
    if state is None:
        return None
    host = state.pick(rng=env.rng, key=None)
    if host is None:
        return None
    endpoint = state.cluster.endpoints[host]
    return RelayTarget(endpoint.address, endpoint.port, state.pools[host].peer)


class TcpRelay:
    """Bytes both ways between a client connection and its target, until either closes."""

    __slots__ = ("client", "closed", "pending", "upstream")

    def __init__(self, env: ProxyEnv, client: asyncio.Transport, target: RelayTarget,
                 first: bytes) -> None:
        self.client = client
        self.pending: list[bytes] | None = [first] if first else []
        self.upstream: asyncio.Transport | None = None
        self.closed = False
        env.spawn(self._connect(env, target))

    async def _connect(self, env: ProxyEnv, target: RelayTarget) -> None:
        peer = target.peer
        context = peer.context(env.tls) if peer is not None else None
        loop, timeout = env.loop, env.options.connect_timeout
        try:
            if peer is None or context is None:
                transport, _ = await asyncio.wait_for(loop.create_connection(
                    lambda: _Upstream(self), target.address, target.port), timeout)
            else:
                transport, _ = await asyncio.wait_for(loop.create_connection(
                    lambda: _Upstream(self), target.address, target.port, ssl=context,
                    server_hostname=peer.sni, ssl_handshake_timeout=timeout), timeout)
                verify_peer(transport, peer)
        except (OSError, TimeoutError) as exc:
            log.log(logging.DEBUG if context is None else logging.WARNING,
                    "tcp relay to %s:%d failed: %s", target.address, target.port, exc)
            self.close()
            return
        if self.closed:
            transport.close()
            return
        self.upstream = transport
        pending, self.pending = self.pending, None
        for data in pending or ():
            transport.write(data)

    def from_client(self, data: bytes) -> None:
        if self.pending is not None:
            self.pending.append(data)
        elif self.upstream is not None:
            self.upstream.write(data)

    def client_done(self) -> None:
        """The client half-closed: so does the upstream side, once its bytes are sent."""
        upstream = self.upstream
        if upstream is not None and upstream.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                upstream.write_eof()
        elif upstream is None:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.client.close()
        if self.upstream is not None:
            self.upstream.close()


class _Upstream(asyncio.Protocol):
    __slots__ = ("relay",)

    def __init__(self, relay: TcpRelay) -> None:
        self.relay = relay

    def data_received(self, data: bytes) -> None:
        self.relay.client.write(data)

    def eof_received(self) -> bool:
        client = self.relay.client
        if client.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                client.write_eof()
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.close()
