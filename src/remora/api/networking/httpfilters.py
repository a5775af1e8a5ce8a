"""The HTTP filters Remora implements, by Envoy's names, and Istio's default filter chains.

The one list: the EnvoyFilter model refuses to insert anything else, `remora analyze` names
anchors that are not here, `remora.mesh.envoyfilter` patches the chains below, and the proxy
maps a chain entry to its implementation with `implementation_of`. Pure data and pure functions.

Istio builds every HTTP connection manager with this order of filters (istio/istio
pilot/pkg/networking/core/listener_builder.go buildHTTPConnectionManager): metadata exchange,
ext_authz (CUSTOM AuthorizationPolicy), jwt_authn + istio_authn (RequestAuthentication), rbac
(AuthorizationPolicy), grpc_stats, istio.alpn (not on the inbound side), fault, cors,
istio.stats, router. `ISTIO_CHAINS` is that list per EnvoyFilter context; `REMORA_CHAINS` is
what Remora's proxy has of it: only the filters it implements. An EnvoyFilter anchored on an
Istio filter Remora does not have is not applied, as Istio does when an anchor is not found
(istio.io/latest/docs/reference/config/networking/envoy-filter/).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

HTTP_CONNECTION_MANAGER = "envoy.filters.network.http_connection_manager"
HTTP_CONNECTION_MANAGER_NAMES = frozenset({HTTP_CONNECTION_MANAGER,
                                           "envoy.http_connection_manager"})
"""The network filter whose HTTP filters an HTTP_FILTER patch edits (Istio's validation accepts
the deprecated name too)."""

CORS = "envoy.filters.http.cors"
FAULT = "envoy.filters.http.fault"
ROUTER = "envoy.filters.http.router"
COMPRESSOR = "envoy.filters.http.compressor"
GZIP = "envoy.filters.http.gzip"  # Envoy's older gzip filter: the compressor with its old config
CACHE = "envoy.filters.http.cache"

IMPLEMENTED: tuple[str, ...] = (CORS, FAULT, ROUTER, COMPRESSOR, GZIP, CACHE)
"""The HTTP filters Remora's proxy implements, as Envoy names them."""

TERMINAL = ROUTER
"""The filter that ends every chain: Envoy refuses a chain with a filter after it."""

TYPE_URLS: Mapping[str, str] = MappingProxyType({
    "envoy.extensions.filters.http.cors.v3.Cors": CORS,
    "envoy.config.filter.http.cors.v2.Cors": CORS,
    "envoy.extensions.filters.http.fault.v3.HTTPFault": FAULT,
    "envoy.config.filter.http.fault.v2.HTTPFault": FAULT,
    "envoy.extensions.filters.http.router.v3.Router": ROUTER,
    "envoy.config.filter.http.router.v2.Router": ROUTER,
    "envoy.extensions.filters.http.compressor.v3.Compressor": COMPRESSOR,
    "envoy.extensions.filters.http.gzip.v3.Gzip": GZIP,
    "envoy.config.filter.http.gzip.v2.Gzip": GZIP,
    "envoy.extensions.filters.http.cache.v3.CacheConfig": CACHE,
    "envoy.extensions.filters.http.cache.v3alpha.CacheConfig": CACHE,
})
"""typed_config `@type` (without `type.googleapis.com/`) -> the filter it configures. Envoy picks
a filter by its config's type, not by its name, so this decides when both are given."""

_TYPED_STRUCTS = frozenset({"udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"})

DEPRECATED_NAMES: Mapping[str, str] = MappingProxyType({
    "envoy.cors": CORS, "envoy.fault": FAULT, "envoy.router": ROUTER, "envoy.gzip": GZIP,
})
"""Envoy's deprecated filter names (Istio's xds.ReverseDeprecatedFilterNames) -> today's."""

METADATA_EXCHANGE = "istio.metadata_exchange"
EXT_AUTHZ = "envoy.filters.http.ext_authz"
JWT_AUTHN = "envoy.filters.http.jwt_authn"
ISTIO_AUTHN = "istio_authn"
RBAC = "envoy.filters.http.rbac"
GRPC_STATS = "envoy.filters.http.grpc_stats"
ALPN = "istio.alpn"
STATS = "istio.stats"

ISTIO_ONLY: Mapping[str, str] = MappingProxyType({
    METADATA_EXCHANGE: "peer metadata is exchanged in headers by the proxy itself",
    EXT_AUTHZ: "there is no external authorization (CUSTOM AuthorizationPolicy)",
    JWT_AUTHN: "JWTs are not validated by a filter",
    ISTIO_AUTHN: "JWTs are not validated by a filter",
    RBAC: "authorization is not a filter of the chain",
    GRPC_STATS: "there are no gRPC statistics",
    ALPN: "the proxy speaks HTTP/1.1 upstream: there is no ALPN to override",
    STATS: "Istio's standard metrics are recorded by the proxy itself, not by a filter",
})
"""Filters Istio's chains have and Remora's do not, with what Remora does instead."""

Context = Literal["SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY"]
"""Where an HTTP filter chain is: EnvoyFilter's match.context values (ANY matches all three)."""
CONTEXTS: tuple[Context, ...] = ("SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY")

ISTIO_CHAINS: Mapping[Context, tuple[str, ...]] = MappingProxyType({
    # ext_authz, jwt_authn, istio_authn and rbac are there only when a policy asks for them
    "SIDECAR_INBOUND": (METADATA_EXCHANGE, EXT_AUTHZ, JWT_AUTHN, ISTIO_AUTHN, RBAC, GRPC_STATS,
                        FAULT, CORS, STATS, ROUTER),
    "SIDECAR_OUTBOUND": (METADATA_EXCHANGE, GRPC_STATS, ALPN, FAULT, CORS, STATS, ROUTER),
    "GATEWAY": (METADATA_EXCHANGE, EXT_AUTHZ, JWT_AUTHN, ISTIO_AUTHN, RBAC, GRPC_STATS, ALPN,
                FAULT, CORS, STATS, ROUTER),
})
"""Istio's HTTP filters per context, in order (buildHTTPConnectionManager)."""

REMORA_CHAINS: Mapping[Context, tuple[str, ...]] = MappingProxyType({
    context: tuple(name for name in chain if name in IMPLEMENTED)
    for context, chain in ISTIO_CHAINS.items()
})
"""Remora's default HTTP filters per context: Istio's order, the filters Remora implements."""


def type_name(typed_config: Mapping[str, Any] | None) -> str | None:
    """The message type a typed_config holds (`envoy.extensions.filters.http.gzip.v3.Gzip`),
    looking inside a TypedStruct; None when it names none."""
    if not typed_config:
        return None
    url = typed_config.get("@type")
    if not isinstance(url, str):
        return None
    name = url.rpartition("/")[2]  # type.googleapis.com/<name>
    if name in _TYPED_STRUCTS:
        inner = typed_config.get("type_url", typed_config.get("typeUrl"))
        return inner.rpartition("/")[2] if isinstance(inner, str) else None
    return name


def canonical_name(name: str) -> str:
    """A filter name with Envoy's deprecated spelling replaced (`envoy.router` -> ...router)."""
    return DEPRECATED_NAMES.get(name, name)


def implementation_of(name: str, typed_config: Mapping[str, Any] | None = None) -> str | None:
    """The filter of `IMPLEMENTED` an HTTP filter entry runs: its typed_config's type decides
    when it has one (Envoy's rule), else its name; None when Remora does not implement it."""
    configured = type_name(typed_config)
    if configured is not None:
        return TYPE_URLS.get(configured)
    name = canonical_name(name)
    return name if name in IMPLEMENTED else None


def typed_config_of(value: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """An HttpFilter's typed_config (protobuf JSON accepts `typed_config` and `typedConfig`)."""
    found = value.get("typed_config", value.get("typedConfig"))
    return found if isinstance(found, Mapping) else None


def freeze(value: Any) -> Any:
    """A JSON value made read-only: mappings as MappingProxyType, lists as tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of `freeze`: plain dicts and lists, for code that wants JSON as parsed."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    return value


def listener_scope(name: str) -> tuple[Context | None, int | None] | None:
    """What EnvoyFilter's match.listener.name selects among Remora's listeners: (context,
    port), None for either meaning any; None when Remora has no listener of that name. Istio's
    names: `virtualInbound`, `virtualOutbound`, `0.0.0.0_<port>` (outbound and gateway ports)."""
    if name == "virtualInbound":
        return "SIDECAR_INBOUND", None
    if name == "virtualOutbound":
        return "SIDECAR_OUTBOUND", None
    address, _, port = name.rpartition("_")
    if address == "0.0.0.0" and port.isdigit():
        return None, int(port)
    return None
