"""The Sidecar resource (istio.io/latest/docs/reference/config/networking/sidecar/): which one
configures a proxy, and what Remora takes from it — outboundTrafficPolicy.mode over MeshConfig's,
inboundConnectionPool as the inbound cluster's limits (remora.mesh.sidecarscope)."""

from __future__ import annotations

import pytest

from remora.mesh.compile import compile_snapshot
from remora.mesh.sidecarscope import selected_sidecar
from remora.mesh.snapshot import PASSTHROUGH_CLUSTER, ListenerPorts, ProxyIdentity, Snapshot
from remora.policy.circuit import UNLIMITED
from remora.policy.redirect import DirectResponse
from tests.unit.mesh import gateway, load, mesh, service, sidecar, unknown_host


def sidecar_resource(name: str, namespace: str = "default", *, spec: str,
                     created: str = "") -> str:  # fmt: skip
    stamp = f", creationTimestamp: '{created}'" if created else ""
    return f"""\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {name}, namespace: {namespace}{stamp}}}
spec: {spec}
---
"""


def outbound(mode: str, *, app: str = "") -> str:
    """A Sidecar spec setting outboundTrafficPolicy `mode`, selecting `app` when given."""
    selector = f"workloadSelector: {{labels: {{app: {app}}}}}, " if app else ""
    return f"{{{selector}outboundTrafficPolicy: {{mode: {mode}}}}}"


REGISTRY_ONLY = outbound("REGISTRY_ONLY")
ALLOW_ANY = outbound("ALLOW_ANY")


def unknown_host_names(snap: Snapshot) -> set[str]:
    """The unknown-host virtual host on a service port and on a port no service uses."""
    return {unknown_host(snap, port)[0] for port in (9080, 5432)}


# -- outboundTrafficPolicy ---------------------------------------------------------------------


def test_a_sidecar_registry_only_blocks_unknown_hosts_though_the_mesh_allows_any() -> None:
    """Sidecar outboundTrafficPolicy: "Configuration for the outbound traffic policy" of the
    workloads it applies to — it replaces MeshConfig's (ALLOW_ANY by default): Istio's
    block_all virtual host answers 502, and the snapshot shows the effective mode."""
    snap = sidecar(service("reviews") + sidecar_resource("default", spec=REGISTRY_ONLY))
    assert unknown_host_names(snap) == {"block_all"}
    assert unknown_host(snap, 9080)[1] == DirectResponse(502)
    assert PASSTHROUGH_CLUSTER not in snap.clusters
    assert snap.mesh.outbound_traffic_policy == "REGISTRY_ONLY"
    assert snap.to_dict()["mesh"]["outboundTrafficPolicy"] == "REGISTRY_ONLY"
    table = snap.outbound_table(9080)
    assert table is not None
    known = table.find("reviews")
    assert known is not None and known.name.startswith("reviews.default")


def test_a_sidecar_allow_any_passes_unknown_hosts_though_the_mesh_is_registry_only() -> None:
    """ALLOW_ANY: "setting the policy to ALLOW_ANY will cause the sidecars to route any unknown
    traffic originating from the application to its requested destination"."""
    text = (mesh("outboundTrafficPolicy: {mode: REGISTRY_ONLY}") + service("reviews")
            + sidecar_resource("default", spec=ALLOW_ANY))
    snap = sidecar(text)
    assert unknown_host_names(snap) == {"allow_any"}
    assert PASSTHROUGH_CLUSTER in snap.clusters
    assert snap.mesh.outbound_traffic_policy == "ALLOW_ANY"


def test_a_sidecar_without_outbound_traffic_policy_leaves_the_mesh_config_s() -> None:
    """istiod convertToSidecarScope: the Sidecar's outboundTrafficPolicy when it has one, else
    MeshConfig's. One Sidecar applies, whole: the selected one's silence is not filled in from
    the namespace-wide Sidecar."""
    pool = ("{workloadSelector: {labels: {app: web}}, "
            "inboundConnectionPool: {tcp: {maxConnections: 1}}}")
    text = (mesh("outboundTrafficPolicy: {mode: REGISTRY_ONLY}") + service("reviews")
            + sidecar_resource("pool", spec=pool) + sidecar_resource("default", spec=ALLOW_ANY))
    assert unknown_host_names(sidecar(text, labels={"app": "web"})) == {"block_all"}
    assert unknown_host_names(sidecar(text, labels={"app": "other"})) == {"allow_any"}


def test_an_outbound_traffic_policy_without_mode_is_registry_only() -> None:
    """The Sidecar's OutboundTrafficPolicy.Mode is a proto enum whose zero value is
    REGISTRY_ONLY, and istiod keeps a Sidecar's policy whenever it is set."""
    no_mode = sidecar_resource("default", spec="{outboundTrafficPolicy: {}}")
    snap = sidecar(service("reviews") + no_mode)
    assert unknown_host_names(snap) == {"block_all"}


# -- which Sidecar applies -----------------------------------------------------------------------

PRECEDENCE = (
    sidecar_resource("selected", "shop", spec=outbound("ALLOW_ANY", app="web"))
    + sidecar_resource("default", "shop", spec=REGISTRY_ONLY)
    + sidecar_resource("default", "istio-system", spec=ALLOW_ANY)
    + sidecar_resource("root-selected", "istio-system", spec=outbound("REGISTRY_ONLY", app="api"))
    + sidecar_resource("default", "other", spec=REGISTRY_ONLY)
)  # fmt: skip


@pytest.mark.parametrize(
    ("namespace", "labels", "expected"),
    [
        # "preference will be given to the resource with a workloadSelector that selects this
        # workload instance, over a Sidecar configuration without any workloadSelector"
        ("shop", {"app": "web", "version": "v1"}, "shop/selected"),
        ("shop", {"app": "api"}, "shop/default"),  # the selector is not met: the namespace's
        # a namespace without a Sidecar: the root namespace's selector-less one (its Sidecar
        # with a selector is for its own workloads only); the Sidecar of "other" not at all
        ("bare", {"app": "api"}, "istio-system/default"),
        ("istio-system", {"app": "api"}, "istio-system/root-selected"),
        ("other", {}, "other/default"),
    ],
)
def test_which_sidecar_applies(namespace: str, labels: dict[str, str], expected: str) -> None:
    identity = ProxyIdentity(mode="sidecar", namespace=namespace, labels=labels)
    found = selected_sidecar(load(PRECEDENCE), identity, root_namespace="istio-system")
    assert found is not None and found.key == expected


def test_precedence_decides_the_outbound_mode() -> None:
    """Selector over namespace over root namespace, seen in the compiled snapshots."""
    text = service("reviews") + PRECEDENCE
    assert unknown_host_names(sidecar(text, namespace="shop", labels={"app": "web"})) == \
        {"allow_any"}
    assert unknown_host_names(sidecar(text, namespace="shop")) == {"block_all"}
    assert unknown_host_names(sidecar(text, namespace="bare")) == {"allow_any"}


def test_a_sidecar_of_another_namespace_does_not_apply() -> None:
    """"A Sidecar configuration in a namespace will apply to one or more workload instances in
    the same namespace"; only the root namespace's is a default for others."""
    text = service("reviews") + sidecar_resource("default", "other", spec=REGISTRY_ONLY) \
        + sidecar_resource("web", "other", spec=outbound("REGISTRY_ONLY", app="web"))
    snap = sidecar(text, labels={"app": "web"})
    assert unknown_host_names(snap) == {"allow_any"}
    assert snap.mesh.outbound_traffic_policy == "ALLOW_ANY"


def test_the_root_namespace_follows_mesh_config_root_namespace() -> None:
    text = (mesh("rootNamespace: mesh-root") + service("reviews")
            + sidecar_resource("default", "mesh-root", spec=REGISTRY_ONLY)
            + sidecar_resource("default", "istio-system", spec=ALLOW_ANY))
    assert unknown_host_names(sidecar(text, namespace="shop")) == {"block_all"}


@pytest.mark.parametrize("app", ["", "web"])
def test_the_oldest_of_sidecars_at_the_same_level_applies(app: str) -> None:
    """istiod sorts Sidecars by creation time, then name (sortConfigByCreationTime) and takes
    the first that fits; IST0110/IST0111 warn that several at one level are ambiguous."""
    older = sidecar_resource("b-old", spec=outbound("REGISTRY_ONLY", app=app),
                             created="2024-01-01T00:00:00Z")
    newer = sidecar_resource("a-new", spec=outbound("ALLOW_ANY", app=app),
                             created="2024-06-01T00:00:00Z")
    labels = {"app": "web"}
    assert unknown_host_names(sidecar(service("reviews") + newer + older, labels=labels)) == \
        {"block_all"}
    same_time = (older.replace("b-old", "b") + newer.replace("a-new", "a")).replace(
        "2024-06-01", "2024-01-01")
    assert unknown_host_names(sidecar(service("reviews") + same_time, labels=labels)) == \
        {"allow_any"}  # the same age: by name


def test_gateways_take_no_sidecar() -> None:
    """istiod gives gateways the default scope whatever Sidecars their namespace has."""
    text = sidecar_resource("default", "istio-system", spec=REGISTRY_ONLY)
    labels = {"istio": "ingressgateway"}
    identity = ProxyIdentity(mode="gateway", namespace="istio-system", labels=labels)
    assert selected_sidecar(load(text), identity, root_namespace="istio-system") is None
    snap = gateway(text, labels=labels)
    assert snap.mesh.outbound_traffic_policy == "ALLOW_ANY"


# -- inboundConnectionPool -----------------------------------------------------------------------

POOL = """{inboundConnectionPool: {
  tcp: {maxConnections: 7, connectTimeout: 250ms},
  http: {http1MaxPendingRequests: 3, http2MaxRequests: 5, maxRetries: 2,
         maxRequestsPerConnection: 10, idleTimeout: 30s}}}"""


def test_inbound_connection_pool_limits_the_inbound_cluster() -> None:
    """Sidecar inboundConnectionPool (Istio 1.22): "Settings controlling the volume of
    connections Envoy will accept from the network. This default will apply for all inbound
    listeners" — the circuit breakers and pool of the inbound cluster, read as a
    DestinationRule's connectionPool is; outbound clusters keep theirs."""
    text = service("web", ports="[{name: http, port: 80, targetPort: 8080}]") + \
        sidecar_resource("default", spec=POOL)
    snap = sidecar(text, labels={"app": "web"}, app_port=8080)
    inbound = snap.clusters["inbound|8080||"]
    assert inbound.traffic_policy is not None
    limits = inbound.traffic_policy.limits
    assert (limits.max_connections, limits.max_pending, limits.max_requests,
            limits.max_retries) == (7, 3, 5, 2)
    assert (limits.max_requests_per_connection, limits.connect_timeout,
            limits.idle_timeout) == (10, 0.25, 30.0)
    assert inbound.traffic_policy.outlier is None
    assert inbound.to_dict()["trafficPolicy"] == {"connectionPool": {
        "tcp": {"maxConnections": 7, "connectTimeout": "250ms"},
        "http": {"http1MaxPendingRequests": 3, "http2MaxRequests": 5, "maxRetries": 2,
                 "maxRequestsPerConnection": 10, "idleTimeout": "30s"}}}
    outbound = snap.clusters["outbound|80||web.default.svc.cluster.local"]
    assert outbound.traffic_policy is None


def test_inbound_connection_pool_takes_the_mesh_connect_timeout_where_it_sets_none() -> None:
    text = mesh("connectTimeout: 2s") + sidecar_resource(
        "default", spec="{inboundConnectionPool: {tcp: {maxConnections: 1}}}")
    snap = sidecar(text, app_port=8080)
    policy = snap.clusters["inbound|8080||"].traffic_policy
    assert policy is not None
    assert (policy.limits.max_connections, policy.limits.max_pending) == (1, UNLIMITED)
    assert policy.limits.connect_timeout == 2.0


def test_no_inbound_connection_pool_means_istio_s_defaults() -> None:
    snap = sidecar(sidecar_resource("default", spec=REGISTRY_ONLY), app_port=8080)
    assert snap.clusters["inbound|8080||"].traffic_policy is None


def test_the_inbound_pool_comes_from_the_sidecar_that_applies() -> None:
    text = sidecar_resource("web", spec="{workloadSelector: {labels: {app: web}}, "
                                        "inboundConnectionPool: {tcp: {maxConnections: 1}}}") \
        + sidecar_resource("default", spec="{inboundConnectionPool: {tcp: {maxConnections: 9}}}")

    def max_connections(labels: dict[str, str]) -> int:
        identity = ProxyIdentity(mode="sidecar", labels=labels, app_port=43405,
                                 container_port=8080)
        snap = compile_snapshot(load(text), identity, version="1",
                                listener_ports=ListenerPorts())
        policy = snap.clusters["inbound|8080||"].traffic_policy
        assert policy is not None
        return policy.limits.max_connections

    assert max_connections({"app": "web"}) == 1
    assert max_connections({"app": "api"}) == 9
