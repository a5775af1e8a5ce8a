"""Connection-pool limits and Envoy's per-cluster circuit breaker, from connectionPool.

`PoolLimits.from_api` reads `connectionPool` the way Istio's cluster builder does
(istio/istio pilot/pkg/networking/core/cluster_traffic_policy.go, applyConnectionPool and
getDefaultCircuitBreakerThresholds): every circuit-breaker threshold defaults to 2^32-1 (Istio
overrides Envoy's 1024/1024/1024/3), and a zero count counts as unset ("there isn't a way to
distinguish between unset values and zero values"); connectTimeout defaults to the mesh's 10 s;
http.idleTimeout wins over tcp.idleTimeout and both default to Envoy's 1 h
(core.v3.HttpProtocolOptions.idle_timeout); maxRequestsPerConnection 0 is unlimited.

`Breaker` holds the four gauges Envoy keeps per cluster (docs: "Circuit breaking",
https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/circuit_breaking):
open connections, pending requests (queued for a connection), active requests and active
retries. The proxy increments a gauge when it starts the thing and decrements it when the thing
ends; before starting it asks `may_*`. A refusal is an overflow: the request fails at once with
503 and response flag UO (x-envoy-overloaded: true), a refused retry is not attempted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from remora.api.networking.traffic_policy import ConnectionPoolSettings
    from remora.api.networking.traffic_policy import TcpKeepalive as ApiTcpKeepalive

UNLIMITED = 2**32 - 1
"""Istio's default for every circuit-breaker threshold (math.MaxUint32)."""
DEFAULT_CONNECT_TIMEOUT = 10.0
"""MeshConfig.connectTimeout default, which Istio applies when tcp.connectTimeout is unset."""
DEFAULT_IDLE_TIMEOUT = 3600.0
"""Envoy's upstream idle_timeout default (1 h) when neither idleTimeout is set."""


@dataclass(frozen=True, slots=True)
class TcpKeepalive:
    """connectionPool.tcp.tcpKeepalive: SO_KEEPALIVE's probes, idle time and interval (seconds);
    None leaves the system's value."""

    probes: int | None = None
    time: float | None = None
    interval: float | None = None

    @classmethod
    def from_api(cls, keepalive: ApiTcpKeepalive) -> TcpKeepalive:
        return cls(probes=keepalive.probes, time=keepalive.time, interval=keepalive.interval)

    def to_dict(self) -> dict[str, Any]:
        """As Istio's YAML names it, unset fields left out."""
        out = {"probes": self.probes, "time": self.time, "interval": self.interval}
        return {key: value for key, value in out.items() if value is not None}


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """Circuit-breaker thresholds and connection-pool settings of one cluster (seconds)."""

    max_connections: int = UNLIMITED
    max_pending: int = UNLIMITED
    max_requests: int = UNLIMITED
    max_retries: int = UNLIMITED
    max_requests_per_connection: int = 0
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_connection_duration: float | None = None
    tcp_keepalive: TcpKeepalive | None = None

    @classmethod
    def from_api(cls, pool: ConnectionPoolSettings | None,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> PoolLimits:
        """Limits for `pool`; None (no connectionPool) gives Istio's defaults, and
        `connect_timeout` (MeshConfig connectTimeout) where tcp.connectTimeout is not set."""
        if pool is None:
            return DEFAULT_LIMITS if connect_timeout == DEFAULT_CONNECT_TIMEOUT \
                else replace(DEFAULT_LIMITS, connect_timeout=connect_timeout)
        tcp, http = pool.tcp, pool.http
        idle = http.idle_timeout if http is not None else None
        if idle is None and tcp is not None:
            idle = tcp.idle_timeout
        return cls(
            max_connections=_count(tcp.max_connections if tcp else None),
            max_pending=_count(http.http1_max_pending_requests if http else None),
            max_requests=_count(http.http2_max_requests if http else None),
            max_retries=_count(http.max_retries if http else None),
            max_requests_per_connection=(http.max_requests_per_connection or 0) if http else 0,
            connect_timeout=_or(tcp.connect_timeout if tcp else None, connect_timeout),
            idle_timeout=_or(idle, DEFAULT_IDLE_TIMEOUT),
            max_connection_duration=tcp.max_connection_duration if tcp else None,
            tcp_keepalive=(
                TcpKeepalive.from_api(tcp.tcp_keepalive)
                if tcp is not None and tcp.tcp_keepalive is not None else None
            ),
        )

    def idle_deadline(self, now: float) -> float:
        """When a connection released idle at `now` is closed; idleTimeout 0 disables the
        timeout (istio.io ConnectionPoolSettings: "Setting this timeout to 0 will disable")."""
        return now + self.idle_timeout if self.idle_timeout > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """Envoy's circuit_breakers thresholds plus the pool options, for /config_dump."""
        return {
            "thresholds": {
                "maxConnections": self.max_connections, "maxPendingRequests": self.max_pending,
                "maxRequests": self.max_requests, "maxRetries": self.max_retries,
            },
            "maxRequestsPerConnection": self.max_requests_per_connection,
            "connectTimeout": self.connect_timeout, "idleTimeout": self.idle_timeout,
            "maxConnectionDuration": self.max_connection_duration,
            "tcpKeepalive": (
                self.tcp_keepalive.to_dict() if self.tcp_keepalive is not None else None
            ),
        }  # fmt: skip


def _count(value: int | None) -> int:
    return value if value else UNLIMITED  # Istio: `if x > 0 { threshold = x }`


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


DEFAULT_LIMITS = PoolLimits()


class Breaker:
    """The per-cluster resource gauges; the proxy moves them, `may_*` says whether one more fits.

    Envoy checks `current < max` for each resource and refuses the request (503 UO) when it
    does not fit; the gauges are per cluster, shared by all of its hosts.
    """

    __slots__ = ("connections", "limits", "pending", "requests", "retries")

    def __init__(self, limits: PoolLimits) -> None:
        self.limits = limits
        self.connections = 0
        self.pending = 0
        self.requests = 0
        self.retries = 0

    def may_connect(self) -> bool:
        """Whether one more upstream connection may be opened (max_connections).

        Over the limit a request waits for a pooled connection as a pending request (Envoy's
        upstream_cx_overflow); Envoy still lets a chosen host with no connection open one.
        """
        return self.connections < self.limits.max_connections

    def may_queue(self) -> bool:
        """Whether one more request may wait for a connection (max_pending_requests)."""
        return self.pending < self.limits.max_pending

    def may_request(self) -> bool:
        """Whether one more request may be outstanding to the cluster (max_requests)."""
        return self.requests < self.limits.max_requests

    def may_retry(self) -> bool:
        """Whether one more retry may be in flight (max_retries)."""
        return self.retries < self.limits.max_retries

    def remaining(self) -> dict[str, int]:
        """Envoy's circuit_breakers.default.remaining_* gauges."""
        limits = self.limits
        return {
            "remaining_cx": max(0, limits.max_connections - self.connections),
            "remaining_pending": max(0, limits.max_pending - self.pending),
            "remaining_rq": max(0, limits.max_requests - self.requests),
            "remaining_retries": max(0, limits.max_retries - self.retries),
        }

    def open(self) -> dict[str, bool]:
        """Envoy's circuit_breakers.default.*_open gauges: a resource at its limit."""
        limits = self.limits
        return {
            "cx_open": self.connections >= limits.max_connections,
            "rq_pending_open": self.pending >= limits.max_pending,
            "rq_open": self.requests >= limits.max_requests,
            "rq_retry_open": self.retries >= limits.max_retries,
        }
