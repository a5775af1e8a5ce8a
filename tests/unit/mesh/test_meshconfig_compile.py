"""The mesh config (ConfigMap istio-system/istio, key `mesh`) where Istio uses it when it builds
a proxy's config: outboundTrafficPolicy, connectTimeout, rootNamespace, and the values the data
path reads (pathNormalization, the access log)."""

from __future__ import annotations

from remora.mesh.snapshot import PASSTHROUGH_CLUSTER
from remora.policy.redirect import DirectResponse
from tests.unit.mesh import mesh, service, sidecar, targets, unknown_host


def test_allow_any_is_the_default_and_passes_unknown_hosts_through() -> None:
    """MeshConfig outboundTrafficPolicy default ALLOW_ANY: "outbound traffic to unknown
    destinations will be allowed" — on a port services use and on one no service uses."""
    snap = sidecar(service("reviews"))
    for port in (9080, 5432):
        name, _ = unknown_host(snap, port)
        assert name == "allow_any"
        table = snap.outbound_table(port)
        assert table is not None
        vhost = table.find("unknown.example.com")
        assert vhost is not None
        assert targets(vhost.routes[0]) == [(PASSTHROUGH_CLUSTER, 100)]
    assert PASSTHROUGH_CLUSTER in snap.clusters
    assert snap.mesh.outbound_traffic_policy == "ALLOW_ANY"


def test_registry_only_blocks_unknown_hosts_with_502() -> None:
    """REGISTRY_ONLY: only services of the registry and ServiceEntries; Istio's `block_all`
    virtual host answers 502."""
    snap = sidecar(mesh("outboundTrafficPolicy: {mode: REGISTRY_ONLY}") + service("reviews"))
    for port in (9080, 5432):
        name, action = unknown_host(snap, port)
        assert name == "block_all"
        assert action == DirectResponse(502)
    assert PASSTHROUGH_CLUSTER not in snap.clusters
    table = snap.outbound_table(9080)
    assert table is not None
    known = table.find("reviews")
    assert known is not None and known.name.startswith("reviews.default")


def test_connect_timeout_is_every_clusters_default() -> None:
    """MeshConfig connectTimeout (default 10s) unless connectionPool.tcp.connectTimeout says."""
    default = sidecar(service("reviews"))
    assert {c.connect_timeout for c in default.clusters.values()} == {10.0}
    snap = sidecar(mesh("connectTimeout: 250ms") + service("reviews") + service("ratings"))
    assert {c.connect_timeout for c in snap.clusters.values()} == {0.25}


def test_root_namespace_holds_mesh_wide_destination_rules() -> None:
    """rootNamespace: its DestinationRule comes right after the proxy's and the service's own
    namespaces, before those of any other namespace (pilot's DestinationRule lookup order)."""
    elsewhere = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: other}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
"""
    rule = elsewhere.replace("other", "mesh-root").replace("ROUND_ROBIN", "RANDOM")
    cluster = "outbound|9080||reviews.default.svc.cluster.local"
    without = sidecar(service("reviews") + elsewhere + rule, namespace="shop")
    assert without.clusters[cluster].lb.simple == "ROUND_ROBIN"
    snap = sidecar(mesh("rootNamespace: mesh-root") + service("reviews") + elsewhere + rule,
                   namespace="shop")
    assert snap.clusters[cluster].lb.simple == "RANDOM"
    assert snap.mesh.root_namespace == "mesh-root"


def test_data_path_settings_come_from_the_mesh_config() -> None:
    snap = sidecar(mesh("pathNormalization: {normalization: MERGE_SLASHES}\n"
                        "accessLogFile: /dev/stdout\naccessLogEncoding: JSON")
                   + service("reviews"))
    settings = snap.mesh
    assert settings.path_normalization == "MERGE_SLASHES"
    assert (settings.access_log_file, settings.access_log_encoding) == ("/dev/stdout", "JSON")
    assert sidecar(service("reviews")).mesh.path_normalization == "BASE"


def test_default_http_retry_policy_for_routes_without_retries() -> None:
    """defaultHttpRetryPolicy: "the default HTTP retry policy ... can be overridden on a
    per-host basis using the Virtual Service API"; perTryTimeout is not taken globally."""
    vs = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - {name: own, match: [{uri: {prefix: /own}}], retries: {attempts: 5},
     route: [{destination: {host: ratings}}]}
  - {name: rest, route: [{destination: {host: ratings}}]}
---
"""
    snap = sidecar(mesh("defaultHttpRetryPolicy: {attempts: 1, perTryTimeout: 2s}")
                   + service("reviews") + service("ratings") + vs)
    table = snap.outbound_table(9080)
    assert table is not None
    retries = {}
    for host in ("reviews", "ratings"):
        vhost = table.find(host)
        assert vhost is not None
        for route in vhost.routes:
            retries[route.name] = route.action.retries  # type: ignore[union-attr]
    assert retries["own"].attempts == 5
    assert retries["rest"].attempts == 1 and retries["rest"].per_try_timeout is None
    assert retries["default"].attempts == 1
    plain = sidecar(service("reviews")).outbound_table(9080)
    assert plain is not None
    vhost = plain.find("reviews")
    assert vhost is not None and vhost.routes[0].action.retries is None  # type: ignore[union-attr]
