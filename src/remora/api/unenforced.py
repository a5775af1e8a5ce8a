"""What Remora parses but does not enforce — the one list, so nothing is accepted silently.

Each entry is a kind (path "": the whole resource) or a field path of a kind, with why it is not
enforced. `remora apply` answers a `Warning:` for it, `remora analyze` reports RMR0001 naming the
field path, and a proxy that receives it logs it once (docs/unenforced.md is checked against
this list). Kinds Remora does not model at all (EnvoyFilter, WasmPlugin, ...) are listed too: the
API refuses them, and `remora proxy -f` / `remora analyze` name them with the same reason. As a
feature lands, its entries go.

Paths use Istio's YAML names; `[]` stands for every item of a list.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic.alias_generators import to_snake

from remora.api.errors import ConfigError
from remora.api.meshconfig import (
    MESH_KEY,
    USED_PROVIDERS,
    ExtensionProvider,
    MeshConfig,
    configmap_mesh_config,
    is_mesh_configmap,
)
from remora.api.resource import Resource


@dataclass(frozen=True, slots=True)
class Unenforced:
    """A kind (path "") or field path Remora accepts without acting on it, and why."""

    kind: str
    path: str
    reason: str
    harmless: Any = None  # a value that asks for what happens anyway (not reported)


@dataclass(frozen=True, slots=True)
class Finding:
    """One unenforced thing set in one resource: `spec.subsets[0].trafficPolicy.tls`."""

    subject: str  # "DestinationRule default/reviews"
    kind: str
    path: str  # the concrete path ("" for the whole resource)
    reason: str

    @property
    def message(self) -> str:
        if not self.path:
            return f"{self.kind} is NOT enforced by Remora: {self.reason}"
        return f"{self.path} is not enforced by Remora: {self.reason}"

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


_MTLS = "no mTLS or upstream TLS yet: connections to the destination are plain text"
_PLAIN_TEXT = {"mode": "DISABLE"}  # asks for plain text: what the proxy does
_HTTP2 = "the proxy speaks HTTP/1.1 upstream; HTTP/2 settings have nothing to act on"
_TRAFFIC_POLICY_FIELDS = (
    ("tls", _MTLS),
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
_PORT_LEVEL = frozenset({"tls", "loadBalancer.warmup", "loadBalancer.warmupDurationSecs",
                         "loadBalancer.zoneAwareLbSetting", "connectionPool.http.h2UpgradePolicy",
                         "connectionPool.http.useClientProtocol",
                         "connectionPool.http.maxConcurrentStreams"})
_GATEWAY_TLS = "the gateway terminates TLS with Python's defaults and its certificate only"

_PORTS = "listener ports come from `remora proxy` flags (--outbound-port, --inbound-port)"
_INGRESS = "Kubernetes Ingress resources are not served (use a Gateway)"
_TLS = "no mTLS or TLS origination yet: there are no workload certificates to configure"
_MESH_CONFIG = tuple(Unenforced("MeshConfig", path, reason, harmless)
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
    ("defaultConfig", "proxy settings come from `remora proxy` flags and `remora up`", None),
    ("inboundTrafficPolicy", "inbound traffic goes to the app on 127.0.0.1:--app-port",
     None),
    ("configSources", "configuration comes from the control plane's store", None),
    ("enableAutoMtls", _TLS, False), ("trustDomain", _TLS, "cluster.local"),
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
))
"""MeshConfig fields (ConfigMap istio-system/istio, key `mesh`) Remora does not act on; the
ones it does are in remora.api.meshconfig (MeshConfig's properties)."""

UNENFORCED: tuple[Unenforced, ...] = (
    Unenforced("AuthorizationPolicy", "",
               "authorization is not implemented yet: requests this policy would DENY (or not "
               "ALLOW) are let through. It does NOT protect anything."),
    Unenforced("PeerAuthentication", "",
               "there is no mTLS yet: STRICT is not required, traffic stays plain text"),
    Unenforced("RequestAuthentication", "",
               "JWTs are not validated: requests with invalid tokens are let through"),
    Unenforced("Telemetry", "",
               "metrics, access logs and tracing follow the proxy's flags, not Telemetry"),
    Unenforced("Sidecar", "",
               "every sidecar reaches every service and listens on its fixed ports: egress "
               "hosts, ingress listeners, outboundTrafficPolicy and connection pools of a "
               "Sidecar are not applied"),
    *(Unenforced("DestinationRule", f"{base}.{field}", reason,
                 _PLAIN_TEXT if field == "tls" else None)
      for base in _TRAFFIC_POLICIES for field, reason in _TRAFFIC_POLICY_FIELDS
      if not base.endswith("portLevelSettings[]") or field in _PORT_LEVEL),
    Unenforced("VirtualService", "spec.tcp", "only HTTP routes are served (no TCP proxying)"),
    Unenforced("VirtualService", "spec.tls", "only HTTP routes are served (no SNI routing)"),
    *(Unenforced("Gateway", f"spec.servers[].tls.{field}", _GATEWAY_TLS)
      for field in ("minProtocolVersion", "maxProtocolVersion", "cipherSuites",
                    "subjectAltNames", "verifyCertificateSpki", "verifyCertificateHash",
                    "caCertificates", "caCrl", "caCertCredentialName")),
    Unenforced("Gateway", "spec.servers[].bind", "gateway listeners bind the proxy's --bind "
                                                 "address"),
    Unenforced("ServiceEntry", "spec.subjectAltNames", _MTLS),
    Unenforced("WorkloadEntry", "spec.network", "one network only: endpoints are dialled "
                                                "directly whatever their network"),
    *_MESH_CONFIG,
)
"""Kinds and fields that Remora models (accepts) but whose effect it does not implement."""

NOT_MODELLED: tuple[Unenforced, ...] = (
    Unenforced("EnvoyFilter", "", "Remora is not Envoy: there is no filter chain to patch, so "
                                  "the filters it adds (rate limits, Lua, ext_authz...) are not "
                                  "applied"),
    Unenforced("WasmPlugin", "", "Wasm extensions are not loaded"),
    Unenforced("ProxyConfig", "", "proxy settings come from `remora proxy` flags"),
    Unenforced("WorkloadGroup", "", "workloads are registered through the registry instead"),
)
"""Istio kinds Remora does not model: the API refuses them (404), analyze and proxies name them."""

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
        child = children.setdefault(name, _Node(name, to_snake(name), parts[0].endswith("[]")))
        child.add(parts[1:], entry)


_BY_KIND: dict[str, _Node] = {}
for _entry in UNENFORCED:
    _BY_KIND.setdefault(_entry.kind, _Node()).add(
        [part for part in _entry.path.split(".") if part], _entry)
_NOT_MODELLED = {entry.kind: entry for entry in NOT_MODELLED}


def findings(resource: Resource) -> list[Finding]:
    """What `resource` sets that Remora will not enforce, each with its concrete path. The
    model is walked once, by attribute (no dump): compiles and analyses call this for every
    resource, thousands of times."""
    if is_mesh_configmap(resource):
        return _configmap_findings(resource)
    root = _BY_KIND.get(resource.kind)
    if root is None:
        return []
    out: list[Finding] = []
    for entry, path, value in _walk(root, resource, ""):
        if entry.harmless is None or _compact(value) != entry.harmless:
            out.append(Finding(resource.subject, resource.kind, path, entry.reason))
    return out


def mesh_findings(mesh: MeshConfig, subject: str, prefix: str) -> list[Finding]:
    """What a MeshConfig sets that Remora does not act on, field paths under `prefix`
    (`data.mesh` in the ConfigMap, "" in a --meshConfigFile)."""
    out = []
    for entry, path, value in _walk(_BY_KIND["MeshConfig"], mesh, ""):
        if isinstance(value, ExtensionProvider) and value.kind in USED_PROVIDERS:
            continue
        if entry.harmless is None or _compact(value) != entry.harmless:
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
    retry = mesh.default_http_retry_policy
    if retry is not None and retry.per_try_timeout is not None:
        out.append(("defaultHttpRetryPolicy.perTryTimeout",
                    "Istio takes every setting of the default retry policy but perTryTimeout"))
    return out


def _configmap_findings(resource: Resource) -> list[Finding]:
    try:
        mesh = configmap_mesh_config(resource)  # type: ignore[arg-type]
    except ConfigError:  # refused when it was loaded: reported there
        return []
    return mesh_findings(mesh, resource.subject, f"data.{MESH_KEY}")


def not_modelled(kind: str) -> Unenforced | None:
    """The entry for an Istio kind Remora does not model (None for any other unknown kind)."""
    return _NOT_MODELLED.get(kind)


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
