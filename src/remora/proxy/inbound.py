"""A sidecar's inbound listener under PeerAuthentication: the first byte of each accepted
connection tells mutual TLS from plain text, as Envoy's tls_inspector does on Istio's inbound
listener, before a transport exists.

The connection is accepted and peeked at (remora.proxy.acceptor), then handed to the event loop
— with the workload certificate's server context when the client opened TLS. The mode of the
port (remora.mesh.peerauth: STRICT, PERMISSIVE, DISABLE) decides what is accepted:

    STRICT       TLS only; plain text is closed, logged and counted
    PERMISSIVE   both, on the same port
    DISABLE      plain text only: a TLS ClientHello is bytes for the app, as Envoy's filter
                 chain without TLS would pass it

A refused connection never reaches the app, and nothing else on the listener is disturbed.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, ClassVar

from remora.proxy.acceptor import HANDSHAKE_FAILED, PeekingAcceptor
from remora.proxy.mtls import TLS_HANDSHAKE
from remora.proxy.origdst import socket_destination

if TYPE_CHECKING:
    import ssl

DETECT_TIMEOUT = 10.0  # seconds for a client's first byte (then a PERMISSIVE port takes it
# as plain text: a protocol whose server speaks first)

# why a connection was refused, as the listener counters Envoy keeps for it
PLAINTEXT_REFUSED = "no_filter_chain_match"  # STRICT port: no filter chain takes plain text
NO_CERTIFICATE = "ssl_no_workload_certificate"  # TLS before the CA issued ours (Remora's)
REASONS = (PLAINTEXT_REFUSED, HANDSHAKE_FAILED, NO_CERTIFICATE)


class InboundAcceptor(PeekingAcceptor):
    """A sidecar's inbound port: mTLS or plain text, as the port's PeerAuthentication says."""

    peek_size: ClassVar[int] = 1
    first_timeout: ClassVar[float] = DETECT_TIMEOUT
    kind: ClassVar[str] = "inbound"

    def dispatch(self, conn: socket.socket, data: bytes | None) -> None:
        env = self.env
        tls = data is not None and data[:1] == bytes((TLS_HANDSHAKE,))
        port = self._port(conn)
        where = f"port {port}"
        mode = env.active.snapshot.inbound_mtls.mode_for(port)
        context: ssl.SSLContext | None = None
        if mode == "DISABLE":
            tls = False
        if tls:
            workload = env.tls
            if workload is None:
                self.refuse(conn, NO_CERTIFICATE, "mTLS before this proxy has a workload "
                                                  "certificate", where)
                return
            context = workload.server
        elif mode == "STRICT":
            self.refuse(conn, PLAINTEXT_REFUSED,
                        "plain text to a port whose PeerAuthentication is STRICT", where)
            return
        self.hand_off(conn, context, where)

    def _port(self, conn: socket.socket) -> int:
        """The workload port the connection is for: where it was sent before the capture
        rules redirected it, or the app's port when the listener serves one port."""
        if self.env.options.original_dst:
            destination = socket_destination(conn)
            if destination is not None:
                return destination[1]
        identity = self.env.active.snapshot.identity
        return identity.container_port or identity.app_port or self.listener.port
