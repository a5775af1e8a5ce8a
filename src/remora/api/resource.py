"""The Kubernetes object envelope (apiVersion, kind, metadata) and the registry of served kinds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import Field, PrivateAttr

from remora.api.base import Spec
from remora.api.errors import Source

DEFAULT_NAMESPACE = "default"
WORKLOAD_NAME_LABEL = "service.istio.io/workload-name"
"""istio/api label.ServiceWorkloadName: overrides the workload name a pod or WorkloadEntry gets."""
TLS_MODE_LABEL = "security.istio.io/tlsMode"
"""istio/api label.SecurityTlsMode: `istio` on a workload whose sidecar takes Istio mTLS."""
SERVICE_ACCOUNT_METADATA = "remora.io/serviceAccount"
"""Registry instance metadata: the service account of the workload (its WorkloadEntry's)."""


class OwnerReference(Spec):
    """metadata.ownerReferences[] as Kubernetes defines it."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(Spec):
    """metadata: every field Kubernetes' ObjectMeta has, so typos are caught."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: Any = None
    deletion_timestamp: Any = None
    deletion_grace_period_seconds: int | None = None
    finalizers: list[str] = Field(default_factory=list)
    owner_references: list[OwnerReference] = Field(default_factory=list)
    managed_fields: list[dict[str, Any]] = Field(default_factory=list)
    self_link: str | None = None


class Resource(Spec):
    """A typed Kubernetes-style object. Subclasses add `spec` (or data, etc.) and register.

    `source` (file and line of the document) and the line locator are kept out of the model's
    fields so that they never appear in, or are accepted from, YAML.
    """

    KIND: ClassVar[str] = ""
    NAMESPACED: ClassVar[bool] = True

    api_version: str
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    status: Any = None  # written by controllers; accepted and ignored, as kubectl apply does

    _origin: Origin | None = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        return self.metadata.name or self.metadata.generate_name or ""

    @property
    def namespace(self) -> str:
        """The namespace the object lives in: its own, else the one it was loaded into."""
        if not self.NAMESPACED:
            return ""
        if self.metadata.namespace:
            return self.metadata.namespace
        return self._origin.default_namespace if self._origin else DEFAULT_NAMESPACE

    @property
    def key(self) -> str:
        """`namespace/name` (or `name` when cluster-scoped), as istioctl prints it."""
        return f"{self.namespace}/{self.name}" if self.NAMESPACED else self.name

    @property
    def subject(self) -> str:
        """`Kind namespace/name`, the way istioctl analyze names a resource."""
        return f"{self.kind} {self.key}"

    @property
    def labels(self) -> dict[str, str]:
        return self.metadata.labels

    @property
    def source(self) -> Source | None:
        return self._origin.source if self._origin else None

    def source_of(self, *path: str | int) -> Source | None:
        """File and line of the field at `path` (YAML keys, or its nearest present parent)."""
        origin = self._origin
        if origin is None or origin.source is None:
            return None
        if origin.locate is None:
            return origin.source
        return Source(origin.source.file, origin.locate(path))

    def attach(
        self,
        *,
        source: Source | None,
        locate: Callable[[tuple[str | int, ...]], int] | None = None,
        default_namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        """Record where this object was read from (called once by the loader)."""
        self._origin = Origin(source, locate, default_namespace)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a resource was read from, and the namespace it was loaded into."""

    source: Source | None
    locate: Callable[[tuple[str | int, ...]], int] | None
    default_namespace: str


@dataclass(frozen=True, slots=True)
class KindInfo:
    """A served kind: its API group, the versions served, and its model."""

    group: str
    kind: str
    versions: tuple[str, ...]
    model: type[Resource]

    def api_versions(self) -> list[str]:
        return [f"{self.group}/{v}" if self.group else v for v in self.versions]


KINDS: dict[tuple[str, str], KindInfo] = {}
"""(API group, kind) -> KindInfo, filled by `served` as the model modules are imported."""

R = TypeVar("R", bound=type[Resource])


def served(group: str, *versions: str) -> Callable[[R], R]:
    """Class decorator: register a Resource model as served for `group` at `versions`."""

    def register(model: R) -> R:
        KINDS[(group, model.KIND)] = KindInfo(group, model.KIND, tuple(versions), model)
        return model

    return register


def split_api_version(api_version: str) -> tuple[str, str]:
    """"networking.istio.io/v1" -> ("networking.istio.io", "v1"); "v1" -> ("", "v1")."""
    group, _, version = api_version.rpartition("/")
    return group, version
