"""The filter chain of each listener kind, declared in one place and built once per snapshot.

Order, first to last on the way in (and last to first on the way out):

    header operations   VirtualService `headers` (remora.proxy.filters.headers: outermost,
                        so every response leaves through it, as Envoy finalizes them)
    metadata exchange   istio.metadata_exchange: who called, who answered
    CORS                envoy.filters.http.cors: preflights, Access-Control-* headers
    fault               envoy.filters.http.fault: delays and aborts
    mirror              the router's request mirror policy, fire and forget
    router              envoy.filters.http.router: upstream call, timeouts, retries, balancing

and in the log phase, once a request is over: istio.stats (Istio's standard metrics), then the
access log. A chain holds only the filters its snapshot needs: without a route that has a
fault, no fault filter runs; without CORS policies, no CORS filter; with the access log off, no
access log filter. The metadata exchange, the router and the stats are always there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from remora.mesh.snapshot import RouteAction
from remora.policy.headers import HeaderOps
from remora.proxy.clusters import ClusterTable
from remora.proxy.filter import HttpFilter
from remora.proxy.filters.accesslog import AccessLogFilter
from remora.proxy.filters.cors import Cors
from remora.proxy.filters.fault import FaultInjection
from remora.proxy.filters.headers import HeaderOperations
from remora.proxy.filters.mirror import Mirror
from remora.proxy.filters.peer import MetadataExchange
from remora.proxy.filters.router import Router
from remora.proxy.filters.stats import IstioStats

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from remora.mesh.snapshot import Route, Snapshot
    from remora.proxy.codec.events import ResponseHead
    from remora.proxy.context import RequestContext
    from remora.proxy.env import ProxyEnv
    from remora.proxy.filter import HeadersResult

Direction = Literal["outbound", "inbound", "gateway"]
DIRECTIONS: tuple[Direction, ...] = ("outbound", "inbound", "gateway")

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
        return tuple(f.name for f in self.filters)

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


def build_chain(env: ProxyEnv, direction: Direction, needs: Needs) -> FilterChain:
    """The chain of a listener kind, for a snapshot whose routes need `needs`."""
    inbound = direction == "inbound"
    filters: list[HttpFilter] = []
    if needs.header_operations:
        filters.append(HeaderOperations())
    filters.append(MetadataExchange(env, inbound=inbound))
    if needs.cors:
        filters.append(Cors())
    if needs.fault:
        filters.append(FaultInjection(env))
    if needs.mirror:
        filters.append(Mirror(env, edge=direction == "gateway"))
    filters.append(Router(env))
    # log phase only: their place before the router is Istio's, their order the log's
    filters.insert(len(filters) - 1, IstioStats(env, inbound=inbound))
    if env.access_log.enabled:
        filters.insert(len(filters) - 1, AccessLogFilter(env))
    return FilterChain(tuple(filters))


@dataclass(frozen=True, slots=True)
class ActiveConfig:
    """One snapshot as the proxy serves it: live cluster state and a chain per listener kind.
    Swapped in one assignment; a request keeps the one it started with."""

    tables: ClusterTable
    chains: Mapping[str, FilterChain]

    @property
    def snapshot(self) -> Snapshot:
        return self.tables.snapshot


def activate(env: ProxyEnv, snapshot: Snapshot) -> ActiveConfig:
    needs = Needs.of(snapshot)
    return ActiveConfig(
        tables=ClusterTable(snapshot, env.pools),
        chains={direction: build_chain(env, direction, needs) for direction in DIRECTIONS},
    )
