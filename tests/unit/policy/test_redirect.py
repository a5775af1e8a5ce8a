"""Redirect and direct-response tables.

Istio HTTPRedirect (istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPRedirect)
as Istio emits it (route.go ApplyRedirect: no explicit :80/:443, FROM_REQUEST_PORT = the listener
port) and Envoy answers it (route_components.proto RedirectAction; RouteEntryImplBase::newUri:
strip_query defaults to false, a query in path_redirect wins, processRequestHost).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from remora.api.networking.http_route import HTTPDirectResponse, HTTPMatchRequest, HTTPRedirect
from remora.policy.match import RequestAttributes, RequestMatcher
from remora.policy.redirect import DirectResponse, Redirect


def request(
    path: str = "/", *, authority: str = "reviews:9080", scheme: str = "http", port: int = 9080
) -> RequestAttributes:
    return RequestAttributes(
        method="GET", path=path, scheme=scheme, authority=authority, port=port, headers={}
    )


REDIRECT_CASES: list[tuple[dict[str, Any], RequestAttributes, tuple[int, str]]] = [
    # uri replaces the path; the request's query is kept (strip_query false)
    ({"uri": "/v1/bookRatings"}, request("/v1/getProductRatings?id=3"),
     (301, "http://reviews:9080/v1/bookRatings?id=3")),
    # a query in uri replaces the request's query
    ({"uri": "/new?a=1"}, request("/old?b=2"), (301, "http://reviews:9080/new?a=1")),
    # Envoy prepends "/" to a path_redirect without one
    ({"uri": "relative"}, request("/x"), (301, "http://reviews:9080/relative")),
    # authority replaces host and port; path and query kept
    ({"authority": "newratings.default.svc.cluster.local"}, request("/r?x"),
     (301, "http://newratings.default.svc.cluster.local/r?x")),
    # redirectCode
    ({"uri": "/b", "redirectCode": 308}, request("/a"), (308, "http://reviews:9080/b")),
    ({"uri": "/b", "redirectCode": 302}, request("/a"), (302, "http://reviews:9080/b")),
    # scheme change drops the request's default port, keeps any other port
    ({"scheme": "https"}, request("/a", authority="shop.example:80"),
     (301, "https://shop.example/a")),
    ({"scheme": "https"}, request("/a", authority="shop.example:8080"),
     (301, "https://shop.example:8080/a")),
    ({"scheme": "https"}, request("/a", authority="shop.example"), (301, "https://shop.example/a")),
    # explicit port replaces the request's; http:80 / https:443 are never written
    ({"port": 8443, "scheme": "https"}, request("/a", authority="shop.example:80"),
     (301, "https://shop.example:8443/a")),
    ({"port": 443, "scheme": "https"}, request("/a", authority="shop.example:80"),
     (301, "https://shop.example/a")),
    ({"authority": "b.example", "port": 8080}, request("/a"), (301, "http://b.example:8080/a")),
    ({"authority": "b.example", "port": 80}, request("/a"), (301, "http://b.example/a")),
    # Istio drops port 80 for http entirely, so Envoy keeps the request's own port
    ({"port": 80}, request("/a", authority="shop.example:8080"),
     (301, "http://shop.example:8080/a")),
    # derivePort
    ({"scheme": "https", "derivePort": "FROM_PROTOCOL_DEFAULT"},
     request("/a", authority="shop.example:80", port=80), (301, "https://shop.example/a")),
    ({"authority": "b.example", "derivePort": "FROM_REQUEST_PORT"},
     request("/a", authority="a.example:9080", port=9080), (301, "http://b.example:9080/a")),
    # ... and the port Istio dropped (443 for https) leaves the Host's own port in place
    ({"scheme": "https", "derivePort": "FROM_REQUEST_PORT"},
     request("/a", authority="a.example:443", port=443, scheme="https"),
     (301, "https://a.example:443/a")),
    # IPv6 literal hosts keep their brackets
    ({"scheme": "https"}, request("/a", authority="[::1]:80"), (301, "https://[::1]/a")),
    # the scheme of the request is kept when none is set
    ({"uri": "/b"}, request("/a", authority="s.example", scheme="https"),
     (301, "https://s.example/b")),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "req", "expected"), REDIRECT_CASES)
def test_redirect_location_follows_envoy_redirect_action(
    spec: dict[str, Any], req: RequestAttributes, expected: tuple[int, str]
) -> None:
    redirect = Redirect.from_api(HTTPRedirect.model_validate(spec))
    assert redirect.response(req, None) == expected


def test_prefix_rewrite_swaps_the_matched_prefix_and_keeps_the_query() -> None:
    """Envoy RedirectAction.prefix_rewrite: "the matched prefix (or path) should be swapped"."""
    matched = RequestMatcher.from_api(HTTPMatchRequest.model_validate({"uri": {"prefix": "/old"}}))
    redirect = Redirect.from_api(HTTPRedirect.model_validate({"prefixRewrite": "/new"}))
    assert redirect.response(request("/old/page?x=1"), matched) == (
        301,
        "http://reviews:9080/new/page?x=1",
    )


def test_unsupported_redirect_codes_are_refused() -> None:
    """Istio ApplyRedirect only maps 301, 302, 303, 307, 308 ("not yet supported" otherwise)."""
    with pytest.raises(ValueError, match="300"):
        Redirect.from_api(HTTPRedirect.model_validate({"uri": "/x", "redirectCode": 300}))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"status": 503}, DirectResponse(503, b"")),
        ({"status": 200, "body": {"string": "ok\n"}}, DirectResponse(200, b"ok\n")),
        (
            {"status": 418, "body": {"bytes": base64.b64encode(b"\x00\xff").decode()}},
            DirectResponse(418, b"\x00\xff"),
        ),
    ],
)
def test_direct_response_body_from_string_or_base64_bytes(
    spec: dict[str, Any], expected: DirectResponse
) -> None:
    """Istio HTTPDirectResponse: body `string` or `bytes` (base64 in YAML)."""
    assert DirectResponse.from_api(HTTPDirectResponse.model_validate(spec)) == expected
