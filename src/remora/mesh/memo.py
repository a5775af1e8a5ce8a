"""What one compile may reuse from earlier compiles of mostly the same resources.

The control plane compiles a snapshot for every class of proxies on every change, and the
parts that grow with the mesh — the endpoint index, each service port's endpoints, each
resource's unenforced findings — do not depend on the proxy and rarely change between two
compiles. They are reused when the resource objects they were made from are the very same
objects (the control plane parses a document once per content, so an unchanged document is
the same object), never by comparing values: a compile with a memo gives exactly what one
without gives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from remora.api.kube.discovery import EndpointSlice
from remora.api.kube.workloads import Deployment, StatefulSet
from remora.api.networking.service_entry import WorkloadEntry
from remora.mesh.endpoints import EndpointIndex

if TYPE_CHECKING:
    from remora.api.resource import Resource
    from remora.mesh.hosts import MeshPort, MeshService
    from remora.mesh.snapshot import Endpoint

T = TypeVar("T")
LIMIT = 200_000  # entries kept per table; then it starts afresh


def same_objects(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """The same objects, in the same order (identity, not equality)."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


class CompileMemo:
    """Reusable parts of compiles, keyed by the identity of their inputs."""

    def __init__(self) -> None:
        self._index: tuple[tuple[Resource, ...], EndpointIndex] | None = None
        self._endpoints: dict[tuple[str, int], tuple[tuple[Any, ...], tuple[Endpoint, ...]]] = {}
        self._subsets: dict[tuple[int, tuple[tuple[str, str], ...]],
                            tuple[tuple[Endpoint, ...], tuple[Endpoint, ...]]] = {}
        self._per_resource: dict[tuple[str, int], tuple[Resource, Any]] = {}

    def endpoint_index(self, resources: Sequence[Resource]) -> EndpointIndex:
        """The EndpointIndex of `resources`, reused while its sources are the same objects."""
        sources = tuple(r for r in resources
                        if isinstance(r, EndpointSlice | WorkloadEntry | Deployment | StatefulSet))
        known = self._index
        if known is not None and same_objects(known[0], sources):
            return known[1]
        index = EndpointIndex(sources)
        self._index = (sources, index)
        return index

    def endpoints(self, index: EndpointIndex, service: MeshService,
                  port: MeshPort) -> tuple[Endpoint, ...]:
        """`index.endpoints(service, port)`, reused while the resources it reads are the same
        objects and the port is equal."""
        inputs = (port, *index.sources(service))
        key = (service.host, port.number)
        known = self._endpoints.get(key)
        if known is not None and known[0][0] == port and same_objects(known[0][1:], inputs[1:]):
            return known[1]
        found = index.endpoints(service, port)
        self._keep(self._endpoints)[key] = (inputs, found)
        return found

    def subset(self, endpoints: tuple[Endpoint, ...], labels: Mapping[str, str],
               select: Callable[[tuple[Endpoint, ...]], tuple[Endpoint, ...]],
               ) -> tuple[Endpoint, ...]:  # fmt: skip
        """`select(endpoints)` for a subset's `labels`, reused for the same endpoints object."""
        key = (id(endpoints), tuple(sorted(labels.items())))
        known = self._subsets.get(key)
        if known is not None and known[0] is endpoints:
            return known[1]
        found = select(endpoints)
        self._keep(self._subsets)[key] = (endpoints, found)
        return found

    def per_resource(self, name: str, resource: Resource, make: Callable[[Resource], T]) -> T:
        """`make(resource)`, once per resource object (for `name`, a kind of result)."""
        key = (name, id(resource))
        known = self._per_resource.get(key)
        if known is not None and known[0] is resource:
            return known[1]  # type: ignore[no-any-return]
        found = make(resource)
        self._keep(self._per_resource)[key] = (resource, found)
        return found

    @staticmethod
    def _keep(table: dict[Any, Any]) -> dict[Any, Any]:
        if len(table) >= LIMIT:
            table.clear()
        return table
