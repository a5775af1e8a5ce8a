"""A Snapshot is plain data all the way down, so the control plane can compile it and send it
as JSON (remora.mesh.encoding): every object reachable from it is a dataclass whose init fields
hold str, int, float, bool, None, bytes, enums, tuples, frozensets, str-keyed mappings or such
dataclasses; what is derived (predicates, RE2 patterns, lookup tables) is rebuilt from them.
And the modules that make it up import neither pydantic nor the api models."""

from __future__ import annotations

import ast
import base64
import dataclasses
import enum
import random
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import pytest

from remora.mesh.snapshot import Cluster, Listener, RouteAction, Snapshot
from remora.policy.redirect import DirectResponse, Redirect
from remora.proxy.codec.events import RequestHead
from remora.proxy.filter import LocalReply
from remora.proxy.routing import RouteDecision, decide
from tests.certkit import MeshCA
from tests.unit.mesh import gateway, service, sidecar

GZIP_TYPE = "type.googleapis.com/envoy.extensions.filters.http.gzip.v3.Gzip"

WORKLOADS = """\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, namespace: default}
spec:
  address: 10.0.0.1
  labels: {app: reviews, version: v1}
  locality: us-east/zone-a
  ports: {http: 8080}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-2, namespace: default}
spec:
  address: 10.0.0.2
  labels: {app: reviews, version: v2}
  locality: us-west/zone-b
  ports: {http: 8080}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-1, namespace: default}
spec:
  address: 10.0.0.3
  labels: {app: ratings}
  ports: {http: 8080}
---
"""

ROUTES = r"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: api
    match:
    - name: versioned
      uri: {regex: "/api/v[0-9]+/.*"}
      method: {exact: GET}
      headers: {x-user: {exact: ann}, x-team: {prefix: eng}}
      withoutHeaders: {x-skip: {}}
      queryParams: {debug: {exact: "1"}}
    rewrite: {uriRegexRewrite: {match: "^/api/(v[0-9]+)/", rewrite: "/\\1/internal/"}}
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,reset,503"}
    timeout: 10s
    headers:
      request: {set: {x-route: api}, add: {x-added: "1"}, remove: [x-secret]}
      response: {set: {x-served: remora}}
    corsPolicy:
      allowOrigins: [{exact: "https://a.example"}, {regex: "https://.*[.]b[.]example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-user]
      exposeHeaders: [x-served]
      maxAge: 24h
      allowCredentials: true
    mirror: {host: ratings}
    mirrorPercentage: {value: 25.0}
    route:
    - destination: {host: reviews, subset: v1}
      weight: 80
      headers: {request: {set: {x-dest: v1}}}
    - destination: {host: reviews, subset: v2}
      weight: 20
  - name: faulty
    match: [{uri: {prefix: /fault}, ignoreUriCase: true}]
    fault:
      delay: {fixedDelay: 1s, percentage: {value: 50}}
      abort: {httpStatus: 503, percentage: {value: 10}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: moved
    match: [{uri: {exact: /old}}, {uri: {prefix: /legacy/}, port: 9080}]
    redirect: {uri: /new, authority: reviews.example, redirectCode: 308}
  - name: teapot
    match: [{headers: {x-teapot: {regex: "y.s"}}, scheme: {exact: http}}]
    directResponse: {status: 418, body: {string: short and stout}}
  - name: prefix-rewrite
    match: [{uri: {prefix: /v1/}, authority: {prefix: reviews}}]
    rewrite: {uri: /internal/, authority: reviews.internal}
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
---
"""

POLICY = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL, sni: reviews.default.svc.cluster.local}
    connectionPool:
      tcp:
        maxConnections: 100
        connectTimeout: 3s
        tcpKeepalive: {probes: 3, time: 60s, interval: 10s}
      http: {http1MaxPendingRequests: 10, maxRetries: 4, idleTimeout: 30s}
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 30s,
                       maxEjectionPercent: 50}
    loadBalancer:
      warmupDurationSecs: 10s
      consistentHash: {httpCookie: {name: session, path: /, ttl: 60s}}
      localityLbSetting:
        failover: [{from: us-east, to: us-west}]
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
        localityLbSetting:
          distribute: [{from: "us-east/*", to: {"us-east/*": 80, "us-west/*": 20}}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: productpage, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  portLevelMtls: {8080: {mode: DISABLE}}
---
"""

ENVOY_FILTER = f"""\
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {{name: gzip, namespace: default}}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {{name: envoy.filters.http.router}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.gzip
        typed_config: {{'@type': {GZIP_TYPE}, memory_level: 5, content_type: [text/plain]}}
---
"""

_CERT, _KEY = MeshCA.create().issue("spiffe://shop")  # a credential must be PEM

GATEWAY = f"""\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: public, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: ["shop.example.com"]
    tls: {{mode: SIMPLE, credentialName: shop-cert}}
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ["shop.example.com"]
    tls: {{httpsRedirect: true}}
---
apiVersion: v1
kind: Secret
metadata: {{name: shop-cert, namespace: istio-system}}
type: kubernetes.io/tls
data:
  tls.crt: {base64.b64encode(_CERT.encode()).decode()}
  tls.key: {base64.b64encode(_KEY.encode()).decode()}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: shop, namespace: default}}
spec:
  hosts: [shop.example.com]
  gateways: [istio-system/public]
  http:
  - match: [{{uri: {{prefix: /reviews}}}}]
    rewrite: {{uri: /shop}}
    route: [{{destination: {{host: reviews.default.svc.cluster.local, port: {{number: 9080}}}}}}]
---
"""

CONFIG = (service("reviews", ports="[{name: http, port: 9080, targetPort: 8080}]")
          + service("ratings", ports="[{name: http, port: 9080, targetPort: 8080}]")
          + WORKLOADS + ROUTES + POLICY + ENVOY_FILTER)


def snapshots() -> list[Snapshot]:
    mesh = sidecar(CONFIG, labels={"app": "productpage"})
    edge = gateway(CONFIG + GATEWAY, labels={"istio": "ingressgateway"})
    return [mesh, edge]


@pytest.fixture(scope="module", params=["sidecar", "gateway"])
def snap(request: pytest.FixtureRequest) -> Snapshot:
    mesh, edge = snapshots()
    return mesh if request.param == "sidecar" else edge


# -- the walk -------------------------------------------------------------------------------

SCALARS = (str, int, float, bool, bytes, type(None))


def walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(path, value) of everything an init field holds, recursively; fails on what is not plain
    data (a pydantic model, a callable, a list, a mapping keyed by something but str or int)."""
    yield path, value
    if isinstance(value, (enum.Enum, *SCALARS)):
        return
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            if f.init:
                yield from walk(getattr(value, f.name), f"{path}.{f.name}")
        return
    if isinstance(value, tuple | frozenset):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")
        return
    if isinstance(value, Mapping) and not isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str | int), f"{path}: key {key!r} is not a str or int"
            yield from walk(item, f"{path}[{key!r}]")
        return
    raise AssertionError(f"{path}: {type(value).__module__}.{type(value).__qualname__} is not "
                         "plain data")


def rebuilt(value: Any) -> Any:
    """`value` made again from its init fields, bottom up (what a decoder does)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        init = {f.name: rebuilt(getattr(value, f.name))
                for f in dataclasses.fields(value) if f.init}
        return type(value)(**init)
    if isinstance(value, tuple):
        return tuple(rebuilt(item) for item in value)
    if isinstance(value, frozenset):
        return frozenset(rebuilt(item) for item in value)
    if isinstance(value, Mapping):
        return MappingProxyType({key: rebuilt(item) for key, item in value.items()})
    return value


def test_the_config_compiles_rich(snap: Snapshot) -> None:
    """The test means something only if the config made every kind of object."""
    assert not snap.skipped, snap.skipped
    kinds = {type(value).__name__ for _, value in walk(snap, "snapshot")}
    expected = {"RequestMatcher", "StringMatcher", "HeaderOps", "Cors", "WeightedChoice",
                "Rewrite", "RegexSubstitution", "Redirect", "DirectResponse", "RetrySpec",
                "FaultPolicy", "MirrorTarget", "ClusterPolicy", "PoolLimits", "TcpKeepalive",
                "OutlierConfig", "LocalitySetting", "Failover", "Distribute", "LbConfig",
                "HashPolicy", "HttpFilterPatch", "Finding", "Endpoint", "InboundMtls",
                "ClientTls"}
    if snap.identity.mode == "gateway":
        expected = {"ListenerTls", "RequestMatcher", "Rewrite", "ClusterPolicy", "LbConfig"}
    assert expected <= kinds, expected - kinds


def test_every_init_field_holds_plain_data(snap: Snapshot) -> None:
    for path, value in walk(snap, "snapshot"):
        assert not callable(value) or isinstance(value, type), f"{path} is callable"
        assert "pydantic" not in type(value).__module__, path


def test_rebuilt_from_init_fields_the_snapshot_is_the_same(snap: Snapshot) -> None:
    again = rebuilt(snap)
    assert again is not snap
    assert again == snap
    assert again.to_dict() == snap.to_dict()


# -- routing: the rebuilt matchers decide as the compiled ones --------------------------------

Outcome = tuple[Any, ...]


def outcome(snapshot: Snapshot, listener: Listener, target: str,
            headers: list[tuple[str, str]], *, scheme: str = "http") -> Outcome:
    head = RequestHead("GET", target, headers, "1.1", True, False, False, None)
    found = decide(snapshot, listener, head, scheme=scheme, rng=random.Random(7))
    if isinstance(found, LocalReply):
        return ("reply", found.status, found.body, tuple(found.headers or ()))
    assert isinstance(found, RouteDecision)
    route = found.route
    reply = found.reply
    if reply is not None:
        return ("route-reply", route.name if route else None, reply.status, reply.body,
                tuple(reply.headers or ()))
    assert route is not None and found.target is not None
    return (route.name, found.target.cluster, found.path, found.authority)


SIDECAR_REQUESTS: list[tuple[str, list[tuple[str, str]]]] = [
    ("/api/v2/books?debug=1", [("x-user", "ann"), ("x-team", "eng-a")]),
    ("/api/v2/books?debug=1", [("x-user", "ann"), ("x-team", "eng-a"), ("x-skip", "1")]),
    ("/api/v2/books?debug=0", [("x-user", "ann"), ("x-team", "eng-a")]),
    ("/FAULT/x", []),
    ("/old?q=1", []),
    ("/legacy/page", []),
    ("/tea", [("x-teapot", "yes")]),
    ("/v1/items?a=b", []),
    ("/anything", []),
]


def test_rebuilt_routes_decide_the_same() -> None:
    for snapshot in snapshots():
        again = rebuilt(snapshot)
        if snapshot.identity.mode == "sidecar":
            listener = next(lst for lst in snapshot.listeners if lst.direction == "outbound")
            requests = [(target, [("host", "reviews:9080"), *headers])
                        for target, headers in SIDECAR_REQUESTS]
            schemes = ["http"]
        else:
            listener = next(lst for lst in snapshot.listeners if lst.port == 443)
            requests = [("/reviews/x", [("host", "shop.example.com")]),
                        ("/other", [("host", "shop.example.com")])]
            schemes = ["https"]
        outcomes = [outcome(snapshot, listener, target, headers, scheme=scheme)
                    for target, headers in requests for scheme in schemes]
        assert outcomes == [outcome(again, listener, target, headers, scheme=scheme)
                            for target, headers in requests for scheme in schemes]
        if snapshot.identity.mode == "sidecar":  # and the requests took every kind of route
            assert [o[0] if o[0] != "route-reply" else o[1] for o in outcomes] == [
                "api.versioned", "", "", "faulty", "moved", "moved", "teapot", "prefix-rewrite",
                ""]
            assert outcomes[0][2:] == ("/v2/internal/books?debug=1", "reviews:9080")
            assert outcomes[4][2:] == (308, b"", (("location", "http://reviews.example/new?q=1"),))
            assert outcomes[6][2:4] == (418, b"short and stout")
            assert outcomes[7][2:] == ("/internal/items?a=b", "reviews.internal")
        else:
            assert outcomes[0][0] == "" and outcomes[0][2] == "/shop/x"


def test_the_compiled_policies_are_what_the_api_said() -> None:
    mesh, _ = snapshots()
    table = mesh.outbound_table(9080)
    assert table is not None
    vhost = table.find("reviews")
    assert vhost is not None
    by_name = {route.name: route for route in vhost.routes}
    api = by_name["api.versioned"].action
    assert isinstance(api, RouteAction)
    assert api.retries is not None and api.retries.attempts == 3
    assert api.retries.retry_on == "5xx,reset,503" and api.retries.per_try_timeout == 2.0
    faulty = by_name["faulty"].action
    assert isinstance(faulty, RouteAction) and faulty.fault is not None
    assert (faulty.fault.delay, faulty.fault.delay_per_million) == (1.0, 500_000)
    assert (faulty.fault.abort_status, faulty.fault.abort_per_million) == (503, 100_000)
    assert isinstance(by_name["moved"].action, Redirect)
    assert isinstance(by_name["teapot"].action, DirectResponse)
    cluster: Cluster = mesh.clusters["outbound|9080|v1|reviews.default.svc.cluster.local"]
    policy = cluster.traffic_policy
    assert policy is not None and policy.outlier is not None
    assert policy.limits.max_connections == 100 and policy.limits.connect_timeout == 3.0
    assert policy.limits.tcp_keepalive is not None
    assert policy.limits.tcp_keepalive.to_dict() == {"probes": 3, "time": 60.0, "interval": 10.0}
    assert policy.locality is not None
    assert [(f.from_, f.to) for f in policy.locality.failover] == [("us-east", "us-west")]
    assert cluster.lb.hash is not None and cluster.lb.hash.kind == "cookie"
    v2 = mesh.clusters["outbound|9080|v2|reviews.default.svc.cluster.local"].traffic_policy
    assert v2 is not None and v2.locality is not None
    assert dict(v2.locality.distribute[0].to) == {"us-east/*": 80, "us-west/*": 20}
    assert v2.tls_mode == "ISTIO_MUTUAL"  # the rule's tls: the subset sets none
    assert v2.tls is not None and v2.tls.sni == "reviews.default.svc.cluster.local"
    assert any("loadBalancer.warmupDurationSecs" in str(f) for f in mesh.unenforced)
    assert (mesh.inbound_mtls.mode, dict(mesh.inbound_mtls.ports)) == ("STRICT", {8080: "DISABLE"})
    (patch,) = mesh.http_filter_patches
    assert patch.config["memory_level"] == 5


# -- imports: the proxy's side of the snapshot needs neither pydantic nor the api -------------

PLAIN_MODULES = (
    "remora.mesh.snapshot", "remora.mesh.filterpatch", "remora.mesh.frozen",
    "remora.policy.match", "remora.policy.retry", "remora.policy.fault", "remora.policy.lb",
    "remora.policy.headers", "remora.policy.cors", "remora.policy.rewrite",
    "remora.policy.redirect", "remora.policy.weighted", "remora.policy.circuit",
    "remora.policy.outlier", "remora.policy.locality", "remora.policy.hashring",
    "remora.policy.flags", "remora.policy.pathnorm",
)
# The HTTP filters' configs derive their errors from remora.api.errors' ConfigError, which is
# plain dataclasses over remora.errors: no pydantic, no api model.
FILTER_MODULES = ("remora.policy.compression", "remora.policy.httpcache")
# What `remora proxy --controlplane` loads to serve: of the api only the modules with neither
# models nor validation (the error type, the table of HTTP filters).
SERVING_MODULES = ("remora.cli.main", "remora.cli.proxy", "remora.proxy.process",
                   "remora.proxy.discovery", "remora.proxy.runtime", "remora.proxy.chain",
                   "remora.mesh.encoding")
PLAIN_API = {"remora.api", "remora.api.errors", "remora.api.networking",
             "remora.api.networking.httpfilters", "remora.api.finding",
             "remora.api.duration"}  # a pure parser (the proxy reads SECRET_TTL with it)


def imported_by(modules: tuple[str, ...]) -> list[str]:
    code = (f"import {', '.join(modules)}; import sys; "
            "print(sorted(m for m in sys.modules if m.startswith(('pydantic', 'yaml', "
            "'remora.api'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    found: list[str] = ast.literal_eval(done.stdout)
    return found


@pytest.mark.parametrize(("modules", "allowed"), [
    (PLAIN_MODULES, PLAIN_API),
    (FILTER_MODULES, {"remora.api", "remora.api.errors"}),
    (SERVING_MODULES, PLAIN_API),
])
def test_the_snapshot_modules_import_no_pydantic_and_no_api(
        modules: tuple[str, ...], allowed: set[str]) -> None:
    assert set(imported_by(modules)) <= allowed


def test_what_walks_refuses() -> None:
    """The walk above does refuse what is not plain (so the tests above can fail)."""
    bad: list[Callable[[], Any]] = [lambda: None]
    for value in ([1], {"a": 1}, bad[0], object()):
        with pytest.raises(AssertionError):
            list(walk(value, "x"))
