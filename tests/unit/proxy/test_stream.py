"""A request through the stream and its chain, on the in-memory network: what the upstream
gets, what the client gets back, and Envoy's local replies (envoyproxy.io "Life of a Request")."""

from __future__ import annotations

from tests.e2e.meshkit import REGISTRY_ONLY
from tests.unit.proxy.harness import ProxyHarness, run

REVIEWS = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}, {address: 10.0.0.2}]
"""
GATEWAY = """\
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: istio-system}
spec:
  hosts: [shop.example]
  gateways: [web]
  http: [{route: [{destination: {host: reviews.default.svc.cluster.local, port: {number: 9080}}}]}]
"""
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\nserver: app\r\n\r\nok"


def test_a_request_goes_upstream_with_forwarding_headers_and_the_answer_comes_back() -> None:
    async def body() -> None:
        proxy = ProxyHarness(REVIEWS)
        client = proxy.client()
        client.get("/r/1", host="reviews:9080", headers={"Connection": "keep-alive"})
        await proxy.settle()
        upstream = proxy.network.last
        sent = upstream.request().decode()
        assert sent.startswith("GET /r/1 HTTP/1.1\r\nhost: reviews:9080\r\n")
        assert "x-forwarded-proto: http\r\n" in sent and "x-request-id: " in sent
        assert "connection" not in sent.lower().split("\r\n\r\n")[0].replace("x-", "")
        upstream.respond(OK)
        response = client.response()
        assert (response.status, response.body) == (200, b"ok")
        assert "connection" not in response.headers  # hop-by-hop: the upstream's is dropped
        assert response.header_list("x-envoy-upstream-service-time")
        assert upstream.host in {"10.0.0.1", "10.0.0.2"}

    run(body)


def test_an_unknown_host_passes_through_under_allow_any_and_is_502_under_registry_only() -> None:
    """MeshConfig outboundTrafficPolicy (istio.io MeshConfig.OutboundTrafficPolicy.Mode)."""
    async def body() -> None:
        proxy = ProxyHarness(REVIEWS)
        client = proxy.client()
        client.get("/", host="example.org:9080")
        await proxy.settle()
        assert (proxy.network.last.host, proxy.network.last.port) == ("example.org", 9080)

        blocked = ProxyHarness(REVIEWS + "---\n" + REGISTRY_ONLY)
        client = blocked.client()
        client.get("/", host="example.org:9080")
        assert client.response().status == 502
        assert not blocked.network.opened
        assert not client.transport.closed  # a local reply keeps the connection

    run(body)


def test_a_gateway_without_a_matching_host_answers_404_nr() -> None:
    async def body() -> None:
        proxy = ProxyHarness(REVIEWS + GATEWAY, mode="gateway", namespace="istio-system",
                             labels={"istio": "ingressgateway"})
        client = proxy.client("gateway")
        client.get("/", host="other.example")
        assert client.response().status == 404
        client.get("/", host="shop.example")
        await proxy.settle()
        assert proxy.network.last.port == 9080

    run(body)


def test_a_refused_connection_is_503_uf_with_envoys_body() -> None:
    async def body() -> None:
        proxy = ProxyHarness(REVIEWS)
        proxy.network.refused.add(9080)
        client = proxy.client()
        client.get("/", host="reviews:9080")
        await proxy.settle(0.3)  # Istio's default retry: 2 more tries after 25 ms back-off
        assert len(proxy.network.opened) == 0
        response = client.response()
        assert response.status == 503
        assert response.body.startswith(b"upstream connect error or disconnect/reset before "
                                        b"headers. reset reason: connection failure")

    run(body)
