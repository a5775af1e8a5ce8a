"""EnvoyFilter: patches to the proxy's configuration (istio/api networking/v1alpha3).

istio.io/latest/docs/reference/config/networking/envoy-filter/. Every field of Istio's API
parses, for any `applyTo`; Remora acts on `applyTo: HTTP_FILTER`, and on NETWORK_FILTER MERGE
patches of the HTTP connection manager's timeouts and limits
(remora.api.networking.connection_manager); what the rest does not act on is listed in
remora.api.unenforced. The rules are Istio's (istio/istio
pkg/config/validation/envoyfilter validateEnvoyFilter), plus one of Remora's: a patch may only
insert an HTTP filter Remora implements (remora.api.networking.httpfilters), so an EnvoyFilter
that asks for a Lua or rate limit filter is refused rather than accepted and ignored.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from remora.api.base import Spec, fail
from remora.api.common import Int32, PolicyTargetReference, UInt32, check_re2
from remora.api.networking import httpfilters, names
from remora.api.networking.connection_manager import (
    ConnectionManagerError,
    connection_manager_settings,
    is_connection_manager_merge,
)
from remora.api.resource import Resource, served

ApplyTo = Literal[
    "INVALID", "LISTENER", "FILTER_CHAIN", "NETWORK_FILTER", "HTTP_FILTER", "ROUTE_CONFIGURATION",
    "VIRTUAL_HOST", "HTTP_ROUTE", "CLUSTER", "EXTENSION_CONFIG", "BOOTSTRAP", "LISTENER_FILTER",
]  # fmt: skip
PatchContext = Literal["ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY", "WAYPOINT"]
Operation = Literal["INVALID", "MERGE", "ADD", "REMOVE", "INSERT_BEFORE", "INSERT_AFTER",
                    "INSERT_FIRST", "REPLACE"]
FilterClass = Literal["UNSPECIFIED", "AUTHN", "AUTHZ", "STATS"]
RouteAction = Literal["ANY", "ROUTE", "REDIRECT", "DIRECT_RESPONSE"]

INSERTING: frozenset[str] = frozenset({"ADD", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST",
                                       "REPLACE"})
"""Operations whose patch.value is a whole HTTP filter that ends up in the chain."""
HTTP_FILTER_OPERATIONS: frozenset[str] = INSERTING | {"REMOVE"}
"""The operations Remora applies to HTTP filters (MERGE is not: remora.api.unenforced)."""
_LISTENER_CLASS = frozenset({"LISTENER", "FILTER_CHAIN", "NETWORK_FILTER", "HTTP_FILTER"})
_ROUTE_CLASS = frozenset({"ROUTE_CONFIGURATION", "VIRTUAL_HOST", "HTTP_ROUTE"})


class WorkloadSelector(Spec):
    """EnvoyFilter's own selector: `labels` (not matchLabels), all of which a workload carries."""

    labels: dict[str, str] = Field(default_factory=dict)


class ProxyMatch(Spec):
    """The proxy's Istio version (a regex) and node metadata."""

    proxy_version: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid(self) -> ProxyMatch:
        if self.proxy_version:
            try:
                check_re2(self.proxy_version)
            except ValueError as exc:
                fail(f"Envoy filter: invalid regex for proxy version, [{exc}]", "proxyVersion")
        return self


class SubFilterMatch(Spec):
    """An HTTP filter inside the HTTP connection manager, by name."""

    name: str | None = None


class FilterMatch(Spec):
    """A network filter by name, and for the HTTP connection manager one of its HTTP filters."""

    name: str | None = None
    sub_filter: SubFilterMatch | None = None


class FilterChainMatch(Spec):
    """A listener's filter chain: by name, SNI, transport/application protocols, filter, port."""

    name: str | None = None
    sni: str | None = None
    transport_protocol: str | None = None
    application_protocols: str | None = None
    filter: FilterMatch | None = None
    destination_port: UInt32 | None = None


class ListenerMatch(Spec):
    """A listener: port, name, a filter chain (and its filters), a listener filter."""

    port_number: UInt32 | None = None
    port_name: str | None = None
    filter_chain: FilterChainMatch | None = None
    listener_filter: str | None = None
    name: str | None = None


class RouteMatch(Spec):
    name: str | None = None
    action: RouteAction | None = None


class VirtualHostMatch(Spec):
    name: str | None = None
    route: RouteMatch | None = None
    domain_name: str | None = None


class RouteConfigurationMatch(Spec):
    port_number: UInt32 | None = None
    port_name: str | None = None
    gateway: str | None = None
    vhost: VirtualHostMatch | None = None
    name: str | None = None


class ClusterMatch(Spec):
    port_number: UInt32 | None = None
    service: str | None = None
    subset: str | None = None
    name: str | None = None


class EnvoyConfigObjectMatch(Spec):
    """Where a patch applies: context, proxy, and one of listener, routeConfiguration, cluster."""

    context: PatchContext | None = None
    proxy: ProxyMatch | None = None
    listener: ListenerMatch | None = None
    route_configuration: RouteConfigurationMatch | None = None
    cluster: ClusterMatch | None = None

    @model_validator(mode="after")
    def _one_of(self) -> EnvoyConfigObjectMatch:
        if sum(x is not None for x in (self.listener, self.route_configuration,
                                       self.cluster)) > 1:  # fmt: skip
            fail("only one of listener, routeConfiguration or cluster may be set")
        return self

    @property
    def object_types(self) -> ListenerMatch | RouteConfigurationMatch | ClusterMatch | None:
        """The `object_types` oneof of the proto."""
        return self.listener or self.route_configuration or self.cluster


class Patch(Spec):
    """What to do (operation) with what (value: the Envoy object as JSON)."""

    operation: Operation | None = None
    value: dict[str, Any] | None = None
    filter_class: FilterClass | None = None


class EnvoyConfigObjectPatch(Spec):
    """One patch: the kind of object (applyTo), which ones (match), and the patch."""

    apply_to: ApplyTo | None = None
    match: EnvoyConfigObjectMatch | None = None
    patch: Patch | None = None

    @model_validator(mode="after")
    def _valid(self) -> EnvoyConfigObjectPatch:
        # validateEnvoyFilter, in its order: each patch stops at its first problem
        patch = self.patch
        if self.apply_to in (None, "INVALID"):
            fail("Envoy filter: missing applyTo", "applyTo")
        if patch is None:
            fail("Envoy filter: missing patch", "patch")
        if patch.operation in (None, "INVALID"):
            fail("Envoy filter: missing patch operation", "patch", "operation")
        if patch.operation != "REMOVE" and patch.value is None:
            fail("Envoy filter: missing patch value for non-remove operation", "patch", "value")
        self._check_match()
        if self.apply_to == "HTTP_FILTER" and patch.operation in INSERTING:
            assert patch.value is not None
            _check_http_filter(patch.value)
        if self.merges_connection_manager:
            assert patch.value is not None
            try:
                connection_manager_settings(patch.value)
            except ConnectionManagerError as exc:
                fail(exc.reason, "patch", "value", *exc.path.split("."))
        return self

    @property
    def network_filter(self) -> str | None:
        """match.listener.filterChain.filter.name: the network filter the patch is about."""
        listener = self.match.listener if self.match is not None else None
        chain = listener.filter_chain if listener is not None else None
        return chain.filter.name if chain is not None and chain.filter is not None else None

    @property
    def merges_connection_manager(self) -> bool:
        """A MERGE into the HTTP connection manager (its timeouts and limits: Remora applies
        them, remora.api.networking.connection_manager)."""
        patch = self.patch
        return patch is not None and is_connection_manager_merge(
            self.apply_to, patch.operation, patch.value, self.network_filter)

    def _check_match(self) -> None:
        match = self.match
        if match is None or match.object_types is None:
            return
        if self.apply_to in _LISTENER_CLASS:
            if match.listener is None:
                fail("Envoy filter: applyTo for listener class objects cannot have non "
                     "listener match", "match")  # fmt: skip
            self._check_filter_match(match.listener)
        elif self.apply_to in _ROUTE_CLASS and match.route_configuration is None:
            fail("Envoy filter: applyTo for http route class objects cannot have non route "
                 "configuration match", "match")  # fmt: skip
        elif self.apply_to == "CLUSTER" and match.cluster is None:
            fail("Envoy filter: applyTo for cluster class objects cannot have non cluster "
                 "match", "match")  # fmt: skip

    def _check_filter_match(self, listener: ListenerMatch) -> None:
        chain = listener.filter_chain
        found = chain.filter if chain is not None else None
        if found is None:
            return
        where = ("match", "listener", "filterChain", "filter")
        if not found.name:
            fail("Envoy filter: filter match has no name to match on", *where, "name")
        sub = found.sub_filter
        if sub is None:
            return
        if self.apply_to != "HTTP_FILTER":
            fail("Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only",
                 *where, "subFilter")  # fmt: skip
        if found.name not in httpfilters.HTTP_CONNECTION_MANAGER_NAMES:
            fail(f"Envoy filter: subfilter match requires filter match with "
                 f"{httpfilters.HTTP_CONNECTION_MANAGER}", *where, "name")  # fmt: skip
        if not sub.name:
            fail("Envoy filter: subfilter match has no name to match on",
                 *where, "subFilter", "name")  # fmt: skip

    @property
    def anchor(self) -> str:
        """match.listener.filterChain.filter.subFilter.name: the HTTP filter a patch is
        relative to (INSERT_BEFORE/AFTER, REPLACE) or removes (REMOVE); "" when none."""
        listener = self.match.listener if self.match is not None else None
        chain = listener.filter_chain if listener is not None else None
        found = chain.filter if chain is not None else None
        sub = found.sub_filter if found is not None else None
        return httpfilters.canonical_name(sub.name or "") if sub is not None else ""


def _check_http_filter(value: dict[str, Any]) -> None:
    """Remora's rule: the HTTP filter a patch puts in the chain is one Remora implements."""
    name = value.get("name")
    if not isinstance(name, str) or not name:
        fail("an HTTP filter needs a name", "patch", "value", "name")
    typed_config = value.get("typed_config", value.get("typedConfig"))
    key = "typed_config" if "typed_config" in value else "typedConfig"
    if typed_config is not None and not isinstance(typed_config, dict):
        fail("must be an object (the filter's config, with its @type)", "patch", "value", key)
    if httpfilters.implementation_of(name, typed_config) is not None:
        return
    implemented = ", ".join(httpfilters.IMPLEMENTED)
    configured = httpfilters.type_name(typed_config)
    if configured is not None and httpfilters.canonical_name(name) in httpfilters.IMPLEMENTED:
        fail(f"{configured} is not the config of an HTTP filter Remora implements (it "
             f"implements: {implemented})", "patch", "value", key, "@type")  # fmt: skip
    what = f"{name} ({configured})" if configured is not None else name
    fail(f"{what} is not an HTTP filter Remora implements (it implements: {implemented})",
         "patch", "value", "name")  # fmt: skip


class EnvoyFilterSpec(Spec):
    """Which proxies (workloadSelector or targetRefs), the patches, and their priority."""

    workload_selector: WorkloadSelector | None = None
    target_refs: list[PolicyTargetReference] = Field(default_factory=list)
    config_patches: list[EnvoyConfigObjectPatch] = Field(default_factory=list)
    priority: Int32 | None = None

    @model_validator(mode="after")
    def _valid(self) -> EnvoyFilterSpec:
        if self.workload_selector is not None and self.target_refs:
            fail("only one of targetRefs or workloadSelector can be set")
        selector = self.workload_selector
        if selector is not None and (problem := names.check_labels(selector.labels)):
            fail(problem, "workloadSelector", "labels")
        for position, ref in enumerate(self.target_refs):
            if ref.namespace:
                fail("must not be set; cross namespace referencing is not supported",
                     "targetRefs", position, "namespace")  # fmt: skip
        return self


@served("networking.istio.io", "v1alpha3")
class EnvoyFilter(Resource):
    """networking.istio.io EnvoyFilter (served as v1alpha3 only, as Istio does)."""

    KIND: ClassVar[str] = "EnvoyFilter"

    spec: EnvoyFilterSpec

    @property
    def priority(self) -> int:
        return self.spec.priority or 0
