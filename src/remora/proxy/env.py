"""What lives for the whole proxy process, passed explicitly to whatever needs it: the loop and
its clock, the random source, endpoint pools, metrics, the access log, the active config.

The active config (`ActiveConfig`: cluster state and filter chains of one snapshot) is replaced
in one assignment; a request keeps the one it started with.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
    import random
    from collections.abc import Callable, Coroutine

    from remora.mesh.snapshot import ConnectionManager
    from remora.proxy.chain import ActiveConfig
    from remora.proxy.labels import Labels
    from remora.proxy.mtls import WorkloadTls
    from remora.proxy.upstream import Pools
    from remora.telemetry.accesslog import AccessLog
    from remora.telemetry.metrics import IstioMetrics


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    """Knobs of the proxy shell; defaults are Envoy's/Istio's where they define one. The HTTP
    connection manager's (the timeouts and limits of a client connection) are the proxy-wide
    defaults; an EnvoyFilter MERGE patch changes them per listener (`for_listener`)."""

    bind: str = "127.0.0.1"
    access_log: str | None = None
    connect_timeout: float = 10.0  # Istio's connectTimeout default
    # Envoy's request_headers_timeout: a client must send a whole request head within this.
    # Envoy's default is 0 (off), which lets a client hold a connection by sending a byte
    # every few minutes (slowloris); Remora's is 10 s (nginx's client_header_timeout is 60 s).
    headers_timeout: float = 10.0
    # Envoy's common_http_protocol_options.idle_timeout (default 1 h): a keep-alive connection
    # with no request in flight is closed after this
    idle_timeout: float = 3600.0
    # Envoy's stream_idle_timeout (default 5 min; 0 turns it off): a request in flight on
    # which nothing moved either way for this long (a stalled body, a stalled response)
    stream_idle_timeout: float = 300.0
    # Envoy's request_timeout (default 0: off): the whole request must have arrived by then
    request_timeout: float = 0.0
    # Envoy's common_http_protocol_options.max_connection_duration (default 0: off): a
    # connection older than this is closed when idle, or after the response in flight
    max_connection_duration: float = 0.0
    # Envoy's delayed_close_timeout (default 1 s): after a refusal, the input the client still
    # sends is read and dropped this long, so that it reads the 400/431 before the close
    delayed_close_timeout: float = 1.0
    # Envoy's overload manager global downstream connection limit (resource monitor
    # downstream_connections): above it a new connection is closed at once and counted.
    # None: no limit (remora.proxy.process sets one from RLIMIT_NOFILE when it starts).
    max_connections: int | None = None
    # Envoy's use_original_dst on the sidecar's virtual listeners: connections arrive through a
    # pod's iptables capture rules (remora.runner.capture), and where they were going before
    # it (SO_ORIGINAL_DST) picks the outbound route table and the passthrough destination
    original_dst: bool = False
    drain_timeout: float = 5.0  # Istio's terminationDrainDuration
    max_header_bytes: int = 60 * 1024  # Envoy's max_request_headers_kb default (60)
    max_header_count: int = 100  # Envoy's common_http_protocol_options.max_headers_count
    # Envoy's accept_http_10 (default false: HTTP/1.0 gets 426); Istio turns it on for a proxy
    # whose environment has ISTIO_META_HTTP10=1, as this does.
    accept_http_10: bool = field(
        default_factory=lambda: os.environ.get("ISTIO_META_HTTP10") == "1")
    extra: dict[str, str] = field(default_factory=dict)

    def for_listener(self, patched: ConnectionManager) -> ProxyOptions:
        """These options with what EnvoyFilter patches set on a listener's connection manager."""
        values = patched.set()
        if not values:
            return self
        kb = values.pop("max_request_headers_kb", None)
        renamed = {_OPTION_NAMES.get(name, name): value for name, value in values.items()}
        if kb is not None:
            renamed["max_header_bytes"] = int(kb) * 1024
        return replace(self, **renamed)  # type: ignore[arg-type]

    def connection_manager(self) -> dict[str, Any]:
        """The effective settings in Envoy's names and forms (config_dump)."""
        def seconds(value: float) -> str:
            return f"{value:g}s"

        return {
            "request_headers_timeout": seconds(self.headers_timeout),
            "stream_idle_timeout": seconds(self.stream_idle_timeout),
            "request_timeout": seconds(self.request_timeout),
            "delayed_close_timeout": seconds(self.delayed_close_timeout),
            "max_request_headers_kb": self.max_header_bytes // 1024,
            "common_http_protocol_options": {
                "idle_timeout": seconds(self.idle_timeout),
                "max_connection_duration": seconds(self.max_connection_duration),
                "max_headers_count": self.max_header_count,
            },
            "http_protocol_options": {"accept_http_10": self.accept_http_10},
        }


_OPTION_NAMES = {"request_headers_timeout": "headers_timeout",
                 "max_headers_count": "max_header_count"}
"""ConnectionManager's (Envoy's) names that ProxyOptions spells its own way."""


@dataclass(slots=True, eq=False)
class ProxyEnv:
    """The process-wide state of one proxy, shared by its connections and filters."""

    loop: asyncio.AbstractEventLoop
    rng: random.Random
    options: ProxyOptions
    pools: Pools
    metrics: IstioMetrics
    access_log: AccessLog
    labels: Labels
    spawn: Callable[[Coroutine[Any, Any, None]], None]  # a background task, kept and logged
    active: ActiveConfig = field(init=False)
    draining: bool = False
    cx_overflow: dict[str, int] = field(default_factory=dict)  # refused, by listener name
    tls: WorkloadTls | None = None  # the workload certificate now (remora.proxy.certs)
    # inbound connections refused by PeerAuthentication or the TLS handshake, by (listener
    # name, reason: remora.proxy.inbound.REASONS)
    tls_refused: dict[tuple[str, str], int] = field(default_factory=dict)
    logged: set[str] = field(default_factory=set)  # config notes said once, not every swap

    def log_once(self, level: int, line: str) -> None:
        if line not in self.logged:
            self.logged.add(line)
            logging.getLogger("remora.proxy").log(level, "%s", line)

    def request_id(self) -> str:
        """A random (version 4) UUID for x-request-id, as Envoy generates; from the env's
        PRNG: a request id needs uniqueness, not secrecy, and os.urandom costs a syscall."""
        bits = self.rng.getrandbits(128) & ~(0xF << 76 | 0x3 << 62) | (0x4 << 76 | 0x2 << 62)
        text = "%032x" % bits  # noqa: UP031 - the fastest way to zero-padded hex
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
