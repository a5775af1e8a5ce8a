"""End to end: a sidecar proxy routes real requests as Istio's VirtualService and
DestinationRule say (istio.io reference: virtual-service, destination-rule), with real upstreams,
httpx and curl as clients, on 127.0.0.1.

Every case runs twice: with the config read from files, and with the same config applied to a
control plane that pushes it to the proxy — the two must route exactly alike."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.meshkit import (
    REGISTRY_ONLY,
    EchoServer,
    Proxy,
    echo_servers,
    run_controlplane,
    run_proxy,
    service_yaml,
)

pytestmark = pytest.mark.timeout(60)

ROUTES = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: exact
    match: [{uri: {exact: /exact}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: regex
    match: [{uri: {regex: "/items/[0-9]+"}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: nocase
    match: [{uri: {prefix: /CaSe}, ignoreUriCase: true}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: without
    match: [{uri: {prefix: /without}, withoutHeaders: {x-skip: {}}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: query
    match: [{queryParams: {debug: {exact: "1"}}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: delete
    match: [{method: {exact: DELETE}}]
    directResponse: {status: 405, body: {string: "deletes are off"}}
  - name: old
    match: [{uri: {prefix: /old}}]
    redirect: {uri: /new}
  - name: moved
    match: [{uri: {prefix: /moved}}]
    redirect: {authority: elsewhere.example, redirectCode: 302, scheme: https}
  - name: api
    match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /v1/}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: regex-rewrite
    match: [{uri: {prefix: /rr/}}]
    rewrite: {uriRegexRewrite: {match: "^/rr/([a-z]+)/(.*)$", rewrite: "/\\\\2/\\\\1"}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: authority
    match: [{uri: {prefix: /authority}}]
    rewrite: {authority: internal.reviews}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: headers
    match: [{uri: {prefix: /headers}}]
    headers:
      request: {set: {x-route: a}, add: {x-added: b}, remove: [x-remove-me]}
      response: {set: {x-resp: r}, remove: [x-upstream]}
    route:
    - destination: {host: reviews, subset: v1}
      headers: {request: {set: {x-dest: d1}}}
  - name: cors
    match: [{uri: {prefix: /cors}}]
    corsPolicy:
      allowOrigins: [{exact: "https://app.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-token]
      exposeHeaders: [x-upstream]
      maxAge: 24h
    route: [{destination: {host: reviews, subset: v1}}]
  - name: empty-subset
    match: [{uri: {prefix: /nobody}}]
    route: [{destination: {host: reviews, subset: v9}}]
  - name: split
    route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
  - {name: v9, labels: {version: v9}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: sticky}
spec:
  host: sticky
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
  subsets:
  - name: cookie
    labels: {app: sticky}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpCookie: {name: session, ttl: 60s, path: /}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sticky}
spec:
  hosts: [sticky]
  http:
  - match: [{uri: {prefix: /cookie}}]
    route: [{destination: {host: sticky, subset: cookie}}]
  - route: [{destination: {host: sticky}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rr}
spec:
  host: rr
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
"""


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, EchoServer]]:
    with echo_servers("v1", "v2", "v3", "plain-a", "plain-b", "s1", "s2", "s3",
                      "rr1", "rr2", "rr3") as servers:
        yield servers


@pytest.fixture(scope="module", params=["files", "controlplane"])
def proxy(request: pytest.FixtureRequest, upstreams: dict[str, EchoServer],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    tmp = tmp_path_factory.mktemp("routing")
    config = tmp / "config"
    config.mkdir()
    port = {name: server.port for name, server in upstreams.items()}
    (config / "services.yaml").write_text("---\n".join([
        service_yaml("reviews", 9080, [(port[v], {"version": v}) for v in ("v1", "v2", "v3")]),
        service_yaml("plain", 8000, [(port["plain-a"], {}), (port["plain-b"], {})]),
        service_yaml("sticky", 8000, [(port[s], {}) for s in ("s1", "s2", "s3")]),
        service_yaml("rr", 8000, [(port[s], {}) for s in ("rr1", "rr2", "rr3")]),
    ]))
    (config / "routes.yaml").write_text(ROUTES)
    (config / "mesh.yaml").write_text(REGISTRY_ONLY)
    args = ("--access-log", str(tmp / "access.log"), "--labels", "app=productpage,version=v1")
    if request.param == "files":
        with run_proxy(config, *args, tmp=tmp) as running:
            yield running
        return
    with run_controlplane(tmp) as plane:
        plane.apply(config)
        with run_proxy(config, *args, tmp=tmp, controlplane=plane.url) as running:
            yield running


@pytest.fixture(scope="module")
def client(proxy: Proxy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=10) as c:
        yield c


def call(client: httpx.Client, path: str, host: str = "reviews:9080",
         **kwargs: object) -> httpx.Response:
    headers = {"host": host, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return client.request(kwargs.pop("method", "GET"), path, headers=headers,  # type: ignore[arg-type]
                          **kwargs)  # type: ignore[arg-type]


def served_by(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["upstream"])


def access_log(proxy: Proxy) -> list[dict[str, object]]:
    """The proxy flushes its access log at least every second."""
    path = Path(proxy.config).parent / "access.log"
    time.sleep(1.3)
    return [json.loads(line) for line in path.read_text().splitlines()]


# Sidecar outbound: origin form with Host, and forward-proxy form (http_proxy) ---------------
def test_origin_form_with_host_header_reaches_the_service(client: httpx.Client) -> None:
    assert served_by(call(client, "/", headers={"end-user": "jason"})) == "v2"


def test_forward_proxy_form_as_http_proxy_sends_it(proxy: Proxy) -> None:
    """curl -x: absolute-form request target (RFC 9112 §3.2.2); its authority is the Host."""
    out = subprocess.run(
        ["curl", "-s", "-x", proxy.url, "-H", "end-user: jason", "http://reviews:9080/via"],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout
    body = json.loads(out)
    assert body["upstream"] == "v2"
    assert body["path"] == "/via"  # origin form towards the upstream
    assert body["headers"]["host"] == "reviews:9080"


@pytest.mark.parametrize("host", [
    "reviews", "reviews:9080", "reviews.default:9080", "reviews.default.svc:9080",
    "reviews.default.svc.cluster.local:9080", "REVIEWS:9080",
])
def test_every_name_of_a_kubernetes_service_routes(client: httpx.Client, host: str) -> None:
    """Istio sidecar virtual host domains: short name (same namespace), name.ns, name.ns.svc,
    FQDN; host matching is case-insensitive (RFC 9110 §4.2.3). No port = port 80 here, so
    the short name alone (port 80) finds nothing on 9080's route table unless it says 9080
    (REGISTRY_ONLY here: blocked, 502)."""
    response = call(client, "/", host=host, headers={"end-user": "jason"})
    if host == "reviews":
        assert response.status_code == 502
    else:
        assert served_by(response) == "v2"


# Match semantics ---------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "kwargs", "expected"), [
    ("/exact", {}, "v3"),  # uri exact
    ("/exact?x=1", {}, "v3"),  # Envoy: exact path ignores the query string
    ("/exact/more", {}, None),  # exact is not prefix
    ("/items/42", {}, "v3"),  # RE2 full match
    ("/items/42x", {}, None),
    ("/cAsE/anything", {}, "v3"),  # ignoreUriCase on prefix
    ("/without", {}, "v3"),  # withoutHeaders: header absent
    ("/without", {"headers": {"x-skip": "1"}}, None),  # header present → rule skipped
    ("/q?debug=1", {}, "v3"),  # queryParams exact
    ("/q?debug=2", {}, None),
])
def test_match_conditions(client: httpx.Client, path: str, kwargs: dict[str, object],
                          expected: str | None) -> None:
    """istio.io VirtualService HTTPMatchRequest; a request no specific rule takes falls to the
    90/10 split (v1 or v2), never v3."""
    upstream = served_by(call(client, path, **kwargs))
    if expected is None:
        assert upstream in ("v1", "v2")
    else:
        assert upstream == expected


def test_first_matching_rule_wins(client: httpx.Client) -> None:
    """The header rule comes first: it wins over the later /exact rule."""
    assert served_by(call(client, "/exact", headers={"end-user": "jason"})) == "v2"


def test_weighted_split_follows_weights(client: httpx.Client) -> None:
    """weight / sum(weights): 90/10 over 400 requests (binomial, ±5 sigma)."""
    counts = Counter(served_by(call(client, f"/split/{i}")) for i in range(400))
    assert set(counts) <= {"v1", "v2"}
    assert 16 <= counts["v2"] <= 64, counts


# Actions -----------------------------------------------------------------------------------
def test_direct_response(client: httpx.Client) -> None:
    response = call(client, "/anything", method="DELETE")
    assert response.status_code == 405
    assert response.text == "deletes are off"


def test_redirect_defaults_to_301_and_keeps_the_rest(client: httpx.Client) -> None:
    response = call(client, "/old/page?x=1")
    assert response.status_code == 301
    assert response.headers["location"] == "http://reviews:9080/new?x=1"


def test_redirect_with_code_scheme_and_authority(client: httpx.Client) -> None:
    response = call(client, "/moved/here")
    assert response.status_code == 302
    assert response.headers["location"].startswith("https://elsewhere.example/moved/here")


def test_prefix_rewrite_replaces_the_matched_prefix(client: httpx.Client) -> None:
    body = call(client, "/api/users?id=7").json()
    assert body["upstream"] == "v1"
    assert body["path"] == "/v1/users?id=7"


def test_uri_regex_rewrite_uses_capture_groups(client: httpx.Client) -> None:
    body = call(client, "/rr/books/42").json()
    assert body["path"] == "/42/books"


def test_authority_rewrite_sets_host(client: httpx.Client) -> None:
    assert call(client, "/authority").json()["headers"]["host"] == "internal.reviews"


def test_header_operations_on_request_and_response(client: httpx.Client) -> None:
    response = call(client, "/headers", headers={"x-remove-me": "1", "x-added": "a"})
    sent = response.json()["headers"]
    assert sent["x-route"] == "a"
    assert sent["x-dest"] == "d1"
    assert "x-remove-me" not in sent
    assert sent["x-added"] == "a, b"  # add appends a header line to what the client sent
    assert response.headers["x-resp"] == "r"
    assert "x-upstream" not in response.headers


def test_cors_preflight_is_answered_by_the_proxy(client: httpx.Client) -> None:
    response = call(client, "/cors", method="OPTIONS", headers={
        "origin": "https://app.example", "access-control-request-method": "POST"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-max-age"] == "86400"
    actual = call(client, "/cors", headers={"origin": "https://app.example"})
    assert actual.headers["access-control-allow-origin"] == "https://app.example"
    other = call(client, "/cors", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


# Failures as Envoy reports them ------------------------------------------------------------
def test_unknown_host_is_blocked_under_registry_only(client: httpx.Client, proxy: Proxy) -> None:
    """MeshConfig outboundTrafficPolicy REGISTRY_ONLY (this proxy's mesh config): Istio's
    `block_all` virtual host answers 502 for a host the registry does not know."""
    request_id = str(uuid.uuid4())
    response = call(client, "/", host="nosuch:9080", headers={"x-request-id": request_id})
    assert response.status_code == 502
    entry = next(e for e in access_log(proxy) if e["request_id"] == request_id)
    assert (entry["response_code"], entry["route_name"]) == (502, "block_all")


def test_subset_without_endpoints_is_503_uh(client: httpx.Client, proxy: Proxy) -> None:
    request_id = str(uuid.uuid4())
    response = call(client, "/nobody", headers={"x-request-id": request_id})
    assert response.status_code == 503
    assert response.text == "no healthy upstream"
    entry = next(e for e in access_log(proxy) if e["request_id"] == request_id)
    assert entry["response_flags"] == "UH"
    assert entry["upstream_cluster"] == "outbound|9080|v9|reviews.default.svc.cluster.local"


# Services without a VirtualService; load balancing ----------------------------------------
def test_service_without_virtual_service_uses_all_its_endpoints(client: httpx.Client) -> None:
    counts = Counter(served_by(call(client, "/", host="plain:8000")) for _ in range(60))
    assert set(counts) == {"plain-a", "plain-b"}


def test_round_robin_cycles_through_endpoints(client: httpx.Client) -> None:
    seen = [served_by(call(client, "/", host="rr:8000")) for _ in range(9)]
    assert Counter(seen) == {"rr1": 3, "rr2": 3, "rr3": 3}


def test_consistent_hash_on_header_sticks(client: httpx.Client) -> None:
    for user in ("alice", "bob", "carol", "dave"):
        seen = {served_by(call(client, "/", host="sticky:8000", headers={"x-user": user}))
                for _ in range(8)}
        assert len(seen) == 1, (user, seen)
    spread = {served_by(call(client, "/", host="sticky:8000", headers={"x-user": f"u{i}"}))
              for i in range(40)}
    assert len(spread) > 1


def test_consistent_hash_cookie_is_generated_when_ttl_set(proxy: Proxy) -> None:
    """DestinationRule httpCookie with ttl: the proxy sets the cookie, then sticks to it."""
    with httpx.Client(base_url=proxy.url, timeout=10) as fresh:
        first = fresh.get("/cookie", headers={"host": "sticky:8000"})
        cookie = first.headers["set-cookie"]
        assert cookie.startswith("session=")
        assert "Max-Age=60" in cookie
        value = cookie.split(";")[0].split("=", 1)[1]
        seen = {served_by(fresh.get("/cookie", headers={"host": "sticky:8000",
                                                         "cookie": f"session={value}"}))
                for _ in range(8)}
        assert len(seen) == 1


# Headers the proxy adds --------------------------------------------------------------------
def test_forwarded_headers_and_request_id(client: httpx.Client) -> None:
    sent = call(client, "/", host="plain:8000").json()["headers"]
    assert sent["x-forwarded-for"].endswith("127.0.0.1")
    assert sent["x-forwarded-proto"] == "http"
    uuid.UUID(sent["x-request-id"])
    kept = call(client, "/", host="plain:8000", headers={"x-request-id": "abc-123"}).json()
    assert kept["headers"]["x-request-id"] == "abc-123"


# Admin and telemetry -----------------------------------------------------------------------
def test_config_dump_shows_the_compiled_snapshot(proxy: Proxy) -> None:
    dump = httpx.get(f"{proxy.admin_url}/config_dump", timeout=5).json()
    text = json.dumps(dump)
    assert "outbound|9080|v1|reviews.default.svc.cluster.local" in text
    assert "reviews.default.svc.cluster.local" in text


def test_clusters_lists_endpoints_with_counters(client: httpx.Client, proxy: Proxy) -> None:
    call(client, "/", host="plain:8000")
    data = httpx.get(f"{proxy.admin_url}/clusters?format=json", timeout=5).json()
    plain = next(c for c in data["cluster_statuses"]
                 if c["name"] == "outbound|8000||plain.default.svc.cluster.local")
    assert len(plain["hosts"]) == 2
    assert sum(h["rq_total"] for h in plain["hosts"]) >= 1
    assert all(h["health_flags"] == "healthy" for h in plain["hosts"])


def test_istio_standard_metrics_with_istio_labels(client: httpx.Client, proxy: Proxy) -> None:
    """istio.io "Istio Standard Metrics": the sidecar reports outbound requests as source."""
    call(client, "/", host="plain:8000")
    call(client, "/", host="nosuch:9080")
    text = httpx.get(f"{proxy.admin_url}/stats/prometheus", timeout=5).text
    lines = [line for line in text.splitlines() if line.startswith("istio_requests_total{")]
    plain = next(line for line in lines
                 if 'destination_service="plain.default.svc.cluster.local"' in line)
    for label in ('reporter="source"', 'source_app="productpage"', 'source_version="v1"',
                  'destination_service_name="plain"', 'response_code="200"',
                  'response_flags="-"', 'request_protocol="http"'):
        assert label in plain
    assert any('response_code="502"' in line for line in lines)  # nosuch: blocked
    assert "istio_request_duration_milliseconds_bucket{" in text
    assert "istio_request_bytes_bucket{" in text
    assert "istio_response_bytes_bucket{" in text
