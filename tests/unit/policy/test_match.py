"""Route matching tables.

Each table cites what it follows: Istio's HTTPMatchRequest reference
(istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPMatchRequest), Istio's
translation (pilot/pkg/networking/core/route/route.go TranslateRouteMatch) and Envoy's
RouteMatch / HeaderMatcher / QueryParameterMatcher (envoyproxy.io api-v3 route_components.proto).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remora.api.common import StringMatch
from remora.api.networking.http_route import HTTPMatchRequest
from remora.policy.match import (
    CATCH_ALL,
    RequestAttributes,
    RequestMatcher,
    StringMatcher,
    first_match,
    query_first_values,
    route_matches,
)


def request(
    path: str = "/",
    *,
    method: str = "GET",
    scheme: str = "http",
    authority: str = "reviews:9080",
    port: int = 9080,
    headers: dict[str, str] | None = None,
) -> RequestAttributes:
    return RequestAttributes(
        method=method,
        path=path,
        scheme=scheme,
        authority=authority,
        port=port,
        headers=headers or {},
    )


def matcher(spec: dict[str, Any]) -> RequestMatcher:
    return RequestMatcher.from_api(HTTPMatchRequest.model_validate(spec))


# Envoy StringMatcher: exact/prefix compare the whole value / its start; safe_regex must match
# the whole value (RE2); ignore_case applies to exact and prefix only.
STRING_CASES = [
    ({"exact": "v1"}, False, "v1", True),
    ({"exact": "v1"}, False, "v10", False),
    ({"exact": "v1"}, False, "V1", False),
    ({"exact": "v1"}, True, "V1", True),
    ({"prefix": "/api"}, False, "/api/x", True),
    ({"prefix": "/api"}, False, "/ap", False),
    ({"prefix": "/API"}, True, "/api/x", True),
    ({"regex": "v[0-9]+"}, False, "v12", True),
    ({"regex": "v[0-9]+"}, False, "xv12", False),  # full match, not search
    ({"regex": "v[0-9]+"}, False, "v12x", False),
    ({"regex": "v[0-9]+"}, True, "V12", False),  # ignore_case does not reach regex
    ({}, False, "", True),  # presence test: any value
]


@pytest.mark.parametrize(("spec", "ignore_case", "value", "expected"), STRING_CASES)
def test_string_matcher_follows_envoy_string_matcher(
    spec: dict[str, str], ignore_case: bool, value: str, expected: bool
) -> None:
    compiled = StringMatcher.from_api(StringMatch.model_validate(spec), ignore_case=ignore_case)
    assert compiled.matches(value) is expected


def test_string_matchers_compare_by_pattern_not_by_predicate() -> None:
    a = StringMatcher.from_api(StringMatch.model_validate({"prefix": "/a"}))
    b = StringMatcher.from_api(StringMatch.model_validate({"prefix": "/a"}))
    assert a == b
    assert a != StringMatcher.from_api(StringMatch.model_validate({"exact": "/a"}))


# Envoy RouteMatch: `path` (exact) and `safe_regex` match the :path once the query string is
# removed; `prefix` matches the beginning of :path; case_sensitive=false (Istio ignoreUriCase)
# affects prefix/path and is ignored for safe_regex.
URI_CASES = [
    ({"uri": {"exact": "/ratings"}}, "/ratings", True),
    ({"uri": {"exact": "/ratings"}}, "/ratings?id=1", True),
    ({"uri": {"exact": "/ratings"}}, "/ratings/1", False),
    ({"uri": {"exact": "/ratings"}}, "/Ratings", False),
    ({"uri": {"exact": "/ratings"}, "ignoreUriCase": True}, "/RATINGS?x=1", True),
    ({"uri": {"prefix": "/api"}}, "/api", True),
    ({"uri": {"prefix": "/api"}}, "/apiary", True),  # Istio prefix is not path-separated
    ({"uri": {"prefix": "/api"}}, "/API/v1", False),
    ({"uri": {"prefix": "/api"}, "ignoreUriCase": True}, "/API/v1", True),
    ({"uri": {"prefix": "/a?x"}}, "/a?x=1", True),  # prefix sees the query string too
    ({"uri": {"regex": "/items/[0-9]+"}}, "/items/42?full=1", True),
    ({"uri": {"regex": "/items/[0-9]+"}}, "/items/42/x", False),
    ({"uri": {"regex": "/items/[0-9]+"}}, "/v1/items/42", False),
    ({"uri": {"regex": "/items/[a-z]+"}, "ignoreUriCase": True}, "/items/ABC", False),
    ({}, "/anything?x", True),  # no uri: Envoy prefix "/"
    ({"uri": {}}, "/x", True),  # empty StringMatch: Istio leaves prefix "/"
]


@pytest.mark.parametrize(("spec", "path", "expected"), URI_CASES)
def test_uri_follows_envoy_path_specifiers(spec: dict[str, Any], path: str, expected: bool) -> None:
    assert matcher(spec).matches(request(path)) is expected


# Istio HTTPMatchRequest.headers: "header values ... exact, prefix, regex"; an empty StringMatch
# tests presence (route.go translateHeaderMatch -> present_match). withoutHeaders: Istio sets
# invert_match and treat_missing_header_as_empty (except presence tests), so a missing header
# satisfies `withoutHeaders: {x: {exact: v}}` and `withoutHeaders: {x: {}}`.
HEADER_CASES = [
    ({"headers": {"end-user": {"exact": "jason"}}}, {"end-user": "jason"}, True),
    ({"headers": {"end-user": {"exact": "jason"}}}, {"end-user": "Jason"}, False),
    ({"headers": {"end-user": {"exact": "jason"}}}, {}, False),
    ({"headers": {"end-user": {"prefix": "ja"}}}, {"end-user": "jason"}, True),
    ({"headers": {"end-user": {"regex": "j.*n"}}}, {"end-user": "jason"}, True),
    ({"headers": {"end-user": {"regex": "j.*n"}}}, {"end-user": "jasonx"}, False),
    ({"headers": {"x-canary": {}}}, {"x-canary": ""}, True),
    ({"headers": {"x-canary": {}}}, {}, False),
    ({"withoutHeaders": {"x-canary": {}}}, {}, True),
    ({"withoutHeaders": {"x-canary": {}}}, {"x-canary": "1"}, False),
    ({"withoutHeaders": {"x-canary": {"regex": "*"}}}, {"x-canary": "1"}, False),
    ({"withoutHeaders": {"x-canary": {"regex": "*"}}}, {}, True),
    ({"withoutHeaders": {"end-user": {"exact": "jason"}}}, {"end-user": "jason"}, False),
    ({"withoutHeaders": {"end-user": {"exact": "jason"}}}, {"end-user": "bob"}, True),
    ({"withoutHeaders": {"end-user": {"exact": "jason"}}}, {}, True),
    # missing is treated as "", which `.*` matches, so the inverted matcher does not
    ({"withoutHeaders": {"end-user": {"regex": ".*"}}}, {}, False),
    (
        {"headers": {"a": {"exact": "1"}}, "withoutHeaders": {"b": {}}},
        {"a": "1", "b": "2"},
        False,
    ),
    ({"headers": {"a": {"exact": "1"}}, "withoutHeaders": {"b": {}}}, {"a": "1"}, True),
]


@pytest.mark.parametrize(("spec", "headers", "expected"), HEADER_CASES)
def test_headers_follow_istio_translation(
    spec: dict[str, Any], headers: dict[str, str], expected: bool
) -> None:
    assert matcher(spec).matches(request(headers=headers)) is expected


# Istio HTTPMatchRequest.queryParams (route.go translateQueryParamMatch) over Envoy
# QueryParameterMatcher: the first value of the raw parameter; `?key` has the value "", so
# `exact: ""` matches it; `{}` / regex `*` test presence.
QUERY_CASES = [
    ({"queryParams": {"key": {"exact": "true"}}}, "/p?key=true", True),
    ({"queryParams": {"key": {"exact": "true"}}}, "/p?key=false", False),
    ({"queryParams": {"key": {"exact": "true"}}}, "/p", False),
    ({"queryParams": {"key": {"exact": ""}}}, "/p?key", True),
    ({"queryParams": {"key": {"exact": ""}}}, "/p?key=1", False),
    ({"queryParams": {"key": {"regex": "[0-9]+"}}}, "/p?key=123", True),
    ({"queryParams": {"key": {"regex": "[0-9]+"}}}, "/p?key=a123", False),
    ({"queryParams": {"key": {"prefix": "ab"}}}, "/p?key=abc", True),
    ({"queryParams": {"key": {}}}, "/p?other=1&key=", True),
    ({"queryParams": {"key": {}}}, "/p?other=1", False),
    ({"queryParams": {"key": {"exact": "1"}}}, "/p?key=1&key=2", True),  # first value
    ({"queryParams": {"key": {"exact": "2"}}}, "/p?key=1&key=2", False),
    ({"queryParams": {"key": {"exact": "a b"}}}, "/p?key=a%20b", False),  # not decoded
    ({"queryParams": {"a": {"exact": "1"}, "b": {"exact": "2"}}}, "/p?b=2&a=1", True),
    ({"queryParams": {"a": {"exact": "1"}, "b": {"exact": "2"}}}, "/p?b=3&a=1", False),
]


@pytest.mark.parametrize(("spec", "path", "expected"), QUERY_CASES)
def test_query_params_follow_envoy_query_parameter_matcher(
    spec: dict[str, Any], path: str, expected: bool
) -> None:
    assert matcher(spec).matches(request(path)) is expected


def test_query_parser_keeps_first_value_and_empty_values() -> None:
    assert query_first_values("/p?a=1&b&a=2&c=x=y") == {"a": "1", "b": "", "c": "x=y"}
    assert query_first_values("/p") == {}


# method/authority/scheme are Envoy header matchers on :method, :authority, :scheme;
# port: Istio only builds the rule into the route table of that listener port.
PSEUDO_CASES = [
    ({"method": {"exact": "POST"}}, {"method": "POST"}, True),
    ({"method": {"exact": "POST"}}, {"method": "GET"}, False),
    ({"method": {"regex": "GET|HEAD"}}, {"method": "HEAD"}, True),
    ({"authority": {"prefix": "reviews"}}, {"authority": "reviews.default:9080"}, True),
    ({"authority": {"exact": "reviews"}}, {"authority": "reviews:9080"}, False),
    ({"scheme": {"exact": "https"}}, {"scheme": "http"}, False),
    ({"scheme": {"exact": "https"}}, {"scheme": "https"}, True),
    ({"port": 9080}, {"port": 9080}, True),
    ({"port": 9080}, {"port": 8080}, False),
    ({"port": 0}, {"port": 8080}, True),  # 0 = unset
]


@pytest.mark.parametrize(("spec", "attributes", "expected"), PSEUDO_CASES)
def test_method_authority_scheme_port(
    spec: dict[str, Any], attributes: dict[str, Any], expected: bool
) -> None:
    assert matcher(spec).matches(request(**attributes)) is expected


def test_all_fields_of_a_block_must_hold() -> None:
    """Istio HTTPMatchRequest: "All conditions inside a single match block have AND semantics"."""
    both = matcher({"uri": {"prefix": "/api"}, "method": {"exact": "GET"}})
    assert both.matches(request("/api/x", method="GET"))
    assert not both.matches(request("/api/x", method="POST"))
    assert not both.matches(request("/web", method="GET"))


def test_blocks_or_together_and_first_match_is_returned() -> None:
    """Istio HTTPRoute.match: "the list of match blocks has OR semantics"."""
    blocks = [
        matcher({"name": "api", "uri": {"prefix": "/api"}}),
        matcher({"name": "get", "method": {"exact": "GET"}}),
    ]
    assert route_matches(blocks, request("/web", method="GET"))
    assert not route_matches(blocks, request("/web", method="POST"))
    found = first_match(blocks, request("/api/x", method="GET"))
    assert found is not None and found.name == "api"
    found = first_match(blocks, request("/web", method="GET"))
    assert found is not None and found.name == "get"
    assert first_match(blocks, request("/web", method="POST")) is None


def test_no_blocks_matches_everything() -> None:
    assert route_matches([], request("/anything", method="DELETE"))
    assert first_match([], request("/x")) is CATCH_ALL


def test_match_keeps_its_name_and_path_kind() -> None:
    m = matcher({"name": "v2", "uri": {"regex": "/v2/.*"}})
    assert (m.name, m.path_kind, m.path_pattern) == ("v2", "regex", "/v2/.*")
    assert matcher({}).name == ""
    assert (matcher({}).path_kind, matcher({}).path_pattern) == ("prefix", "/")


def test_matched_length_is_the_prefix_or_the_whole_path() -> None:
    """Envoy prefix_rewrite replaces the matched prefix, or the path (no query) for path/regex."""
    assert matcher({"uri": {"prefix": "/api"}}).matched_length("/api/x?y=1") == 4
    assert matcher({"uri": {"exact": "/a/b"}}).matched_length("/a/b?y=1") == 4
    assert matcher({"uri": {"regex": "/a.*"}}).matched_length("/a/bc?y=1") == 5


@given(prefix=st.text("/abcXYZ", min_size=1, max_size=6), rest=st.text("/abc?=&", max_size=8))
def test_prefix_matches_exactly_when_path_starts_with_it(prefix: str, rest: str) -> None:
    m = matcher({"uri": {"prefix": prefix}})
    assert m.matches(request(prefix + rest))
    other = "/q" + rest
    assert m.matches(request(other)) is other.startswith(prefix)
