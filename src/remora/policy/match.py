"""Route matching: Istio HTTPMatchRequest compiled once into Envoy RouteMatch predicates.

Istio translates a match block into an Envoy RouteMatch (pilot/pkg/networking/core/route/route.go,
TranslateRouteMatch); these predicates follow what Envoy then does with it
(envoy route_components.proto RouteMatch, HeaderMatcher, QueryParameterMatcher):

- uri `exact` and `regex` see the path without its query string; `prefix` sees the whole :path;
  no `uri` is Envoy prefix "/". `ignoreUriCase` makes exact/prefix case-insensitive, not regex.
- an empty StringMatch (`{}`) or regex `*` is a presence test (present_match).
- `withoutHeaders` inverts each matcher and treats a missing header as "" (Istio sets
  treat_missing_header_as_empty), except presence tests, which become "absent".
- `queryParams` use the first value of the raw (not percent-decoded) query parameter.
- `method`, `authority`, `scheme` are matched like the :method, :authority, :scheme headers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import re2

if TYPE_CHECKING:  # only the from_api constructors read these
    from remora.api.common import StringMatch
    from remora.api.networking.http_route import HTTPMatchRequest

Predicate = Callable[[str], bool]
RequestPredicate = Callable[["RequestAttributes"], bool]
MatchKind = Literal["exact", "prefix", "regex", "present"]


@dataclass(slots=True)  # built per request: a frozen __init__ costs twice as much
class RequestAttributes:
    """What route matching sees of a request; the proxy builds it once per request."""

    method: str
    path: str  # full :path with the query string, e.g. "/a/b?x=1"
    scheme: str  # "http" | "https"
    authority: str  # Host / :authority as sent (may include ":port")
    port: int  # the destination port the request is for
    headers: Mapping[str, str]  # lowercase names; repeated headers joined with ","


def path_only(path: str) -> str:
    """The path without query string and fragment (Envoy PathUtil::removeQueryAndFragment)."""
    end = path.find("?")
    if end < 0:
        end = path.find("#")
    return path if end < 0 else path[:end]


_LITERAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-_")


def literal_prefix(pattern: str) -> str:
    """Text every full match of the RE2 `pattern` starts with ("" when unsure), so most
    non-matching values are refused by one startswith instead of a call into RE2."""
    if "|" in pattern:
        return ""
    end = 0
    while end < len(pattern) and pattern[end] in _LITERAL:
        end += 1
    if end < len(pattern) and pattern[end] in "?*{":
        end -= 1  # the last literal may repeat zero times
    return pattern[: max(end, 0)]


def _compile(kind: MatchKind, pattern: str, ignore_case: bool) -> Predicate:
    if kind == "present":
        return lambda value: True
    if kind == "regex":
        regex = re2.compile(pattern)  # Envoy safe_regex: the whole value must match
        prefix = literal_prefix(pattern)
        if prefix:
            return lambda value: value.startswith(prefix) and regex.fullmatch(value) is not None
        return lambda value: regex.fullmatch(value) is not None
    if ignore_case:
        lowered = pattern.lower()
        if kind == "exact":
            return lambda value: value.lower() == lowered
        size = len(lowered)
        return lambda value: value[:size].lower() == lowered
    if kind == "exact":
        return lambda value: value == pattern
    return lambda value: value.startswith(pattern)


@dataclass(frozen=True, slots=True)
class StringMatcher:
    """An Istio StringMatch compiled to a predicate; `matches` is that predicate."""

    kind: MatchKind
    pattern: str = ""
    ignore_case: bool = False  # exact/prefix only, as Envoy's StringMatcher.ignore_case
    matches: Predicate = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "matches", _compile(self.kind, self.pattern, self.ignore_case))

    @classmethod
    def from_api(cls, m: StringMatch, *, ignore_case: bool = False) -> StringMatcher:
        """`{}` and regex `*` are presence tests (Istio canBeConvertedToPresentMatch)."""
        if m.exact is not None:
            return cls("exact", m.exact, ignore_case)
        if m.prefix is not None:
            return cls("prefix", m.prefix, ignore_case)
        if m.regex is not None and m.regex != "*":
            return cls("regex", m.regex)
        return cls("present")


def query_first_values(path: str) -> dict[str, str]:
    """Envoy QueryParamsMulti::parseQueryString + getFirstValue: raw `k=v` pairs, `k` = ""."""
    start = path.find("?")
    params: dict[str, str] = {}
    if start < 0:
        return params
    end = path.find("#", start)
    for pair in path[start + 1 : end if end >= 0 else len(path)].split("&"):
        name, _, value = pair.partition("=")
        params.setdefault(name, value)
    return params


def _path_check(kind: MatchKind, pattern: str, ignore_case: bool) -> RequestPredicate:
    """Envoy path specifiers: prefix on the whole :path, exact/regex on the path alone."""
    test = _compile(kind, pattern, ignore_case)
    if kind == "prefix" and not ignore_case:
        return lambda req: req.path.startswith(pattern)
    if kind == "prefix":
        return lambda req: test(req.path)
    return lambda req: test(path_only(req.path))


def _header_check(name: str, matcher: StringMatcher, *, invert: bool) -> RequestPredicate:
    test = matcher.matches
    if matcher.kind == "present":
        if invert:
            return lambda req: name not in req.headers
        return lambda req: name in req.headers
    if invert:  # treat_missing_header_as_empty, then inverted
        return lambda req: not test(req.headers.get(name, ""))

    def check(req: RequestAttributes) -> bool:
        value = req.headers.get(name)
        return value is not None and test(value)

    return check


def _pseudo_check(attribute: str, matcher: StringMatcher) -> RequestPredicate:
    """:method / :authority / :scheme are always present, so `{}` always matches."""
    test = matcher.matches
    if attribute == "method":
        return lambda req: test(req.method)
    if attribute == "authority":
        return lambda req: test(req.authority)
    return lambda req: test(req.scheme)


def _query_check(matchers: tuple[tuple[str, StringMatcher], ...]) -> RequestPredicate:
    def check(req: RequestAttributes) -> bool:
        params = query_first_values(req.path)  # parsed only for rules that need it
        for name, matcher in matchers:
            value = params.get(name)
            if value is None or not matcher.matches(value):
                return False
        return True

    return check


def _all_of(checks: Sequence[RequestPredicate]) -> RequestPredicate:
    if len(checks) == 1:
        return checks[0]  # e.g. a uri prefix alone: one str.startswith

    def check(req: RequestAttributes) -> bool:
        for one in checks:  # noqa: SIM110 - hot path: a loop beats all() over a generator
            if not one(req):
                return False
        return True

    return check


Condition = tuple[str, StringMatcher]
"""A header, query parameter or pseudo-header name, and how its value is matched."""


@dataclass(frozen=True, slots=True)
class RequestMatcher:
    """One HTTPMatchRequest, compiled. The fields are the match spec as plain data (what the
    control plane sends); `matches(req)` is the predicate built from them once, in
    `__post_init__`.

    sourceLabels, sourceNamespace and gateways are not checked here: they select proxies, and
    the compiler applies them per proxy (Istio sourceMatchHTTP).
    """

    name: str = ""
    path_kind: MatchKind = "prefix"  # how the uri is matched; no uri = prefix "/"
    path_pattern: str = "/"
    ignore_uri_case: bool = False
    port: int = 0  # 0 = any port
    pseudo_headers: tuple[Condition, ...] = ()  # ("method" | "authority" | "scheme", matcher)
    headers: tuple[Condition, ...] = ()  # sorted by name
    without_headers: tuple[Condition, ...] = ()  # each inverted (Istio withoutHeaders)
    query_params: tuple[Condition, ...] = ()
    matches: RequestPredicate = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        checks = [_path_check(self.path_kind, self.path_pattern, self.ignore_uri_case)]
        if self.port:  # Istio builds routes per listener port; a rule for another port is dropped
            port = self.port
            checks.append(lambda req: req.port == port)
        checks.extend(_pseudo_check(attribute, matcher)
                      for attribute, matcher in self.pseudo_headers)  # fmt: skip
        checks.extend(_header_check(header, matcher, invert=False)
                      for header, matcher in self.headers)  # fmt: skip
        checks.extend(_header_check(header, matcher, invert=True)
                      for header, matcher in self.without_headers)  # fmt: skip
        if self.query_params:
            checks.append(_query_check(self.query_params))
        object.__setattr__(self, "matches", _all_of(checks))

    def __repr__(self) -> str:
        return f"RequestMatcher(name={self.name!r}, {self.path_kind}={self.path_pattern!r})"

    @classmethod
    def from_api(cls, m: HTTPMatchRequest) -> RequestMatcher:
        uri = StringMatcher.from_api(m.uri) if m.uri is not None else None
        kind: MatchKind
        if uri is None or uri.kind == "present":
            kind, pattern = "prefix", "/"  # Istio: no uri match is Envoy prefix "/"
        else:
            kind, pattern = uri.kind, uri.pattern
        pseudo: list[Condition] = []
        for attribute in ("method", "authority", "scheme"):
            value: StringMatch | None = getattr(m, attribute)
            if value is not None:
                pseudo.append((attribute, StringMatcher.from_api(value)))
        return cls(
            name=m.name or "",
            path_kind=kind,
            path_pattern=pattern,
            ignore_uri_case=bool(m.ignore_uri_case) and kind != "regex",
            port=m.port or 0,
            pseudo_headers=tuple(pseudo),
            headers=_conditions(m.headers),
            without_headers=_conditions(m.without_headers),
            query_params=_conditions(m.query_params),
        )

    def matched_length(self, path: str) -> int:
        """How much of `path` a prefix rewrite replaces: the prefix, else the path sans query."""
        if self.path_kind == "prefix":
            return len(self.path_pattern)
        return len(path_only(path))


def _conditions(matches: Mapping[str, StringMatch]) -> tuple[Condition, ...]:
    return tuple((name, StringMatcher.from_api(value)) for name, value in sorted(matches.items()))


CATCH_ALL = RequestMatcher()
"""What a rule without `match` compiles to in Istio: Envoy prefix "/"."""


def first_match(
    matchers: Sequence[RequestMatcher], req: RequestAttributes
) -> RequestMatcher | None:
    """The first match block `req` satisfies; no blocks = CATCH_ALL; None = no match."""
    if not matchers:
        return CATCH_ALL
    for matcher in matchers:
        if matcher.matches(req):
            return matcher
    return None


def route_matches(matchers: Sequence[RequestMatcher], req: RequestAttributes) -> bool:
    """Whether a rule applies: its match blocks OR together; no blocks match everything."""
    if not matchers:
        return True
    for matcher in matchers:  # noqa: SIM110 - hot path: a loop beats any() over a generator
        if matcher.matches(req):
            return True
    return False
