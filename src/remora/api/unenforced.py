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

_BY_KIND: dict[str, list[Unenforced]] = {}
for _entry in UNENFORCED:
    _BY_KIND.setdefault(_entry.kind, []).append(_entry)
_NOT_MODELLED = {entry.kind: entry for entry in NOT_MODELLED}


def findings(resource: Resource) -> list[Finding]:
    """What `resource` sets that Remora will not enforce, each with its concrete path."""
    entries = _BY_KIND.get(resource.kind)
    if not entries:
        return []
    out: list[Finding] = []
    data: Any = None
    for entry in entries:
        if not entry.path:
            out.append(Finding(resource.subject, resource.kind, "", entry.reason))
            continue
        if not _may_be_set(resource, entry.path):
            continue
        if data is None:
            data = resource.model_dump(mode="json", by_alias=True, exclude_none=True)
        out.extend(Finding(resource.subject, resource.kind, path, entry.reason)
                   for path, value in _set_paths(data, entry.path.split("."))
                   if entry.harmless is None or _compact(value) != entry.harmless)
    return out


def not_modelled(kind: str) -> Unenforced | None:
    """The entry for an Istio kind Remora does not model (None for any other unknown kind)."""
    return _NOT_MODELLED.get(kind)


def _compact(value: Any) -> Any:
    """`value` without its unset (empty) fields, as it was written."""
    if isinstance(value, Mapping):
        return {k: _compact(v) for k, v in value.items() if v not in (None, [], {}, "")}
    return value


def _may_be_set(resource: Resource, path: str) -> bool:
    """A cheap look at the top spec field first: most resources set none of these (the
    thousands of WorkloadEntries of a large registry are not dumped to find that out)."""
    parts = path.split(".")
    if len(parts) < 2 or parts[0] != "spec":
        return True
    spec = getattr(resource, "spec", None)
    value = getattr(spec, to_snake(parts[1].removesuffix("[]")), None)
    return value not in (None, [], {}, "")


def _set_paths(data: Any, parts: list[str], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Concrete paths (`spec.subsets[1].trafficPolicy.tls`) where the pattern holds a value,
    with the value."""
    if not parts:
        if data not in (None, [], {}, ""):
            yield prefix, data
        return
    head, rest = parts[0], parts[1:]
    name = head.removesuffix("[]")
    if not isinstance(data, Mapping) or name not in data:
        return
    value = data[name]
    path = f"{prefix}.{name}" if prefix else name
    if head.endswith("[]"):
        for index, item in enumerate(value if isinstance(value, list) else []):
            yield from _set_paths(item, rest, f"{path}[{index}]")
    else:
        yield from _set_paths(value, rest, path)
