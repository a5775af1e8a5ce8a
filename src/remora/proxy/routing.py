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

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
        if rest.startswith(":") and _is_port(rest[1:]):
            port = int(rest[1:])
    else:
        colon = authority.rfind(":")
        if colon >= 0 and _is_port(authority[colon + 1 :]):
            host, port = authority[:colon], int(authority[colon + 1 :])
    return host.lower(), port


def _is_port(text: str) -> bool:
    # ASCII digits only: str.isdigit() is true for "¹" too, which int() refuses
    return text.isascii() and text.isdigit()


class HeaderMap(Mapping[str, str]):
    """Header names to values, repeated headers joined with "," as Envoy's matchers see them;
    built on first use (most requests are routed without reading a header). While `asked` is
    a list, the names looked up are noted in it (None after a whole-map read: any may count)."""

    __slots__ = ("_headers", "_map", "asked")

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self._headers = headers
        self._map: dict[str, str] | None = None
        self.asked: list[str] | None = None

    def _built(self) -> dict[str, str]:
        found = self._map
        if found is None:
            found = self._map = {}
            for name, value in self._headers:
                if name in found:
                    found[name] = f"{found[name]},{value}"
                else:
                    found[name] = value
        return found

    def __getitem__(self, name: str) -> str:
        if self.asked is not None:
            self.asked.append(name)
        return self._built()[name]

    def get(self, name: str, default: Any = None) -> Any:
        if self.asked is not None:
            self.asked.append(name)
        return self._built().get(name, default)

    def __contains__(self, name: object) -> bool:
        if self.asked is not None:
            self.asked.append(str(name))
        return name in self._built()

    def __iter__(self) -> Iterator[str]:
        self.asked = None
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


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


@dataclass(frozen=True, slots=True)
class _Known:
    """What routing found for a request target: all but the weighted pick, drawn again for each
    request."""

    path: str  # normalized
    port: int
    route: Route | None
    reply: LocalReply | None
    rewritten: tuple[str, str] | None  # (path, authority) after the route's rewrite


@dataclass(slots=True)
class _ByHeaders:
    """The decisions for one target that depended on header values: by the values of every
    header name looked at so far for it (more names than one decision read: still exact)."""

    names: tuple[str, ...]
    known: dict[tuple[str | None, ...], _Known]


Memo = dict[tuple[int, str, str, str, str], "_Known | _ByHeaders"]
MEMO_SIZE = 4096  # targets remembered per snapshot; then it starts over
VARIANTS = 64  # header-value combinations remembered per target; then it starts over


def decide(
    snapshot: Snapshot,
    listener: Listener,
    head: RequestHead,
    *,
    scheme: str,
    rng: random.Random,
    memo: Memo | None = None,
    destination_port: int | None = None,
) -> LocalReply | RouteDecision:
    """Where this request goes, per the snapshot the request started with. A LocalReply: the
    request cannot be routed at all, and is answered before any filter runs. `memo` (one per
    snapshot) keeps what routing found for a target, method and authority (and the values of
    the headers the matches read), so a request like one before it is routed by lookups; the
    weighted pick is drawn anew each time. `destination_port`: the port a captured connection
    was dialled on (SO_ORIGINAL_DST), which picks the outbound route table as the port of
    Envoy's listener that the virtual outbound listener hands it to; else the authority's."""
    split = split_target(head, scheme=scheme)
    if split is None:
        return LocalReply(400, ResponseFlag.DPE, b"missing host header\n", details="missing_host")
    authority, sent_path = split
    headers = HeaderMap(head.headers)
    key = (destination_port or listener.port, scheme, head.method, authority, sent_path)
    entry = memo.get(key) if memo is not None else None
    known: _Known | None
    if entry is None or isinstance(entry, _Known):
        known = entry
    else:
        known = entry.known.get(tuple([headers.get(name) for name in entry.names]))
    if known is None:
        headers.asked = []
        found = _route(snapshot, listener, method=head.method, authority=authority,
                       sent_path=sent_path, headers=headers, scheme=scheme,
                       destination_port=destination_port)
        if isinstance(found, LocalReply):
            return found
        known = found
        asked, headers.asked = headers.asked, None
        if memo is not None and asked is not None:
            remember(memo, key, known, asked, headers)
    request = RequestAttributes(method=head.method, path=known.path, scheme=scheme,
                                authority=authority, port=known.port, headers=headers)
    route = known.route
    if known.reply is not None or route is None:
        return RouteDecision(route, request, reply=known.reply)
    action = route.action
    assert isinstance(action, RouteAction)
    target = action.clusters[action.choice.pick(rng)]
    path, authority = known.rewritten or (known.path, authority)
    return RouteDecision(route, request, target, path, authority)


def remember(memo: Memo, key: tuple[int, str, str, str, str], known: _Known, asked: list[str],
             headers: HeaderMap) -> None:
    """Keep a decision: by its target alone if no header was read, else by header values."""
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    entry = memo.get(key)
    if not asked and entry is None:
        memo[key] = known
        return
    names = tuple(dict.fromkeys([*(entry.names if isinstance(entry, _ByHeaders) else ()),
                                 *asked]))
    if not isinstance(entry, _ByHeaders) or entry.names != names or \
            len(entry.known) >= VARIANTS:
        entry = memo[key] = _ByHeaders(names, {})
    entry.known[tuple([headers.get(name) for name in names])] = known


def _route(snapshot: Snapshot, listener: Listener, *, method: str, authority: str,
           sent_path: str, headers: HeaderMap, scheme: str,
           destination_port: int | None) -> LocalReply | _Known:
    # Envoy normalizes the path before routing and every filter (MeshConfig pathNormalization);
    # the upstream gets the normalized path too.
    path = normalize_path(sent_path, snapshot.mesh.path_normalization)
    if path is None:
        return LocalReply(400, details="path_normalization_failed")
    host, port = split_authority(authority, scheme=scheme)
    if listener.direction == "outbound":
        port = destination_port or port
        table = snapshot.outbound_table(port)
    else:
        table = snapshot.route_tables.get(listener.route_table or "")
        port = listener.port
    vhost = table.find(host) if table is not None else None
    if vhost is None:
        return _Known(path, port, None, NO_ROUTE, None)
    if vhost.https_redirect and scheme == "http":
        location = f"https://{host}{path}"
        return _Known(path, port, None, LocalReply(
            301, headers=[("location", location)], details="https_redirect"), None)
    request = RequestAttributes(method=method, path=path, scheme=scheme, authority=authority,
                                port=port, headers=headers)
    found = first_route(vhost, request)
    if found is None:
        return _Known(path, port, None, NO_ROUTE, None)
    route, matched = found
    action = route.action
    if isinstance(action, Redirect):
        status, location = action.response(request, matched)
        return _Known(path, port, route, LocalReply(
            status, headers=[("location", location)], details="redirect"), None)
    if isinstance(action, DirectResponse):
        return _Known(path, port, route, LocalReply(
            action.status, body=action.body, details="direct_response"), None)
    assert isinstance(action, RouteAction)
    rewritten = None
    if action.rewrite is not None:
        rewritten = action.rewrite.apply(path=path, authority=authority)
    return _Known(path, port, route, None, rewritten)
