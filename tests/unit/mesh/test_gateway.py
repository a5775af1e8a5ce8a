"""Gateway compilation, following the Istio "Gateway" reference (selector, servers, hosts in
`namespace/dnsName` form, tls SIMPLE with files or credentialName, httpsRedirect) and the
"Virtual Service" reference (gateways binding, per-match gateways)."""

from __future__ import annotations

import base64
import json

from remora.mesh.snapshot import RouteAction, Snapshot
from tests.certkit import MeshCA
from tests.unit.mesh import gateway, service, targets

CERT, KEY = (text.encode() for text in MeshCA.create().issue("spiffe://shop"))

LABELS = {"istio": "ingressgateway", "app": "istio-ingressgateway"}

GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: web}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*/shop.example.com", "web/*.web.example.com", "./admin.example.com"]
    tls: {httpsRedirect: true}
  - port: {number: 8080, name: http-alt, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["shop.example.com"]
    tls: {mode: SIMPLE, serverCertificate: /etc/certs/tls.crt, privateKey: /etc/certs/tls.key}
  - port: {number: 9443, name: https-secret, protocol: HTTPS}
    hosts: ["shop.example.com"]
    tls: {mode: SIMPLE, credentialName: shop-cert}
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ["*"]
    tls: {mode: PASSTHROUGH}
---
"""


def _vs(name: str, namespace: str, hosts: str, gateways: str, prefix: str) -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  hosts: {hosts}
  gateways: {gateways}
  http:
  - name: {name}
    match: [{{uri: {{prefix: {prefix}}}}}]
    route: [{{destination: {{host: front.web.svc.cluster.local, port: {{number: 80}}}}}}]
---
"""


SECRET = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: shop-cert, namespace: istio-system}}
type: kubernetes.io/tls
data:
  tls.crt: {base64.b64encode(CERT).decode()}
  tls.key: {base64.b64encode(KEY).decode()}
---
"""

CONFIG = (
    GATEWAY
    + service("front", "web", ports="[{name: http, port: 80}]")
    + _vs("shop", "web", "[shop.example.com]", "[public]", "/shop")
    + _vs("cart", "other", "[shop.example.com]", "[web/public]", "/cart")
    + _vs("blog", "web", "['*.web.example.com', 'x.other.com']", "[web/public]", "/blog")
    + _vs("admin", "other", "[admin.example.com]", "[web/public]", "/admin")
    + _vs("mesh-only", "web", "[shop.example.com]", "[mesh]", "/mesh")
    + SECRET
)


def _snap() -> Snapshot:
    return gateway(CONFIG, labels=LABELS)


def _routes(snap: Snapshot, table: str, host: str) -> list[str]:
    vhost = snap.route_tables[table].find(host)
    assert vhost is not None
    return [route.name for route in vhost.routes]


def test_a_listener_per_supported_server_port() -> None:
    snap = _snap()
    assert [(x.name, x.port, x.direction, x.route_table) for x in snap.listeners] == [
        ("0.0.0.0_80", 80, "gateway", "http.80"),
        ("0.0.0.0_8080", 8080, "gateway", "http.8080"),
        ("0.0.0.0_443", 443, "gateway", "http.443"),
        ("0.0.0.0_9443", 9443, "gateway", "http.9443"),
    ]
    assert any("15443" in note and "PASSTHROUGH" in note for note in snap.notes)


def test_gateway_selects_by_labels_only() -> None:
    snap = gateway(CONFIG, labels={"app": "istio-ingressgateway"})
    assert snap.listeners == () and snap.route_tables == {}


def test_virtual_services_merge_per_host_in_age_order() -> None:
    """istio.io IST0109: Istio merges virtual services attached to ingress gateways."""
    assert _routes(_snap(), "http.8080", "shop.example.com") == ["cart", "shop"]


def test_server_hosts_namespace_restricts_virtual_services() -> None:
    snap = _snap()
    # "web/*.web.example.com": only VirtualServices of namespace web; the narrower host wins
    assert snap.route_tables["http.80"].find("a.web.example.com") is not None
    assert _routes(snap, "http.80", "a.web.example.com") == ["blog"]
    # "./admin.example.com" is the Gateway's namespace (web): the VS in `other` is left out
    assert snap.route_tables["http.80"].find("admin.example.com") is None
    # "*" on port 8080 takes everything bound to the gateway, hosts as written
    table = snap.route_tables["http.8080"]
    domains = sorted(d for vhost in table.virtual_hosts for d in vhost.domains)
    assert domains == ["*.web.example.com", "admin.example.com", "shop.example.com",
                       "x.other.com"]  # fmt: skip


def test_https_redirect_marks_the_virtual_hosts_of_that_server() -> None:
    snap = _snap()
    assert all(v.https_redirect for v in snap.route_tables["http.80"].virtual_hosts)
    assert not any(v.https_redirect for v in snap.route_tables["http.8080"].virtual_hosts)


def test_tls_from_files_or_credential_name_secret() -> None:
    snap = _snap()
    by_port = {listener.port: listener.tls for listener in snap.listeners}
    assert by_port[80] is None
    files, secret = by_port[443], by_port[9443]
    assert files is not None and secret is not None
    assert (files.cert_path, files.key_path) == ("/etc/certs/tls.crt", "/etc/certs/tls.key")
    assert (secret.cert_pem, secret.key_pem) == (CERT, KEY)
    assert "PRIVATE KEY" not in json.dumps(snap.to_dict())


def test_missing_credential_secret_leaves_the_server_out() -> None:
    snap = gateway(CONFIG.replace("name: shop-cert", "name: other-cert"), labels=LABELS)
    assert 9443 not in {listener.port for listener in snap.listeners}
    assert any("shop-cert" in note for note in snap.notes)


def test_route_destination_and_cluster() -> None:
    snap = _snap()
    vhost = snap.route_tables["http.443"].find("shop.example.com")
    assert vhost is not None
    assert targets(vhost.routes[0]) == [("outbound|80||front.web.svc.cluster.local", 100)]
    assert "outbound|80||front.web.svc.cluster.local" in snap.clusters


def test_match_gateways_pick_blocks_per_gateway() -> None:
    """istio.io HTTPMatchRequest gateways: a block naming other gateways is dropped here."""
    text = GATEWAY + """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: both, namespace: web}
spec:
  hosts: [shop.example.com]
  gateways: [public, mesh]
  http:
  - name: internal
    match: [{gateways: [mesh]}]
    route: [{destination: {host: front}}]
  - name: edge
    match: [{gateways: [public], uri: {prefix: /}}]
    route: [{destination: {host: front}}]
---
"""
    snap = gateway(text, labels=LABELS)
    assert _routes(snap, "http.8080", "shop.example.com") == ["edge"]
    route = snap.route_tables["http.8080"].virtual_hosts[0].routes[0]
    assert isinstance(route.action, RouteAction)
