"""Host names as Istio resolves them: short names, FQDNs, wildcards, exportTo scopes.

Sources: istio/istio pkg/config/host (Name.Matches), pkg/config/analysis/analyzers/util
(hosts.go, service_lookup.go). A short name (no dot) resolves in the namespace of the resource
that names it to `name.<ns>.svc.cluster.local`; names with a dot and wildcards stay as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from remora.api.networking.names import to_fqdn

EXPORT_ALL = "*"
EXPORT_LOCAL = "."
MESH_GATEWAY = "mesh"
ROOT_NAMESPACE = "istio-system"  # meshConfig.rootNamespace's default

_SERVICE_FQDN = re.compile(r"^(.+)\.(.+)\.svc\.cluster\.local$")


def service_of(fqdn: str) -> tuple[str, str] | None:
    """ "reviews.default.svc.cluster.local" -> ("default", "reviews"); None if not that form."""
    found = _SERVICE_FQDN.match(fqdn)
    return (found.group(2), found.group(1)) if found else None


def exports_to_all(export_to: Sequence[str]) -> bool:
    """exportTo empty or containing "*" makes a resource visible everywhere."""
    return not export_to or EXPORT_ALL in export_to


def export_scopes(export_to: Sequence[str], namespace: str) -> list[str]:
    """The namespaces (or "*") a resource is visible in; "." is its own namespace."""
    if exports_to_all(export_to):
        return [EXPORT_ALL]
    return sorted({namespace if e == EXPORT_LOCAL else e for e in export_to})


def split_namespaced_name(ref: str, namespace: str) -> tuple[str, str]:
    """ "ns/name" -> (ns, name); "name" -> (namespace, name) (resource.NewShortOrFullName)."""
    if "/" in ref:
        ns, _, name = ref.partition("/")
        return ns, name
    return namespace, ref


@dataclass(frozen=True)
class ServiceInfo:
    """A destination the mesh knows: a Kubernetes Service or a ServiceEntry host."""

    host: str  # FQDN or wildcard
    namespace: str
    ports: tuple[int, ...]
    selector: dict[str, str] | None  # workload labels it selects; None = not label based
    kind: str  # "Service" | "ServiceEntry"


@dataclass
class ServiceRegistry:
    """Hosts visible per scope ("*" or a namespace), as util.InitServiceEntryHostMap builds it."""

    by_scope: dict[tuple[str, str], ServiceInfo] = field(default_factory=dict)

    def add(self, info: ServiceInfo, scopes: Iterable[str]) -> None:
        for scope in scopes:
            self.by_scope.setdefault((scope, info.host), info)

    def __bool__(self) -> bool:
        return bool(self.by_scope)

    def lookup(
        self, host: str, *, namespace: str, export_to: Sequence[str] = ()
    ) -> ServiceInfo | None:
        """The service `host` (named in `namespace`) resolves to (util.GetDestinationHost)."""
        fqdn = to_fqdn(host, namespace)
        found = self.by_scope.get((EXPORT_ALL, fqdn))
        if found:
            return found
        scopes = (
            [namespace]
            if not export_to
            else [namespace if e == EXPORT_LOCAL else e for e in export_to]
        )
        for scope in scopes:
            found = self.by_scope.get((scope, fqdn))
            if found:
                return found
        for (scope, known), info in self.by_scope.items():
            if not known.startswith("*") or scope not in (EXPORT_ALL, namespace):
                continue
            if (fqdn[1:] if fqdn.startswith("*") else fqdn).endswith(known[1:]):
                return info
        return None
