"""The routing decision for one request (Envoy's cached route): from its head and a snapshot to
the route and upstream target, or to the reply the router filter gives instead. No I/O.

Envoy's order (life of a request): find the route table for the listener (sidecar outbound: the
one for the destination port), the virtual host by authority, the first route whose match
holds, then the weighted cluster. Nothing found → 404 with flag NR, which the router filter
sends after the filters before it ran. The path is normalized first (remora.policy.pathnorm),
as Envoy's connection manager does before routing and before any filter; a request it cannot
route at all (no authority, a path normalization refuses) is answered before the chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from remora.mesh.snapshot import RouteAction
from remora.policy.flags import ResponseFlag
from remora.policy.match import RequestAttributes
from remora.policy.pathnorm import normalize_path
from remora.policy.redirect import DirectResponse, Redirect
from remora.proxy.filter import LocalReply

if TYPE_CHECKING:
    import random

    from remora.mesh.snapshot import Listener, Route, Snapshot, VirtualHost, WeightedCluster
    from remora.policy.match import RequestMatcher
    from remora.proxy.codec.events import RequestHead

DEFAULT_PORTS = {"http": 80, "https": 443}
NO_ROUTE = LocalReply(404, ResponseFlag.NR, details="route_not_found")


@dataclass(slots=True)
class RouteDecision:
    """The route of a request and where it goes; `reply` when the router answers instead
    (no route: 404 NR; an HTTPS redirect; a redirect or direct response route)."""

    route: Route | None
    request: RequestAttributes | None
    target: WeightedCluster | None = None
    path: str = ""
    authority: str = ""
    reply: LocalReply | None = None


def split_target(head: RequestHead, *, scheme: str) -> tuple[str, str] | None:
    """(authority, path) of a request in origin form (Host header) or absolute form (what an
    `http_proxy` client sends; RFC 9112 §3.2.2: its authority replaces Host). None if unusable."""
    target = head.target
    if target.startswith("/"):
        for name, value in head.headers:
            if name == "host":
                return value, target
        return None
    lowered = target[:8].lower()
    for prefix in ("http://", "https://"):
        if lowered.startswith(prefix):
            rest = target[len(prefix) :]
            slash = rest.find("/")
            if slash < 0:
                query = rest.find("?")
                if query < 0:
                    return rest, "/"
                return rest[:query], "/" + rest[query:]
            return rest[:slash], rest[slash:]
    return None


def split_authority(authority: str, *, scheme: str) -> tuple[str, int]:
    """Host (lowercase, no port) and port of an authority, the scheme's port when absent."""
    host = authority
    port = DEFAULT_PORTS.get(scheme, 80)
    if authority.startswith("["):  # IPv6 literal
        end = authority.find("]")
        host = authority[: end + 1]
        rest = authority[end + 1 :]
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    else:
        colon = authority.rfind(":")
        if colon >= 0 and authority[colon + 1 :].isdigit():
            host, port = authority[:colon], int(authority[colon + 1 :])
    return host.lower(), port


def header_map(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Header names to values, repeated headers joined with "," as Envoy's matchers see them."""
    result: dict[str, str] = {}
    for name, value in headers:
        if name in result:
            result[name] = f"{result[name]},{value}"
        else:
            result[name] = value
    return result


def first_route(
    vhost: VirtualHost, request: RequestAttributes
) -> tuple[Route, RequestMatcher | None] | None:
    """The first route whose match blocks hold (VirtualService: first matching rule wins), and
    the block that matched (prefix rewrites need it)."""
    for route in vhost.routes:
        matchers = route.matchers
        if not matchers:
            return route, None
        for matcher in matchers:
            if matcher.matches(request):
                return route, matcher
    return None


def decide(
    snapshot: Snapshot,
    listener: Listener,
    head: RequestHead,
    *,
    scheme: str,
    rng: random.Random,
) -> LocalReply | RouteDecision:
    """Where this request goes, per the snapshot the request started with. A LocalReply: the
    request cannot be routed at all, and is answered before any filter runs."""
    split = split_target(head, scheme=scheme)
    if split is None:
        return LocalReply(400, ResponseFlag.DPE, b"missing host header\n", details="missing_host")
    authority, sent_path = split
    # Envoy normalizes the path before routing and every filter (MeshConfig pathNormalization);
    # the upstream gets the normalized path too.
    path = normalize_path(sent_path, snapshot.mesh.path_normalization)
    if path is None:
        return LocalReply(400, details="path_normalization_failed")
    host, port = split_authority(authority, scheme=scheme)
    if listener.direction == "outbound":
        table = snapshot.outbound_table(port)
    else:
        table = snapshot.route_tables.get(listener.route_table or "")
        port = listener.port
    vhost = table.find(host) if table is not None else None
    if vhost is None:
        return RouteDecision(None, None, reply=NO_ROUTE)
    request = RequestAttributes(
        method=head.method,
        path=path,
        scheme=scheme,
        authority=authority,
        port=port,
        headers=header_map(head.headers),
    )
    if vhost.https_redirect and scheme == "http":
        location = f"https://{host}{path}"
        return RouteDecision(None, request, reply=LocalReply(
            301, headers=[("location", location)], details="https_redirect"))
    found = first_route(vhost, request)
    if found is None:
        return RouteDecision(None, request, reply=NO_ROUTE)
    route, matched = found
    action = route.action
    if isinstance(action, Redirect):
        status, location = action.response(request, matched)
        return RouteDecision(route, request, reply=LocalReply(
            status, headers=[("location", location)], route=route, details="redirect"))
    if isinstance(action, DirectResponse):
        return RouteDecision(route, request, reply=LocalReply(
            action.status, body=action.body, route=route, details="direct_response"))
    assert isinstance(action, RouteAction)
    target = action.clusters[action.choice.pick(rng)]
    if action.rewrite is not None:
        path, authority = action.rewrite.apply(path=path, authority=authority)
    return RouteDecision(route, request, target, path, authority)
