"""Istio HTTPRewrite: the path and authority a route forwards with, as Envoy rewrites them.

Istio (pilot/pkg/networking/core/route/route.go applyHTTPRouteDestination) turns `rewrite.uri`
into Envoy `prefix_rewrite`, `uriRegexRewrite` into `regex_rewrite`, `authority` into
`host_rewrite_literal`. Envoy (RouteEntryImplBase::currentUrlPathAfterRewriteWithMatchedPath)
replaces the matched prefix — or the whole path sans query for exact/regex matches — and runs
regex_rewrite over the path without its query string (RE2::GlobalReplace); the query stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import re2

from remora.policy.match import CATCH_ALL, RequestMatcher, path_only

if TYPE_CHECKING:
    from remora.api.networking.http_route import HTTPRewrite

Template = tuple[str | int, ...]  # literal text and capture-group numbers


def parse_substitution(rewrite: str, *, groups: int) -> Template:
    """RE2 rewrite strings: `\\0`..`\\9` name groups, `\\\\` is a backslash, nothing else.

    Envoy checks this with RE2::CheckRewriteString when it loads the route; so do we.
    """
    parts: list[str | int] = []
    literal: list[str] = []
    chars = iter(rewrite)
    for char in chars:
        if char != "\\":
            literal.append(char)
            continue
        escaped = next(chars, "")
        if escaped == "\\":
            literal.append("\\")
        elif escaped.isdigit() and escaped.isascii():
            if int(escaped) > groups:
                raise ValueError(
                    f"rewrite {rewrite!r} uses group \\{escaped} but the pattern has {groups}"
                )
            if literal:
                parts.append("".join(literal))
                literal.clear()
            parts.append(int(escaped))
        else:
            raise ValueError(f"rewrite {rewrite!r}: '\\' must be followed by a digit or '\\'")
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


@dataclass(frozen=True, slots=True)
class RegexSubstitution:
    """Envoy RegexMatchAndSubstitute: every non-overlapping match replaced, as RE2 does it."""

    pattern: str
    template: Template
    compiled: Any = field(init=False, repr=False, compare=False)  # the RE2 pattern, compiled

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", re2.compile(self.pattern))

    @classmethod
    def compile(cls, pattern: str, rewrite: str) -> RegexSubstitution:
        """Raises ValueError for a substitution RE2 rejects (Envoy rejects the route)."""
        groups = re2.compile(pattern).groups
        return cls(pattern, parse_substitution(rewrite, groups=groups))

    def replace_all(self, text: str) -> str:
        """RE2::GlobalReplace: no empty match right where the previous match ended."""
        out: list[str] = []
        pos, last_end, end_of_text, count = 0, -1, len(text), 0
        while pos <= end_of_text:
            found = self.compiled.search(text, pos)
            if found is None:
                break
            start, stop = found.span()
            out.append(text[pos:start])
            if start == stop and start == last_end:
                out.append(text[start : start + 1])  # skip ahead one character
                pos = start + 1
                continue
            for part in self.template:
                out.append(part if isinstance(part, str) else (found.group(part) or ""))
            pos = last_end = stop
            count += 1
        if count == 0:
            return text
        out.append(text[pos:])
        return "".join(out)


def replace_prefix(path: str, matched: RequestMatcher, value: str) -> str:
    """Envoy prefix_rewrite: swap what the route matched (prefix, or path sans query)."""
    return value + path[matched.matched_length(path) :]


@dataclass(frozen=True, slots=True)
class Rewrite:
    """The rewrite of one route for one match block (Istio emits an Envoy route per block)."""

    uri: str | None  # prefix_rewrite
    regex: RegexSubstitution | None  # regex_rewrite
    authority: str | None  # host_rewrite_literal
    matched: RequestMatcher

    @classmethod
    def from_api(cls, rw: HTTPRewrite, matched: RequestMatcher | None) -> Rewrite:
        """`matched` is the match block the route was compiled for; None = no match block.

        Raises ValueError for a substitution RE2 rejects (Envoy rejects the route).
        """
        regex = None
        if rw.uri_regex_rewrite is not None:
            match, substitution = rw.uri_regex_rewrite.match, rw.uri_regex_rewrite.rewrite
            regex = RegexSubstitution.compile(match or "", substitution or "")
        return cls(
            uri=rw.uri or None,
            regex=regex,
            authority=rw.authority or None,
            matched=matched if matched is not None else CATCH_ALL,
        )

    def apply(self, *, path: str, authority: str) -> tuple[str, str]:
        """The (path, authority) to forward; the query string is always kept."""
        if self.uri is not None:
            path = replace_prefix(path, self.matched, self.uri)
        elif self.regex is not None:
            bare = path_only(path)
            path = self.regex.replace_all(bare) + path[len(bare) :]
        return path, self.authority if self.authority is not None else authority
