"""The admin port (15000) and the health port (15021): what the proxy is running, and whether
it is ready. Envoy's admin endpoints by name: /config_dump, /clusters, /stats/prometheus,
/ready; Istio's /healthz/ready; POST /drain starts a graceful drain."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, cast

from remora.proxy.codec.events import ProtocolError, RequestHead
from remora.proxy.codec.http1 import RequestDecoder, encode_response_head
from remora.proxy.inbound import REASONS

if TYPE_CHECKING:
    from collections.abc import Callable

    from remora.proxy.clusters import ClusterState
    from remora.proxy.runtime import ProxyRuntime

Reply = tuple[int, str, bytes]  # status, content type, body
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


def config_dump(runtime: ProxyRuntime) -> Reply:
    """The snapshot, and each listener's effective connection manager settings (the proxy's
    flags with what EnvoyFilter patches set), in Envoy's names."""
    dump = runtime.snapshot.to_dict()
    options = runtime.env.active.options
    for listener in dump["listeners"]:
        effective = options.get(listener["port"], runtime.options)
        listener["httpConnectionManager"] = effective.connection_manager()
    body = json.dumps(dump, indent=2, sort_keys=False, default=str)
    return 200, JSON, body.encode()


def cluster_rows(runtime: ProxyRuntime) -> list[dict[str, Any]]:
    """Each cluster with its endpoints: weight, health, counters (Envoy's /clusters content)."""
    rows = []
    for name, state in runtime.tables.states.items():
        hosts = []
        detector = state.detector
        for index, (endpoint, pool) in enumerate(
            zip(state.cluster.endpoints, state.pools, strict=True)
        ):
            ejected = detector is not None and detector.is_ejected(index)
            hosts.append({
                "address": f"{endpoint.address}:{endpoint.port}",
                "weight": endpoint.weight,
                # Envoy's /clusters health_flags for a host outlier detection ejected
                "health_flags": "/failed_outlier_check" if ejected else "healthy",
                "times_ejected": detector.times_ejected(index) if detector is not None else 0,
                "locality": endpoint.locality,
                "labels": dict(endpoint.labels),
                "cx_active": len(pool.connections),
                "cx_idle": len(pool.idle),
                "cx_total": pool.cx_total,
                "cx_connect_fail": pool.cx_connect_fail,
                "rq_active": pool.active,
                "rq_total": pool.rq_total,
                "rq_error": pool.rq_error,
                # how new connections to the host are made: Istio mTLS (auto or by a
                # DestinationRule) when the host takes it and this proxy has a certificate
                "tls_mode": "ISTIO_MUTUAL" if pool.peer is not None and runtime.env.tls
                else "DISABLE",
                "expected_identities": sorted(pool.peer.expected) if pool.peer else [],
            })
        breaker = state.breaker
        rows.append({
            "name": name,
            "lb_policy": state.cluster.lb.simple,
            "circuit_breakers": {"cx_open": breaker.connections, "rq_pending": breaker.pending,
                                 "rq_active": breaker.requests, "rq_retry": breaker.retries,
                                 "limits": state.limits.to_dict()["thresholds"]},
            "outlier_detection": detector.config.to_dict() if detector is not None else None,
            "hosts": hosts,
        })
    return rows


def clusters(runtime: ProxyRuntime, query: str) -> Reply:
    rows = cluster_rows(runtime)
    if "format=json" in query:
        return 200, JSON, json.dumps({"cluster_statuses": rows}, indent=2).encode()
    lines = []
    for row in rows:
        for host in row["hosts"]:
            prefix = f"{row['name']}::{host['address']}"
            for key in ("cx_active", "cx_total", "cx_connect_fail", "rq_active", "rq_total",
                        "rq_error", "weight", "health_flags"):
                lines.append(f"{prefix}::{key}::{host[key]}")
            lines.append(f"{prefix}::zone::{host['locality']}")
    return 200, TEXT, ("\n".join(lines) + "\n").encode()


def cluster_stats(runtime: ProxyRuntime) -> bytes:
    """Envoy's cluster gauges and counters as Istio exposes them (envoy_cluster_*), for the
    clusters with outlier detection or circuit-breaker activity."""
    gauges: list[tuple[str, str, Callable[[ClusterState], int]]] = [
        ("envoy_cluster_outlier_detection_ejections_active", "gauge",
         lambda s: s.detector.ejected if s.detector is not None else 0),
        ("envoy_cluster_outlier_detection_ejections_enforced_total", "counter",
         lambda s: s.ejections),
        ("envoy_cluster_upstream_rq_pending_overflow", "counter", lambda s: s.overflows),
        ("envoy_cluster_upstream_rq_pending_active", "gauge", lambda s: s.breaker.pending),
        ("envoy_cluster_upstream_cx_active", "gauge", lambda s: s.breaker.connections),
    ]
    lines = []
    for metric, kind, value in gauges:
        lines.append(f"# TYPE {metric} {kind}")
        for name, state in runtime.tables.states.items():
            lines.append(f'{metric}{{cluster_name="{name}"}} {value(state)}')
    return ("\n".join(lines) + "\n").encode()


def listener_stats(runtime: ProxyRuntime) -> bytes:
    """Envoy's listener gauges and counters (envoy_listener_*): connections open, and those
    refused by the connection limit (downstream_global_cx_overflow), and inbound, those
    PeerAuthentication or the TLS handshake refused (no_filter_chain_match,
    ssl_connection_error)."""
    bind = runtime.options.bind
    active: dict[str, int] = {}
    for connection in runtime.connections:
        active[connection.listener.name] = active.get(connection.listener.name, 0) + 1
    lines = ["# TYPE envoy_listener_downstream_cx_active gauge"]
    listeners = runtime.snapshot.listeners
    for listener in listeners:
        lines.append(f'envoy_listener_downstream_cx_active{{listener_address='
                     f'"{bind}_{listener.port}"}} {active.get(listener.name, 0)}')
    lines.append("# TYPE envoy_listener_downstream_global_cx_overflow counter")
    for listener in listeners:
        lines.append(f'envoy_listener_downstream_global_cx_overflow{{listener_address='
                     f'"{bind}_{listener.port}"}} {runtime.env.cx_overflow.get(listener.name, 0)}')
    inbound = [listener for listener in listeners if listener.direction == "inbound"]
    for reason in REASONS if inbound else ():
        lines.append(f"# TYPE envoy_listener_{reason} counter")
        for listener in inbound:
            count = runtime.env.tls_refused.get((listener.name, reason), 0)
            lines.append(f'envoy_listener_{reason}{{listener_address="{bind}_{listener.port}"}} '
                         f"{count}")
    return ("\n".join(lines) + "\n").encode()


def certs(runtime: ProxyRuntime) -> Reply:
    """Envoy's /certs: the workload certificate and the roots it trusts (none without mTLS)."""
    from remora.proxy.certs import describe  # noqa: PLC0415 (loads cryptography)

    body = describe(runtime.env.tls, time.time())
    return 200, JSON, json.dumps(body, indent=2).encode()


def ready(runtime: ProxyRuntime) -> Reply:
    if runtime.ready and not runtime.draining:
        return 200, TEXT, b"LIVE\n"
    return 503, TEXT, b"DRAINING\n" if runtime.draining else b"PRE_INITIALIZING\n"


def drain(runtime: ProxyRuntime) -> Reply:
    runtime.request_drain()
    return 200, TEXT, b"OK\n"


def route(runtime: ProxyRuntime, *, health_only: bool) -> Callable[[RequestHead], Reply]:
    def answer(head: RequestHead) -> Reply:
        path, _, query = head.target.partition("?")
        if path in ("/healthz/ready", "/ready"):
            return ready(runtime)
        if health_only:
            return 404, TEXT, b"not found\n"
        if head.method == "POST" and path in ("/drain", "/drain_listeners"):
            return drain(runtime)
        if head.method not in ("GET", "HEAD"):
            return 405, TEXT, b"method not allowed\n"
        if path == "/config_dump":
            return config_dump(runtime)
        if path == "/clusters":
            return clusters(runtime, query)
        if path == "/certs":
            return certs(runtime)
        if path in ("/stats/prometheus", "/metrics"):
            return 200, "text/plain; version=0.0.4", (
                runtime.env.metrics.render() + cluster_stats(runtime) + listener_stats(runtime))
        return 404, TEXT, b"endpoints: /config_dump /clusters /certs /stats/prometheus " \
                          b"/healthz/ready POST /drain\n"

    return answer


class AdminConnection(asyncio.Protocol):
    """A tiny HTTP/1.1 server on the same codec as the proxy, one request at a time."""

    def __init__(self, answer: Callable[[RequestHead], Reply]) -> None:
        self.answer = answer
        self.decoder = RequestDecoder()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            events = self.decoder.feed(data)
        except ProtocolError as error:
            self.respond(error.status, TEXT, error.body, keep_alive=False)
            return
        for event in events:
            if isinstance(event, RequestHead):
                status, content_type, body = self.answer(event)
                self.respond(status, content_type, body, keep_alive=event.keep_alive,
                             head_only=event.method == "HEAD")

    def respond(self, status: int, content_type: str, body: bytes, *, keep_alive: bool,
                head_only: bool = False) -> None:
        assert self.transport is not None
        headers = [("content-type", content_type), ("content-length", str(len(body)))]
        if not keep_alive:
            headers.append(("connection", "close"))
        self.transport.write(encode_response_head(status, "", headers)
                             + (b"" if head_only else body))
        if not keep_alive:
            self.transport.close()


async def serve_admin(runtime: ProxyRuntime, *, port: int, health_only: bool) -> asyncio.Server:
    answer = route(runtime, health_only=health_only)
    return await runtime.loop.create_server(
        lambda: AdminConnection(answer), runtime.options.bind, port, reuse_address=True
    )
