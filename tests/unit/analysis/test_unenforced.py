"""RMR0001 NotEnforced (remora.analysis.unenforced): what a resource sets that Remora does not
act on, each message naming the field path at its line."""

from __future__ import annotations

from tests.unit.analysis.conftest import Lines


def test_a_sidecar_is_reported_by_the_paths_remora_does_not_apply(lines: Lines) -> None:
    """Sidecar (istio.io/latest/docs/reference/config/networking/sidecar/): Remora applies
    workloadSelector, outboundTrafficPolicy.mode and inboundConnectionPool; egress and ingress
    listeners, and an ingress listener's own connectionPool, are warned about by path."""
    found = lines("""\
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: default, namespace: shop}
        spec:
          egress:
          - hosts: [./*, istio-system/*]
          ingress:
          - port: {number: 9080, protocol: HTTP, name: http}
            defaultEndpoint: 127.0.0.1:8080
            connectionPool: {tcp: {maxConnections: 1}}
          outboundTrafficPolicy: {mode: REGISTRY_ONLY}
          inboundConnectionPool: {tcp: {maxConnections: 10}}
        """, unenforced=True)
    prefix = "Warning [RMR0001] (Sidecar shop/default in.yaml:"
    assert sorted(found) == sorted([
        f"{prefix}6) spec.egress[0] is not enforced by Remora: no egress scoping: the sidecar "
        "reaches every service visible to its namespace, through its one outbound listener",
        f"{prefix}8) spec.ingress[0] is not enforced by Remora: no ingress listeners: the "
        "sidecar listens on --inbound-port and forwards to its app at 127.0.0.1:--app-port",
        f"{prefix}10) spec.ingress[0].connectionPool is not enforced by Remora: per-port inbound "
        "pools come with spec.ingress, which is not applied: the inbound cluster takes "
        "inboundConnectionPool",
    ])


def test_a_sidecar_setting_only_what_remora_applies_has_no_message(lines: Lines) -> None:
    assert lines("""\
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: web, namespace: shop}
        spec:
          workloadSelector: {labels: {app: web}}
          outboundTrafficPolicy: {mode: ALLOW_ANY}
          inboundConnectionPool: {http: {http1MaxPendingRequests: 5}}
        """, unenforced=True) == []
