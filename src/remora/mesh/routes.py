"""VirtualService http rules compiled into routes for one proxy and one listener port.

Istio's semantics ("Virtual Service" reference; pilot route.BuildHTTPRoutesForVirtualService,
translateRoute, sourceMatchHTTP):
- rules keep their order (first match wins); each match block becomes one route, with the
  rule's action; a rule without match blocks matches everything;
- a match block is dropped for this proxy when its `port` is not the listener port, when it
  names `gateways` none of which is this proxy's (`mesh` for sidecars, `ns/name` for gateways;
  then sourceLabels are not looked at), or when its sourceLabels are not among the proxy's labels
  or its sourceNamespace is not the proxy's; a rule whose blocks are all dropped is dropped;
- a destination's port: `port.number`, else the service's only port, else the listener port;
  a lone destination gets all the traffic, otherwise weight / sum (weight 0 never).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from remora.api.networking.http_route import HTTPMatchRequest, HTTPRoute
from remora.api.networking.names import to_fqdn
from remora.api.networking.shared import Destination, Headers
from remora.api.networking.virtual_service import MESH_GATEWAY, VirtualService
from remora.api.resource import Resource
from remora.mesh.delegate import merge_rule
from remora.mesh.frozen import EMPTY, config_dump
from remora.mesh.hosts import labels_subset, visible
from remora.mesh.snapshot import (
    MirrorTarget,
    ProxyIdentity,
    Route,
    RouteAction,
    WeightedCluster,
)
from remora.policy.cors import Cors
from remora.policy.fault import FaultPolicy
from remora.policy.headers import HeaderOps
from remora.policy.match import RequestMatcher
from remora.policy.redirect import DirectResponse, Redirect
from remora.policy.retry import RetrySpec
from remora.policy.rewrite import Rewrite
from remora.policy.weighted import WeightedChoice

R = TypeVar("R", bound=Resource)
ClusterFor = Callable[[Destination, str, int], str]
"""(destination, namespace short names resolve in, listener port) -> cluster name."""


def oldest_first(resources: Iterable[R]) -> list[R]:
    """Istio's config order: creation time, then name, then namespace."""
    return sorted(
        resources,
        key=lambda r: (str(r.metadata.creation_timestamp or ""), r.name, r.namespace),
    )


def resolve_gateway(name: str, namespace: str) -> str:
    """A gateway reference as `ns/name`: `gw` and `./gw` are in `namespace`; the legacy
    `gw.ns.svc.cluster.local` is `ns/gw` (pilot resolveGatewayName)."""
    if name == MESH_GATEWAY:
        return name
    if "/" in name:
        ns, _, gateway = name.partition("/")
        return f"{namespace}/{gateway}" if ns == "." else name
    if "." not in name:
        return f"{namespace}/{name}"
    gateway, _, rest = name.partition(".")
    return f"{rest.partition('.')[0]}/{gateway}"


@dataclass(frozen=True, slots=True)
class Rule:
    """An http rule with the namespace its short names resolve in and its VirtualService."""

    rule: HTTPRoute
    namespace: str
    virtual_service: str  # "ns/name" of the root VirtualService


class VirtualServices:
    """The VirtualServices visible to one proxy namespace, oldest first, delegates by name."""

    def __init__(self, resources: Iterable[Resource], *, namespace: str) -> None:
        services = oldest_first(r for r in resources if isinstance(r, VirtualService))
        self.delegates = {(vs.namespace, vs.name): vs for vs in services if vs.spec.is_delegate}
        self.roots = [
            vs for vs in services
            if not vs.spec.is_delegate
            and visible(vs.spec.export_to, owner_namespace=vs.namespace, namespace=namespace)
        ]  # fmt: skip

    def bound_to(self, gateway: str) -> list[VirtualService]:
        """Root VirtualServices for `mesh` or for the gateway `ns/name`."""
        if gateway == MESH_GATEWAY:
            return [vs for vs in self.roots if vs.spec.applies_to_mesh]
        return [
            vs for vs in self.roots
            if gateway in {resolve_gateway(g, vs.namespace) for g in vs.spec.gateways}
        ]  # fmt: skip

    def rules(self, vs: VirtualService) -> list[Rule]:
        """The http rules of `vs`, a delegating rule replaced by the delegate's merged rules
        (a delegate missing, or not exported to the root's namespace, contributes nothing)."""
        out: list[Rule] = []
        for rule in vs.spec.http:
            if rule.delegate is None:
                out.append(Rule(rule, vs.namespace, vs.key))
                continue
            namespace = rule.delegate.namespace or vs.namespace
            delegate = self.delegates.get((namespace, rule.delegate.name or ""))
            if delegate is None or not visible(
                delegate.spec.export_to, owner_namespace=namespace, namespace=vs.namespace
            ):
                continue
            for leaf in delegate.spec.http:
                merged = merge_rule(rule, leaf)
                if merged is not None:
                    out.append(Rule(merged, namespace, vs.key))
        return out

    @staticmethod
    def hosts(vs: VirtualService) -> list[str]:
        return [to_fqdn(host, vs.namespace) for host in vs.spec.hosts]


def keeps(
    match: HTTPMatchRequest,
    *,
    port: int,
    gateways: frozenset[str],
    identity: ProxyIdentity,
    namespace: str,
) -> bool:
    """Does this proxy, on this listener port, get the match block? (sourceMatchHTTP)"""
    if match.port and match.port != port:
        return False
    if match.gateways:
        return any(resolve_gateway(g, namespace) in gateways for g in match.gateways)
    if not labels_subset(match.source_labels, identity.labels):
        return False
    return not match.source_namespace or match.source_namespace == identity.namespace


class RouteBuilder:
    """Routes of one listener port for one proxy; asks `cluster_for` to name (and create) the
    cluster of each destination."""

    def __init__(
        self, *, identity: ProxyIdentity, gateways: frozenset[str], cluster_for: ClusterFor,
        default_retries: RetrySpec | None = None,
    ) -> None:
        self.identity = identity
        self.gateways = gateways
        self.cluster_for = cluster_for
        self.default_retries = default_retries  # MeshConfig defaultHttpRetryPolicy

    def routes(self, rules: Iterable[Rule], *, port: int) -> list[Route]:
        out: list[Route] = []
        for item in rules:
            blocks: list[HTTPMatchRequest | None] = list(item.rule.match) or [None]
            for block in blocks:
                if block is not None and not keeps(
                    block, port=port, gateways=self.gateways, identity=self.identity,
                    namespace=item.namespace,
                ):  # fmt: skip
                    continue
                out.append(self._route(item, block, port))
                if block is None:
                    return out  # matches everything: later routes can never be reached
        return out

    def _route(self, item: Rule, block: HTTPMatchRequest | None, port: int) -> Route:
        rule = item.rule
        matcher = RequestMatcher.from_api(block) if block is not None else None
        name = rule.name or ""
        if block is not None and block.name:
            name = f"{name}.{block.name}"
        request, response = _header_ops(rule.headers)
        return Route(
            name=name,
            matchers=(matcher,) if matcher is not None else (),
            action=self._action(item, matcher, port),
            request_headers=request,
            response_headers=response,
            cors=Cors.from_api(rule.cors_policy) if rule.cors_policy is not None else None,
            virtual_service=item.virtual_service,
            match_dump=config_dump(block) if block is not None else EMPTY,
            rule_dump=rule_dump(rule),
        )

    def _action(
        self, item: Rule, matcher: RequestMatcher | None, port: int
    ) -> RouteAction | Redirect | DirectResponse:
        rule = item.rule
        if rule.redirect is not None:
            return Redirect.from_api(rule.redirect)
        if rule.direct_response is not None:
            return DirectResponse.from_api(rule.direct_response)
        destinations = rule.route
        if len(destinations) > 1:  # weight 0 never gets traffic; a lone destination gets all
            destinations = [d for d in destinations if d.weight]
        clusters = []
        for dest in destinations:
            request, response = _header_ops(dest.headers)
            cluster = self.cluster_for(dest.destination, item.namespace, port)
            weight = (dest.weight or 0) if len(destinations) > 1 else 100
            clusters.append(WeightedCluster(cluster, weight, request, response))
        retries = RetrySpec.from_api(rule.retries) if rule.retries is not None \
            else self.default_retries
        mirrors = tuple(
            MirrorTarget(self.cluster_for(dest, item.namespace, port), share)
            for dest, share in rule.mirror_destinations
        )
        return RouteAction(
            clusters=tuple(clusters),
            choice=WeightedChoice(tuple(c.weight for c in clusters)),
            rewrite=Rewrite.from_api(rule.rewrite, matcher) if rule.rewrite else None,
            timeout=rule.timeout,
            retries=retries,
            fault=FaultPolicy.from_api(rule.fault) if rule.fault is not None else None,
            mirrors=mirrors,
        )


def _header_ops(headers: Headers | None) -> tuple[HeaderOps, HeaderOps]:
    if headers is None:
        return HeaderOps.EMPTY, HeaderOps.EMPTY
    return HeaderOps.from_api(headers.request), HeaderOps.from_api(headers.response)


_DUMPED = (("redirect", "redirect"), ("directResponse", "direct_response"),
           ("rewrite", "rewrite"), ("retries", "retries"), ("fault", "fault"),
           ("corsPolicy", "cors_policy"), ("headers", "headers"))
"""The fields of an http rule /config_dump shows, in its order (Istio name, attribute)."""


def rule_dump(rule: HTTPRoute) -> Mapping[str, Any]:
    """The set fields of `_DUMPED`, for Route.rule_dump."""
    values = ((key, getattr(rule, attribute)) for key, attribute in _DUMPED)
    return MappingProxyType({key: config_dump(value) for key, value in values if value is not None})


def default_route(cluster: str, retries: RetrySpec | None = None) -> Route:
    """A service without VirtualService: everything to all its endpoints (Istio's "default"),
    retried as MeshConfig defaultHttpRetryPolicy says (`retries`; None: Istio's built-in)."""
    return Route(
        name="default",
        matchers=(),
        action=RouteAction(
            clusters=(WeightedCluster(cluster, 100, HeaderOps.EMPTY, HeaderOps.EMPTY),),
            choice=WeightedChoice((100,)),
            retries=retries,
        ),
        request_headers=HeaderOps.EMPTY,
        response_headers=HeaderOps.EMPTY,
        cors=None,
        virtual_service="",
    )
