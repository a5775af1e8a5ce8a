"""Istio HTTPRedirect and HTTPDirectResponse: the answers a route gives without an upstream.

Istio builds an Envoy RedirectAction (pilot/pkg/networking/core/route/route.go ApplyRedirect):
uri -> path_redirect, authority -> host_redirect, scheme -> scheme_redirect, port / derivePort
FROM_REQUEST_PORT -> port_redirect (the listener port) but never an explicit :80 for http or
:443 for https, prefixRewrite -> prefix_rewrite. Envoy then builds Location
(RouteEntryImplBase::newUri): the request's query string is kept (strip_query is false) unless
path_redirect carries its own, and the request's port is kept unless a port is set or the scheme
changes away from the request's default port.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from remora.policy.match import CATCH_ALL, RequestAttributes, RequestMatcher
from remora.policy.rewrite import replace_prefix

if TYPE_CHECKING:
    from remora.api.networking.http_route import HTTPDirectResponse, HTTPRedirect

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})  # Envoy RedirectResponseCode
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def _host_for(authority: str, *, new_scheme: str, new_port: str, request_scheme: str) -> str:
    """Envoy processRequestHost: drop the request's port when a port is set, or when the
    scheme changes and the port was the default of the request's scheme."""
    if not authority:
        return authority
    if authority.startswith("["):  # IPv6 literal
        end = authority.rfind("]:")
        end = end + 1 if end >= 0 else -1
    else:
        end = authority.rfind(":")
    if end < 0:
        return authority
    remove = bool(new_port) or (
        new_scheme != request_scheme and _DEFAULT_PORTS.get(request_scheme) == authority[end:]
    )
    return authority[:end] if remove else authority


@dataclass(frozen=True, slots=True)
class Redirect:
    """A compiled HTTPRedirect; `response` gives (status, Location)."""

    status: int
    scheme: str | None
    authority: str | None
    port: int | None  # explicit port
    from_request_port: bool  # derivePort: FROM_REQUEST_PORT
    uri: str | None
    prefix_rewrite: str | None

    @classmethod
    def from_api(cls, r: HTTPRedirect) -> Redirect:
        """Raises ValueError for codes Envoy cannot send (Istio then drops the route action)."""
        if r.status not in REDIRECT_CODES:
            raise ValueError(f"redirect code {r.status} is not supported: use 301, 302, 303, "
                             "307 or 308")  # fmt: skip
        return cls(
            status=r.status,
            scheme=r.scheme or None,
            authority=r.authority or None,
            port=r.port or None,
            from_request_port=r.derive_port == "FROM_REQUEST_PORT",
            uri=r.uri or None,
            prefix_rewrite=r.prefix_rewrite or None,
        )

    def _port(self, req: RequestAttributes, scheme: str) -> str:
        port = req.port if self.from_request_port else self.port
        if not port or _DEFAULT_PORTS.get(scheme) == f":{port}":
            return ""
        return f":{port}"

    def _path(self, req: RequestAttributes, matched: RequestMatcher | None) -> str:
        if self.uri is not None:
            if "?" in self.uri:
                return self.uri  # path_redirect's own query wins
            query_at = req.path.find("?")
            return self.uri if query_at < 0 else self.uri + req.path[query_at:]
        if self.prefix_rewrite is not None:
            return replace_prefix(req.path, matched or CATCH_ALL, self.prefix_rewrite)
        return req.path

    def response(self, req: RequestAttributes, matched: RequestMatcher | None) -> tuple[int, str]:
        """(status, Location); `matched` = the match block that selected the route."""
        scheme = self.scheme or req.scheme
        port = self._port(req, scheme)
        host = self.authority or _host_for(
            req.authority, new_scheme=scheme, new_port=port, request_scheme=req.scheme
        )
        path = self._path(req, matched)
        if not path.startswith("/"):
            path = "/" + path
        return self.status, f"{scheme}://{host}{port}{path}"


@dataclass(frozen=True, slots=True)
class DirectResponse:
    """Istio HTTPDirectResponse -> Envoy direct_response: a status and a fixed body."""

    status: int
    body: bytes = b""

    @classmethod
    def from_api(cls, d: HTTPDirectResponse) -> DirectResponse:
        return cls(d.status, d.body.content if d.body is not None else b"")
