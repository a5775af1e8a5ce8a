"""Rewrite tables: Istio HTTPRewrite as Envoy applies it.

Istio (istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPRewrite): "uri:
rewrite the path (or the prefix) portion of the URI with this value. If the original URI was
matched based on prefix, the value provided in this field will replace the corresponding
matched prefix." Istio emits Envoy `prefix_rewrite` (route.go applyHTTPRouteDestination); Envoy
(route_components.proto RouteAction.prefix_rewrite / regex_rewrite) keeps the query string.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remora.api.networking.http_route import HTTPMatchRequest, HTTPRewrite
from remora.policy.match import RequestMatcher
from remora.policy.rewrite import RegexSubstitution, Rewrite, parse_substitution


def rewrite(spec: dict[str, Any], match: dict[str, Any] | None = None) -> Rewrite:
    matched = None
    if match is not None:
        matched = RequestMatcher.from_api(HTTPMatchRequest.model_validate(match))
    return Rewrite.from_api(HTTPRewrite.model_validate(spec), matched)


URI_CASES = [
    # prefix match: the matched prefix is swapped, the rest and the query stay
    ({"uri": "/v2"}, {"uri": {"prefix": "/v1"}}, "/v1/items?id=3", "/v2/items?id=3"),
    ({"uri": "/"}, {"uri": {"prefix": "/api/"}}, "/api/items", "/items"),
    # ignoreUriCase: Envoy replaces the matched characters whatever their case
    ({"uri": "/new"}, {"uri": {"prefix": "/old"}, "ignoreUriCase": True}, "/OLD/x", "/new/x"),
    # exact and regex matches: the whole path (without the query) is swapped
    ({"uri": "/ratings"}, {"uri": {"exact": "/reviews"}}, "/reviews?x=1", "/ratings?x=1"),
    ({"uri": "/r"}, {"uri": {"regex": "/items/[0-9]+"}}, "/items/42?a", "/r?a"),
    # no uri match is Envoy prefix "/": only the leading "/" is swapped (an Istio gotcha)
    ({"uri": "/v2"}, None, "/items", "/v2items"),
    ({"uri": "/v2/"}, {"headers": {"x": {"exact": "1"}}}, "/items?q", "/v2/items?q"),
]


@pytest.mark.parametrize(("spec", "match", "path", "expected"), URI_CASES)
def test_uri_rewrite_replaces_the_matched_part(
    spec: dict[str, Any], match: dict[str, Any] | None, path: str, expected: str
) -> None:
    assert rewrite(spec, match).apply(path=path, authority="a") == (expected, "a")


# Envoy RouteAction.regex_rewrite examples (route_components.proto): every match in the path
# (without query) is replaced; \N are capture groups.
REGEX_CASES = [
    ("^/service/([^/]+)(/.*)$", "\\2/instance/\\1", "/service/foo/v1/api", "/v1/api/instance/foo"),
    ("one", "two", "/xxx/one/yyy/one/zzz", "/xxx/two/yyy/two/zzz"),
    ("(?i)/xxx/", "/yyy/", "/aaa/XxX/bbb", "/aaa/yyy/bbb"),
    ("^/a", "/b", "/a/a?x=/a", "/b/a?x=/a"),  # ^ anchors at the start only; query untouched
    ("/v1/(.*)", "/\\1", "/v1/x?q=/v1/y", "/x?q=/v1/y"),
    ("nomatch", "x", "/p?nomatch", "/p?nomatch"),
    ("\\\\", "\\\\\\\\", "/a\\b", "/a\\\\b"),  # \\ in a substitution is one backslash
    ("(x)?y", "[\\1]", "/y", "/[]"),  # a group that did not take part is empty
]


@pytest.mark.parametrize(("pattern", "substitution", "path", "expected"), REGEX_CASES)
def test_uri_regex_rewrite_follows_envoy_regex_rewrite(
    pattern: str, substitution: str, path: str, expected: str
) -> None:
    spec = {"uriRegexRewrite": {"match": pattern, "rewrite": substitution}}
    assert rewrite(spec).apply(path=path, authority="h") == (expected, "h")


def test_global_replace_skips_an_empty_match_where_the_last_one_ended() -> None:
    """RE2::GlobalReplace("baaa", "a*", "X") gives "XbX" (Python's re.sub gives "XbXX")."""
    assert RegexSubstitution.compile("a*", "X").replace_all("baaa") == "XbX"
    assert RegexSubstitution.compile("", "-").replace_all("ab") == "-a-b-"


@pytest.mark.parametrize(
    ("substitution", "groups"),
    [("\\2", 1), ("\\n", 1), ("trailing\\", 0)],
)
def test_invalid_substitutions_are_refused(substitution: str, groups: int) -> None:
    """RE2::CheckRewriteString, which Envoy runs when it loads regex_rewrite."""
    with pytest.raises(ValueError):
        parse_substitution(substitution, groups=groups)


def test_authority_rewrite_replaces_the_host_and_keeps_the_path() -> None:
    """Istio rewrite.authority -> Envoy host_rewrite_literal."""
    assert rewrite({"authority": "ratings.prod"}).apply(path="/x?y", authority="r:80") == (
        "/x?y",
        "ratings.prod",
    )
    both = rewrite({"uri": "/b", "authority": "new"}, {"uri": {"prefix": "/a"}})
    assert both.apply(path="/a/1", authority="old") == ("/b/1", "new")


@given(
    prefix=st.text("abc/", min_size=1, max_size=5).map(lambda s: "/" + s),
    rest=st.text("abc/-", max_size=10),
    query=st.text("a=&b", max_size=6),
    new=st.text("xyz/", max_size=5).map(lambda s: "/" + s),
)
def test_prefix_rewrite_keeps_the_remainder_and_the_query(
    prefix: str, rest: str, query: str, new: str
) -> None:
    compiled = rewrite({"uri": new}, {"uri": {"prefix": prefix}})
    path, _ = compiled.apply(path=f"{prefix}{rest}?{query}", authority="a")
    assert path == f"{new}{rest}?{query}"
