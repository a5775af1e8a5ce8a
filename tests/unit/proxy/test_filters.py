"""Each HTTP filter of the chain as a client and an upstream see it, through the in-memory
harness: CORS (envoy.filters.http.cors), fault injection (envoy.filters.http.fault), header
operations (VirtualService `headers`), Istio's metadata exchange, mirroring (Envoy's request
mirror policy), the router (envoy.filters.http.router), Istio's standard metrics and the access
log (envoyproxy.io "Access logging", %RESPONSE_FLAGS%)."""

from __future__ import annotations

from pathlib import Path

from remora.telemetry.peer import PEER_METADATA, PEER_METADATA_ID, PeerMetadata, encode
from tests.unit.proxy.harness import (
    ProxyHarness,
    access_log_lines,
    request_bytes,
    requests_total,
    run,
)

REVIEWS_HOST = "reviews.default.svc.cluster.local"
SERVICES = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shadow}
spec:
  hosts: [shadow.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9090, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.9}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
"""
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nserver: app\r\n\r\nok"


def routes(rules: str) -> str:
    """The services and a VirtualService for reviews with these `http` rules."""
    return SERVICES + f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [{REVIEWS_HOST}]
  http:
{rules}"""


ROUTE = "    route: [{destination: {host: reviews.default.svc.cluster.local}}]\n"


def header_block(request: bytes) -> str:
    return request.split(b"\r\n\r\n", 1)[0].decode().lower()


# CORS ------------------------------------------------------------------------------------------
CORS = routes("""\
  - corsPolicy:
      allowOrigins: [{exact: 'https://a.example'}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      exposeHeaders: [x-exposed]
      maxAge: 60s
""" + ROUTE)


def preflight(origin: str) -> bytes:
    return request_bytes("OPTIONS", "/r", host="reviews:9080", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST"})


def test_cors_preflight_from_an_allowed_origin_is_answered_by_the_proxy() -> None:
    """Envoy's CORS filter answers a preflight (OPTIONS + Access-Control-Request-Method) for
    an allowed origin itself, with the policy's allow-* and max-age; nothing goes upstream."""
    async def body() -> None:
        proxy = ProxyHarness(CORS)
        client = proxy.client()
        client.send(preflight("https://a.example"), method="OPTIONS")
        await proxy.settle()
        response = client.response()
        assert response.status == 200
        assert response.headers["access-control-allow-origin"] == "https://a.example"
        assert response.headers["access-control-allow-methods"] == "GET,POST"
        assert response.headers["access-control-allow-headers"] == "x-custom"
        assert response.headers["access-control-max-age"] == "60"
        assert not proxy.network.opened

    run(body)


def test_cors_preflight_from_another_origin_is_forwarded() -> None:
    """unmatchedPreflights unset (FORWARD): Envoy's forward_not_matching_preflights."""
    async def body() -> None:
        proxy = ProxyHarness(CORS)
        client = proxy.client()
        client.send(preflight("https://evil.example"), method="OPTIONS")
        await proxy.settle()
        assert proxy.network.last.request().startswith(b"OPTIONS /r HTTP/1.1\r\n")
        proxy.network.last.respond(b"HTTP/1.1 204 No Content\r\n\r\n")
        response = client.response()
        assert response.status == 204
        assert "access-control-allow-origin" not in response.headers

    run(body)


def test_cors_headers_are_added_to_an_actual_response_for_an_allowed_origin_only() -> None:
    async def body() -> None:
        proxy = ProxyHarness(CORS)
        client = proxy.client()
        client.get("/r", host="reviews:9080", headers={"Origin": "https://a.example"})
        await proxy.settle()
        upstream = proxy.network.last
        assert "origin: https://a.example" in header_block(upstream.request())
        upstream.respond(OK)
        response = client.response()
        assert response.headers["access-control-allow-origin"] == "https://a.example"
        assert response.headers["access-control-expose-headers"] == "x-exposed"

        client.get("/r", host="reviews:9080", headers={"Origin": "https://evil.example"})
        await proxy.settle()
        upstream.respond(OK)  # the keep-alive connection is reused
        response = client.response()
        assert not [k for k in response.headers if k.startswith("access-control-")]

    run(body)


def test_cors_replaces_the_upstreams_own_allow_origin() -> None:
    """Envoy's CorsFilter::encodeHeaders sets access-control-allow-origin (setInline) to the
    request's origin; two values make browsers reject the response ("The
    'Access-Control-Allow-Origin' header contains multiple values")."""
    async def body() -> None:
        proxy = ProxyHarness(CORS)
        client = proxy.client()
        client.get("/r", host="reviews:9080", headers={"Origin": "https://a.example"})
        await proxy.settle()
        proxy.network.last.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                   b"Access-Control-Allow-Origin: *\r\n\r\nok")
        response = client.response()
        assert response.header_list("access-control-allow-origin") == ["https://a.example"]

    run(body)


# fault injection -------------------------------------------------------------------------------
def test_fault_abort_answers_with_its_status_envoys_body_and_flag_fi(tmp_path: Path) -> None:
    """HTTPFaultInjection.Abort at 100 %: the request never goes upstream; Envoy's fault
    filter body is "fault filter abort", %RESPONSE_FLAGS% FI, details fault_filter_abort."""
    log = str(tmp_path / "access.log")

    async def body() -> None:
        proxy = ProxyHarness(routes(
            "  - fault: {abort: {httpStatus: 418, percentage: {value: 100}}}\n" + ROUTE),
            access_log=log)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        response = client.response()
        assert (response.status, response.body) == (418, b"fault filter abort")
        assert not proxy.network.opened
        assert not client.transport.closed  # a local reply keeps the connection
        [record] = access_log_lines(proxy, log)
        assert (record["response_code"], record["response_flags"]) == (418, "FI")
        assert record["response_code_details"] == "fault_filter_abort"
        [(labels, count)] = requests_total(proxy)
        assert (labels["response_code"], labels["response_flags"], count) == ("418", "FI", 1)

    run(body)


def test_fault_abort_at_zero_percent_never_aborts() -> None:
    async def body() -> None:
        proxy = ProxyHarness(routes(
            "  - fault: {abort: {httpStatus: 500, percentage: {value: 0}}}\n" + ROUTE))
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        proxy.network.last.respond(OK)
        assert client.response().status == 200

    run(body)


def test_fault_delay_holds_the_request_then_forwards_it_with_flag_di(tmp_path: Path) -> None:
    """HTTPFaultInjection.Delay: the request waits fixedDelay before it is forwarded (DI)."""
    log = str(tmp_path / "access.log")

    async def body() -> None:
        proxy = ProxyHarness(routes(
            "  - fault: {delay: {fixedDelay: 0.05s, percentage: {value: 100}}}\n" + ROUTE),
            access_log=log)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        assert not proxy.network.opened  # held by the fault filter
        await proxy.settle(0.06)
        upstream = proxy.network.last
        assert upstream.request().startswith(b"GET /r HTTP/1.1\r\n")
        upstream.respond(OK)
        assert client.response().status == 200
        [record] = access_log_lines(proxy, log)
        assert record["response_flags"] == "DI"
        assert record["duration"] >= 50

    run(body)


def test_fault_delay_and_abort_delay_first_then_abort_without_going_upstream() -> None:
    """Envoy's fault filter: a delay, then the abort if one was drawn too."""
    async def body() -> None:
        proxy = ProxyHarness(routes(
            "  - fault:\n"
            "      delay: {fixedDelay: 0.03s, percentage: {value: 100}}\n"
            "      abort: {httpStatus: 503, percentage: {value: 100}}\n" + ROUTE))
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        assert client.responses() == []
        await proxy.settle(0.04)
        response = client.response()
        assert (response.status, response.body) == (503, b"fault filter abort")
        assert not proxy.network.opened

    run(body)


def test_a_client_gone_during_a_fault_delay_sends_nothing_upstream() -> None:
    async def body() -> None:
        proxy = ProxyHarness(routes(
            "  - fault: {delay: {fixedDelay: 0.03s, percentage: {value: 100}}}\n" + ROUTE))
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        client.lose()
        await proxy.settle(0.05)
        assert not proxy.network.opened

    run(body)


# header operations -----------------------------------------------------------------------------
HEADER_OPS = routes("""\
  - match: [{uri: {prefix: /direct}}]
    directResponse: {status: 418, body: {string: teapot}}
    headers: {response: {set: {x-route: r}}}
  - headers:
      request: {set: {x-set: s}, add: {x-added: a}, remove: [x-drop]}
      response: {set: {x-route: r}, remove: [server]}
    route:
    - destination: {host: reviews.default.svc.cluster.local}
      headers: {request: {set: {x-dest: d}}, response: {add: {x-dest-resp: d}}}
""")


def test_request_header_operations_are_what_the_upstream_sees() -> None:
    """HTTPRoute.headers.request and HTTPRouteDestination.headers.request: set, add, remove."""
    async def body() -> None:
        proxy = ProxyHarness(HEADER_OPS)
        client = proxy.client()
        client.get("/r", host="reviews:9080", headers={"x-drop": "1", "x-set": "old"})
        await proxy.settle()
        sent = header_block(proxy.network.last.request())
        lines = sent.split("\r\n")
        assert "x-set: s" in lines and "x-set: old" not in lines
        assert "x-added: a" in lines and "x-dest: d" in lines
        assert not any(line.startswith("x-drop") for line in lines)
        assert lines[1] == "host: reviews:9080"

    run(body)


def test_response_header_operations_are_what_the_client_sees() -> None:
    async def body() -> None:
        proxy = ProxyHarness(HEADER_OPS)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        proxy.network.last.respond(OK)
        response = client.response()
        assert response.headers["x-route"] == "r"
        assert response.headers["x-dest-resp"] == "d"
        assert "server" not in response.headers

    run(body)


def test_response_header_operations_apply_to_a_direct_response() -> None:
    """Envoy applies a route's response_headers_to_add to its local replies below 500."""
    async def body() -> None:
        proxy = ProxyHarness(HEADER_OPS)
        client = proxy.client()
        client.get("/direct", host="reviews:9080")
        await proxy.settle()
        response = client.response()
        assert (response.status, response.body) == (418, b"teapot")
        assert response.headers["x-route"] == "r"

    run(body)


def test_response_header_operations_apply_to_the_503_of_an_upstream_failure() -> None:
    """Envoy applies a route's response_headers_to_add to local replies, the router's 503/504
    included, since 1.16 (envoyproxy/envoy#13204, "http: applying route header rules on local
    replies", fixing #4317: no route headers on a 504 Gateway Timeout)."""
    async def body() -> None:
        proxy = ProxyHarness(HEADER_OPS)
        proxy.network.refused.add(9080)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle(0.1)  # Istio's default 2 retries of connect-failure (< 75 ms)
        response = client.response()
        assert response.status == 503
        assert response.headers.get("x-route") == "r"

    run(body)


# metadata exchange ----------------------------------------------------------------------------
CALLER = PeerMetadata(workload="productpage-v1", namespace="shop", cluster="Kubernetes",
                      labels={"app": "productpage", "version": "v1"})


def test_inbound_the_app_never_sees_the_callers_peer_headers_and_the_caller_hears_back() -> None:
    """istio.metadata_exchange: the inbound sidecar reads x-envoy-peer-metadata(-id) for its
    metrics (reporter=destination, source_* of the caller) and strips them; a caller that
    described itself gets this side's metadata on the response."""
    async def body() -> None:
        proxy = ProxyHarness(SERVICES, app_port=8080)
        client = proxy.client("inbound")
        client.get("/r", host="reviews:9080", headers={
            PEER_METADATA: encode(CALLER), PEER_METADATA_ID: "sidecar~10.1.1.1~pp.shop~x"})
        await proxy.settle()
        upstream = proxy.network.last
        assert upstream.port == 8080
        assert "x-envoy-peer-metadata" not in header_block(upstream.request())
        upstream.respond(OK)
        response = client.response()
        assert response.header_list(PEER_METADATA)
        [(labels, _)] = requests_total(proxy)
        assert labels["reporter"] == "destination"
        assert (labels["source_workload"], labels["source_workload_namespace"]) == (
            "productpage-v1", "shop")
        assert labels["source_app"] == "productpage"

    run(body)


def test_inbound_without_peer_headers_adds_none_to_the_response() -> None:
    async def body() -> None:
        proxy = ProxyHarness(SERVICES, app_port=8080)
        client = proxy.client("inbound")
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        proxy.network.last.respond(OK)
        assert PEER_METADATA not in client.response().headers
        [(labels, _)] = requests_total(proxy)
        assert labels["source_workload"] == "unknown"

    run(body)


def test_outbound_adds_our_peer_headers_in_place_of_the_apps() -> None:
    async def body() -> None:
        proxy = ProxyHarness(SERVICES)
        client = proxy.client()
        client.get("/r", host="reviews:9080", headers={PEER_METADATA: "forged"})
        await proxy.settle()
        lines = header_block(proxy.network.last.request()).split("\r\n")
        ours = dict(proxy.env.labels.peer_headers(proxy.snapshot.identity))
        assert f"{PEER_METADATA}: {ours[PEER_METADATA]}".lower() in lines
        assert f"{PEER_METADATA}: forged" not in lines
        assert len([x for x in lines if x.startswith(PEER_METADATA + ":")]) == 1

    run(body)


def test_outbound_to_a_mesh_external_service_sends_no_peer_headers() -> None:
    """Istio does not tell an external service (ServiceEntry MESH_EXTERNAL) who is calling."""
    async def body() -> None:
        proxy = ProxyHarness(SERVICES)
        client = proxy.client()
        client.get("/", host="api.example.com")
        await proxy.settle()
        upstream = proxy.network.last
        assert (upstream.host, upstream.port) == ("api.example.com", 80)
        assert "x-envoy-peer-metadata" not in header_block(upstream.request())

    run(body)


def test_outbound_the_upstream_sidecars_peer_headers_stop_at_the_proxy() -> None:
    async def body() -> None:
        proxy = ProxyHarness(SERVICES)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        proxy.network.last.respond(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n"
            + f"{PEER_METADATA}: {encode(CALLER)}\r\n{PEER_METADATA_ID}: x\r\n\r\nok".encode())
        response = client.response()
        assert response.body == b"ok"
        assert PEER_METADATA not in response.headers
        assert PEER_METADATA_ID not in response.headers

    run(body)


# mirror ---------------------------------------------------------------------------------------
MIRROR = routes("""\
  - mirror: {host: shadow.default.svc.cluster.local, port: {number: 9090}}
""" + ROUTE)


def test_a_mirrored_request_goes_to_the_mirror_cluster_with_a_shadow_authority() -> None:
    """Envoy's request_mirror_policies: a copy to the mirror cluster, "-shadow" appended to
    the host of the authority; the client gets the primary's response."""
    async def body() -> None:
        proxy = ProxyHarness(MIRROR)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        by_port = {u.port: u for u in proxy.network.opened}
        assert set(by_port) == {9080, 9090}
        shadow = header_block(by_port[9090].request())
        assert shadow.startswith("get /r http/1.1\r\n")
        assert "host: reviews-shadow:9080" in shadow.split("\r\n")
        assert "host: reviews:9080" in header_block(by_port[9080].request()).split("\r\n")
        by_port[9090].respond(b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n")
        by_port[9080].respond(OK)
        response = client.response()
        assert (response.status, response.body) == (200, b"ok")

    run(body)


def test_a_failing_mirror_does_not_touch_the_clients_response() -> None:
    async def body() -> None:
        proxy = ProxyHarness(MIRROR)
        proxy.network.refused.add(9090)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        [primary] = proxy.network.opened
        primary.respond(OK)
        assert client.response().status == 200

        # a mirror that breaks its connection mid-way does not either
        proxy.network.refused.clear()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        shadow = next(u for u in proxy.network.opened if u.port == 9090)
        shadow.close()
        primary.respond(OK)
        assert client.response().status == 200
        assert not client.transport.closed

    run(body)


def test_a_mirror_that_never_answers_does_not_hold_the_client() -> None:
    async def body() -> None:
        proxy = ProxyHarness(MIRROR)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        next(u for u in proxy.network.opened if u.port == 9080).respond(OK)
        assert client.response().status == 200
        assert proxy.tasks  # the mirror still waits (up to its own timeout), unseen

    run(body)


def test_the_mirrored_copy_is_the_request_as_the_router_sends_it() -> None:
    """Envoy's router copies the request headers it forwards (after the route's
    request_headers_to_add/remove and the filters before it) for the shadow, with only the
    authority changed: the same x-request-id, the header operations applied."""
    async def body() -> None:
        proxy = ProxyHarness(routes("""\
  - mirror: {host: shadow.default.svc.cluster.local, port: {number: 9090}}
    headers: {request: {set: {x-auth: token}, remove: [x-secret]}}
""" + ROUTE))
        client = proxy.client()
        client.get("/r", host="reviews:9080", headers={"x-secret": "s"})
        await proxy.settle()
        by_port = {u.port: header_block(u.request()).split("\r\n")[1:] for u in
                   proxy.network.opened}
        primary = dict(line.split(": ", 1) for line in by_port[9080])
        shadow = dict(line.split(": ", 1) for line in by_port[9090])
        assert shadow["x-request-id"] == primary["x-request-id"]
        assert shadow.get("x-auth") == "token"
        assert "x-secret" not in shadow

    run(body)


# router ---------------------------------------------------------------------------------------
ROUTER = routes("""\
  - name: direct
    match: [{uri: {prefix: /direct}}]
    directResponse: {status: 503, body: {string: down for maintenance}}
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: other.example}
  - match: [{uri: {prefix: /subset}}]
    route: [{destination: {host: reviews.default.svc.cluster.local, subset: v1}}]
""" + "  - name: default\n" + ROUTE)


def test_a_direct_response_is_answered_by_the_router() -> None:
    """HTTPDirectResponse: Envoy's direct_response, status and body as configured."""
    async def body() -> None:
        proxy = ProxyHarness(ROUTER)
        client = proxy.client()
        client.get("/direct", host="reviews:9080")
        await proxy.settle()
        response = client.response()
        assert (response.status, response.body) == (503, b"down for maintenance")
        assert response.headers["content-type"] == "text/plain"
        assert not proxy.network.opened

    run(body)


def test_a_redirect_route_answers_301_with_the_new_location() -> None:
    """HTTPRedirect: 301 by default, the uri and authority replaced, the scheme kept."""
    async def body() -> None:
        proxy = ProxyHarness(ROUTER)
        client = proxy.client()
        client.get("/old", host="reviews:9080")
        await proxy.settle()
        response = client.response()
        assert response.status == 301
        assert response.headers["location"] == "http://other.example/new"
        assert not proxy.network.opened

    run(body)


def test_a_route_to_a_subset_no_destination_rule_defines_is_503_uh(tmp_path: Path) -> None:
    """Envoy answers 503 NC (cluster_not_found) since Istio makes no cluster for an undefined
    subset; Remora's documented deviation (remora.mesh.compile) is a cluster with no
    endpoints: 503 UH, "no healthy upstream". Either way the request never goes upstream."""
    log = str(tmp_path / "access.log")

    async def body() -> None:
        proxy = ProxyHarness(ROUTER, access_log=log)
        client = proxy.client()
        client.get("/subset", host="reviews:9080")
        await proxy.settle()
        response = client.response()
        assert (response.status, response.body) == (503, b"no healthy upstream")
        assert not proxy.network.opened
        [record] = access_log_lines(proxy, log)
        assert record["response_flags"] == "UH"
        assert record["upstream_cluster"] == f"outbound|9080|v1|{REVIEWS_HOST}"

    run(body)


def test_no_route_is_404_nr() -> None:
    async def body() -> None:
        proxy = ProxyHarness(routes(
            "  - match: [{uri: {prefix: /only}}]\n" + ROUTE))
        client = proxy.client()
        client.get("/other", host="reviews:9080")
        await proxy.settle()
        assert client.response().status == 404
        [(labels, _)] = requests_total(proxy)
        assert (labels["response_code"], labels["response_flags"]) == ("404", "NR")

    run(body)


def test_x_envoy_upstream_service_time_is_set_once_by_this_proxy() -> None:
    """router_filter.rst x-envoy-upstream-service-time: the time the upstream took, in ms; an
    upstream Envoy's value is replaced, not repeated."""
    async def body() -> None:
        proxy = ProxyHarness(ROUTER)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        proxy.network.last.respond(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-envoy-upstream-service-time: 9999\r\n"
            b"\r\nok")
        values = client.response().header_list("x-envoy-upstream-service-time")
        assert len(values) == 1 and values[0] != "9999" and values[0].isdigit()

    run(body)


def test_x_envoy_upstream_service_time_is_absent_on_a_local_reply() -> None:
    async def body() -> None:
        proxy = ProxyHarness(ROUTER)
        client = proxy.client()
        client.get("/direct", host="reviews:9080")
        await proxy.settle()
        assert "x-envoy-upstream-service-time" not in client.response().headers

    run(body)


STICKY = SERVICES.replace("endpoints: [{address: 10.0.0.1}]",
                          "endpoints: [{address: 10.0.0.1}, {address: 10.0.0.2}, "
                          "{address: 10.0.0.3}]") + """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    loadBalancer: {consistentHash: {httpCookie: {name: sticky, ttl: 60s, path: /}}}
"""


def test_a_cookie_hash_policy_with_a_ttl_sets_the_cookie_and_then_sticks_to_it() -> None:
    """Envoy's hash_policy cookie with a ttl: a request without the cookie gets a generated
    one in Set-Cookie (Max-Age, Path, HttpOnly); requests with it go to the same host."""
    async def body() -> None:
        proxy = ProxyHarness(STICKY)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        proxy.network.last.respond(OK)
        [cookie] = client.response().header_list("set-cookie")
        value, *attributes = cookie.split("; ")
        assert value.startswith("sticky=") and len(value) > len("sticky=")
        assert attributes == ["Max-Age=60", "Path=/", "HttpOnly"]

        hosts = set()
        for _ in range(6):
            other = proxy.client()
            other.get("/r", host="reviews:9080", headers={"Cookie": value})
            await proxy.settle()
            upstream = proxy.network.last
            hosts.add(upstream.host)
            upstream.respond(OK)
            assert other.response().header_list("set-cookie") == []
            upstream.close()  # a fresh connection each time: the balancer picks again
        assert len(hosts) == 1

    run(body)


# stats and the access log ---------------------------------------------------------------------
def test_istio_requests_total_labels_a_forwarded_request() -> None:
    """istio.io "Istio Standard Metrics": the sidecar's outbound side reports as source, the
    destination service of the cluster, the response code and flags ("-" for none)."""
    async def body() -> None:
        proxy = ProxyHarness(SERVICES)
        client = proxy.client()
        for _ in range(2):
            client.get("/r", host="reviews:9080")
            await proxy.settle()
            proxy.network.last.respond(OK)
            assert client.response().status == 200
        [(labels, count)] = requests_total(proxy)
        assert count == 2
        assert labels["reporter"] == "source"
        assert (labels["source_workload"], labels["source_workload_namespace"]) == (
            "client", "default")
        assert labels["destination_service"] == REVIEWS_HOST
        assert labels["destination_service_namespace"] == "default"
        assert (labels["response_code"], labels["response_flags"]) == ("200", "-")
        assert labels["request_protocol"] == "http"

    run(body)


def test_each_outcome_is_its_own_series() -> None:
    async def body() -> None:
        proxy = ProxyHarness(ROUTER)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        proxy.network.last.respond(b"HTTP/1.1 500 Boom\r\ncontent-length: 0\r\n\r\n")
        assert client.response().status == 500
        client.get("/direct", host="reviews:9080")
        await proxy.settle()
        assert client.response().status == 503
        codes = sorted(labels["response_code"] for labels, _ in requests_total(proxy))
        assert codes == ["500", "503"]

    run(body)


def test_the_access_log_has_one_record_per_request_with_envoys_fields(tmp_path: Path) -> None:
    """Istio's JSON access log (accessLogEncoding JSON): method, path, code, flags, bytes,
    upstream host and cluster, route name, authority."""
    log = str(tmp_path / "access.log")

    async def body() -> None:
        proxy = ProxyHarness(ROUTER, access_log=log)
        client = proxy.client()
        client.send(request_bytes("POST", "/r?q=1", host="reviews:9080",
                                  headers={"User-Agent": "curl/8"}, body=b"hello"),
                    method="POST")
        await proxy.settle()
        proxy.network.last.respond(OK)
        assert client.response().status == 200
        client.get("/direct", host="reviews:9080")
        await proxy.settle()
        client.responses()
        forwarded, local = access_log_lines(proxy, log)
        assert (forwarded["method"], forwarded["path"]) == ("POST", "/r?q=1")
        assert (forwarded["response_code"], forwarded["response_flags"]) == (200, "-")
        assert forwarded["response_code_details"] == "via_upstream"
        assert (forwarded["bytes_received"], forwarded["bytes_sent"]) == (5, 2)
        assert forwarded["upstream_host"] == "10.0.0.1:9080"
        assert forwarded["upstream_cluster"] == f"outbound|9080||{REVIEWS_HOST}"
        assert forwarded["authority"] == "reviews:9080"
        assert forwarded["user_agent"] == "curl/8"
        assert forwarded["route_name"] == "default"
        assert forwarded["request_id"]
        assert forwarded["upstream_service_time"] is not None
        assert (local["response_code"], local["route_name"]) == (503, "direct")
        assert local["response_code_details"] == "direct_response"
        assert local["upstream_host"] is None

    run(body)


def test_the_access_log_of_an_absolute_form_request_logs_its_path(tmp_path: Path) -> None:
    """%REQ(:PATH)% of `GET http://host/path` (curl -x) is the path, as Envoy's codec splits
    an absolute-form target into :authority and :path."""
    log = str(tmp_path / "access.log")

    async def body() -> None:
        proxy = ProxyHarness(ROUTER, access_log=log)
        client = proxy.client()
        client.send(b"GET http://reviews:9080/r/1 HTTP/1.1\r\nHost: reviews:9080\r\n\r\n")
        await proxy.settle()
        upstream = proxy.network.last
        assert upstream.request().startswith(b"GET /r/1 HTTP/1.1\r\n")
        upstream.respond(OK)
        client.responses()
        [record] = access_log_lines(proxy, log)
        assert record["path"] == "/r/1"

    run(body)
