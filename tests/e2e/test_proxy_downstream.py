"""End to end: what Envoy's HTTP connection manager does to a request from downstream before it
routes it, on real sockets - path normalization (Istio MeshConfig pathNormalization, default
BASE), HTTP/1.0 refused with 426 (accept_http_10: false), a broken request pipelined behind a
valid one, the sanitizing of x-envoy-* internal headers and x-forwarded-client-cert, and
x-envoy-upstream-service-time set once through gateway -> sidecar -> app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from remora.runner.ports import free_port
from tests.e2e.meshkit import (
    EchoServer,
    Proxy,
    closed_by_peer,
    connect,
    echo_servers,
    exchange,
    read_response,
    run_proxy,
    service_yaml,
)

pytestmark = pytest.mark.timeout(60)

HOST = "reviews:9080"
# /admin is answered by the proxy itself: a path that reaches the backend is not /admin.
ADMIN_BLOCKED = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /admin}}]
    directResponse: {status: 403, body: {string: admin is internal}}
  - route: [{destination: {host: reviews}}]
"""
GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: edge}}
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
  - route: [{{destination: {{host: ratings, port: {{number: 9080}}}}}}]
"""
# Envoy's "HTTP header sanitizing" list (configuration/http/http_conn_man/header_sanitizing) and
# conn_manager_utility.cc cleanInternalHeaders: removed from every request not internal.
INTERNAL = ["x-envoy-internal", "x-envoy-retry-on", "x-envoy-retry-grpc-on",
            "x-envoy-max-retries", "x-envoy-retriable-status-codes",
            "x-envoy-retriable-header-names", "x-envoy-upstream-alt-stat-name",
            "x-envoy-upstream-rq-timeout-ms", "x-envoy-upstream-rq-per-try-timeout-ms",
            "x-envoy-upstream-rq-timeout-alt-response", "x-envoy-expected-rq-timeout-ms",
            "x-envoy-force-trace", "x-envoy-ip-tags", "x-envoy-original-url",
            "x-envoy-hedge-on-per-try-timeout", "x-forwarded-client-cert"]
# ... and from edge requests (use_remote_address: Istio's gateways) these too.
EDGE = ["x-envoy-decorator-operation", "x-envoy-downstream-service-cluster",
        "x-envoy-downstream-service-node", "x-envoy-external-address"]
SPOOFED = "".join(f"{name}: spoofed\r\n" for name in INTERNAL + EDGE)


@dataclass
class Mesh:
    sidecar: Proxy
    gateway: Proxy
    gateway_port: int
    reviews: EchoServer
    app: EchoServer


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """A sidecar (outbound to reviews; inbound to the local app `ratings`) and a gateway whose
    only route goes to ratings through that sidecar's inbound listener."""
    tmp = tmp_path_factory.mktemp("downstream")
    sidecar_config, gateway_config = tmp / "sidecar", tmp / "gateway"
    sidecar_config.mkdir()
    gateway_config.mkdir()
    with echo_servers("reviews", "app") as servers:
        (sidecar_config / "mesh.yaml").write_text(
            service_yaml("reviews", 9080, [(servers["reviews"].port, {})]) + "---\n"
            + ADMIN_BLOCKED + "---\n" + service_yaml("ratings", 9080, []))
        with run_proxy(sidecar_config, "--labels", "app=ratings",
                       "--app-port", str(servers["app"].port), tmp=tmp) as sidecar:
            port = free_port()
            (gateway_config / "mesh.yaml").write_text(
                GATEWAY.format(port=port) + "---\n"
                + service_yaml("ratings", 9080, [(sidecar.inbound, {})]))
            with run_proxy(gateway_config, "--mode", "gateway", "--labels",
                           "istio=ingressgateway", tmp=tmp) as gateway:
                yield Mesh(sidecar, gateway, port, servers["reviews"], servers["app"])


def get(path: str, *, host: str = HOST, headers: str = "", version: str = "HTTP/1.1") -> bytes:
    return f"GET {path} {version}\r\nHost: {host}\r\n{headers}\r\n".encode()


def echoed(response_body: bytes) -> dict[str, object]:
    return httpx.Response(200, content=response_body).json()  # type: ignore[no-any-return]


# path normalization (istio.io/latest/docs/reference/config/security/normalization) ---------------
@pytest.mark.parametrize("path", [
    "/admin/", "/a/../admin/", "/./admin/", "/%2e%2e/admin/", "/%2E%2e/admin", "/x\\..\\admin",
    "/%61dmin/users",
])
def test_admin_spellings_match_the_admin_route_base_normalization(mesh: Mesh, path: str) -> None:
    """BASE (Istio's default): dot segments, %2e, backslashes and escaped unreserved characters
    are normalized before routing, so each spelling meets the /admin route, as /admin does."""
    response = exchange(mesh.sidecar.outbound, get(path))
    assert (response.status, response.body) == (403, b"admin is internal")
    assert not [p for p in mesh.reviews.paths if "admin" in p]


def test_upstream_receives_the_normalized_path_and_the_query_as_sent(mesh: Mesh) -> None:
    """Envoy forwards the normalized :path; the query string is not touched."""
    response = exchange(mesh.sidecar.outbound, get("/x/./y/../%7ez?next=/../a%2e"))
    assert response.status == 200
    assert echoed(response.body)["path"] == "/x/~z?next=/../a%2e"


MESH_CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: istio, namespace: istio-system}}
data:
  mesh: |
    pathNormalization: {{normalization: {mode}}}
"""
# (sent, what the upstream gets, or None when it is the /admin route) per mode
MODE_CASES = {
    "NONE": [("/a/../admin", "/a/../admin"), ("/x/..//admin", "/x/..//admin"),
             ("/x%2F..%2Fadmin", "/x%2F..%2Fadmin")],
    "MERGE_SLASHES": [("/a/../admin", None), ("/x/..//admin", None), ("/p//q/", "/p/q/"),
                      ("/x%2F..%2Fadmin", "/x%2F..%2Fadmin")],
    "DECODE_AND_MERGE_SLASHES": [("/a/../admin", None), ("/x/..//admin", None),
                                 ("/x%2F..%2Fadmin", None), ("/p%2Fq?r=%2F", "/p/q?r=%2F")],
}


@pytest.mark.parametrize("mode", sorted(MODE_CASES))
def test_mesh_config_path_normalization_modes(
    mesh: Mesh, tmp_path: Path, mode: str
) -> None:
    """MeshConfig pathNormalization (ConfigMap istio in istio-system, key mesh) picks the mode:
    NONE forwards as sent; MERGE_SLASHES merges after BASE; DECODE_AND_MERGE_SLASHES decodes
    %2F first (istio.io/latest/docs/reference/config/istio.mesh.v1alpha1/, the
    ProxyPathNormalization section)."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "mesh.yaml").write_text(
        service_yaml("reviews", 9080, [(mesh.reviews.port, {})]) + "---\n" + ADMIN_BLOCKED
        + "---\n" + MESH_CONFIG.format(mode=mode))
    with run_proxy(config, tmp=tmp_path) as proxy:
        for sent, forwarded in MODE_CASES[mode]:
            response = exchange(proxy.outbound, get(sent))
            if forwarded is None:
                assert response.status == 403, (sent, response)
            else:
                assert response.status == 200, (sent, response)
                assert echoed(response.body)["path"] == forwarded, sent


def test_fragment_is_dropped_before_routing_cve_2021_39156(mesh: Mesh) -> None:
    response = exchange(mesh.sidecar.outbound, get("/public#/../admin"))
    assert response.status == 200
    assert echoed(response.body)["path"] == "/public"


def test_escaped_nul_is_refused_with_400_path_normalization_failed(mesh: Mesh) -> None:
    """istio normalization table: %00 "will always be rejected with HTTP code 400"; the request
    was complete, so the connection stays usable."""
    with connect(mesh.sidecar.outbound) as sock:
        reader = sock.makefile("rb")
        sock.sendall(get("/a%00b"))
        refused = read_response(reader)
        assert (refused.status, refused.body) == (400, b"")
        sock.sendall(get("/after"))
        assert read_response(reader).status == 200


# HTTP/1.0 and broken pipelined requests ----------------------------------------------------------
def test_http10_is_answered_426_upgrade_required_envoy_accept_http_10(mesh: Mesh) -> None:
    """Envoy's Http1ProtocolOptions accept_http_10 defaults to false: 426 with the status phrase
    as a text/plain body and `connection: close`, then the connection closes."""
    with connect(mesh.sidecar.outbound) as sock:
        sock.sendall(get("/old", version="HTTP/1.0"))
        response = read_response(sock.makefile("rb"))
        assert (response.version, response.status) == ("HTTP/1.1", 426)
        assert response.body == b"Upgrade Required"
        assert response.header("content-type") == "text/plain"
        assert response.header("connection") == "close"
        assert closed_by_peer(sock, timeout=5)
    assert "/old" not in mesh.reviews.paths


@pytest.mark.parametrize("broken", [
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
])
def test_valid_request_then_broken_one_in_one_segment_gets_200_then_the_error(
    mesh: Mesh, broken: bytes
) -> None:
    """RFC 9112 §9.3.2: responses go in request order. The valid request is answered first (a
    slow one, so the error cannot overtake it), then the error with `connection: close`, then
    the proxy closes cleanly (FIN, no reset)."""
    with connect(mesh.sidecar.outbound) as sock:
        sock.sendall(get("/slow/0.2") + broken)
        reader = sock.makefile("rb")
        first = read_response(reader)
        assert first.status == 200
        assert echoed(first.body)["path"] == "/slow/0.2"
        assert first.header("connection") is None
        error = read_response(reader)
        assert error.status in (400, 426)
        assert error.header("connection") == "close"
        assert reader.read() == b""


# header sanitizing ------------------------------------------------------------------------------
def test_sidecar_drops_envoy_internal_headers_and_client_cert(mesh: Mesh) -> None:
    """A sidecar's listeners do not use the remote address (Istio useRemoteAddress false), so no
    downstream is internal: the steering headers go; the edge-only ones pass (not an edge)."""
    response = exchange(mesh.sidecar.outbound, get("/sanitize", headers=SPOOFED))
    seen = echoed(response.body)["headers"]
    assert isinstance(seen, dict)
    assert [name for name in INTERNAL if name in seen] == []
    assert {name: seen.get(name) for name in EDGE} == dict.fromkeys(EDGE, "spoofed")


def test_gateway_drops_edge_headers_and_sets_the_external_address(mesh: Mesh) -> None:
    """At a gateway (use_remote_address) a client is an edge request: the downstream-service and
    decorator headers go too, and x-envoy-external-address is the client's address; the sidecar
    behind passes that on (Envoy trusts it from a non-edge hop)."""
    with connect(mesh.gateway_port) as sock:
        sock.sendall(get("/via-gateway", host="shop.example", headers=SPOOFED))
        response = read_response(sock.makefile("rb"))
    body = echoed(response.body)
    assert body["upstream"] == "app"
    seen = body["headers"]
    assert isinstance(seen, dict)
    assert [name for name in INTERNAL + EDGE[:3] if name in seen] == []
    assert seen["x-envoy-external-address"] == "127.0.0.1"


def test_upstream_service_time_appears_once_through_gateway_sidecar_app(mesh: Mesh) -> None:
    """Envoy's router sets x-envoy-upstream-service-time (router filter docs): the gateway's
    value replaces the one the sidecar added on the way back."""
    with connect(mesh.gateway_port) as sock:
        sock.sendall(get("/timed", host="shop.example"))
        response = read_response(sock.makefile("rb"))
    assert response.status == 200
    times = [value for name, value in response.headers if name == "x-envoy-upstream-service-time"]
    assert len(times) == 1 and times[0].isdigit(), response.headers
