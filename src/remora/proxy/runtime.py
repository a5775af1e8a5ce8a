"""A running proxy: listeners, config swaps, timers, signals and drain, around its `ProxyEnv`.

A new snapshot becomes an `ActiveConfig` (cluster state and filter chains) put in place in one
assignment; each request keeps the one it started with, so a swap never disturbs a request in
flight (DESIGN.md: snapshots swap atomically).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import ssl
from typing import TYPE_CHECKING

from remora.gcpause import settle_heap
from remora.proxy.chain import activate
from remora.proxy.env import ProxyEnv
from remora.proxy.gatewaytls import GatewayTlsAcceptor
from remora.proxy.inbound import InboundAcceptor
from remora.proxy.labels import Labels
from remora.proxy.server import DownstreamConnection
from remora.proxy.upstream import Pools
from remora.telemetry.accessformat import unknown_operators
from remora.telemetry.accesslog import AccessLog
from remora.telemetry.metrics import IstioMetrics

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Any, Protocol

    from remora.mesh.snapshot import Listener, Snapshot
    from remora.proxy.certs import CertificateSource
    from remora.proxy.clusters import ClusterTable
    from remora.proxy.config import SnapshotSource
    from remora.proxy.env import ProxyOptions
    from remora.proxy.mtls import WorkloadTls

    class Server(Protocol):
        def close(self) -> None: ...

log = logging.getLogger("remora.proxy")


class ProxyRuntime:
    """Everything one proxy process shares between its connections."""

    def __init__(self, source: SnapshotSource, options: ProxyOptions, snapshot: Snapshot, *,
                 certificates: CertificateSource | None = None) -> None:
        self.source = source
        self.certificates = certificates
        if certificates is not None:
            certificates.on_change = self.use_certificate
        self.options = options
        self.loop = asyncio.get_running_loop()
        self.connections: set[DownstreamConnection] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.servers: dict[int, Server] = {}
        self.ready = False
        self.stopped = asyncio.Event()
        self.env = ProxyEnv(
            loop=self.loop, rng=random.Random(), options=options, pools=Pools(),
            metrics=IstioMetrics(), access_log=AccessLog(options.access_log), labels=Labels(),
            spawn=self.spawn,
        )
        self.follow_access_log(snapshot)
        self.env.active = activate(self.env, snapshot)

    @property
    def snapshot(self) -> Snapshot:
        return self.env.active.snapshot

    @property
    def tables(self) -> ClusterTable:
        return self.env.active.tables

    @property
    def draining(self) -> bool:
        return self.env.draining

    # lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        agent = self.certificates
        if agent is not None:  # as pilot-agent: not ready before the workload certificate
            agent.trust(self.snapshot.mesh.trust_roots)
            await agent.first()
            self.spawn(agent.run())
        await self.sync_listeners()
        self.spawn(self.sweep())
        self.spawn(self.sweep_outliers())
        self.spawn(self.watch())
        self.spawn(self.flush_access_log())
        for signum, handler in (
            (signal.SIGHUP, self.reload),
            (signal.SIGTERM, self.request_drain),
            (signal.SIGINT, self.request_drain),
        ):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
                self.loop.add_signal_handler(signum, handler)
        self.ready = True

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a background task, keeping a reference and logging a failure (never silent)."""
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("proxy task failed", exc_info=task.exception())

    async def sync_listeners(self) -> None:
        """Listen on every listener of the snapshot; stop listening on the ones it dropped."""
        wanted = {listener.port: listener for listener in self.snapshot.listeners}
        for port in [port for port in self.servers if port not in wanted]:
            self.servers.pop(port).close()
        for port, listener in wanted.items():
            server = self.servers.get(port)
            if isinstance(server, GatewayTlsAcceptor) and listener.tls is not None:
                server.update(listener)  # changed certificates: new handshakes get them
                continue
            if isinstance(server, GatewayTlsAcceptor) or (
                    server is not None and listener.direction == "gateway"
                    and listener.tls is not None):  # a gateway port turned TLS or plain
                self.servers.pop(port).close()
            elif server is not None:
                continue
            if listener.direction == "inbound":  # PeerAuthentication: mTLS or plain, per port
                self.servers[port] = InboundAcceptor.listen(
                    self.env, listener, self.protocol_factory(listener, None), self.options.bind,
                    port)
                continue
            if listener.tls is not None:  # a gateway's TLS servers, picked by SNI
                self.servers[port] = GatewayTlsAcceptor.listen(
                    self.env, listener, self.protocol_factory(listener, None, scheme="https"),
                    self.options.bind, port)
                continue
            self.servers[port] = await self.loop.create_server(
                self.protocol_factory(listener, None),
                self.options.bind,
                port,
                reuse_address=True,
                backlog=1024,
            )

    def protocol_factory(
        self, listener: Listener, context: ssl.SSLContext | None, *, scheme: str | None = None
    ) -> Any:
        scheme = scheme or ("https" if context is not None else "http")
        env, connections = self.env, self.connections

        def factory() -> DownstreamConnection:
            # the listener object of the current snapshot (a swap may have replaced it)
            active = env.active
            current = next((item for item in active.snapshot.listeners
                            if item.port == listener.port), listener)
            return DownstreamConnection(env, current, scheme=scheme, connections=connections,
                                        options=active.options.get(current.port))

        return factory

    # config swaps ------------------------------------------------------------------------------
    def reload(self) -> None:
        """SIGHUP: recompile now; keep the old snapshot if the new one is bad."""
        try:
            snapshot = self.source.reload()
        except Exception as exc:
            log.error("config rejected, keeping version %s: %s", self.snapshot.version, exc)
            return
        if snapshot is not None:
            self.apply(snapshot)

    def apply(self, snapshot: Snapshot) -> None:
        """A new valid snapshot from the source: swap it in."""
        self.swap(snapshot)
        settle_heap()

    def use_certificate(self, workload: WorkloadTls) -> None:
        """A new workload certificate (or trust bundle): new connections use it."""
        self.env.tls = workload

    def swap(self, snapshot: Snapshot) -> None:
        if self.certificates is not None:
            self.certificates.trust(snapshot.mesh.trust_roots)
        self.follow_access_log(snapshot)
        env = self.env
        env.active = active = activate(env, snapshot)
        endpoints = active.tables.endpoints()
        env.pools.retain(lambda key: key in endpoints)
        self.spawn(self.sync_listeners())
        log.info("config version %s applied", snapshot.version)

    def follow_access_log(self, snapshot: Snapshot) -> None:
        """MeshConfig accessLogFile/Encoding/Format, unless --access-log chose the log."""
        if self.options.access_log is not None:
            return
        mesh = snapshot.mesh
        path = mesh.access_log_file or None
        wanted = (path, mesh.access_log_encoding, mesh.access_log_format)
        env = self.env
        if wanted != env.access_log.settings:
            for operator in unknown_operators(mesh.access_log_format):
                log.warning("accessLogFormat: %%%s%% is not known to Remora: it prints -",
                            operator)
            env.access_log.close()
            env.access_log = AccessLog(path, encoding=mesh.access_log_encoding,
                                       template=mesh.access_log_format)

    async def watch(self) -> None:
        await self.source.follow(self.apply)

    # timeouts and flushing ---------------------------------------------------------------------
    async def sweep(self) -> None:
        """Each connection's timeouts (DownstreamConnection.expire), a few times per the
        shortest of them (the listeners' own included). Timeouts that fire together are
        spread out: a few at a time, with a pause between, so that a thousand slowloris
        clients timing out at once (and reconnecting as they are closed) do not hold every
        other request behind their 408s, closes and new connections."""
        while True:
            await asyncio.sleep(sweep_period([self.options, *self.env.active.options.values()]))
            now = self.loop.time()
            fired = 0
            for visited, connection in enumerate(list(self.connections), 1):
                if connection.expire(now):
                    fired += 1
                    if fired % EXPIRE_SLICE == 0:
                        await asyncio.sleep(EXPIRE_PAUSE)
                        now = self.loop.time()
                elif visited % VISIT_SLICE == 0:
                    await asyncio.sleep(0)
                    now = self.loop.time()

    async def sweep_outliers(self) -> None:
        """Outlier detection's interval timers (each cluster keeps its own due time), and the
        upstream connections idle past their cluster's idleTimeout."""
        while True:
            await asyncio.sleep(0.25)
            now = self.loop.time()
            self.env.active.tables.sweep(now)
            self.env.pools.close_expired(now)

    async def flush_access_log(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.env.access_log.flush()

    # drain -------------------------------------------------------------------------------------
    def request_drain(self) -> None:
        if not self.draining:
            self.spawn(self.drain())

    async def drain(self) -> None:
        """Stop accepting, let requests in flight finish, close idle connections, then stop."""
        self.env.draining = True
        self.ready = False
        for server in self.servers.values():
            server.close()
        deadline = self.loop.time() + self.options.drain_timeout
        while self.loop.time() < deadline:
            for connection in list(self.connections):
                if connection.idle():
                    connection.close()
            if not self.connections:
                break
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection.close()
        self.env.pools.close()
        self.env.access_log.close()
        self.stopped.set()


VISIT_SLICE = 256  # connections checked between two turns of the loop
EXPIRE_SLICE = 4  # timeouts fired between two pauses
EXPIRE_PAUSE = 0.002  # seconds: 1,000 timeouts at once are spread over about 0.5 s


def sweep_period(options: list[ProxyOptions]) -> float:
    """A quarter of the shortest timeout that is on, between 50 ms and 1 s: a timeout fires
    at most that late, and what expires together is spread over the sweeps."""
    limits = [limit for each in options for limit in (
        each.headers_timeout, each.idle_timeout, each.stream_idle_timeout, each.request_timeout,
        each.max_connection_duration) if limit]
    return min(1.0, max(0.05, min(limits, default=4.0) / 4))
