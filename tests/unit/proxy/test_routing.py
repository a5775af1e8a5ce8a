"""routing.decide as a pure function: from a snapshot and a request head to the RouteDecision
(route, weighted target, forwarded path and authority) or the reply the router gives instead,
as Envoy picks its cached route (route table by port, virtual host by authority — short
names, ports, wildcards —, first matching route, then the weighted cluster)."""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remora.mesh.snapshot import PASSTHROUGH_CLUSTER, Snapshot
from remora.policy.flags import ResponseFlag
from remora.proxy.codec.events import RequestHead
from remora.proxy.filter import LocalReply
from remora.proxy.routing import Memo, RouteDecision, decide
from tests.unit.mesh import gateway, service, sidecar

REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"


def head(target: str, *, host: str | None = "reviews:9080", method: str = "GET",
         headers: Sequence[tuple[str, str]] = ()) -> RequestHead:
    fields = ([("host", host)] if host is not None else []) + list(headers)
    return RequestHead(method, target, fields, "1.1", True, False, False, None)


def route(snap: Snapshot, target: str, *, direction: str = "outbound", scheme: str = "http",
          rng: random.Random | None = None, memo: Memo | None = None,
          **kwargs: object) -> LocalReply | RouteDecision:
    listener = next(li for li in snap.listeners if li.direction == direction)
    return decide(snap, listener, head(target, **kwargs),  # type: ignore[arg-type]
                  scheme=scheme, rng=rng or random.Random(0), memo=memo)


def forwarded(decision: LocalReply | RouteDecision) -> RouteDecision:
    assert isinstance(decision, RouteDecision), decision
    assert decision.reply is None and decision.target is not None, decision
    return decision


def cluster_of(decision: LocalReply | RouteDecision) -> str:
    return forwarded(decision).target.cluster  # type: ignore[union-attr]


def virtual_service(http: str, *, hosts: str = "[reviews]", name: str = "reviews") -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
  hosts: {hosts}
  http:
{http}---
"""


WILDCARD = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild}
spec:
  hosts: ["*.example.com"]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 80, name: http, protocol: HTTP}]
---
"""
SUBSETS = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}},
            {name: v3, labels: {version: v3}}]
---
"""
PLAIN = sidecar(service("reviews") + WILDCARD)


# hosts and ports ------------------------------------------------------------------------------
@pytest.mark.parametrize("authority", [
    "reviews:9080",
    "reviews.default:9080",
    "reviews.default.svc:9080",
    "reviews.default.svc.cluster.local:9080",
    "REVIEWS.Default:9080",
])
def test_a_service_is_found_by_its_short_names_and_port(authority: str) -> None:
    """Istio's sidecar virtual host domains: the FQDN, its namespace-relative short forms,
    each with the port; a host's case does not matter."""
    assert cluster_of(route(PLAIN, "/", host=authority)) == REVIEWS


@pytest.mark.parametrize("authority", [
    "reviews",  # port 80: another route table
    "reviews:9999",
    "reviews.other:9080",  # another namespace
    "reviews.default.svc.cluster:9080",
])
def test_an_authority_no_service_answers_to_passes_through_under_allow_any(
        authority: str) -> None:
    assert cluster_of(route(PLAIN, "/", host=authority)) == PASSTHROUGH_CLUSTER


@pytest.mark.parametrize("authority", ["a.example.com", "a.b.example.com", "a.example.com:80"])
def test_a_wildcard_service_entry_matches_subdomains(authority: str) -> None:
    assert cluster_of(route(PLAIN, "/", host=authority)) == "outbound|80||*.example.com"


def test_a_wildcard_does_not_match_its_bare_domain() -> None:
    """"*.example.com" needs a label before ".example.com"."""
    assert cluster_of(route(PLAIN, "/", host="example.com")) == PASSTHROUGH_CLUSTER


def test_a_request_without_a_host_is_400_before_any_filter() -> None:
    decision = route(PLAIN, "/", host=None)
    assert isinstance(decision, LocalReply)
    assert (decision.status, decision.flag) == (400, ResponseFlag.DPE)


def test_a_gateway_routes_by_host_with_wildcards_and_404_nr_otherwise() -> None:
    """Gateway servers' hosts and the bound VirtualServices' hosts: `*.shop.example` matches
    any subdomain; an unknown host has no virtual host: 404, flag NR."""
    snap = gateway(service("front", "web", ports="[{name: http, port: 80}]") + """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front, namespace: istio-system}
spec:
  hosts: ["*.shop.example"]
  gateways: [public]
  http: [{route: [{destination: {host: front.web.svc.cluster.local, port: {number: 80}}}]}]
""", labels={"istio": "ingressgateway"})
    for host in ("www.shop.example", "a.b.shop.example:80"):
        assert cluster_of(route(snap, "/", direction="gateway", host=host)) == (
            "outbound|80||front.web.svc.cluster.local")
    for host in ("shop.example", "www.other.example"):
        decision = route(snap, "/", direction="gateway", host=host)
        assert isinstance(decision, RouteDecision) and decision.reply is not None
        assert (decision.reply.status, decision.reply.flag) == (404, ResponseFlag.NR)


# matching ------------------------------------------------------------------------------------
ORDERED = sidecar(service("reviews") + SUBSETS + virtual_service("""\
  - name: exact
    match: [{uri: {exact: /a/b}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: prefix
    match: [{uri: {prefix: /a}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: header
    match: [{headers: {x-version: {exact: v3}}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: posts
    match: [{method: {exact: POST}, uri: {prefix: /b}}, {uri: {regex: '/c[0-9]+'}}]
    route: [{destination: {host: reviews, subset: v1}}]
"""))


@pytest.mark.parametrize(("target", "kwargs", "name"), [
    ("/a/b", {}, "exact"),
    ("/a/b/c", {}, "prefix"),  # exact wants /a/b itself
    ("/a/b", {"headers": [("x-version", "v3")]}, "exact"),  # first match wins
    ("/z", {"headers": [("x-version", "v3")]}, "header"),
    ("/b/1", {"method": "POST"}, "posts"),
    ("/c42", {}, "posts"),  # the second match block of the rule
])
def test_the_first_matching_rule_wins(target: str, kwargs: dict[str, object],
                                      name: str) -> None:
    decision = forwarded(route(ORDERED, target, **kwargs))  # type: ignore[arg-type]
    assert decision.route is not None and decision.route.name == name


@pytest.mark.parametrize(("target", "kwargs"), [
    ("/b/1", {}),  # GET: the POST block does not hold
    ("/c", {}),
    ("/z", {"headers": [("x-version", "v2")]}),
])
def test_no_matching_rule_is_404_nr(target: str, kwargs: dict[str, object]) -> None:
    decision = route(ORDERED, target, **kwargs)  # type: ignore[arg-type]
    assert isinstance(decision, RouteDecision) and decision.reply is not None
    assert (decision.reply.status, decision.reply.flag) == (404, ResponseFlag.NR)


def test_the_memo_never_serves_a_header_dependent_decision_to_another_request() -> None:
    """A decision that read a header is not kept for the target alone: the next request
    without the header is routed on its own."""
    memo: Memo = {}
    with_header = forwarded(route(ORDERED, "/z", memo=memo, headers=[("x-version", "v3")]))
    assert with_header.route is not None and with_header.route.name == "header"
    without = route(ORDERED, "/z", memo=memo)
    assert isinstance(without, RouteDecision) and without.reply is not None
    assert without.reply.status == 404
    # and a memoized one still answers as before
    assert forwarded(route(ORDERED, "/a/b", memo=memo)).route.name == "exact"  # type: ignore
    assert forwarded(route(ORDERED, "/a/b", memo=memo)).route.name == "exact"  # type: ignore


# weighted destinations ------------------------------------------------------------------------
@functools.cache
def weighted(weights: tuple[int, ...]) -> Snapshot:
    destinations = "".join(
        f"    - destination: {{host: reviews, subset: v{i + 1}}}\n      weight: {w}\n"
        for i, w in enumerate(weights))
    return sidecar(service("reviews") + SUBSETS + virtual_service("  - route:\n" + destinations))


def shares(snap: Snapshot, draws: int, *, seed: int, memo: Memo | None = None
           ) -> Counter[str]:
    rng = random.Random(seed)
    return Counter(cluster_of(route(snap, "/", rng=rng, memo=memo)).split("|")[2]
                   for _ in range(draws))


def test_weighted_destinations_converge_to_their_weights() -> None:
    """HTTPRouteDestination.weight (Envoy weighted_clusters): 70/20/10 over 20 000 requests,
    with the weighted pick drawn anew for each request even when the route is memoized."""
    snap = weighted((70, 20, 10))
    counts = shares(snap, 20_000, seed=7, memo={})
    for subset, weight in (("v1", 70), ("v2", 20), ("v3", 10)):
        assert abs(counts[subset] / 20_000 - weight / 100) < 0.015, counts


def test_a_zero_weight_destination_gets_nothing() -> None:
    counts = shares(weighted((100, 0)), 2000, seed=1)
    assert set(counts) == {"v1"}


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 100), min_size=2, max_size=3), st.integers(0, 2**16))
def test_any_weights_converge_within_a_few_percent(weights: list[int], seed: int) -> None:
    snap = weighted(tuple(weights))
    counts = shares(snap, 2000, seed=seed, memo={})
    total = sum(weights)
    for i, weight in enumerate(weights):
        assert abs(counts[f"v{i + 1}"] / 2000 - weight / total) < 0.05, (weights, counts)


# rewrites and redirects -----------------------------------------------------------------------
REWRITES = sidecar(service("reviews") + virtual_service("""\
  - match: [{uri: {prefix: /api}}]
    rewrite: {uri: /v2, authority: backend.internal}
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /root/}}]
    rewrite: {uri: /}
    route: [{destination: {host: reviews}}]
  - match: [{uri: {regex: '^/service/[^/]+/.*$'}}]
    rewrite: {uriRegexRewrite: {match: '^/service/([^/]+)(/.*)$', rewrite: '\\2/instance/\\1'}}
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
"""))


@pytest.mark.parametrize(("target", "path", "authority"), [
    ("/api/users?id=1", "/v2/users?id=1", "backend.internal"),
    ("/api", "/v2", "backend.internal"),
    ("/apix", "/v2x", "backend.internal"),  # Envoy prefix_rewrite: the matched prefix only
    ("/root/a/b", "/a/b", "reviews:9080"),
    ("/service/foo/bar/baz", "/bar/baz/instance/foo", "reviews:9080"),
    ("/other", "/other", "reviews:9080"),
])
def test_prefix_and_regex_rewrites(target: str, path: str, authority: str) -> None:
    """HTTPRewrite uri (Envoy prefix_rewrite), authority (host_rewrite_literal) and
    uriRegexRewrite (regex_rewrite, RE2 substitution)."""
    decision = forwarded(route(REWRITES, target))
    assert (decision.path, decision.authority) == (path, authority)
    assert decision.request is not None
    assert decision.request.path == target  # matching saw the path as sent


def test_a_redirect_rule_answers_with_the_rewritten_location() -> None:
    snap = sidecar(service("reviews") + virtual_service("""\
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: new.example, redirectCode: 308}
  - route: [{destination: {host: reviews}}]
"""))
    decision = route(snap, "/old/page")
    assert isinstance(decision, RouteDecision) and decision.reply is not None
    assert decision.reply.status == 308
    assert decision.reply.headers == [("location", "http://new.example/new")]
    assert decision.target is None


HTTPS_REDIRECT = gateway(service("front", "web", ports="[{name: http, port: 80}]") + """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [shop.example]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front, namespace: istio-system}
spec:
  hosts: [shop.example]
  gateways: [public]
  http: [{route: [{destination: {host: front.web.svc.cluster.local, port: {number: 80}}}]}]
""", labels={"istio": "ingressgateway"})


def test_an_https_redirect_server_answers_301_to_the_https_url() -> None:
    """Gateway tls.httpsRedirect (Envoy require_tls ALL): 301 to https, path and query kept,
    before any route is chosen."""
    decision = route(HTTPS_REDIRECT, "/cart?item=1", direction="gateway", host="shop.example")
    assert isinstance(decision, RouteDecision) and decision.reply is not None
    assert decision.reply.status == 301
    assert decision.reply.headers == [("location", "https://shop.example/cart?item=1")]
    assert decision.target is None


def test_an_https_request_is_not_redirected() -> None:
    decision = route(HTTPS_REDIRECT, "/cart", direction="gateway", host="shop.example",
                     scheme="https")
    assert forwarded(decision).target.cluster == (  # type: ignore[union-attr]
        "outbound|80||front.web.svc.cluster.local")


# absolute-form targets ------------------------------------------------------------------------
@pytest.mark.parametrize(("target", "path"), [
    ("http://reviews:9080/r/1?x=y", "/r/1?x=y"),
    ("http://reviews:9080", "/"),
    ("http://reviews:9080?x=1", "/?x=1"),
    ("HTTP://reviews:9080/z", "/z"),
])
def test_an_absolute_form_target_is_routed_by_its_authority_and_path(
        target: str, path: str) -> None:
    """`curl -x proxy http://reviews:9080/r/1` sends the absolute form; RFC 9112 §3.2.2: its
    authority replaces Host, and the upstream gets the origin form."""
    decision = forwarded(route(PLAIN, target, host="ignored.example:1"))
    assert decision.target.cluster == REVIEWS  # type: ignore[union-attr]
    assert (decision.path, decision.authority) == (path, "reviews:9080")


def test_an_absolute_form_target_is_rewritten_like_any_other() -> None:
    decision = forwarded(route(REWRITES, "http://reviews:9080/api/x", host="other:1"))
    assert (decision.path, decision.authority) == ("/v2/x", "backend.internal")


def test_an_unusable_target_is_400() -> None:
    decision = route(PLAIN, "ftp://reviews:9080/x")
    assert isinstance(decision, LocalReply) and decision.status == 400
