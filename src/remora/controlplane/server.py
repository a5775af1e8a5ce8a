"""Run the control plane: open the store, serve the HTTP API with uvicorn (uvloop, httptools).

The listening socket is bound here, before uvicorn starts, so a port already in use is one
clear error instead of a log line and an exit from inside the server. SIGTERM and SIGINT
drain in-flight requests (uvicorn's graceful shutdown), then the store is closed.

HTTPS when asked: `tls_auto` serves with a certificate the mesh's CA signs for the control
plane (as istiod's), `tls_cert`/`tls_key` with the user's; either way a client certificate
is asked for and verified against the mesh's roots, and requests carry it in ASGI's TLS
extension (servingcert.py, peercert.py). Plain HTTP otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
import uvloop

from remora.controlplane import DEFAULT_LISTEN, HEADER_TIMEOUT, IDLE_TIMEOUT
from remora.controlplane.app import create_app
from remora.controlplane.auth_gate import AuthGate
from remora.controlplane.bodylimit import BodyLimit
from remora.controlplane.fastpaths import FastPaths
from remora.controlplane.peercert import with_tls_extension
from remora.controlplane.servingcert import ServingTls
from remora.controlplane.slowclients import guarded_protocol
from remora.controlplane.state import ControlPlane
from remora.errors import RemoraError
from remora.registry.store import open_store

log = logging.getLogger(__name__)

"""Nacos' port, so Nacos clients find the control plane where they expect it."""


class ListenError(RemoraError):
    """The address to listen on is malformed or cannot be bound."""


@dataclass(frozen=True, slots=True)
class ServerOptions:
    listen: str = DEFAULT_LISTEN
    data_dir: Path = Path(".remora")
    store: str = "sqlite"
    log_level: str = "info"
    drain_timeout: int = 5
    auth: bool = True
    admin_password: str = ""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_auto: bool = False  # serve with a certificate of the mesh's CA (istiod's)
    header_timeout: float = HEADER_TIMEOUT
    idle_timeout: int = IDLE_TIMEOUT


def parse_listen(text: str) -> tuple[str, int]:
    """`127.0.0.1:8848`, `[::1]:8848`, `:8848` (all interfaces) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ListenError(f"--listen {text!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def bind(host: str, port: int) -> socket.socket:
    """A bound (not yet listening) TCP socket; ListenError with the reason when it cannot be."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = " (another process is using it; choose another with --listen)" \
            if exc.errno == errno.EADDRINUSE else ""
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
    return sock


class TlsError(RemoraError):
    """The certificate or key given to serve HTTPS cannot be used."""


def check_tls(options: ServerOptions) -> None:
    """Load the certificate and key once before anything starts, so a bad file is one clear
    error instead of a failure inside the server."""
    if options.tls_cert is None or options.tls_key is None:
        return
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            options.tls_cert, options.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"cannot serve TLS with --tls-cert {options.tls_cert} --tls-key "
                       f"{options.tls_key}: {getattr(exc, 'reason', None) or exc}") from None


def run(options: ServerOptions) -> None:
    """Serve until SIGTERM/SIGINT; raises ListenError or StoreError before serving. `listen`
    may name several addresses, comma-separated (`remora up` adds its pod bridge's, where
    sidecars in pod network namespaces reach the control plane); the first is the API's URL."""
    addresses = [parse_listen(item) for item in options.listen.split(",") if item.strip()]
    if not addresses:
        raise ListenError(f"--listen {options.listen!r}: expected HOST:PORT, e.g. "
                          f"{DEFAULT_LISTEN}")
    check_tls(options)
    sockets: list[socket.socket] = []
    try:
        for host, port in addresses:
            sockets.append(bind(host, port))
        uvloop.run(_serve(options, sockets))
    finally:
        for sock in sockets:
            sock.close()


async def _serve(options: ServerOptions, sockets: list[socket.socket]) -> None:
    sock = sockets[0]
    store = await open_store(options.store, data_dir=options.data_dir)
    state = await ControlPlane.open(store, auth=options.auth)
    name = sock.getsockname()
    tls = _serving_tls(options, state, [s.getsockname()[0] for s in sockets])
    scheme = "https" if tls is not None else "http"
    renewal: asyncio.Task[None] | None = None
    host = "127.0.0.1" if name[0] in ("0.0.0.0", "::") else name[0]
    url = f"{scheme}://{host}:{name[1]}" if ":" not in host else f"{scheme}://[{host}]:{name[1]}"
    try:
        if tls is not None:
            await tls.start()
            renewal = asyncio.get_running_loop().create_task(tls.run())
        app: Any = FastPaths(create_app(state), state)
        if state.auth is not None:
            await state.auth.bootstrap(data_dir=options.data_dir, server=url,
                                       password=options.admin_password)
            app = AuthGate(app, state.auth)
        else:
            log.warning("authentication is OFF (--no-auth): anyone who can reach %s can "
                        "register instances, change routes and read Secrets", url)
        context = tls.context if tls is not None else None
        config = uvicorn.Config(
            BodyLimit(app), loop="none",
            http=with_tls_extension(guarded_protocol(options.header_timeout)),
            timeout_keep_alive=options.idle_timeout,
            ssl_context_factory=(lambda _config, _default: context) if context else None,
            lifespan="off",
            log_level=options.log_level, access_log=options.log_level == "debug",
            timeout_graceful_shutdown=options.drain_timeout,
        )
        server = uvicorn.Server(config)
        # uvicorn re-raises the signal it stopped on once it has drained; by then the work is
        # done, so the signal must not kill the process before the store is closed.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _drained)
        log.info("remora controlplane on %s://%s:%d (store %s, data %s, auth %s)", scheme,
                 name[0], name[1], options.store, options.data_dir,
                 "on" if state.auth is not None else "OFF")
        await server.serve(sockets=sockets)
    finally:
        if renewal is not None:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
        await state.close()


def _serving_tls(options: ServerOptions, state: ControlPlane, hosts: list[str]
                 ) -> ServingTls | None:
    own = (options.tls_cert, options.tls_key) if options.tls_cert and options.tls_key else None
    if own is None and not options.tls_auto:
        return None
    return ServingTls(state.ca, data_dir=options.data_dir, hosts=hosts, own=own)


def _drained(signum: int, frame: object) -> None:
    """The stop signal again, after uvicorn's graceful shutdown: nothing left but to return."""
