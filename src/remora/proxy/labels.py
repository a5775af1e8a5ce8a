"""Istio's standard metric labels for each side of a request, and this proxy's peer metadata,
built once and cached: per endpoint, per peer, per identity.

Labels follow istio.io "Istio Standard Metrics": the sidecar's outbound side reports as
`source`, the inbound side and gateways' upstreams as `destination`... except that an Istio
gateway reports as `source` too (it is the client of the mesh services). Unknown → "unknown".
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from remora.mesh.snapshot import canonical_names
from remora.telemetry import peer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from remora.mesh.snapshot import Endpoint, ProxyIdentity
    from remora.proxy.clusters import ClusterState

UNKNOWN = "unknown"
UNKNOWN_SIDE = (UNKNOWN,) * 8
UNKNOWN_SERVICE = (UNKNOWN,) * 3
UNKNOWN_DESTINATION = (UNKNOWN,) * 11
PEERS_KEPT = 1_000  # distinct peer metadata values decoded and kept
SIDES_KEPT = 10_000  # endpoint label tuples kept (states of old snapshots are dropped then)


def node_id(identity: ProxyIdentity) -> str:
    """Envoy-style node id: `sidecar~127.0.0.1~reviews-v1-12345.default~default.svc`."""
    return (f"{identity.mode}~{identity.ip}~{identity.workload}-{os.getpid()}."
            f"{identity.namespace}~{identity.namespace}.svc.cluster.local")


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


def destination_labels(side: tuple[str, ...], service: tuple[str, ...]) -> tuple[str, ...]:
    """The 11 destination_* labels in Istio's order: workload..version, the 3 service labels,
    canonical service and revision, cluster."""
    return (*side[:5], *service, *side[5:])


def service_labels(state: ClusterState | None) -> tuple[str, ...]:
    if state is None or not state.cluster.host:
        return UNKNOWN_SERVICE
    cluster = state.cluster
    return (cluster.host, cluster.service_name, cluster.service_namespace)


class Labels:
    """Label tuples and peer headers of one proxy, cached (the identity is the snapshot's)."""

    def __init__(self) -> None:
        self._sides: dict[tuple[int, int], tuple[str, ...]] = {}
        self._self_side: tuple[ProxyIdentity, tuple[str, ...]] | None = None
        self._peers: dict[str, tuple[str, ...] | None] = {}
        self._own_headers: tuple[ProxyIdentity, tuple[tuple[str, str], ...]] | None = None

    def peer_headers(self, identity: ProxyIdentity) -> tuple[tuple[str, str], ...]:
        """What this proxy says of itself to its peers (telemetry.peer)."""
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
        if len(self._peers) > PEERS_KEPT:  # peers come and go: start over rather than grow
            self._peers.clear()
        found = peer.decode(value)
        side = None if found is None else workload_labels(
            workload=found.workload, namespace=found.namespace, labels=found.labels,
            cluster=found.cluster or UNKNOWN)  # fmt: skip
        self._peers[value] = side
        return side

    def self_side(self, identity: ProxyIdentity) -> tuple[str, ...]:
        cached = self._self_side
        if cached is None or cached[0] is not identity:
            side = workload_labels(workload=identity.workload, namespace=identity.namespace,
                                   labels=identity.labels, cluster=identity.cluster)
            self._self_side = cached = (identity, side)
        return cached[1]

    def endpoint_side(self, state: ClusterState, index: int, endpoint: Endpoint,
                      identity: ProxyIdentity) -> tuple[str, ...]:
        key = (id(state), index)
        side = self._sides.get(key)
        if side is None:
            if len(self._sides) > SIDES_KEPT:
                self._sides.clear()
            side = destination_labels(
                workload_labels(workload=endpoint.workload, namespace=endpoint.namespace,
                                labels=endpoint.labels, cluster=identity.cluster),
                service_labels(state),
            )
            self._sides[key] = side
        return side
