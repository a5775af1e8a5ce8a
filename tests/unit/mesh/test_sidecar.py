"""Sidecar compilation: virtual host domains, VirtualService binding and rule filtering,
destinations, subsets and default routes. Each case cites the Istio doc it follows."""

from __future__ import annotations

import pytest

from remora.mesh.compile import compile_snapshot
from remora.mesh.snapshot import ListenerPorts, ProxyIdentity, RouteTable, Snapshot
from tests.unit.mesh import load, service, sidecar, targets

FQDN = "reviews.default.svc.cluster.local"


def _deployment(name: str, app: str, version: str) -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {{matchLabels: {{app: {app}, version: {version}}}}}
  template:
    metadata: {{labels: {{app: {app}, version: {version}}}}}
    spec:
      serviceAccountName: bookinfo-{app}
      containers: [{{name: app, image: {app}}}]
---
"""


SLICE = """\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-abc
  namespace: default
  labels: {kubernetes.io/service-name: reviews}
addressType: IPv4
ports: [{name: http, port: 9080}]
endpoints:
- addresses: [10.1.0.1]
  targetRef: {kind: Pod, name: reviews-v1-5d8f9c-abcde}
  zone: us-east-1a
- addresses: [10.1.0.2]
  targetRef: {kind: Pod, name: reviews-v2-6c7d8b-fghij}
- addresses: [10.1.0.3]
  conditions: {ready: false}
  targetRef: {kind: Pod, name: reviews-v2-6c7d8b-zzzzz}
---
"""

RULE = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
"""

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: from-productpage
    match: [{sourceLabels: {app: productpage}}, {sourceNamespace: qa}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: split
    route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
---
"""

BOOKINFO = (
    service("reviews", cluster_ip="10.0.0.5")
    + _deployment("reviews-v1", "reviews", "v1")
    + _deployment("reviews-v2", "reviews", "v2")
    + SLICE
    + RULE
)


def passes_through(table: RouteTable, host: str) -> bool:
    """No service answers `host`: the sidecar's unknown-host virtual host takes it (MeshConfig
    outboundTrafficPolicy, ALLOW_ANY by default: Istio's `allow_any`)."""
    vhost = table.find(host)
    return vhost is not None and vhost.name == "allow_any"


def _vhost_routes(snap: Snapshot, host: str, port: int = 9080) -> list[str]:
    table = snap.outbound_table(port)
    assert table is not None
    vhost = table.find(host)
    assert vhost is not None
    return [route.name for route in vhost.routes]


def test_service_domains_short_name_only_in_its_namespace() -> None:
    """istio.io "Virtual Service" hosts: short names are interpreted in the service's
    namespace; a sidecar answers name.ns, name.ns.svc, the FQDN and the cluster IP."""
    text = service("reviews", cluster_ip="10.0.0.5")
    home = sidecar(text).outbound_table(9080)
    away = sidecar(text, namespace="other").outbound_table(9080)
    assert home is not None and away is not None
    assert home.virtual_hosts[0].domains == (
        "reviews", "reviews.default", "reviews.default.svc", FQDN, "10.0.0.5",
    )  # fmt: skip
    assert passes_through(away, "reviews")
    for name in ("reviews.default", "reviews.default.svc", FQDN, "10.0.0.5"):
        assert away.find(name) is not None


def _service_entry(host: str, namespace: str = "default") -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews-se, namespace: {namespace}}}
spec:
  hosts: [{host}]
  location: MESH_INTERNAL
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 10.2.0.1}}]
---
"""


@pytest.mark.parametrize("entry_namespace", ["default", "other"])
def test_service_entry_in_the_cluster_domain_gets_short_names(entry_namespace: str) -> None:
    """pilot GenerateAltVirtualHosts (route config domains): any service whose host is
    `name.ns.svc.cluster.local`, a ServiceEntry's too, answers `name` to proxies in `ns` and
    `name.ns`, `name.ns.svc` to every proxy; the names come from the host, not from the
    namespace the ServiceEntry lives in."""
    text = _service_entry(FQDN, entry_namespace)
    home = sidecar(text).outbound_table(9080)
    away = sidecar(text, namespace="qa").outbound_table(9080)
    assert home is not None and away is not None
    for name in ("reviews", "reviews.default", "reviews.default.svc", FQDN):
        vhost = home.find(name)
        assert vhost is not None and vhost.name == f"{FQDN}:9080"
    assert passes_through(away, "reviews")
    for name in ("reviews.default", "reviews.default.svc", FQDN):
        assert away.find(name) is not None


def test_service_entry_outside_the_cluster_domain_has_no_short_names() -> None:
    """GenerateAltVirtualHosts: a host that does not share the proxy's `svc.cluster.local`
    domain is not expanded (its short names could clash with a Kubernetes service's)."""
    table = sidecar(_service_entry("reviews.example.com")).outbound_table(9080)
    assert table is not None
    assert table.find("reviews.example.com") is not None
    assert passes_through(table, "reviews") and passes_through(table, "reviews.example")


def test_virtual_service_on_a_service_entry_host_answers_its_short_name() -> None:
    """istio.io "Virtual Service" hosts: `reviews` named in `default` is
    reviews.default.svc.cluster.local, here a ServiceEntry host; its rules serve the short
    name the client sends."""
    text = _service_entry(FQDN) + """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{name: to-the-entry, route: [{destination: {host: reviews}}]}]
---
"""
    snap = sidecar(text)
    for name in ("reviews", "reviews.default", FQDN):
        assert _vhost_routes(snap, name) == ["to-the-entry"]


def test_no_virtual_service_means_a_default_route_to_every_ready_endpoint() -> None:
    """istio.io traffic management: without virtual services Envoy distributes requests among
    all service instances; EndpointSlice conditions.ready false is not routed to."""
    snap = sidecar(BOOKINFO)
    assert _vhost_routes(snap, "reviews") == ["default"]
    cluster = snap.clusters[f"outbound|9080||{FQDN}"]
    assert [(e.address, e.port) for e in cluster.endpoints] == [
        ("10.1.0.1", 9080), ("10.1.0.2", 9080),
    ]  # fmt: skip
    first = cluster.endpoints[0]
    assert dict(first.labels) == {"app": "reviews", "version": "v1"}
    # an EndpointSlice zone without a region label: region empty, as Istio reads it
    assert (first.workload, first.namespace, first.locality) == ("reviews-v1", "default",
                                                                 "/us-east-1a")  # fmt: skip
    assert first.service_account == "bookinfo-reviews"


def test_rules_in_order_with_source_selectors_applied_per_proxy() -> None:
    """istio.io "Virtual Service" HTTPMatchRequest sourceLabels/sourceNamespace: the rule
    applies only to workloads with those labels / in that namespace."""
    text = BOOKINFO + VS
    assert _vhost_routes(sidecar(text), "reviews") == ["jason", "split"]
    productpage = sidecar(text, labels={"app": "productpage", "version": "v1"})
    assert _vhost_routes(productpage, "reviews") == ["jason", "from-productpage", "split"]
    qa = sidecar(text, namespace="qa")
    assert _vhost_routes(qa, FQDN) == ["jason", "from-productpage", "split"]


def test_weighted_subsets_and_subset_endpoints() -> None:
    """istio.io "Destination Rule" subsets select endpoints by labels; weights split traffic."""
    snap = sidecar(BOOKINFO + VS)
    table = snap.outbound_table(9080)
    assert table is not None
    vhost = table.find("reviews")
    assert vhost is not None
    split = vhost.routes[-1]
    assert targets(split) == [(f"outbound|9080|v1|{FQDN}", 90), (f"outbound|9080|v2|{FQDN}", 10)]
    assert [e.address for e in snap.clusters[f"outbound|9080|v1|{FQDN}"].endpoints] == ["10.1.0.1"]
    assert [e.address for e in snap.clusters[f"outbound|9080|v2|{FQDN}"].endpoints] == ["10.1.0.2"]
    assert targets(vhost.routes[0]) == [(f"outbound|9080|v2|{FQDN}", 100)]  # lone destination


def test_undefined_subset_gets_a_cluster_without_endpoints() -> None:
    text = BOOKINFO + VS.replace("subset: v2}}]", "subset: v9}}]")
    snap = sidecar(text)
    assert snap.clusters[f"outbound|9080|v9|{FQDN}"].endpoints == ()
    assert any("subset 'v9' not defined" in note for note in snap.notes)


def test_gateway_bound_virtual_service_is_not_for_sidecars() -> None:
    """istio.io "Virtual Service" gateways: list `mesh` to keep applying to sidecars."""
    only_gateway = VS.replace("  hosts: [reviews]\n", "  hosts: [reviews]\n  gateways: [gw]\n")
    assert _vhost_routes(sidecar(BOOKINFO + only_gateway), "reviews") == ["default"]
    both = VS.replace("  hosts: [reviews]\n", "  hosts: [reviews]\n  gateways: [gw, mesh]\n")
    assert _vhost_routes(sidecar(BOOKINFO + both), "reviews") == ["jason", "split"]


def test_match_gateways_filter_match_blocks() -> None:
    """istio.io HTTPMatchRequest gateways: names of gateways where the rule should be applied;
    with gateways set, sourceLabels are not consulted (pilot sourceMatchHTTP)."""
    text = BOOKINFO + VS.replace(
        "match: [{headers: {end-user: {exact: jason}}}]",
        "match: [{headers: {end-user: {exact: jason}}, gateways: [gw]},"
        " {uri: {prefix: /m}, gateways: [mesh], sourceLabels: {app: nobody}}]",
    )
    snap = sidecar(text)
    table = snap.outbound_table(9080)
    assert table is not None
    vhost = table.find("reviews")
    assert vhost is not None
    first = vhost.routes[0]
    assert first.name == "jason" and first.match_dump["uri"] == {"prefix": "/m"}


def test_export_to_dot_hides_the_virtual_service_from_other_namespaces() -> None:
    """istio.io "Virtual Service" exportTo: "." exports to the same namespace only."""
    private = VS.replace("  hosts: [reviews]\n", "  hosts: [reviews]\n  exportTo: ['.']\n")
    assert _vhost_routes(sidecar(BOOKINFO + private), "reviews") == ["jason", "split"]
    assert _vhost_routes(sidecar(BOOKINFO + private, namespace="qa"), FQDN) == ["default"]


def test_oldest_virtual_service_owns_a_host_for_sidecars() -> None:
    """istio.io IST0109: several virtual services for one host conflict on the mesh gateway
    (only gateways merge them); Istio takes the oldest (creation time, then name)."""
    other = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: NAME, namespace: default, creationTimestamp: "TIME"}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http: [{name: NAME, route: [{destination: {host: reviews}}]}]
---
"""
    newer = other.replace("NAME", "aaa").replace("TIME", "2024-02-01T00:00:00Z")
    older = other.replace("NAME", "zzz").replace("TIME", "2024-01-01T00:00:00Z")
    assert _vhost_routes(sidecar(BOOKINFO + newer + older), "reviews") == ["zzz"]
    by_name = newer.replace("2024-02-01", "2024-01-01")
    assert _vhost_routes(sidecar(BOOKINFO + by_name + older), "reviews") == ["aaa"]


def test_a_virtual_service_with_no_route_for_this_proxy_falls_back_to_default() -> None:
    """pilot BuildSidecarVirtualHostWrapper: a virtual service none of whose routes matches
    this proxy's source is discarded, the service keeps its default route."""
    only_qa = VS.replace("  http:\n", "  http:\n  - match: [{sourceNamespace: qa}]\n"
                         "    route: [{destination: {host: reviews}}]\n", 1)
    only_qa = only_qa[: only_qa.index("  - name: jason")]
    assert _vhost_routes(sidecar(BOOKINFO + only_qa), "reviews") == ["default"]


PORTS = service(
    "web", ports="[{name: http, port: 80, targetPort: 8080}, {name: http-admin, port: 9000},"
    " {name: tcp-db, port: 5432}]",
)  # fmt: skip
WEB_VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
  - name: admin-only
    match: [{port: 9000}]
    route: [{destination: {host: web}}]
  - name: all
    route: [{destination: {host: web}}]
---
"""


def test_route_tables_per_http_port_and_port_matches() -> None:
    """istio.io HTTPMatchRequest port: the rule applies to that port of the host; a
    destination without a port on a multi-port service takes the listener port
    (pilot GetDestinationCluster)."""
    snap = sidecar(PORTS + WEB_VS)
    assert sorted(snap.route_tables) == ["80", "9000", "outbound|unknown-ports"]  # tcp-db: TCP
    assert _vhost_routes(snap, "web", 80) == ["all"]
    assert _vhost_routes(snap, "web", 9000) == ["admin-only", "all"]
    table = snap.outbound_table(80)
    assert table is not None
    vhost = table.find("web")
    assert vhost is not None
    assert targets(vhost.routes[0]) == [("outbound|80||web.default.svc.cluster.local", 100)]


def test_virtual_service_host_that_is_no_service() -> None:
    text = PORTS + """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: alias, namespace: default}
spec:
  hosts: [shop.example.com]
  http: [{route: [{destination: {host: web, port: {number: 80}}}]}]
---
"""
    snap = sidecar(text)
    for port in (80, 9000):
        table = snap.outbound_table(port)
        assert table is not None
        vhost = table.find("shop.example.com")
        assert vhost is not None
        assert targets(vhost.routes[0]) == [("outbound|80||web.default.svc.cluster.local", 100)]


def test_unknown_destination_host_gets_an_empty_cluster() -> None:
    text = PORTS + WEB_VS.replace("host: web}}]\n---", "host: nowhere}}]\n---")
    snap = sidecar(text)
    cluster = snap.clusters["outbound|80||nowhere.default.svc.cluster.local"]
    assert cluster.endpoints == ()
    assert any("unknown host" in note for note in snap.notes)


@pytest.mark.parametrize("app_port", [8080, 9999])
def test_inbound_listener_routes_to_the_local_app(app_port: int) -> None:
    snap = sidecar(PORTS, labels={"app": "web", "version": "v1"}, app_port=app_port)
    inbound = [listener for listener in snap.listeners if listener.direction == "inbound"]
    assert [(x.name, x.port, x.route_table) for x in inbound] == [
        ("virtualInbound", 15006, f"inbound|{app_port}"),
    ]  # fmt: skip
    table = snap.route_tables[f"inbound|{app_port}"]
    vhost = table.find("anything.at.all")
    assert vhost is not None and vhost.name == f"inbound|http|{app_port}"
    assert targets(vhost.routes[0]) == [(f"inbound|{app_port}||", 100)]
    cluster = snap.clusters[f"inbound|{app_port}||"]
    assert [(e.address, e.port) for e in cluster.endpoints] == [("127.0.0.1", app_port)]
    assert dict(cluster.endpoints[0].labels) == {"app": "web", "version": "v1"}
    # the Service whose targetPort is the app port names the destination service
    assert cluster.service_name == ("web" if app_port == 8080 else "unknown")


def test_inbound_is_named_after_the_container_port_the_app_stands_for() -> None:
    """remora up runs the app on a free local port: the inbound cluster is still Istio's
    `inbound|<containerPort>||`, and the Service whose targetPort is that containerPort names
    the destination service; traffic goes to the local port."""
    identity = ProxyIdentity(mode="sidecar", labels={"app": "web"}, app_port=43405,
                             container_port=8080)
    snap = compile_snapshot(load(PORTS), identity, version="1", listener_ports=ListenerPorts())
    cluster = snap.clusters["inbound|8080||"]
    assert [(e.address, e.port) for e in cluster.endpoints] == [("127.0.0.1", 43405)]
    assert (cluster.service_name, cluster.host) == ("web", "web.default.svc.cluster.local")
    inbound = [x.route_table for x in snap.listeners if x.direction == "inbound"]
    assert inbound == ["inbound|8080"]
    named = service("api", ports="[{name: http, port: 80, targetPort: web-http}]",
                    selector="{app: web}")
    identity = ProxyIdentity(mode="sidecar", labels={"app": "web"}, app_port=43405,
                             container_port=8080, container_port_name="web-http")
    snap = compile_snapshot(load(named), identity, version="1", listener_ports=ListenerPorts())
    assert snap.clusters["inbound|8080||"].service_name == "api"  # targetPort by name


def test_outbound_listener_uses_the_configured_port() -> None:
    snap = sidecar(PORTS)
    assert [(x.name, x.port, x.direction) for x in snap.listeners] == [
        ("virtualOutbound", 15001, "outbound"),
    ]  # fmt: skip


def test_every_subset_has_a_cluster_even_without_a_route_to_it() -> None:
    """Istio (pilot cluster builder) builds `outbound|port||host` and one cluster per
    DestinationRule subset for every service port, routed to or not."""
    snapshot = sidecar(service("reviews") + """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
""")
    host = "reviews.default.svc.cluster.local"
    assert {f"outbound|9080||{host}", f"outbound|9080|v1|{host}",
            f"outbound|9080|v2|{host}"} <= set(snapshot.clusters)
