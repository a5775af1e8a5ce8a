"""The services a proxy can reach, their ports, and the names (virtual host domains) they answer.

Istio's rules (istio.io "Virtual Service" reference, `hosts`; pilot generateVirtualHostDomains):
a short name resolves in the namespace of the resource naming it to
`name.ns.svc.cluster.local`; a service answers its host, its non-CIDR addresses (a Service's
cluster IP) and, when the host is `name.ns.svc.cluster.local` (a Kubernetes Service, or a
ServiceEntry host written so), `name` (only to proxies in namespace `ns`), `name.ns` and
`name.ns.svc`; other ServiceEntry hosts stand as written (wildcards included). `exportTo`
(`.`, `*`, namespaces; for Services the `networking.istio.io/exportTo` annotation) limits where
a resource is visible.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from remora.api.kube.core import Service
from remora.api.networking.names import host_subset_of, short_names, to_fqdn
from remora.api.networking.service_entry import ServiceEntry
from remora.api.resource import Resource

ROOT_NAMESPACE = "istio-system"  # meshConfig.rootNamespace's default
EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"
# Protocols (Service appProtocol / port-name prefix, ServiceEntry protocol) that are not HTTP.
_NOT_HTTP = frozenset({"tcp", "tls", "https", "mongo", "redis", "mysql", "udp", "sctp"})


def visible(export_to: Sequence[str], *, owner_namespace: str, namespace: str) -> bool:
    """Is a resource of `owner_namespace` exported to proxies in `namespace`? (empty = `*`)."""
    if not export_to or "*" in export_to:
        return True
    return any(
        entry == namespace or (entry == "." and owner_namespace == namespace) for entry in export_to
    )


def labels_subset(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Every key/value of `selector` is in `labels` (an empty selector selects everything)."""
    return all(labels.get(key) == value for key, value in selector.items())


@dataclass(frozen=True, slots=True)
class MeshPort:
    """A service port: number, name, whether it carries HTTP, and the workload port behind it."""

    number: int
    name: str
    http: bool
    target: int | str  # number, or a container/workload port name


@dataclass(frozen=True, slots=True)
class MeshService:
    """One host of the registry: a Kubernetes Service or one host of a ServiceEntry."""

    host: str
    name: str  # Service name, or the ServiceEntry host (Istio's destination_service_name)
    namespace: str
    ports: tuple[MeshPort, ...]
    addresses: tuple[str, ...]
    export_to: tuple[str, ...]
    resource: Service | ServiceEntry

    def port(self, number: int) -> MeshPort | None:
        return next((p for p in self.ports if p.number == number), None)

    @property
    def mesh_external(self) -> bool:
        """A ServiceEntry whose location is MESH_EXTERNAL (its default): not a mesh workload."""
        resource = self.resource
        return isinstance(resource, ServiceEntry) and resource.spec.location_mode == "MESH_EXTERNAL"

    def domains(self, proxy_namespace: str) -> tuple[str, ...]:
        """Names a sidecar in `proxy_namespace` accepts for this service (without ports)."""
        return (*short_names(self.host, proxy_namespace), self.host, *self.addresses)


def _is_http(protocol: str) -> bool:
    """HTTP unless the protocol says otherwise (unnamed ports are sniffed as HTTP by Istio)."""
    return protocol.lower() not in _NOT_HTTP


def _from_service(service: Service) -> MeshService:
    spec = service.spec
    ports = tuple(
        MeshPort(
            number=p.port,
            name=p.name or "",
            http=p.effective_protocol == "TCP"
            and _is_http(p.app_protocol or (p.name or "").split("-")[0]),
            target=p.effective_target_port,
        )
        for p in spec.ports
    )
    addresses = tuple(ip for ip in [spec.cluster_ip] if ip and ip != "None")
    exported = service.metadata.annotations.get(EXPORT_TO_ANNOTATION, "")
    export_to = tuple(e.strip() for e in exported.split(",") if e.strip())
    return MeshService(
        host=service.hostname, name=service.name, namespace=service.namespace, ports=ports,
        addresses=addresses, export_to=export_to, resource=service,
    )  # fmt: skip


def _from_service_entry(entry: ServiceEntry) -> Iterable[MeshService]:
    spec = entry.spec
    ports = tuple(
        MeshPort(
            number=p.number,
            name=p.name,
            http=_is_http(p.protocol or "http"),
            target=p.target_port or p.number,
        )
        for p in spec.ports
    )
    addresses = tuple(a for a in spec.addresses if "/" not in a)
    for host in spec.hosts:
        yield MeshService(
            host=to_fqdn(host, entry.namespace), name=host, namespace=entry.namespace,
            ports=ports, addresses=addresses, export_to=tuple(spec.export_to), resource=entry,
        )  # fmt: skip


class Registry:
    """The services visible to one proxy namespace, by host, in configuration order."""

    def __init__(self, resources: Iterable[Resource], *, namespace: str) -> None:
        self.namespace = namespace
        self.by_host: dict[str, MeshService] = {}
        for resource in resources:
            if isinstance(resource, Service):
                self._add(_from_service(resource))
            elif isinstance(resource, ServiceEntry):
                for service in _from_service_entry(resource):
                    self._add(service)

    def _add(self, service: MeshService) -> None:
        if "~" in service.export_to:
            return
        if not visible(service.export_to, owner_namespace=service.namespace,
                       namespace=self.namespace):  # fmt: skip
            return
        # Several definitions of one host: a Kubernetes Service wins over a ServiceEntry, else
        # the first one (Istio keeps the oldest).
        known = self.by_host.get(service.host)
        if known is None or (
            isinstance(service.resource, Service) and not isinstance(known.resource, Service)
        ):
            self.by_host[service.host] = service

    def get(self, host: str) -> MeshService | None:
        return self.by_host.get(host)

    def matching(self, host: str) -> list[MeshService]:
        """Services a (possibly wildcard) VirtualService host applies to."""
        exact = self.by_host.get(host)
        if exact is not None:
            return [exact]
        if not host.startswith("*"):
            return []
        return [s for s in self.by_host.values() if host_subset_of(s.host, host)]

    def services(self) -> list[MeshService]:
        return list(self.by_host.values())
