"""CORS tables: Istio CorsPolicy (istio.io virtual-service/#CorsPolicy) translated by Istio
(route.go TranslateCORSPolicy) and applied by Envoy's CORS filter (envoyproxy.io
configuration/http/http_filters/cors_filter; CorsFilter::decodeHeaders / encodeHeaders)."""

from __future__ import annotations

from typing import Any

import pytest

from remora.api.networking.http_route import CorsPolicy
from remora.policy.cors import Cors
from remora.policy.match import RequestAttributes

POLICY = {
    "allowOrigins": [{"exact": "https://example.com"}, {"regex": "https://.*\\.example\\.org"}],
    "allowMethods": ["POST", "GET"],
    "allowHeaders": ["x-foo", "content-type"],
    "exposeHeaders": ["x-bar"],
    "maxAge": "24h",
    "allowCredentials": True,
}


def cors(**changes: Any) -> Cors:
    return Cors.from_api(CorsPolicy.model_validate({**POLICY, **changes}))


def request(method: str = "GET", **headers: str) -> RequestAttributes:
    return RequestAttributes(
        method=method,
        path="/",
        scheme="http",
        authority="api",
        port=80,
        headers={name.replace("_", "-"): value for name, value in headers.items()},
    )


def preflight(origin: str, **headers: str) -> RequestAttributes:
    return request("OPTIONS", origin=origin, access_control_request_method="POST", **headers)


def test_matching_preflight_is_answered_with_the_policy() -> None:
    assert cors().preflight(preflight("https://example.com")) == [
        ("access-control-allow-origin", "https://example.com"),
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-methods", "POST,GET"),
        ("access-control-allow-headers", "x-foo,content-type"),
        ("access-control-max-age", "86400"),
    ]


def test_origin_is_echoed_for_regex_matches() -> None:
    answer = cors().preflight(preflight("https://shop.example.org"))
    assert answer is not None
    assert answer[0] == ("access-control-allow-origin", "https://shop.example.org")


@pytest.mark.parametrize(
    "req",
    [
        request("OPTIONS", access_control_request_method="POST"),  # no Origin
        request("OPTIONS", origin="", access_control_request_method="POST"),  # empty Origin
        request("OPTIONS", origin="https://example.com"),  # no Access-Control-Request-Method
        request("GET", origin="https://example.com", access_control_request_method="POST"),
    ],
)
def test_requests_that_are_not_preflights_are_forwarded(req: RequestAttributes) -> None:
    assert cors().preflight(req) is None


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ({}, None),
        ({"unmatchedPreflights": "FORWARD"}, None),
        ({"unmatchedPreflights": "IGNORE"}, []),
    ],
)
def test_unmatched_preflights_are_forwarded_unless_ignored(
    setting: dict[str, str], expected: list[tuple[str, str]] | None
) -> None:
    """Istio unmatchedPreflights: FORWARD (default) sends them upstream; IGNORE answers 200
    without CORS headers (Envoy forward_not_matching_preflights=false)."""
    assert cors(**setting).preflight(preflight("https://evil.example")) == expected


def test_a_matcher_accepting_star_allows_every_origin() -> None:
    """Envoy isOriginAllowed: `allow_origin->match("*") || allow_origin->match(origin)`."""
    star = cors(allowOrigins=[{"exact": "*"}])
    answer = star.preflight(preflight("https://anything.test"))
    assert answer is not None
    assert answer[0] == ("access-control-allow-origin", "https://anything.test")
    prefix_star = cors(allowOrigins=[{"prefix": "*"}])
    assert prefix_star.response_headers(request(origin="http://x"))


def test_deprecated_allow_origin_is_exact() -> None:
    old = Cors.from_api(CorsPolicy.model_validate({"allowOrigin": ["https://a.test"]}))
    assert old.allows("https://a.test")
    assert not old.allows("https://a.test.evil")


def test_no_allowed_origins_means_no_cors() -> None:
    none = Cors.from_api(CorsPolicy.model_validate({"allowMethods": ["GET"]}))
    assert none.preflight(preflight("https://example.com")) is None
    assert none.response_headers(request(origin="https://example.com")) == []


def test_optional_headers_are_left_out_when_unset() -> None:
    bare = Cors.from_api(CorsPolicy.model_validate({"allowOrigins": [{"exact": "https://a"}]}))
    assert bare.preflight(preflight("https://a")) == [("access-control-allow-origin", "https://a")]
    assert bare.response_headers(request(origin="https://a")) == [
        ("access-control-allow-origin", "https://a")
    ]


def test_actual_requests_get_origin_credentials_and_exposed_headers() -> None:
    assert cors().response_headers(request(origin="https://example.com")) == [
        ("access-control-allow-origin", "https://example.com"),
        ("access-control-allow-credentials", "true"),
        ("access-control-expose-headers", "x-bar"),
    ]
    assert cors().response_headers(request(origin="https://evil.example")) == []
    assert cors().response_headers(request()) == []


def test_star_methods_and_headers_echo_the_request() -> None:
    """Envoy CorsFilter: allow_methods "*" echoes Access-Control-Request-Method, allow_headers
    "*" echoes Access-Control-Request-Headers."""
    policy = Cors(
        origins=cors().origins,
        any_origin=False,
        allow_methods="*",
        allow_headers="*",
        expose_headers="",
        max_age="",
        allow_credentials=False,
        forward_unmatched_preflights=True,
    )
    answer = policy.preflight(
        preflight("https://example.com", access_control_request_headers="x-a,x-b")
    )
    assert answer == [
        ("access-control-allow-origin", "https://example.com"),
        ("access-control-allow-methods", "POST"),
        ("access-control-allow-headers", "x-a,x-b"),
    ]
