"""The registry's part of the push view, encoded per service and recomputed only for the services
that changed since the last push.

At 10,000 instances re-deriving and re-encoding every endpoint on each push made a push cost
O(instances) however small the change, and a storm of registrations O(instances²). Nacos 2
merges changes per service and istiod's incremental EDS recomputes only the services whose
endpoints changed; here each registry service's documents are kept with the registry's stamp
of that service (Registry.stamp), and only services with a newer stamp are derived again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from remora.controlplane.registry_view import documents_of
from remora.registry.service import Registry

E = TypeVar("E")
KubeServices = dict[tuple[str, str], dict[str, Any]]


class RegistryEntries(Generic[E]):
    """Encoded registry documents by service; `entries()` refreshes the changed services."""

    def __init__(self, registry: Registry, *,
                 encode: Callable[[list[dict[str, Any]]], list[E]]) -> None:
        self._registry = registry
        self._encode = encode
        self._kube: KubeServices = {}
        self._by_service: dict[str, tuple[int, list[E]]] = {}  # key -> (stamp, entries)
        self.derived = 0  # services derived again so far (tests read it)

    def entries(self, kube_services: KubeServices) -> list[E]:
        """Every registry service's entries; `kube_services` (which Kubernetes Services exist)
        shapes every service's documents, so a change there derives them all again."""
        if kube_services != self._kube:
            self._kube, self._by_service = dict(kube_services), {}
        registry = self._registry
        current: dict[str, tuple[int, list[E]]] = {}
        for key in registry.service_keys():
            stamp = registry.stamp(key)
            found = self._by_service.get(key)
            if found is None or found[0] != stamp:
                found = (stamp, self._encode(documents_of(registry, key, self._kube)))
                self.derived += 1
            current[key] = found
        self._by_service = current
        return [entry for _, entries in current.values() for entry in entries]
