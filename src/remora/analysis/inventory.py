"""What the input says exists: workloads (with their labels), services and namespaces.

Offline there are no pods: a workload is a Deployment's or StatefulSet's pod template, or a
WorkloadEntry. Services and ServiceEntries are indexed by the scopes they are exported to, as
istio/istio pkg/config/analysis/analyzers/util/service_lookup.go does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from remora.analysis.hosts import (
    EXPORT_ALL,
    EXPORT_LOCAL,
    ROOT_NAMESPACE,
    ServiceInfo,
    ServiceRegistry,
    export_scopes,
)
from remora.analysis.models import (
    Deployment,
    Namespace,
    Service,
    ServiceEntry,
    StatefulSet,
    WorkloadEntry,
)
from remora.api.networking.names import to_fqdn
from remora.api.resource import Resource

EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"
# Namespaces every cluster has, so that naming them is never "not found".
BUILTIN_NAMESPACES = frozenset(
    {"default", "kube-system", "kube-public", "kube-node-lease", ROOT_NAMESPACE}
)


@dataclass(frozen=True)
class Workload:
    """Something that runs pods (or is a pod-like endpoint) with labels, in a namespace."""

    kind: str
    name: str
    namespace: str
    labels: dict[str, str]

    def selected_by(self, selector: dict[str, str]) -> bool:
        """A map selector (matchLabels): every pair present; empty selects everything."""
        return all(self.labels.get(k) == v for k, v in selector.items())


@dataclass
class Inventory:
    workloads: list[Workload] = field(default_factory=list)
    services: ServiceRegistry = field(default_factory=ServiceRegistry)
    namespace_objects: set[str] = field(default_factory=set)
    used_namespaces: set[str] = field(default_factory=set)

    @cached_property
    def _by_label(self) -> dict[tuple[str, str], list[Workload]]:
        index: dict[tuple[str, str], list[Workload]] = {}
        for workload in self.workloads:
            for pair in workload.labels.items():
                index.setdefault(pair, []).append(workload)
        return index

    @cached_property
    def namespaces_with_workloads(self) -> set[str]:
        return {w.namespace for w in self.workloads}

    def select(self, selector: dict[str, str], *, namespace: str | None = None) -> list[Workload]:
        """Workloads carrying every label of `selector` (all when empty), in `namespace` if set."""
        if selector:
            pair = next(iter(selector.items()))
            candidates = self._by_label.get(pair, [])
        else:
            candidates = self.workloads
        return [
            w
            for w in candidates
            if (namespace is None or w.namespace == namespace) and w.selected_by(selector)
        ]

    @property
    def known_namespaces(self) -> set[str]:
        """Namespaces declared, used by some resource, or built in."""
        return self.namespace_objects | self.used_namespaces | BUILTIN_NAMESPACES

    @classmethod
    def build(cls, resources: Sequence[Resource]) -> Inventory:
        inventory = cls()
        for resource in resources:
            if resource.NAMESPACED:
                inventory.used_namespaces.add(resource.namespace)
            inventory._add(resource)
        return inventory

    def _add(self, resource: Resource) -> None:
        if isinstance(resource, Deployment | StatefulSet):
            labels = dict(resource.spec.template.metadata.labels)
            self.workloads.append(
                Workload(resource.kind, resource.name, resource.namespace, labels)
            )
        elif isinstance(resource, WorkloadEntry):
            labels = dict(resource.spec.labels)
            self.workloads.append(
                Workload(resource.kind, resource.name, resource.namespace, labels)
            )
        elif isinstance(resource, Namespace):
            self.namespace_objects.add(resource.name)
        elif isinstance(resource, Service):
            self._add_service(resource)
        elif isinstance(resource, ServiceEntry):
            self._add_service_entry(resource)

    def _add_service(self, svc: Service) -> None:
        ports = tuple(p.port for p in svc.spec.ports)
        selector = dict(svc.spec.selector) if svc.spec.selector else None
        info = ServiceInfo(
            to_fqdn(svc.name, svc.namespace), svc.namespace, ports, selector, "Service"
        )
        annotation = svc.metadata.annotations.get(EXPORT_TO_ANNOTATION, "")
        if not annotation:
            scopes = [EXPORT_ALL]
        else:
            parts = [p.strip() for p in annotation.split(",")]
            scopes = [svc.namespace if p == EXPORT_LOCAL else p for p in parts]
        self.services.add(info, scopes)

    def _add_service_entry(self, entry: ServiceEntry) -> None:
        spec = entry.spec
        ports = tuple(p.number for p in spec.ports)
        selector = dict(spec.workload_selector.labels) if spec.workload_selector else None
        scopes = export_scopes(spec.export_to, entry.namespace)
        for host in spec.hosts:
            fqdn = to_fqdn(host, entry.namespace)
            self.services.add(
                ServiceInfo(fqdn, entry.namespace, ports, selector, "ServiceEntry"), scopes
            )
