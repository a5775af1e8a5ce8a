"""VirtualService: HTTP, TLS and TCP routing rules for a set of hosts.

Rules follow istio/istio pkg/config/validation/validation.go (ValidateVirtualService,
validateTLSRoute, validateTLSMatch, validateSniHost, validateTCPRoute, validateRouteDestinations).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from pydantic import Field, model_validator

from remora.api.base import Spec, fail
from remora.api.common import NonNegativeInt32, UInt32, check_total_weight
from remora.api.networking import names
from remora.api.networking.http_route import (
    Abort,
    CorsPolicy,
    Delay,
    Delegate,
    HTTPBody,
    HTTPDirectResponse,
    HTTPFaultInjection,
    HTTPMatchRequest,
    HTTPMirrorPolicy,
    HTTPRedirect,
    HTTPRetry,
    HTTPRewrite,
    HTTPRoute,
    HTTPRouteDestination,
    RegexRewrite,
)
from remora.api.networking.shared import (
    Destination,
    HeaderOperations,
    Headers,
    check_rule_selectors,
)
from remora.api.resource import Resource, served

__all__ = [
    "Abort", "CorsPolicy", "Delay", "Delegate", "Destination", "HTTPBody", "HTTPDirectResponse",
    "HTTPFaultInjection", "HTTPMatchRequest", "HTTPMirrorPolicy", "HTTPRedirect", "HTTPRetry",
    "HTTPRewrite", "HTTPRoute", "HTTPRouteDestination", "HeaderOperations", "Headers",
    "L4MatchAttributes", "RegexRewrite", "RouteDestination", "TCPRoute", "TLSMatchAttributes",
    "TLSRoute", "VirtualService", "VirtualServiceSpec",
]  # fmt: skip

MESH_GATEWAY = "mesh"


def _check_l4_common(attrs: L4MatchAttributes | TLSMatchAttributes) -> None:
    for position, subnet in enumerate(attrs.destination_subnets):
        if problem := names.check_ip_subnet(subnet):
            fail(problem, "destinationSubnets", position)
    if attrs.port and (problem := names.check_port(attrs.port)):
        fail(problem, "port")
    check_rule_selectors(attrs.source_labels, attrs.gateways)


class L4MatchAttributes(Spec):
    """TCP match: destination subnets, port, source labels/namespace, gateways."""

    destination_subnets: list[str] = Field(default_factory=list)
    port: UInt32 | None = None
    source_subnet: str | None = None
    source_labels: dict[str, str] = Field(default_factory=dict)
    gateways: list[str] = Field(default_factory=list)
    source_namespace: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> L4MatchAttributes:
        _check_l4_common(self)  # validateTCPMatch
        return self


class TLSMatchAttributes(Spec):
    """TLS match: SNI hosts (required), subnets, port, source labels/namespace, gateways."""

    sni_hosts: list[str] = Field(default_factory=list)
    destination_subnets: list[str] = Field(default_factory=list)
    port: UInt32 | None = None
    source_labels: dict[str, str] = Field(default_factory=dict)
    gateways: list[str] = Field(default_factory=list)
    source_namespace: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> TLSMatchAttributes:
        # validateTLSMatch (SNI hosts against the VirtualService hosts: VirtualServiceSpec)
        if not self.sni_hosts:
            fail("TLS match must have at least one SNI host", "sniHosts")
        _check_l4_common(self)
        return self


class RouteDestination(Spec):
    """A weighted destination of a TLS or TCP rule."""

    destination: Destination
    weight: NonNegativeInt32 | None = None


def _check_weights(route: list[RouteDestination]) -> None:
    check_total_weight([d.weight for d in route])


class TLSRoute(Spec):
    """A rule for TLS traffic (passthrough), matched on SNI."""

    match: list[TLSMatchAttributes] = Field(default_factory=list)
    route: list[RouteDestination] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> TLSRoute:
        if not self.match:
            fail("TLS route must have at least one match condition", "match")
        if not self.route:
            fail("TLS route is required", "route")
        _check_weights(self.route)
        return self

    @property
    def destinations(self) -> Iterator[Destination]:
        return (weighted.destination for weighted in self.route)


class TCPRoute(Spec):
    """A rule for opaque TCP traffic."""

    match: list[L4MatchAttributes] = Field(default_factory=list)
    route: list[RouteDestination] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> TCPRoute:
        if not self.route:
            fail("TCP route is required", "route")
        _check_weights(self.route)
        return self

    @property
    def destinations(self) -> Iterator[Destination]:
        return (weighted.destination for weighted in self.route)


class VirtualServiceSpec(Spec):
    """Routing for `hosts` as seen by `gateways` (default: the mesh's sidecars)."""

    hosts: list[str] = Field(default_factory=list)
    gateways: list[str] = Field(default_factory=list)
    http: list[HTTPRoute] = Field(default_factory=list)
    tls: list[TLSRoute] = Field(default_factory=list)
    tcp: list[TCPRoute] = Field(default_factory=list)
    export_to: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> VirtualServiceSpec:
        if not self.http and not self.tcp and not self.tls:
            fail("http, tcp or tls must be provided in virtual service")
        if self.is_delegate:
            self._check_delegate()
        for position, gateway in enumerate(self.gateways):
            if problem := names.check_gateway_name(gateway):
                fail(problem, "gateways", position)
        if not self.applies_to_gateways:
            self._check_no_jwt_claims()
        self._check_hosts()
        for position, rule in enumerate(self.tls):
            for index, match in enumerate(rule.match):
                for sni, host in enumerate(match.sni_hosts):
                    if problem := self._check_sni_host(host):
                        fail(problem, "tls", position, "match", index, "sniHosts", sni)
        if problem := names.check_export_to(self.export_to):
            fail(problem, "exportTo")
        return self

    def _check_delegate(self) -> None:
        if self.gateways:
            fail("delegate virtual service must have no gateways specified", "gateways")
        if self.tls:
            fail("delegate virtual service must have no tls route specified", "tls")
        if self.tcp:
            fail("delegate virtual service must have no tcp route specified", "tcp")
        for position, rule in enumerate(self.http):
            if rule.delegate is not None:
                fail("delegate HTTP route cannot contain delegate", "http", position, "delegate")

    def _check_no_jwt_claims(self) -> None:
        for position, rule in enumerate(self.http):
            for index, match in enumerate(rule.match):
                for key in match.jwt_claim_keys:
                    fail(f"JWT claim based routing (key: {key}) is only supported for gateway",
                         "http", position, "match", index)  # fmt: skip

    def _check_hosts(self) -> None:
        valid = True
        for position, host in enumerate(self.hosts):
            problem = self._check_host(host)
            if problem and not names.is_ip(host):
                fail(problem, "hosts", position)
            if problem is None and self.applies_to_mesh and host == "*":
                fail("wildcard host * is not allowed for virtual services bound to the mesh",
                     "hosts", position)  # fmt: skip
            valid = valid and problem is None
        if not valid:
            return
        for i, first in enumerate(self.hosts):
            for second in self.hosts[i + 1 :]:
                if names.host_matches(first, second):
                    fail(f"duplicate hosts in virtual service: {first} & {second}", "hosts", i)

    def _check_host(self, host: str) -> str | None:
        if self.applies_to_gateways and host.startswith("outbound_") and self._has_sni_hosts:
            return None  # auto-generated SNI name outbound_.<port>_._.<host> (AUTO_PASSTHROUGH)
        return names.check_wildcard_domain(host)

    def _check_sni_host(self, sni: str) -> str | None:
        # validateSniHost: a valid domain (an IP only warns) within one of the hosts
        if self.applies_to_gateways and sni.startswith("outbound_"):
            return None
        if names.check_wildcard_domain(sni) is not None:
            return None if names.is_ip(sni) else names.check_wildcard_domain(sni)
        if any(names.host_subset_of(sni, host) for host in self.hosts):
            return None
        return (f"SNI host {sni!r} is not a compatible subset of any of the virtual service hosts: "
                f"[{', '.join(self.hosts)}]")  # fmt: skip

    @property
    def _has_sni_hosts(self) -> bool:
        return any(match.sni_hosts for rule in self.tls for match in rule.match)

    @property
    def is_delegate(self) -> bool:
        """A VirtualService without hosts can only be used as a delegate."""
        return not self.hosts

    @property
    def applies_to_gateways(self) -> bool:
        """Bound to gateways and not to the mesh (isGateway)."""
        return bool(self.gateways) and MESH_GATEWAY not in self.gateways

    @property
    def applies_to_mesh(self) -> bool:
        """Sidecars get the rules: no gateways listed, or `mesh` listed."""
        return not self.gateways or MESH_GATEWAY in self.gateways

    @property
    def destinations(self) -> Iterator[Destination]:
        """Every routed destination of every http, tls and tcp rule (not mirrors)."""
        for http in self.http:
            yield from http.destinations
        for tls in self.tls:
            yield from tls.destinations
        for tcp in self.tcp:
            yield from tcp.destinations


@served("networking.istio.io", "v1alpha3", "v1beta1", "v1")
class VirtualService(Resource):
    """networking.istio.io VirtualService."""

    KIND: ClassVar[str] = "VirtualService"

    spec: VirtualServiceSpec
