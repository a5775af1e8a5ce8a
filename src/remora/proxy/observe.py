"""What each finished exchange leaves behind: Istio's standard metrics and an access log line.

Labels follow istio.io "Istio Standard Metrics": the sidecar's outbound side reports as
`source`, the inbound side and gateways' upstreams as `destination`... except that an Istio
gateway reports as `source` too (it is the client of the mesh services). Unknown → "unknown".
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from remora.mesh.snapshot import canonical_names
from remora.policy.flags import ResponseFlag, join_flags
from remora.proxy.config import node_id
from remora.telemetry import peer
from remora.telemetry.accesslog import AccessRecord

if TYPE_CHECKING:
    from collections.abc import Mapping

    from remora.mesh.snapshot import Endpoint, ProxyIdentity
    from remora.proxy.clusters import ClusterState
    from remora.proxy.codec.events import ProtocolError
    from remora.proxy.exchange import Exchange
    from remora.proxy.runtime import ProxyRuntime
    from remora.proxy.server import DownstreamConnection

UNKNOWN = "unknown"


def workload_labels(
    *, workload: str, namespace: str, labels: Mapping[str, str], cluster: str
) -> tuple[str, ...]:
    """The 8 labels Istio keeps per side of a request, principal excluded (no mTLS yet)."""
    service, revision = canonical_names(labels, workload)
    return (
        workload or UNKNOWN,
        namespace or UNKNOWN,
        UNKNOWN,  # principal: spiffe identity, known once mTLS is in
        labels.get("app", UNKNOWN),
        labels.get("version", UNKNOWN),
        service,
        revision,
        cluster,
    )


UNKNOWN_SIDE = (UNKNOWN,) * 8
UNKNOWN_SERVICE = (UNKNOWN,) * 3


def destination_labels(side: tuple[str, ...], service: tuple[str, ...]) -> tuple[str, ...]:
    """The 11 destination_* labels in Istio's order: workload..version, the 3 service labels,
    canonical service and revision, cluster."""
    return (*side[:5], *service, *side[5:])


class Observer:
    """Builds label tuples (cached per endpoint and per peer), this proxy's peer metadata
    headers, and access records for a runtime."""

    def __init__(self, runtime: ProxyRuntime) -> None:
        self.runtime = runtime
        self.epoch_offset = time.time() - runtime.loop.time()
        self._sides: dict[tuple[int, int], tuple[str, ...]] = {}
        self._self_side: tuple[ProxyIdentity, tuple[str, ...]] | None = None
        self._peers: dict[str, tuple[str, ...] | None] = {}
        self._own_headers: tuple[ProxyIdentity, tuple[tuple[str, str], ...]] | None = None

    def peer_headers(self) -> tuple[tuple[str, str], ...]:
        """What this proxy says of itself to its peers (telemetry.peer)."""
        identity = self.runtime.snapshot.identity
        cached = self._own_headers
        if cached is None or cached[0] is not identity:
            labels = {**identity.labels,
                      "service.istio.io/canonical-name": identity.canonical_service,
                      "service.istio.io/canonical-revision": identity.canonical_revision}
            value = peer.encode(peer.PeerMetadata(
                workload=identity.workload, namespace=identity.namespace,
                cluster=identity.cluster, labels=labels))  # fmt: skip
            headers = ((peer.PEER_METADATA_ID, node_id(identity)), (peer.PEER_METADATA, value))
            self._own_headers = cached = (identity, headers)
        return cached[1]

    def peer_side(self, value: str) -> tuple[str, ...] | None:
        """The 8 labels of the peer an `x-envoy-peer-metadata` value describes (None if
        unreadable); decoded once per distinct value, as Istio caches per peer."""
        if value in self._peers:
            return self._peers[value]
        if len(self._peers) > 1_000:  # peers come and go: start over rather than grow
            self._peers.clear()
        found = peer.decode(value)
        side = None if found is None else workload_labels(
            workload=found.workload, namespace=found.namespace, labels=found.labels,
            cluster=found.cluster or UNKNOWN)  # fmt: skip
        self._peers[value] = side
        return side

    def self_side(self) -> tuple[str, ...]:
        identity = self.runtime.snapshot.identity
        cached = self._self_side
        if cached is None or cached[0] is not identity:
            side = workload_labels(workload=identity.workload, namespace=identity.namespace,
                                   labels=identity.labels, cluster=identity.cluster)
            self._self_side = cached = (identity, side)
        return cached[1]

    def endpoint_side(self, state: ClusterState, index: int, endpoint: Endpoint) -> tuple[str, ...]:
        key = (id(state), index)
        side = self._sides.get(key)
        if side is None:
            if len(self._sides) > 10_000:  # states of old snapshots: start over
                self._sides.clear()
            cluster = state.cluster
            identity = self.runtime.snapshot.identity
            side = destination_labels(
                workload_labels(workload=endpoint.workload, namespace=endpoint.namespace,
                                labels=endpoint.labels, cluster=identity.cluster),
                (cluster.host, cluster.service_name, cluster.service_namespace),
            )
            self._sides[key] = side
        return side

    def labels(self, exchange: Exchange, flags: str) -> tuple[str, ...]:
        listener = exchange.listener
        code = str(exchange.response_status)
        state = exchange.cluster
        if listener.direction == "inbound":
            # the local app's side; the caller's as its sidecar described itself, if it did
            own = self.self_side()
            service = (
                (state.cluster.host, state.cluster.service_name, state.cluster.service_namespace)
                if state is not None and state.cluster.host
                else UNKNOWN_SERVICE
            )
            return ("destination", *(exchange.peer or UNKNOWN_SIDE),
                    *destination_labels(own, service),
                    "http", code, "", flags, "none")
        if state is not None and exchange.endpoint is not None:
            destination = self.endpoint_side(state, exchange.endpoint_index, exchange.endpoint)
        elif state is not None:
            cluster = state.cluster
            destination = destination_labels(
                UNKNOWN_SIDE, (cluster.host, cluster.service_name, cluster.service_namespace))
        else:
            destination = (UNKNOWN,) * 11
        return ("source", *self.self_side(), *destination, "http", code, "", flags, "unknown")

    def exchange(self, exchange: Exchange) -> None:
        runtime = self.runtime
        flags = join_flags(exchange.flags) if exchange.flags else "-"
        duration = exchange.duration_ms()
        runtime.metrics.record(
            self.labels(exchange, flags),
            duration_ms=duration,
            request_bytes=exchange.bytes_received,
            response_bytes=exchange.bytes_sent,
        )
        log = runtime.access_log
        if not log.enabled:
            return
        head = exchange.head
        headers = dict(head.headers)
        endpoint = exchange.endpoint
        state = exchange.cluster
        route = exchange.route
        log.write(AccessRecord(
            start_time=exchange.start + self.epoch_offset,
            method=head.method,
            path=exchange.path,
            protocol=f"HTTP/{head.http_version}",
            response_code=exchange.response_status,
            response_flags=flags,
            response_code_details=exchange.details or "via_upstream",
            bytes_received=exchange.bytes_received,
            bytes_sent=exchange.bytes_sent,
            duration_ms=duration,
            upstream_service_time_ms=exchange.upstream_service_ms,
            x_forwarded_for=headers.get("x-forwarded-for"),
            user_agent=headers.get("user-agent"),
            # Envoy gives every request an id as it decodes it, answered locally or not
            request_id=exchange.request_id or headers.get("x-request-id") or runtime.request_id(),
            authority=exchange.request.authority if exchange.request else headers.get("host"),
            upstream_host=f"{endpoint.address}:{endpoint.port}" if endpoint else None,
            upstream_cluster=state.cluster.name if state else None,
            downstream_remote_address=exchange.downstream.client_ip,
            downstream_local_address=f"{runtime.options.bind}:{exchange.listener.port}",
            route_name=route.name if route is not None and route.name else None,
        ))

    def rejected(
        self, connection: DownstreamConnection, error: ProtocolError, *, flag: ResponseFlag
    ) -> None:
        """A request the codec refused (400/431): counted and logged like any other."""
        runtime = self.runtime
        labels = ("source" if connection.listener.direction != "inbound" else "destination",
                  *self.self_side(), *(UNKNOWN,) * 11, "http", str(error.status), "",
                  flag.value, "unknown")
        runtime.metrics.record(labels, duration_ms=0.0, request_bytes=0, response_bytes=0)
        runtime.access_log.write(AccessRecord(
            start_time=time.time(), method="-", path="-", response_code=error.status,
            response_flags=flag.value, response_code_details=error.reason,
            downstream_remote_address=connection.client_ip,
        ))
