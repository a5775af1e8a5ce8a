"""Istio CorsPolicy as Envoy's CORS filter applies it: preflight answers and response headers.

Istio (pilot/pkg/networking/core/route/route.go TranslateCORSPolicy): allowOrigins become Envoy
string matchers (the deprecated allowOrigin exact ones), the lists are joined with ",", maxAge is
whole seconds, unmatchedPreflights IGNORE sets forward_not_matching_preflights false (FORWARD
and unset: true). Envoy (extensions/filters/http/cors, CorsFilter): a request is a CORS request
when its non-empty Origin is allowed — a matcher that accepts "*" allows any origin — and the
Origin is echoed back; a preflight is OPTIONS with a non-empty Access-Control-Request-Method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from remora.policy.match import RequestAttributes, StringMatcher

if TYPE_CHECKING:
    from remora.api.networking.http_route import CorsPolicy

Header = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Cors:
    """A compiled CorsPolicy."""

    origins: tuple[StringMatcher, ...]
    any_origin: bool  # some matcher accepts "*"
    allow_methods: str
    allow_headers: str
    expose_headers: str
    max_age: str
    allow_credentials: bool
    forward_unmatched_preflights: bool

    @classmethod
    def from_api(cls, c: CorsPolicy) -> Cors:
        if c.allow_origins:
            origins = tuple(StringMatcher.from_api(m) for m in c.allow_origins)
        else:
            origins = tuple(StringMatcher("exact", origin) for origin in c.allow_origin)
        return cls(
            origins=origins,
            any_origin=any(m.matches("*") for m in origins),
            allow_methods=",".join(c.allow_methods),
            allow_headers=",".join(c.allow_headers),
            expose_headers=",".join(c.expose_headers),
            max_age=str(round(c.max_age)) if c.max_age is not None else "",
            allow_credentials=bool(c.allow_credentials),
            forward_unmatched_preflights=c.unmatched_preflights != "IGNORE",
        )

    def allows(self, origin: str) -> bool:
        """Envoy isOriginAllowed: a matcher accepts "*" or the origin."""
        if self.any_origin:
            return True
        for matcher in self.origins:  # noqa: SIM110 - hot path: a loop beats any()
            if matcher.matches(origin):
                return True
        return False

    def preflight(self, req: RequestAttributes) -> list[Header] | None:
        """Headers of the 200 answer to a preflight; None = not answered here, forward it.

        An unmatched preflight under unmatchedPreflights IGNORE gets [] (a bare 200).
        """
        origin = req.headers.get("origin", "")
        if not origin or req.method != "OPTIONS":
            return None
        request_method = req.headers.get("access-control-request-method", "")
        if not request_method:
            return None
        if not self.allows(origin):
            return None if self.forward_unmatched_preflights else []
        headers = [("access-control-allow-origin", origin)]
        if self.allow_credentials:
            headers.append(("access-control-allow-credentials", "true"))
        if self.allow_methods:
            methods = request_method if self.allow_methods == "*" else self.allow_methods
            headers.append(("access-control-allow-methods", methods))
        if self.allow_headers == "*":
            if asked := req.headers.get("access-control-request-headers", ""):
                headers.append(("access-control-allow-headers", asked))
        elif self.allow_headers:
            headers.append(("access-control-allow-headers", self.allow_headers))
        if self.max_age:
            headers.append(("access-control-max-age", self.max_age))
        return headers

    def response_headers(self, req: RequestAttributes) -> list[Header]:
        """Headers to set on the upstream's response to a CORS request ([] for others)."""
        origin = req.headers.get("origin", "")
        if not origin or not self.allows(origin):
            return []
        headers = [("access-control-allow-origin", origin)]
        if self.allow_credentials:
            headers.append(("access-control-allow-credentials", "true"))
        if self.expose_headers:
            headers.append(("access-control-expose-headers", self.expose_headers))
        return headers
