"""A sidecar's inbound listener under PeerAuthentication: the first byte of each accepted
connection tells mutual TLS from plain text, as Envoy's tls_inspector does on Istio's inbound
listener, before a transport exists.

The socket is accepted here and peeked at (MSG_PEEK: the bytes stay for whoever reads next),
then handed to the event loop — with the workload certificate's server context when the
client opened TLS — and so to a DownstreamConnection as any listener's would be. The mode of
the port (remora.mesh.peerauth: STRICT, PERMISSIVE, DISABLE) decides what is accepted:

    STRICT       TLS only; plain text is closed, logged and counted
    PERMISSIVE   both, on the same port
    DISABLE      plain text only: a TLS ClientHello is bytes for the app, as Envoy's filter
                 chain without TLS would pass it

A refused connection never reaches the app, and nothing else on the listener is disturbed.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from typing import TYPE_CHECKING

from remora.proxy.mtls import TLS_HANDSHAKE
from remora.proxy.origdst import socket_destination

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from remora.mesh.snapshot import Listener
    from remora.proxy.env import ProxyEnv

log = logging.getLogger("remora.proxy")

DETECT_TIMEOUT = 10.0  # seconds for a client's first byte (then a PERMISSIVE port takes it
# as plain text: a protocol whose server speaks first)
HANDSHAKE_TIMEOUT = 10.0  # a TLS handshake that stalls longer is refused
ACCEPTS_PER_WAKEUP = 64

# why a connection was refused, as the listener counters Envoy keeps for it
PLAINTEXT_REFUSED = "no_filter_chain_match"  # STRICT port: no filter chain takes plain text
HANDSHAKE_FAILED = "ssl_connection_error"  # bad, expired, untrusted or missing client cert
NO_CERTIFICATE = "ssl_no_workload_certificate"  # TLS before the CA issued ours (Remora's)
REASONS = (PLAINTEXT_REFUSED, HANDSHAKE_FAILED, NO_CERTIFICATE)


class InboundAcceptor:
    """Accepts on one inbound port; `close()` stops it (the runtime's servers interface)."""

    def __init__(self, env: ProxyEnv, listener: Listener,
                 factory: Callable[[], asyncio.Protocol], sock: socket.socket) -> None:
        self.env = env
        self.listener = listener
        self.factory = factory
        self.sock = sock
        self.pending: dict[int, tuple[socket.socket, asyncio.TimerHandle]] = {}
        sock.setblocking(False)
        env.loop.add_reader(sock.fileno(), self._accept)

    @classmethod
    def listen(cls, env: ProxyEnv, listener: Listener, factory: Callable[[], asyncio.Protocol],
               bind: str, port: int) -> InboundAcceptor:
        sock = socket.create_server((bind, port), backlog=1024)
        return cls(env, listener, factory, sock)

    def close(self) -> None:
        loop = self.env.loop
        loop.remove_reader(self.sock.fileno())
        self.sock.close()
        for conn, timer in self.pending.values():
            timer.cancel()
            loop.remove_reader(conn.fileno())
            conn.close()
        self.pending.clear()

    def _accept(self) -> None:
        loop = self.env.loop
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                conn, _address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: the next wakeup tries again
                self.env.log_once(logging.ERROR, f"inbound accept failed: {exc}")
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            fd = conn.fileno()
            timer = loop.call_later(DETECT_TIMEOUT, self._first_byte, fd, True)
            self.pending[fd] = (conn, timer)
            loop.add_reader(fd, self._first_byte, fd, False)

    def _first_byte(self, fd: int, timed_out: bool) -> None:
        entry = self.pending.pop(fd, None)
        if entry is None:
            return
        conn, timer = entry
        timer.cancel()
        self.env.loop.remove_reader(fd)
        first = b""
        if not timed_out:
            try:
                first = conn.recv(1, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                self.pending[fd] = (conn, self.env.loop.call_later(
                    DETECT_TIMEOUT, self._first_byte, fd, True))
                self.env.loop.add_reader(fd, self._first_byte, fd, False)
                return
            except OSError:
                conn.close()
                return
            if not first:  # the client left before a byte
                conn.close()
                return
        self._dispatch(conn, tls=first[:1] == bytes((TLS_HANDSHAKE,)))

    def _dispatch(self, conn: socket.socket, *, tls: bool) -> None:
        env = self.env
        port = self._port(conn)
        mode = env.active.snapshot.inbound_mtls.mode_for(port)
        context: ssl.SSLContext | None = None
        if mode == "DISABLE":
            tls = False
        if tls:
            workload = env.tls
            if workload is None:
                self._refuse(conn, NO_CERTIFICATE, port, "mTLS before this proxy has a "
                                                         "workload certificate")
                return
            context = workload.server
        elif mode == "STRICT":
            self._refuse(conn, PLAINTEXT_REFUSED, port,
                         "plain text to a port whose PeerAuthentication is STRICT")
            return
        env.spawn(self._hand_off(conn, context, port))

    def _port(self, conn: socket.socket) -> int:
        """The workload port the connection is for: where it was sent before the capture
        rules redirected it, or the app's port when the listener serves one port."""
        if self.env.options.original_dst:
            destination = socket_destination(conn)
            if destination is not None:
                return destination[1]
        identity = self.env.active.snapshot.identity
        return identity.container_port or identity.app_port or self.listener.port

    async def _hand_off(self, conn: socket.socket, context: ssl.SSLContext | None,
                        port: int) -> None:
        loop = self.env.loop
        try:
            if context is None:
                await loop.connect_accepted_socket(self.factory, conn)
            else:
                await loop.connect_accepted_socket(self.factory, conn, ssl=context,
                                                   ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) \
                or type(exc).__name__
            self._refuse(conn, HANDSHAKE_FAILED, port, f"TLS handshake failed: {reason}")

    def _refuse(self, conn: socket.socket, counter: str, port: int, why: str) -> None:
        peer = "unknown"
        with contextlib.suppress(OSError):
            peer = "%s:%d" % conn.getpeername()[:2]  # noqa: UP031
        conn.close()
        key = (self.listener.name, counter)
        refused = self.env.tls_refused
        refused[key] = refused.get(key, 0) + 1
        log.warning("inbound connection from %s to port %d refused: %s", peer, port, why)
