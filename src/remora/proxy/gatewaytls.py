"""A gateway's TLS port: the ClientHello's SNI picks one of the port's servers, whose own
context (certificate, client CA and mode, protocol range, ciphers) takes the handshake.

Envoy gives each Gateway server on a port a filter chain of its own, matched on the
ClientHello's server name by the tls_inspector listener filter before any handshake
(envoyproxy.io: listener filters, TLS Inspector; FilterChainMatch.server_names), and Istio fills
`server_names` from the server's hosts (a `*` host: none, it matches any name). So here a
connection is accepted and its first bytes peeked at (MSG_PEEK: they stay for the handshake),
the SNI read from them (`client_hello_sni`, no I/O), a server chosen (`pick`: an exact name,
then the longest wildcard suffix, then a server without names), and the socket handed to the
event loop with that server's context. No server for the name (or no SNI and every server
names its hosts): the connection is closed, as Envoy's "no filter chain match", with one log
line. A context set per server, rather than an `sni_callback` switching contexts mid
handshake, keeps each server's client-certificate mode: OpenSSL switches the certificate but
not the verify mode of a connection under way.

Contexts are built when a snapshot brings a server and rebuilt when its certificate, key or CA
changes (PEM from a Secret, or the files' size and time): new handshakes get the new one, the
port never closes, connections under way keep theirs. A context that cannot be built leaves
its server out (one log line); ISTIO_MUTUAL takes the workload certificate of the moment.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from remora.proxy.acceptor import PeekingAcceptor
from remora.proxy.mtls import private_files

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Iterable

    from remora.mesh.snapshot import Listener, ListenerTls
    from remora.proxy.env import ProxyEnv
    from remora.proxy.mtls import WorkloadTls

log = logging.getLogger("remora.proxy")

HELLO_TIMEOUT = 10.0  # seconds for a client's ClientHello (Envoy's tls_inspector default: 15)
MAX_HELLO = 16 * 1024 + 5  # one TLS record: the ClientHello's size limit here
NO_FILTER_CHAIN = "no_filter_chain_match"

VERSIONS = {"TLSV1_0": ssl.TLSVersion.TLSv1, "TLSV1_1": ssl.TLSVersion.TLSv1_1,
            "TLSV1_2": ssl.TLSVersion.TLSv1_2, "TLSV1_3": ssl.TLSVersion.TLSv1_3}
# Envoy's default cipher list for a server (non-FIPS; its `[a|b]` groups as plain entries):
# TLS 1.0-1.2 only, TLS 1.3's suites are not configurable (neither in BoringSSL)
ENVOY_DEFAULT_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305",
                         "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305",
                         "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384")
_VERIFY = {"SIMPLE": ssl.CERT_NONE, "MUTUAL": ssl.CERT_REQUIRED,
           "OPTIONAL_MUTUAL": ssl.CERT_OPTIONAL}


# the ClientHello ------------------------------------------------------------------------------
class Incomplete:
    """More bytes are needed to read the ClientHello."""


INCOMPLETE = Incomplete()


def client_hello_sni(data: bytes) -> str | Incomplete | None:
    """The server name of the ClientHello that `data` starts with (RFC 8446 §4.1.2, RFC 6066
    §3), None when there is none (or `data` is no ClientHello), INCOMPLETE when the record
    is not all there yet."""
    if len(data) < 5:
        return INCOMPLETE if data[:1] in (b"", b"\x16") else None
    if data[0] != 0x16:
        return None
    size = int.from_bytes(data[3:5], "big")
    if len(data) < 5 + size:
        return INCOMPLETE if 5 + size <= MAX_HELLO else None
    body = data[5:5 + size]
    try:
        return _sni(body)
    except IndexError:
        return None


def _sni(body: bytes) -> str | None:
    if body[0] != 0x01:  # handshake type client_hello
        return None
    at = 4 + 2 + 32  # handshake header, legacy_version, random
    at += 1 + body[at]  # legacy_session_id
    at += 2 + int.from_bytes(body[at:at + 2], "big")  # cipher_suites
    at += 1 + body[at]  # legacy_compression_methods
    end = at + 2 + int.from_bytes(body[at:at + 2], "big")
    at += 2
    while at + 4 <= end:
        kind = int.from_bytes(body[at:at + 2], "big")
        length = int.from_bytes(body[at + 2:at + 4], "big")
        if kind == 0:  # server_name: a list of (type, name); type 0 is host_name
            names = body[at + 4:at + 4 + length]
            place = 2
            while place + 3 <= len(names):
                name_type = names[place]
                name_size = int.from_bytes(names[place + 1:place + 3], "big")
                if name_type == 0:
                    name = names[place + 3:place + 3 + name_size]
                    return name.decode("ascii", "replace").lower().rstrip(".") or None
                place += 3 + name_size
            return None
        at += 4 + length
    return None


def pick(servers: Iterable[ListenerTls], sni: str | None) -> ListenerTls | None:
    """The server whose filter chain Envoy would match for `sni`: the one naming it exactly,
    else the longest wildcard (`*.example.com` for www.example.com, a.b.example.com), else
    the first without server names; None when none does."""
    servers = list(servers)
    if sni:
        for server in servers:
            if sni in server.server_names:
                return server
        best: tuple[int, ListenerTls] | None = None
        for server in servers:
            for name in server.server_names:
                if name.startswith("*") and sni.endswith(name[1:]) and len(sni) > len(name) - 1 \
                        and (best is None or len(name) > best[0]):
                    best = (len(name), server)
        if best is not None:
            return best[1]
    return next((server for server in servers if not server.server_names), None)


# contexts -------------------------------------------------------------------------------------
def server_context(tls: ListenerTls) -> ssl.SSLContext:
    """The context of a SIMPLE, MUTUAL or OPTIONAL_MUTUAL server (ssl.SSLError / OSError when
    its certificate, key or CA does not load)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = VERSIONS[tls.min_version]
    context.maximum_version = VERSIONS[tls.max_version]
    context.set_ciphers(":".join(tls.ciphers or ENVOY_DEFAULT_CIPHERS))
    context.set_alpn_protocols(["http/1.1"])
    if tls.cert_path is not None and tls.key_path is not None:
        context.load_cert_chain(tls.cert_path, tls.key_path)
    else:
        pems = ((tls.cert_pem or b"").decode(), (tls.key_pem or b"").decode())
        with private_files(pems) as (cert, key):
            context.load_cert_chain(cert, key)
    context.verify_mode = _VERIFY[tls.mode]
    if tls.mode != "SIMPLE":
        if tls.ca_path is not None:
            context.load_verify_locations(cafile=tls.ca_path)
        else:
            context.load_verify_locations(cadata=(tls.ca_pem or b"").decode())
    return context


def _inputs(tls: ListenerTls) -> tuple[object, ...]:
    """What a server's context is made of: the settings and the files' size and time."""
    stats = []
    for path in (tls.cert_path, tls.key_path, tls.ca_path):
        try:
            stat = os.stat(path) if path else None
        except OSError:
            stat = None
        stats.append((stat.st_mtime_ns, stat.st_size, stat.st_ino) if stat else None)
    return (tls, *stats)


@dataclass
class _Built:
    inputs: tuple[object, ...]
    context: ssl.SSLContext | None  # None: it did not load (logged), the server is left out


class ServerContexts:
    """The contexts of one port's TLS servers, rebuilt when their inputs change."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.servers: tuple[ListenerTls, ...] = ()
        self._built: dict[ListenerTls, _Built] = {}

    def update(self, servers: tuple[ListenerTls, ...]) -> None:
        built: dict[ListenerTls, _Built] = {}
        for tls in servers:
            if tls.mode == "ISTIO_MUTUAL":
                continue
            inputs = _inputs(tls)
            old = self._built.get(tls)
            if old is not None and old.inputs == inputs:
                built[tls] = old
                continue
            try:
                context: ssl.SSLContext | None = server_context(tls)
            except (OSError, ssl.SSLError, ValueError) as exc:
                log.error("listener %s: %s left out: its certificate does not load: %s",
                          self.name, tls.server, exc)
                context = None
            else:
                if old is not None:
                    log.info("listener %s: %s: new certificate for new connections",
                             self.name, tls.server)
            built[tls] = _Built(inputs, context)
        self.servers, self._built = servers, built

    def context(self, tls: ListenerTls, workload: WorkloadTls | None) -> ssl.SSLContext | None:
        if tls.mode == "ISTIO_MUTUAL":
            return workload.server if workload is not None else None
        found = self._built.get(tls)
        return found.context if found is not None else None


# the acceptor ---------------------------------------------------------------------------------
class GatewayTlsAcceptor(PeekingAcceptor):
    """Accepts on one gateway TLS port, the ClientHello's SNI choosing the server;
    `update(listener)` takes a new snapshot's servers."""

    peek_size: ClassVar[int] = MAX_HELLO
    first_timeout: ClassVar[float] = HELLO_TIMEOUT
    kind: ClassVar[str] = "gateway"

    def __init__(self, env: ProxyEnv, listener: Listener,
                 factory: Callable[[], asyncio.Protocol], sock: socket.socket) -> None:
        self.contexts = ServerContexts(listener.name)
        self.contexts.update(listener.tls_servers)
        super().__init__(env, listener, factory, sock)

    def update(self, listener: Listener) -> None:
        """A new snapshot's listener: contexts whose certificate changed are rebuilt."""
        self.listener = listener
        self.contexts.update(listener.tls_servers)

    def complete(self, data: bytes) -> bool:
        return not isinstance(client_hello_sni(data), Incomplete)

    def dispatch(self, conn: socket.socket, data: bytes | None) -> None:
        sni = client_hello_sni(data) if data is not None else None
        if isinstance(sni, Incomplete):  # timed out with a ClientHello not all there
            sni = None
        server = pick(self.contexts.servers, sni)
        if server is None:
            self.refuse(conn, NO_FILTER_CHAIN, f"no server for SNI {sni!r}" if sni else
                        "no SNI, and every server on the port names its hosts")
            return
        context = self.contexts.context(server, self.env.tls)
        if context is None:
            why = "no workload certificate yet" if server.mode == "ISTIO_MUTUAL" else \
                "its certificate did not load"
            self.refuse(conn, NO_FILTER_CHAIN, f"{server.server} is left out: {why}")
            return
        self.hand_off(conn, context)
