"""EnvoyFilter's HTTP_FILTER patches: which select a proxy, in what order, and the chains they make.

istio.io/latest/docs/reference/config/networking/envoy-filter/. Theory of operation:

1. `http_filter_patches(resources, identity, root_namespace=...)` picks the EnvoyFilters that
   select the proxy: those of the root namespace (MeshConfig rootNamespace) and of the proxy's
   namespace, each without selector, or whose `workloadSelector.labels` the proxy carries, or
   whose `targetRefs` name its Gateway (label gateway.networking.k8s.io/gateway-name). They are
   ordered as istiod orders them (pilot/pkg/model/push_context.go EnvoyFilters): by
   `priority`, then root namespace before the proxy's own, then creation time, then
   `name.namespace`; patches keep their order inside a resource. Each HTTP_FILTER patch that
   Remora acts on becomes one frozen `HttpFilterPatch` (remora.mesh.filterpatch); the rest is
   reported, not applied (remora.api.unenforced).
2. `remora.mesh.filterpatch.http_filter_chain(context, port, patches)` applies them, in that
   order, to the default chain of a context (remora.api.networking.httpfilters.REMORA_CHAINS),
   as Istio does; it lives there so the proxy applies patches without the api's models.

3. NETWORK_FILTER MERGE patches into the HTTP connection manager set its timeouts and limits
   (remora.api.networking.connection_manager): `connection_manager_patches` compiles them,
   `with_connection_manager` merges those that match a listener into it, in the same order.

Everything here is pure: resources and identity in, frozen values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from remora.api.networking import httpfilters
from remora.api.networking.connection_manager import connection_manager_settings
from remora.api.networking.envoy_filter import (
    HTTP_FILTER_OPERATIONS,
    EnvoyConfigObjectPatch,
    EnvoyFilter,
)
from remora.api.resource import Resource
from remora.mesh.filterpatch import EMPTY as _EMPTY
from remora.mesh.filterpatch import HttpFilterPatch, HttpOperation, PatchContext
from remora.mesh.snapshot import ConnectionManager, Listener, ProxyIdentity
from remora.policy.filterconfig import FilterConfigError, check_typed_config

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
"""The label Istio gives a Gateway API gateway's pods: how `targetRefs` find their proxies."""


# -- selection and order ----------------------------------------------------------------------


def selected_envoy_filters(
    resources: Iterable[Resource], identity: ProxyIdentity, *, root_namespace: str,
) -> list[EnvoyFilter]:  # fmt: skip
    """The EnvoyFilters that select the proxy, in the order istiod applies them."""
    chosen = [r for r in resources if isinstance(r, EnvoyFilter)
              and r.namespace in (root_namespace, identity.namespace) and _selects(r, identity)]
    return sorted(chosen, key=lambda r: _order(r, root_namespace))


def _selects(envoy_filter: EnvoyFilter, identity: ProxyIdentity) -> bool:
    spec = envoy_filter.spec
    if spec.target_refs:
        gateway = identity.labels.get(GATEWAY_NAME_LABEL)
        return any(ref.group == "gateway.networking.k8s.io" and ref.kind == "Gateway"
                   and ref.name == gateway for ref in spec.target_refs)  # fmt: skip
    if spec.workload_selector is None:
        return True
    labels = identity.labels
    return all(labels.get(key) == value for key, value in spec.workload_selector.labels.items())


def _order(envoy_filter: EnvoyFilter, root_namespace: str) -> tuple[int, bool, str, str]:
    """istiod's sort: priority, root namespace first, creation time, then `name.namespace`
    (a filter without creation time, as in files, is oldest)."""
    created = envoy_filter.metadata.creation_timestamp
    return (envoy_filter.priority, envoy_filter.namespace != root_namespace,
            str(created) if created else "", f"{envoy_filter.name}.{envoy_filter.namespace}")


def http_filter_patches(
    resources: Sequence[Resource], identity: ProxyIdentity, *, root_namespace: str,
) -> tuple[HttpFilterPatch, ...]:  # fmt: skip
    """The HTTP_FILTER patches that apply to the proxy, in application order. Raises nothing
    for one bad resource: see `compile_envoy_filter` (the compiler skips what it rejects)."""
    out: list[HttpFilterPatch] = []
    for envoy_filter in selected_envoy_filters(resources, identity,
                                               root_namespace=root_namespace):
        out.extend(compile_envoy_filter(envoy_filter))
    return tuple(out)


def compile_envoy_filter(envoy_filter: EnvoyFilter) -> list[HttpFilterPatch]:
    """The patches of one EnvoyFilter Remora applies; ValueError (with the field path) when a
    filter's typed_config is invalid (remora.policy.filterconfig).

    For the proxy: `config` is the typed_config as written, frozen; `httpfilters.thaw(config)`
    gives the dict the filters' `from_api` take (CompressorConfig, CacheConfig)."""
    out = []
    for index, patch in enumerate(envoy_filter.spec.config_patches):
        where = f"spec.configPatches[{index}]"
        compiled = _compile_patch(patch, f"{envoy_filter.subject} {where}")
        if compiled is None:
            continue
        if compiled.operation != "REMOVE":
            try:
                check_typed_config(compiled.implementation, httpfilters.thaw(compiled.config))
            except FilterConfigError as exc:
                raise ValueError(f"{where}.patch.value.{exc}") from None
        out.append(compiled)
    return out


def _compile_patch(patch: EnvoyConfigObjectPatch, source: str) -> HttpFilterPatch | None:
    """The patch as Remora applies it, or None when it applies to no Remora listener (the
    reasons are remora.api.unenforced's EnvoyFilter entries)."""
    body = patch.patch
    if patch.apply_to != "HTTP_FILTER" or body is None or body.operation is None \
            or body.operation not in HTTP_FILTER_OPERATIONS:
        return None
    scope = _scope(patch)
    if scope is None:
        return None
    context, port = scope
    operation: HttpOperation = body.operation  # type: ignore[assignment]
    if operation == "REMOVE":
        return HttpFilterPatch(context=context, port=port, operation=operation, filter_name="",
                               anchor=patch.anchor, config=_EMPTY, source=source)
    value = body.value or {}
    name = str(value.get("name", ""))
    typed_config = httpfilters.typed_config_of(value)
    return HttpFilterPatch(
        context=context, port=port, operation=operation, filter_name=name,
        anchor=patch.anchor, config=httpfilters.freeze(typed_config or {}), source=source,
        implementation=httpfilters.implementation_of(name, typed_config) or "",
    )  # fmt: skip


def _scope(patch: EnvoyConfigObjectPatch) -> tuple[PatchContext, int | None] | None:
    """(context, port) the patch's match selects among Remora's listeners; None for none."""
    match = patch.match
    if match is None:
        return "ANY", None
    if match.context == "WAYPOINT":
        return None
    if match.proxy is not None and (match.proxy.proxy_version or match.proxy.metadata):
        return None  # Istio: a proxy without a version (or that metadata) does not match
    context: PatchContext = match.context or "ANY"
    listener = match.listener
    if listener is None:
        return context, None
    port = listener.port_number or None
    if listener.name:
        scope = httpfilters.listener_scope(listener.name)
        if scope is None:
            return None
        named_context, named_port = scope
        if named_context is not None:
            if context not in ("ANY", named_context):
                return None
            context = named_context
        if named_port is not None:
            if port not in (None, named_port):
                return None
            port = named_port
    chain = listener.filter_chain
    if chain is not None:
        if chain.name or chain.sni or chain.transport_protocol or chain.application_protocols \
                or chain.destination_port:
            return None
        found = chain.filter
        if found is not None and found.name not in httpfilters.HTTP_CONNECTION_MANAGER_NAMES:
            return None
    return context, port


# -- the HTTP connection manager's timeouts and limits ----------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionManagerPatch:
    """One NETWORK_FILTER MERGE into the HTTP connection manager, compiled."""

    context: PatchContext
    port: int | None
    settings: Mapping[str, float | int | bool]
    source: str


_DIRECTION_CONTEXT: Mapping[str, PatchContext] = {
    "outbound": "SIDECAR_OUTBOUND", "inbound": "SIDECAR_INBOUND", "gateway": "GATEWAY"}


def connection_manager_patches(envoy_filters: Iterable[EnvoyFilter]
                               ) -> tuple[ConnectionManagerPatch, ...]:
    """The connection manager MERGE patches of the EnvoyFilters (already in Istio's order)."""
    out = []
    for envoy_filter in envoy_filters:
        for index, patch in enumerate(envoy_filter.spec.config_patches):
            if not patch.merges_connection_manager:
                continue
            scope = _scope(patch)
            if scope is None:
                continue
            assert patch.patch is not None and patch.patch.value is not None
            settings, _ = connection_manager_settings(patch.patch.value)  # valid: the model's
            out.append(ConnectionManagerPatch(
                scope[0], scope[1], settings,
                f"{envoy_filter.subject} spec.configPatches[{index}]"))
    return tuple(out)


def with_connection_manager(listener: Listener, patches: Sequence[ConnectionManagerPatch], *,
                            inbound_port: int) -> Listener:
    """`listener` with the patches that match it merged, later ones over earlier ones. The
    port a patch names is the app's port inbound (`inbound_port`), the server port at a
    gateway; Remora's one outbound listener serves every destination port, so a patch naming
    a port applies to it only as ANY context does to the inbound or gateway listener."""
    context = _DIRECTION_CONTEXT[listener.direction]
    port = {"inbound": inbound_port, "gateway": listener.port}.get(listener.direction)
    merged: dict[str, float | int | bool] = {}
    sources = []
    for patch in patches:
        if patch.context in ("ANY", context) and patch.port in (None, port):
            merged.update(patch.settings)
            sources.append(patch.source)
    if not sources:
        return listener
    return replace(listener, connection_manager=ConnectionManager(**merged,  # type: ignore[arg-type]
                                                                  sources=tuple(sources)))
