"""Listeners that look at a connection's first bytes before a transport exists, as Envoy's
listener filters (tls_inspector) do: the socket is accepted here and peeked at (MSG_PEEK: the
bytes stay for whoever reads next), then handed to the event loop — in TLS with the context the
subclass chose, or in plain text — and so to a DownstreamConnection as any listener's would be.

A subclass says when it has seen enough (`complete`) and what the connection becomes
(`dispatch`): the sidecar's inbound listener under PeerAuthentication (remora.proxy.inbound)
and a gateway's TLS port choosing its server by SNI (remora.proxy.gatewaytls). A refused
connection is closed, counted in Envoy's listener counters and logged once, and nothing else
on the listener is disturbed.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from remora.mesh.snapshot import Listener
    from remora.proxy.env import ProxyEnv

log = logging.getLogger("remora.proxy")

HANDSHAKE_TIMEOUT = 10.0  # a TLS handshake that stalls longer is refused
ACCEPTS_PER_WAKEUP = 64
PEEK_AGAIN = 0.005  # seconds before peeking again at first bytes not all there yet
HANDSHAKE_FAILED = "ssl_connection_error"  # bad, expired, untrusted or missing certificate


class PeekingAcceptor:
    """Accepts on one port; `close()` stops it (the runtime's servers interface)."""

    peek_size: ClassVar[int]  # the most bytes `complete` and `dispatch` need to see
    first_timeout: ClassVar[float]  # seconds for them; then `dispatch` gets None
    kind: ClassVar[str]  # what the log calls the connection: "inbound", "gateway"

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
               bind: str, port: int) -> PeekingAcceptor:
        return cls(env, listener, factory, socket.create_server((bind, port), backlog=1024))

    def complete(self, data: bytes) -> bool:
        """Whether the first bytes peeked are enough to decide (else: peek again shortly)."""
        return True

    def dispatch(self, conn: socket.socket, data: bytes | None) -> None:
        """Hand the connection off (`hand_off`) or `refuse` it; `data` None: timed out."""
        raise NotImplementedError

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
                self.env.log_once(logging.ERROR, f"{self.kind} accept failed: {exc}")
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            fd = conn.fileno()
            timer = loop.call_later(self.first_timeout, self._readable, fd, True)
            self.pending[fd] = (conn, timer)
            loop.add_reader(fd, self._readable, fd, False)

    def _readable(self, fd: int, timed_out: bool) -> None:
        entry = self.pending.get(fd)
        if entry is None:
            return
        conn = entry[0]
        data: bytes | None = None
        if not timed_out:
            try:
                data = conn.recv(self.peek_size, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:  # the client left before a byte
                self._forget(fd)
                conn.close()
                return
            if not self.complete(data):  # the rest is on its way (the timer still runs):
                loop = self.env.loop  # look again shortly, not at once (peeked bytes stay
                loop.remove_reader(fd)  # readable)
                loop.call_later(PEEK_AGAIN, self._watch, fd)
                return
        self._forget(fd)
        self.dispatch(conn, data)

    def _watch(self, fd: int) -> None:
        if fd in self.pending:
            self.env.loop.add_reader(fd, self._readable, fd, False)

    def _forget(self, fd: int) -> None:
        entry = self.pending.pop(fd, None)
        if entry is not None:
            entry[1].cancel()
            self.env.loop.remove_reader(fd)

    def hand_off(self, conn: socket.socket, context: ssl.SSLContext | None,
                 where: str = "") -> None:
        """The connection to the event loop: in TLS with `context`, else plain text."""
        self.env.spawn(self._hand_off(conn, context, where))

    async def _hand_off(self, conn: socket.socket, context: ssl.SSLContext | None,
                        where: str) -> None:
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
            self.refuse(conn, HANDSHAKE_FAILED, f"TLS handshake failed: {reason}", where)

    def refuse(self, conn: socket.socket, counter: str, why: str, where: str = "") -> None:
        """Close, count as Envoy's listener counter `counter`, log one line."""
        peer = "unknown"
        with contextlib.suppress(OSError):
            peer = "%s:%d" % conn.getpeername()[:2]  # noqa: UP031
        conn.close()
        key = (self.listener.name, counter)
        refused = self.env.tls_refused
        refused[key] = refused.get(key, 0) + 1
        log.warning("%s connection from %s to %s refused: %s", self.kind, peer,
                    where or self.listener.name, why)
