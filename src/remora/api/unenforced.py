"""What Remora parses but does not enforce — the one list, so nothing is accepted silently.

Each entry is a kind (path "": the whole resource) or a field path of a kind, with why it is not
enforced. `remora apply` answers a `Warning:` for it, `remora analyze` reports RMR0001 naming the
field path, and a proxy that receives it logs it once (docs/unenforced.md is checked against
this list). Kinds Remora does not model at all (WasmPlugin, ...) are listed too: the API
refuses them, and `remora proxy -f` / `remora analyze` name them with the same reason. As a
feature lands, its entries go.

Most entries are reported whenever their field is set, unless it holds a value that asks for
what happens anyway (`harmless`: MeshConfig `ingressControllerMode: OFF`); EnvoyFilter's
(`by_value`) depend on the patch they are in (an `applyTo` other than HTTP_FILTER, a MERGE, a
listener match Remora's listeners cannot meet) and are found by `_envoy_filter_findings`.

Paths use Istio's YAML names; `[]` stands for every item of a list.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic.alias_generators import to_snake

from remora.api.errors import ConfigError
from remora.api.finding import Finding
from remora.api.meshconfig import (
    MESH_KEY,
    USED_PROVIDERS,
    ExtensionProvider,
    MeshConfig,
    configmap_mesh_config,
    is_mesh_configmap,
)
from remora.api.networking import httpfilters
from remora.api.networking.connection_manager import FIELDS, connection_manager_settings
from remora.api.networking.envoy_filter import (
    HTTP_FILTER_OPERATIONS,
    EnvoyConfigObjectPatch,
    EnvoyFilter,
)
from remora.api.networking.gateway import VALID_CIPHER_SUITES, Gateway
from remora.api.resource import Resource


@dataclass(frozen=True, slots=True)
class Unenforced:
    """A kind (path "") or field path Remora accepts without acting on it, and why."""

    kind: str
    path: str
    reason: str
    harmless: Any = None  # a value that asks for what happens anyway (not reported)
    by_value: bool = False  # reported by a check of the value, not whenever set


_CRL = "certificate revocation lists are not checked: a revoked server certificate is accepted"
_HTTP2 = "the proxy speaks HTTP/1.1 upstream; HTTP/2 settings have nothing to act on"
_TRAFFIC_POLICY_FIELDS = (
    ("tls.caCrl", _CRL),
    ("tunnel", "no HTTP CONNECT tunnelling"),
    ("proxyProtocol", "the PROXY protocol header is not sent"),
    ("retryBudget", "retries are bounded by connectionPool.http.maxRetries only"),
    ("loadBalancer.warmup", "no slow start: new endpoints get their full share at once"),
    ("loadBalancer.warmupDurationSecs", "no slow start: new endpoints get their full share at "
                                        "once"),
    ("loadBalancer.zoneAwareLbSetting", "zone-aware balancing is not implemented (use "
                                        "localityLbSetting)"),
    ("connectionPool.http.h2UpgradePolicy", _HTTP2),
    ("connectionPool.http.useClientProtocol", _HTTP2),
    ("connectionPool.http.maxConcurrentStreams", _HTTP2),
)
_TRAFFIC_POLICIES = ("spec.trafficPolicy", "spec.trafficPolicy.portLevelSettings[]",
                     "spec.subsets[].trafficPolicy",
                     "spec.subsets[].trafficPolicy.portLevelSettings[]")
_PORT_LEVEL = frozenset({"tls.caCrl",
                         "loadBalancer.warmup", "loadBalancer.warmupDurationSecs",
                         "loadBalancer.zoneAwareLbSetting", "connectionPool.http.h2UpgradePolicy",
                         "connectionPool.http.useClientProtocol",
                         "connectionPool.http.maxConcurrentStreams"})
_CLIENT_CHECKS = ("the client certificate is checked against the client CA only (MUTUAL, "
                  "OPTIONAL_MUTUAL)")
_GATEWAY_TLS = (("subjectAltNames", _CLIENT_CHECKS), ("verifyCertificateSpki", _CLIENT_CHECKS),
                ("verifyCertificateHash", _CLIENT_CHECKS),
                ("caCrl", "certificate revocation lists are not checked: a revoked client "
                          "certificate is accepted"))
_PASSTHROUGH = ("TLS passthrough (routing the connection by SNI without terminating it) is "
                "not implemented: the server is not served")
_SECOND_CERTIFICATE = "only the first certificate is served (no RSA/ECDSA pair)"
_UNKNOWN_CIPHER = ("not a cipher suite Istio knows: ignored, as Istio ignores it (the others "
                   "apply; none left: Envoy's default list)")
_ISTIO_MUTUAL_TLS = ("ISTIO_MUTUAL serves with the mesh's TLS settings (TLS 1.2 to 1.3, the "
                     "default ciphers): not applied")

_HCM_FIELDS = ("not applied: of the HTTP connection manager's fields, Remora applies only "
               + ", ".join(FIELDS))
_PORTS = "listener ports come from `remora proxy` flags (--outbound-port, --inbound-port)"
_INGRESS = "Kubernetes Ingress resources are not served (use a Gateway)"
_TLS = ("not applied: workload certificates are issued in trustDomain and checked against the "
        "roots of ConfigMap istio-ca-root-cert only")
_PROXY_CONFIG = ("proxy settings come from `remora proxy` flags and `remora up`, which reads "
                 "only holdApplicationUntilProxyStarts")
_MESH_CONFIG = (Unenforced("MeshConfig", "defaultConfig", _PROXY_CONFIG, by_value=True),
                *(Unenforced("MeshConfig", path, reason, harmless)
                  for path, reason, harmless in (
    ("proxyListenPort", _PORTS, 15001), ("proxyInboundListenPort", _PORTS, 15006),
    ("proxyHttpPort", _PORTS, None),
    ("protocolDetectionTimeout", "no protocol sniffing: a port speaks what its name declares",
     0.0),
    ("tcpKeepalive", "set keepalive per destination (DestinationRule connectionPool.tcp)", None),
    ("ingressClass", _INGRESS, None), ("ingressService", _INGRESS, None),
    ("ingressControllerMode", _INGRESS, "OFF"), ("ingressSelector", _INGRESS, None),
    ("enableTracing", "no tracing yet: no spans are reported", False),
    ("enableEnvoyAccessLogService", "no gRPC access log service", False),
    ("disableEnvoyListenerLog", "no listener access log", None),
    ("inboundTrafficPolicy", "inbound traffic goes to the app on 127.0.0.1:--app-port",
     None),
    ("configSources", "configuration comes from the control plane's store", None),
    ("trustDomainAliases", _TLS, None), ("caCertificates", _TLS, None),
    ("certificates", _TLS, None), ("ca", _TLS, None), ("meshMTLS", _TLS, None),
    ("tlsDefaults", _TLS, None), ("compliancePolicy", _TLS, None),
    ("verifyCertificateAtClient", _TLS, None),
    ("defaultServiceExportTo", "services are visible to every namespace unless exportTo says "
                               "otherwise", ["*"]),
    ("defaultVirtualServiceExportTo", "a VirtualService without exportTo is visible to every "
                                      "namespace", ["*"]),
    ("defaultDestinationRuleExportTo", "a DestinationRule without exportTo is visible to every "
                                       "namespace", ["*"]),
    ("localityLbSetting", "set locality load balancing per destination (DestinationRule)", None),
    ("dnsRefreshRate", "DNS endpoints are resolved when connecting", None),
    ("h2UpgradePolicy", _HTTP2, "DO_NOT_UPGRADE"),
    ("inboundClusterStatName", "cluster stat names are Istio's defaults", None),
    ("outboundClusterStatName", "cluster stat names are Istio's defaults", None),
    ("serviceSettings", "one cluster only: clusterLocal changes nothing", None),
    ("enablePrometheusMerge", "application metrics are not merged into the proxy's", False),
    ("discoverySelectors", "every namespace is processed", None),
    ("extensionProviders[]", "only prometheus and envoyFileAccessLog providers are used", None),
    ("defaultProviders.tracing", "no tracing yet: no spans are reported", None),
    ("defaultProviders.metrics", "metrics are Istio's standard Prometheus metrics",
     ["prometheus"]),
)))
"""MeshConfig fields (ConfigMap istio-system/istio, key `mesh`) Remora does not act on; the
ones it does are in remora.api.meshconfig (MeshConfig's properties)."""

_SIDECAR = tuple(Unenforced("Sidecar", path, reason) for path, reason in (
    ("spec.egress[]", "no egress scoping: the sidecar reaches every service visible to its "
                      "namespace, through its one outbound listener"),
    ("spec.ingress[]", "no ingress listeners: the sidecar listens on --inbound-port and forwards "
                       "to its app at 127.0.0.1:--app-port"),
    ("spec.ingress[].connectionPool", "per-port inbound pools come with spec.ingress, which is "
                                      "not applied: the inbound cluster takes "
                                      "inboundConnectionPool"),
    ("spec.outboundTrafficPolicy.egressProxy", "ALLOW_ANY sends an unknown host straight to the "
                                               "host the request names, not to an egress proxy"),
    *((f"spec.inboundConnectionPool.{field.removeprefix('connectionPool.')}", reason)
      for field, reason in _TRAFFIC_POLICY_FIELDS if field.startswith("connectionPool.")),
))
"""Sidecar: what Remora does not act on; it applies workloadSelector, outboundTrafficPolicy.mode
and inboundConnectionPool (remora.mesh.sidecarscope)."""

_EF = "spec.configPatches[]"
_NO_CHAIN = "Remora's HTTP listeners have one filter chain each, with no name, SNI or protocols " \
            "to match: a patch with this condition applies to none"
_ENVOY_FILTER = tuple(Unenforced("EnvoyFilter", path, reason, by_value=True)
                      for path, reason in (
    (f"{_EF}.applyTo", "only HTTP_FILTER patches, and NETWORK_FILTER MERGE patches of the HTTP "
                       "connection manager's timeouts and limits, are applied (there are no "
                       "Envoy listeners, clusters or route configurations to patch)"),
    *((f"{_EF}.patch.value.{key}", _HCM_FIELDS) for key in ("typed_config", "typedConfig")),
    (f"{_EF}.match.listener.portNumber", "Remora's one outbound listener serves every "
                                         "destination port on a connection: a MERGE into the "
                                         "connection manager of one outbound port applies to "
                                         "none"),
    (f"{_EF}.patch.operation", "MERGE is not applied to HTTP filters (ADD, INSERT_BEFORE, "
                               "INSERT_AFTER, INSERT_FIRST, REPLACE and REMOVE are)"),
    (f"{_EF}.patch.filterClass", "the filter is placed by the patch's operation alone"),
    (f"{_EF}.match.context", "there are no waypoint proxies: the patch applies to none"),
    (f"{_EF}.match.proxy", "Remora's proxies carry no Istio version or node metadata, so (as "
                           "Istio does for such a proxy) the patch applies to none"),
    (f"{_EF}.match.listener.name", "Remora's listeners are virtualInbound, virtualOutbound and "
                                   "0.0.0.0_<port>: a patch naming another applies to none"),
    (f"{_EF}.match.listener.portName", "not implemented (nor is it by Istio): the condition is "
                                       "ignored"),
    (f"{_EF}.match.listener.listenerFilter", "listener filters are not HTTP filters: the "
                                             "condition is ignored"),
    (f"{_EF}.match.listener.filterChain.filter.name",
     "only the HTTP connection manager has HTTP filters: the patch matches no HTTP filter chain"),
    *((f"{_EF}.match.listener.filterChain.{field}", _NO_CHAIN)
      for field in ("name", "sni", "transportProtocol", "applicationProtocols",
                    "destinationPort")),
    ("spec.targetRefs[]", "only a Gateway (gateway.networking.k8s.io) is a target: the proxies "
                          "labelled gateway.networking.k8s.io/gateway-name with its name"),
))
"""EnvoyFilter: what Remora does not act on, found by value (`_envoy_filter_findings`)."""

UNENFORCED: tuple[Unenforced, ...] = (
    Unenforced("AuthorizationPolicy", "",
               "authorization is not implemented yet: requests this policy would DENY (or not "
               "ALLOW) are let through. It does NOT protect anything."),
    Unenforced("RequestAuthentication", "",
               "JWTs are not validated: requests with invalid tokens are let through"),
    Unenforced("Telemetry", "",
               "metrics, access logs and tracing follow the proxy's flags, not Telemetry"),
    *_SIDECAR,
    *(Unenforced("DestinationRule", f"{base}.{field}", reason)
      for base in _TRAFFIC_POLICIES for field, reason in _TRAFFIC_POLICY_FIELDS
      if not base.endswith("portLevelSettings[]") or field in _PORT_LEVEL),
    Unenforced("VirtualService", "spec.tcp", "only HTTP routes are served (no TCP proxying)"),
    Unenforced("VirtualService", "spec.tls", "only HTTP routes are served (no SNI routing)"),
    *(Unenforced("Gateway", f"spec.servers[].tls.{field}", reason)
      for field, reason in _GATEWAY_TLS),
    *(Unenforced("Gateway", f"spec.servers[].tls.{field}", reason, by_value=True)
      for field, reason in (("mode", _PASSTHROUGH), ("credentialNames[]", _SECOND_CERTIFICATE),
                            ("tlsCertificates[]", _SECOND_CERTIFICATE),
                            ("cipherSuites[]", _UNKNOWN_CIPHER),
                            ("minProtocolVersion", _ISTIO_MUTUAL_TLS),
                            ("maxProtocolVersion", _ISTIO_MUTUAL_TLS),
                            ("cipherSuites", _ISTIO_MUTUAL_TLS))),
    Unenforced("Gateway", "spec.servers[].bind", "gateway listeners bind the proxy's --bind "
                                                 "address"),
    Unenforced("ServiceEntry", "spec.subjectAltNames",
               "the server certificate is not checked against subjectAltNames"),
    Unenforced("WorkloadEntry", "spec.network", "one network only: endpoints are dialled "
                                                "directly whatever their network"),
    *_ENVOY_FILTER,
    *_MESH_CONFIG,
)
"""Kinds and fields that Remora models (accepts) but whose effect it does not implement."""

NOT_MODELLED: tuple[Unenforced, ...] = (
    Unenforced("WasmPlugin", "", "Wasm extensions are not loaded"),
    Unenforced("ProxyConfig", "", "proxy settings come from `remora proxy` flags"),
    Unenforced("WorkloadGroup", "", "workloads are registered through the registry instead"),
)
"""Istio kinds Remora does not model: the API refuses them (404), analyze and proxies name them."""

_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _attribute(name: str) -> str:
    """A YAML name's model attribute: `h2UpgradePolicy` -> `h2_upgrade_policy`, `meshMTLS` ->
    `mesh_mtls` (pydantic's to_snake splits digits off: `h_2_upgrade_policy`)."""
    return _CAMEL_HUMP.sub("_", name).lower()


@dataclass
class _Node:
    """The paths of one kind as a tree, so a resource is walked once whatever the entries."""

    name: str = ""  # YAML name
    attribute: str = ""  # model attribute
    is_list: bool = False
    entries: list[Unenforced] | None = None  # the entries whose path ends here
    children: dict[str, _Node] | None = None

    def add(self, parts: list[str], entry: Unenforced) -> None:
        if not parts:
            self.entries = [*(self.entries or []), entry]
            return
        name = parts[0].removesuffix("[]")
        children = self.children = self.children or {}
        child = children.setdefault(name, _Node(name, _attribute(name), parts[0].endswith("[]")))
        child.add(parts[1:], entry)


_BY_KIND: dict[str, _Node] = {}
for _entry in (entry for entry in UNENFORCED if not entry.by_value):
    _BY_KIND.setdefault(_entry.kind, _Node()).add(
        [part for part in _entry.path.split(".") if part], _entry)
_NOT_MODELLED = {entry.kind: entry for entry in NOT_MODELLED}


def findings(resource: Resource) -> list[Finding]:
    """What `resource` sets that Remora will not enforce, each with its concrete path. The
    model is walked once, by attribute (no dump): compiles and analyses call this for every
    resource, thousands of times."""
    if is_mesh_configmap(resource):
        return _configmap_findings(resource)
    if isinstance(resource, EnvoyFilter):
        return _envoy_filter_findings(resource)
    root = _BY_KIND.get(resource.kind)
    if root is None:
        return []
    out: list[Finding] = []
    if isinstance(resource, Gateway):
        out.extend(Finding(resource.subject, resource.kind, path, reason)
                   for path, reason in _gateway_tls_findings(resource))
    for entry, path, value in _walk(root, resource, ""):
        if not _harmless(entry, value):
            out.append(Finding(resource.subject, resource.kind, path, entry.reason))
    return out


def mesh_findings(mesh: MeshConfig, subject: str, prefix: str) -> list[Finding]:
    """What a MeshConfig sets that Remora does not act on, field paths under `prefix`
    (`data.mesh` in the ConfigMap, "" in a --meshConfigFile)."""
    out = []
    for entry, path, value in _walk(_BY_KIND["MeshConfig"], mesh, ""):
        if isinstance(value, ExtensionProvider) and value.kind in USED_PROVIDERS:
            continue
        if not _harmless(entry, value):
            where = f"{prefix}.{path}" if prefix else path
            out.append(Finding(subject, "MeshConfig", where, entry.reason))
    for path, reason in _mesh_value_findings(mesh):
        out.append(Finding(subject, "MeshConfig", f"{prefix}.{path}" if prefix else path,
                           reason))
    return out


def _mesh_value_findings(mesh: MeshConfig) -> list[tuple[str, str]]:
    """Fields Remora acts on in general but not with this value."""
    out = []
    if mesh.access_log_format and mesh.access_log_encoding == "JSON":
        out.append(("accessLogFormat", "a JSON access log has Envoy's default fields; only a "
                                       "TEXT format is applied"))
    out.extend((f"defaultConfig.{key}", _PROXY_CONFIG) for key in (mesh.default_config or {})
               if key != "holdApplicationUntilProxyStarts")
    retry = mesh.default_http_retry_policy
    if retry is not None and retry.per_try_timeout is not None:
        out.append(("defaultHttpRetryPolicy.perTryTimeout",
                    "Istio takes every setting of the default retry policy but perTryTimeout"))
    return out


_ENVOY_REASONS = {entry.path: entry.reason for entry in _ENVOY_FILTER}


def _gateway_tls_findings(resource: Gateway) -> Iterator[tuple[str, str]]:
    """What a Gateway server's tls asks that Remora does not do with the value it holds."""
    for index, server in enumerate(resource.spec.servers):
        tls, where = server.tls, f"spec.servers[{index}].tls"
        if tls is None:
            continue
        if server.port.is_tls and tls.is_passthrough:
            yield f"{where}.mode", _PASSTHROUGH
        for field, items in (("credentialNames", tls.credential_names),
                             ("tlsCertificates", tls.tls_certificates)):
            yield from ((f"{where}.{field}[{i}]", _SECOND_CERTIFICATE)
                        for i in range(1, len(items)))
        if tls.mode == "ISTIO_MUTUAL":
            for field, value in (("minProtocolVersion", tls.min_protocol_version),
                                 ("maxProtocolVersion", tls.max_protocol_version),
                                 ("cipherSuites", tls.cipher_suites)):
                if value not in (None, "TLS_AUTO", []):
                    yield f"{where}.{field}", _ISTIO_MUTUAL_TLS
            continue
        yield from ((f"{where}.cipherSuites[{i}]", _UNKNOWN_CIPHER)
                    for i, suite in enumerate(tls.cipher_suites)
                    if suite not in VALID_CIPHER_SUITES)


def _envoy_filter_findings(resource: EnvoyFilter) -> list[Finding]:
    """What an EnvoyFilter asks that Remora does not do (istio.io/latest/docs/reference/config/
    networking/envoy-filter/): each with the concrete path and the reason of its entry (for a
    field of a typed_config, the entry of the typed_config)."""
    out = []
    for path in _envoy_filter_paths(resource):
        generic = re.sub(r"\[\d+\]", "[]", path)
        while generic not in _ENVOY_REASONS:
            generic = generic.rpartition(".")[0]
        out.append(Finding(resource.subject, resource.kind, path, _ENVOY_REASONS[generic]))
    return out


def _envoy_filter_paths(resource: EnvoyFilter) -> Iterator[str]:
    for index, ref in enumerate(resource.spec.target_refs):
        if (ref.group, ref.kind) != ("gateway.networking.k8s.io", "Gateway"):
            yield f"spec.targetRefs[{index}]"
    for index, patch in enumerate(resource.spec.config_patches):
        yield from _patch_paths(patch, f"spec.configPatches[{index}]")


def _patch_paths(patch: EnvoyConfigObjectPatch, where: str) -> Iterator[str]:
    merge = patch.merges_connection_manager
    if patch.apply_to != "HTTP_FILTER" and not merge:
        yield f"{where}.applyTo"
        return
    assert patch.patch is not None  # the model requires it
    if merge:
        _, unsupported = connection_manager_settings(patch.patch.value or {})
        yield from (f"{where}.patch.value.{path}" for path in unsupported)
        match = patch.match
        listener = match.listener if match is not None else None
        if match is not None and match.context == "SIDECAR_OUTBOUND" and listener is not None \
                and listener.port_number:
            yield f"{where}.match.listener.portNumber"
    elif patch.patch.operation not in HTTP_FILTER_OPERATIONS:
        yield f"{where}.patch.operation"
    if patch.patch.filter_class not in (None, "UNSPECIFIED"):
        yield f"{where}.patch.filterClass"
    match = patch.match
    if match is None:
        return
    if match.context == "WAYPOINT":
        yield f"{where}.match.context"
    if match.proxy is not None and (match.proxy.proxy_version or match.proxy.metadata):
        yield f"{where}.match.proxy"
    listener = match.listener
    if listener is None:
        return
    where = f"{where}.match.listener"
    if listener.name and httpfilters.listener_scope(listener.name) is None:
        yield f"{where}.name"
    if listener.port_name:
        yield f"{where}.portName"
    if listener.listener_filter:
        yield f"{where}.listenerFilter"
    chain = listener.filter_chain
    if chain is None:
        return
    found = chain.filter
    if found is not None and found.name not in httpfilters.HTTP_CONNECTION_MANAGER_NAMES:
        yield f"{where}.filterChain.filter.name"
    for field in ("name", "sni", "transportProtocol", "applicationProtocols", "destinationPort"):
        if getattr(chain, to_snake(field)) not in (None, ""):
            yield f"{where}.filterChain.{field}"


def _configmap_findings(resource: Resource) -> list[Finding]:
    try:
        mesh = configmap_mesh_config(resource)  # type: ignore[arg-type]
    except ConfigError:  # refused when it was loaded: reported there
        return []
    return mesh_findings(mesh, resource.subject, f"data.{MESH_KEY}")


def not_modelled(kind: str) -> Unenforced | None:
    """The entry for an Istio kind Remora does not model (None for any other unknown kind)."""
    return _NOT_MODELLED.get(kind)


def _harmless(entry: Unenforced, value: Any) -> bool:
    """`value` asks for what happens anyway (the entry is not reported for it)."""
    return entry.harmless is not None and bool(_compact(value) == entry.harmless)


def _compact(value: Any) -> Any:
    """A model as written: its set fields by YAML name, empty ones left out."""
    data = value.model_dump(mode="json", by_alias=True, exclude_none=True) \
        if hasattr(value, "model_dump") else value
    if isinstance(data, Mapping):
        return {k: _compact(v) for k, v in data.items() if not _unset(v)}
    return data


def _unset(value: Any) -> bool:
    """None or empty (no `==`: comparing models is slow)."""
    return value is None or (isinstance(value, list | dict | str) and not value)


def _walk(node: _Node, value: Any, path: str) -> Iterator[tuple[Unenforced, str, Any]]:
    """(entry, concrete path, value) for each entry whose field is set under `value`."""
    for entry in node.entries or ():
        yield entry, path, value
    for child in (node.children or {}).values():
        inner: Any = getattr(value, child.attribute, None)
        if _unset(inner):
            continue
        where = f"{path}.{child.name}" if path else child.name
        if child.is_list:
            for index, item in enumerate(inner):
                yield from _walk(child, item, f"{where}[{index}]")
        else:
            yield from _walk(child, inner, where)
