"""What analyzers see and how they report: the resources by kind, and a namespace-aware reporter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeVar

from remora.analysis.inventory import Inventory
from remora.analysis.messages import Message, MessageType
from remora.api.meshconfig import MeshConfig, mesh_config_of
from remora.api.resource import Resource

R = TypeVar("R", bound=Resource)
Path = tuple[str | int, ...]


@dataclass
class Context:
    """All loaded resources (every check sees all of them) and the messages reported so far.

    `namespace` limits what is *reported* (istioctl analyze -n): messages about resources in
    other namespaces are dropped; None reports on every namespace (-A).
    """

    resources: Sequence[Resource]
    namespace: str | None = None
    messages: list[Message] = field(default_factory=list)
    mesh_file: MeshConfig | None = None  # istioctl analyze --meshConfigFile

    @cached_property
    def mesh(self) -> MeshConfig:
        """The mesh config: --meshConfigFile, else ConfigMap istio-system/istio, else defaults."""
        return self.mesh_file if self.mesh_file is not None else mesh_config_of(self.resources)

    def of(self, model: type[R]) -> list[R]:
        """Every resource of one model, in input order."""
        return [r for r in self.resources if isinstance(r, model)]

    def find(self, model: type[R], namespace: str, name: str) -> R | None:
        for resource in self.resources:
            if (
                isinstance(resource, model)
                and resource.name == name
                and (resource.namespace == namespace)
            ):
                return resource
        return None

    @cached_property
    def inventory(self) -> Inventory:
        return Inventory.build(self.resources)

    def in_scope(self, resource: Resource) -> bool:
        if self.namespace is None:
            return True
        if resource.NAMESPACED:
            return resource.namespace == self.namespace
        return resource.kind != "Namespace" or resource.name == self.namespace

    def report(self, resource: Resource, kind: MessageType, *args: object, path: Path = ()) -> None:
        """Record a message about `resource`, pointing at the field at `path` (YAML keys)."""
        if not self.in_scope(resource):
            return
        source = resource.source_of(*path) if path else resource.source
        self.messages.append(Message(kind, kind.format(*args), resource.subject, source))
