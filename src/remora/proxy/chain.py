"""The filter chain of each listener kind, declared in one place and built once per snapshot.

Order, first to last on the way in (and last to first on the way out):

    client cert details inbound only: x-forwarded-client-cert (remora.proxy.filters.xfcc)
    header operations   VirtualService `headers` (remora.proxy.filters.headers: outermost,
                        so every response leaves through it, as Envoy finalizes them)
    metadata exchange   istio.metadata_exchange: who called, who answered
    fault               envoy.filters.http.fault: delays and aborts
    CORS                envoy.filters.http.cors: preflights, Access-Control-* headers
    mirror              the router's request mirror policy, fire and forget
    router              envoy.filters.http.router: upstream call, timeouts, retries, balancing

and in the log phase, once a request is over: istio.stats (Istio's standard metrics), then the
access log. The named HTTP filters (fault, CORS, router) are Istio's chain for the listener's
context (remora.api.networking.httpfilters); EnvoyFilter HTTP_FILTER patches that select the
proxy insert filters there (the compressor, the cache), or remove them, per context and port
(remora.mesh.envoyfilter). A chain holds only the filters its snapshot needs: without a route
that has a fault, no fault filter runs; without CORS policies, no CORS filter; with the access
log off, no access log filter. The metadata exchange, the router and the stats are always there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from remora.api.networking import httpfilters
from remora.errors import RemoraError
from remora.mesh.filterpatch import patch_http_filters
from remora.mesh.snapshot import RouteAction
from remora.policy.compression import CompressorConfig
from remora.policy.headers import HeaderOps
from remora.policy.httpcache import CacheConfig
from remora.proxy.clusters import ClusterTable
from remora.proxy.filter import HttpFilter
from remora.proxy.filters.accesslog import AccessLogFilter
from remora.proxy.filters.cache import Cache
from remora.proxy.filters.compressor import Compressor
from remora.proxy.filters.cors import Cors
from remora.proxy.filters.fault import FaultInjection
from remora.proxy.filters.headers import HeaderOperations
from remora.proxy.filters.mirror import Mirror
from remora.proxy.filters.peer import MetadataExchange
from remora.proxy.filters.router import Router
from remora.proxy.filters.stats import IstioStats
from remora.proxy.filters.xfcc import ClientCertDetails

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from remora.mesh.filterpatch import FilterEntry, HttpFilterPatch
    from remora.mesh.snapshot import Listener, Route, Snapshot
    from remora.proxy.codec.events import ResponseHead
    from remora.proxy.context import RequestContext
    from remora.proxy.env import ProxyEnv, ProxyOptions
    from remora.proxy.filter import HeadersResult

log = logging.getLogger("remora.proxy")

Direction = Literal["outbound", "inbound", "gateway"]
DIRECTIONS: tuple[Direction, ...] = ("outbound", "inbound", "gateway")
CONTEXTS: Mapping[str, httpfilters.Context] = {
    "outbound": "SIDECAR_OUTBOUND", "inbound": "SIDECAR_INBOUND", "gateway": "GATEWAY"}
NO_PORT = -1  # the chain of a context for ports no patch names

RequestHeadersPhase = tuple[tuple[int, "Callable[[RequestContext], HeadersResult]"], ...]
ResponseHeadersPhase = tuple[
    tuple[int, "Callable[[RequestContext, ResponseHead], HeadersResult]"], ...]
BodyPhase = tuple[tuple[int, "Callable[[RequestContext, bytes, bool], bytes]"], ...]


def _takes_part(item: HttpFilter, phase: str) -> bool:
    return getattr(type(item), phase) is not getattr(HttpFilter, phase)


class FilterChain:
    """The filters of one listener kind, and for each phase the ones that take part in it
    (with their place in the chain), in the order the phase runs them."""

    __slots__ = ("filters", "log", "request_body", "request_headers", "response_body",
                 "response_headers")

    def __init__(self, filters: tuple[HttpFilter, ...]) -> None:
        self.filters = filters
        indexed = list(enumerate(filters))
        self.request_headers: RequestHeadersPhase = tuple(
            (i, f.request_headers) for i, f in indexed if _takes_part(f, "request_headers"))
        self.request_body: BodyPhase = tuple(
            (i, f.request_body) for i, f in indexed if _takes_part(f, "request_body"))
        self.response_headers: ResponseHeadersPhase = tuple(
            (i, f.response_headers) for i, f in reversed(indexed)
            if _takes_part(f, "response_headers"))
        self.response_body: BodyPhase = tuple(
            (i, f.response_body) for i, f in reversed(indexed) if _takes_part(f, "response_body"))
        self.log = tuple(f.log for f in filters if _takes_part(f, "log"))

    @property
    def names(self) -> tuple[str, ...]:
        """The HTTP filters, as Envoy lists the connection manager's `http_filters` (what the
        connection manager does itself, such as XFCC, is none of them)."""
        return tuple(f.name for f in self.filters if f.http_filter)

    @property
    def router_index(self) -> int:
        """The router is last: what it answers itself passes every other filter on the way out."""
        return len(self.filters) - 1


@dataclass(frozen=True, slots=True)
class Needs:
    """Which route-level features a snapshot uses, so its chains hold only those filters."""

    header_operations: bool
    cors: bool
    fault: bool
    mirror: bool

    @classmethod
    def of(cls, snapshot: Snapshot) -> Needs:
        routes = list(_routes(snapshot))
        actions = [r.action for r in routes if isinstance(r.action, RouteAction)]
        return cls(
            header_operations=any(_has_header_operations(r) for r in routes),
            cors=any(r.cors is not None for r in routes),
            fault=any(a.fault is not None for a in actions),
            mirror=any(a.mirrors for a in actions),
        )


def _routes(snapshot: Snapshot) -> Iterator[Route]:
    for table in snapshot.route_tables.values():
        for vhost in table.virtual_hosts:
            yield from vhost.routes


def _has_header_operations(route: Route) -> bool:
    if route.request_headers is not HeaderOps.EMPTY or route.response_headers is not \
            HeaderOps.EMPTY:
        return True
    action = route.action
    return isinstance(action, RouteAction) and any(
        c.request_headers is not HeaderOps.EMPTY or c.response_headers is not HeaderOps.EMPTY
        for c in action.clusters)


def build_chain(env: ProxyEnv, direction: Direction, needs: Needs,
                entries: tuple[FilterEntry, ...]) -> FilterChain:
    """The chain of a listener kind, for a snapshot whose routes need `needs`; `entries` are
    its named HTTP filters after the EnvoyFilter patches (the router last)."""
    inbound = direction == "inbound"
    filters: list[HttpFilter] = [ClientCertDetails(env)] if inbound else []
    if needs.header_operations:
        filters.append(HeaderOperations())
    filters.append(MetadataExchange(env, inbound=inbound))
    for name, config in entries:
        filters.extend(_filter(env, name, config, needs=needs))
    # log phase only: their place before the router is Istio's, their order the log's
    filters.insert(len(filters) - 1, IstioStats(env, inbound=inbound))
    if env.access_log.enabled:
        filters.insert(len(filters) - 1, AccessLogFilter(env))
    return FilterChain(tuple(filters))


def _filter(env: ProxyEnv, name: str, config: Mapping[str, Any], *,
            needs: Needs) -> list[HttpFilter]:
    """The filter objects one chain entry becomes (none when the config does not need it)."""
    implementation = httpfilters.implementation_of(name, config)
    if implementation == httpfilters.FAULT:
        return [FaultInjection(env)] if needs.fault else []
    if implementation == httpfilters.CORS:
        return [Cors()] if needs.cors else []
    if implementation == httpfilters.ROUTER:
        return [*([Mirror(env)] if needs.mirror else []), Router(env)]
    try:  # validated when applied and compiled: a failure here is a bug, logged, not fatal
        if implementation in (httpfilters.COMPRESSOR, httpfilters.GZIP):
            return [Compressor(CompressorConfig.from_api(httpfilters.thaw(config),
                                                         filter_name=name))]
        if implementation == httpfilters.CACHE:
            return [Cache(CacheConfig.from_api(httpfilters.thaw(config)))]
    except (RemoraError, ValueError) as error:
        log.error("HTTP filter %s not built: %s", name, error)
        return []
    log.error("HTTP filter %s is not implemented: left out of the chain", name)
    return []


@dataclass(frozen=True, slots=True)
class ActiveConfig:
    """One snapshot as the proxy serves it: live cluster state and a chain per listener kind
    (and per port, for the ports EnvoyFilter patches name). Swapped in one assignment; a
    request keeps the one it started with."""

    tables: ClusterTable
    chains: Mapping[str, FilterChain]
    port_chains: Mapping[tuple[str, int], FilterChain]
    options: Mapping[int, ProxyOptions]  # by listener port: with its EnvoyFilter settings

    @property
    def snapshot(self) -> Snapshot:
        return self.tables.snapshot

    def chain(self, listener: Listener, port: int) -> FilterChain:
        """The chain for a request to `port` (outbound: its destination port) on `listener`."""
        chains = self.port_chains
        if chains:
            found = chains.get((listener.direction, chain_port(self.snapshot, listener, port)))
            if found is not None:
                return found
        return self.chains[listener.direction]


def chain_port(snapshot: Snapshot, listener: Listener, port: int) -> int:
    """The port an EnvoyFilter's match.listener.portNumber means: the destination port
    outbound, the app's container port inbound, the server port at a gateway."""
    if listener.direction == "inbound":
        identity = snapshot.identity
        return identity.container_port or identity.app_port or listener.port
    return port if listener.direction == "outbound" else listener.port


def activate(env: ProxyEnv, snapshot: Snapshot) -> ActiveConfig:
    needs = Needs.of(snapshot)
    patches = snapshot.http_filter_patches
    chains: dict[str, FilterChain] = {}
    port_chains: dict[tuple[str, int], FilterChain] = {}
    for direction in DIRECTIONS:
        context = CONTEXTS[direction]
        chains[direction] = _patched(env, direction, needs, context=context, port=NO_PORT,
                                     patches=patches)
        for port in sorted({p.port for p in patches if p.port is not None
                            and p.context in ("ANY", context)}):
            port_chains[direction, port] = _patched(env, direction, needs, context=context,
                                                    port=port, patches=patches)
    options = {listener.port: env.options.for_listener(listener.connection_manager)
               for listener in snapshot.listeners}
    return ActiveConfig(ClusterTable(snapshot, env.pools), chains, port_chains, options)


def _patched(env: ProxyEnv, direction: Direction, needs: Needs, *,
             context: httpfilters.Context, port: int,
             patches: tuple[HttpFilterPatch, ...]) -> FilterChain:
    patched = patch_http_filters(context, port, patches)
    for skipped in patched.not_applied:
        where = "" if port == NO_PORT else f" port {port}"
        env.log_once(logging.WARNING, f"{skipped.patch.source}: not applied to {context}{where}: "
                                      f"{skipped.reason}")
    return build_chain(env, direction, needs, patched.filters)
