"""Registry records as Nacos shapes them: namespace → group → service → cluster → instance.

Services and instances are immutable values, validated when built (registry.limits: the Nacos
open API's rules for names, ip, port, weight and metadata; protectThreshold 0–1) and stored
as JSON under the keys of the shared layout. Wire names follow Nacos 1.x (`group@@service`,
instanceId `ip#port#cluster#group@@service`, InstanceIdGenerator "simple").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from remora.policy.locality import locality_of
from remora.registry.limits import RegistryError as RegistryError  # noqa: PLC0414 (re-export)
from remora.registry.limits import (
    check_cluster_name,
    check_ip,
    check_metadata,
    check_param,
    check_port,
    check_service_name,
    check_weight,
    stored_record,
)

DEFAULT_NAMESPACE = "public"
DEFAULT_GROUP = "DEFAULT_GROUP"
DEFAULT_CLUSTER = "DEFAULT"
GROUP_SEPARATOR = "@@"
CHECK_TYPES = ("TCP", "HTTP", "NONE")

SERVICES_PREFIX = "/registry/services/"
INSTANCES_PREFIX = "/registry/instances/"


def split_grouped(service_name: str, group: str = "") -> tuple[str, str]:
    """(group, service) from Nacos's `group@@service` or a bare name plus its groupName
    (NamingUtils.getGroupName / getServiceName: the name's own group wins)."""
    if GROUP_SEPARATOR in service_name:
        found, _, name = service_name.partition(GROUP_SEPARATOR)
        return found or group or DEFAULT_GROUP, name
    return group or DEFAULT_GROUP, service_name


def grouped(group: str, service: str) -> str:
    return f"{group}{GROUP_SEPARATOR}{service}"


@dataclass(frozen=True, slots=True)
class HealthChecker:
    """How persistent instances of a service are probed (Nacos cluster healthChecker):
    TCP connect, HTTP GET `path` expecting `expected_code`, or NONE."""

    type: str = "TCP"
    path: str = "/"
    expected_code: int = 200

    def __post_init__(self) -> None:
        if self.type not in CHECK_TYPES:
            raise RegistryError(f"healthChecker.type must be one of {CHECK_TYPES}, got {self.type}")


@dataclass(frozen=True, slots=True)
class Service:
    """A named service in a namespace and group; instances live under it by cluster."""

    name: str
    namespace: str = DEFAULT_NAMESPACE
    group: str = DEFAULT_GROUP
    protect_threshold: float = 0.0
    metadata: Mapping[str, str] = field(default_factory=dict)
    selector: Mapping[str, str] = field(default_factory=lambda: {"type": "none"})
    health_checker: HealthChecker = field(default_factory=HealthChecker)

    def __post_init__(self) -> None:
        _check_names(namespace=self.namespace, group=self.group, service=self.name)
        check_metadata(self.metadata)
        if not 0.0 <= self.protect_threshold <= 1.0:
            raise RegistryError(
                f"protectThreshold must be between 0 and 1, got {self.protect_threshold}")

    @property
    def key(self) -> str:
        return service_key(namespace=self.namespace, group=self.group, service=self.name)

    @property
    def grouped_name(self) -> str:
        return grouped(self.group, self.name)

    def to_json(self) -> bytes:
        checker = self.health_checker
        return json.dumps({
            "name": self.name, "namespace": self.namespace, "group": self.group,
            "protectThreshold": self.protect_threshold, "metadata": dict(self.metadata),
            "selector": dict(self.selector),
            "healthChecker": {"type": checker.type, "path": checker.path,
                              "expectedCode": checker.expected_code},
        }, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Service:
        data: dict[str, Any] = json.loads(raw)
        checker = data.get("healthChecker", {})
        with stored_record():
            return cls(
                name=data["name"], namespace=data["namespace"], group=data["group"],
                protect_threshold=float(data.get("protectThreshold", 0.0)),
                metadata=dict(data.get("metadata", {})),
                selector=dict(data.get("selector", {"type": "none"})),
                health_checker=HealthChecker(
                    type=checker.get("type", "TCP"), path=checker.get("path", "/"),
                    expected_code=int(checker.get("expectedCode", 200))),
            )


@dataclass(frozen=True, slots=True)
class Instance:
    """One endpoint of a service. `metadata` doubles as the instance's labels (Istio reads
    locality and version from them); Nacos's preserved.* keys tune its heartbeat timing."""

    ip: str
    port: int
    service: str
    namespace: str = DEFAULT_NAMESPACE
    group: str = DEFAULT_GROUP
    cluster: str = DEFAULT_CLUSTER
    weight: float = 1.0
    healthy: bool = True
    enabled: bool = True
    ephemeral: bool = True
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_names(namespace=self.namespace, group=self.group, service=self.service)
        check_cluster_name(self.cluster)
        check_ip(self.ip)
        check_port(self.port)
        check_weight(self.weight)
        check_metadata(self.metadata)

    @property
    def key(self) -> str:
        return instance_key(namespace=self.namespace, group=self.group, service=self.service,
                            cluster=self.cluster, address=f"{self.ip}:{self.port}")

    @property
    def service_key(self) -> str:
        return service_key(namespace=self.namespace, group=self.group, service=self.service)

    @property
    def instance_id(self) -> str:
        """Nacos's SimpleInstanceIdGenerator: ip#port#cluster#group@@service."""
        return f"{self.ip}#{self.port}#{self.cluster}#{grouped(self.group, self.service)}"

    @property
    def labels(self) -> Mapping[str, str]:
        return self.metadata

    @property
    def locality(self) -> str:
        """region/zone/subzone from the metadata labels, as Istio reads endpoint labels."""
        return locality_of(self.metadata)

    def with_(self, **changes: Any) -> Instance:
        return replace(self, **changes)

    def to_json(self) -> bytes:
        return json.dumps({
            "ip": self.ip, "port": self.port, "service": self.service,
            "namespace": self.namespace, "group": self.group, "cluster": self.cluster,
            "weight": self.weight, "healthy": self.healthy, "enabled": self.enabled,
            "ephemeral": self.ephemeral, "metadata": dict(self.metadata),
        }, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Instance:
        data: dict[str, Any] = json.loads(raw)
        with stored_record():
            return cls(
                ip=data["ip"], port=int(data["port"]), service=data["service"],
                namespace=data["namespace"], group=data["group"], cluster=data["cluster"],
                weight=float(data["weight"]), healthy=bool(data["healthy"]),
                enabled=bool(data["enabled"]), ephemeral=bool(data["ephemeral"]),
                metadata=dict(data.get("metadata", {})),
            )


def _check_names(*, namespace: str, group: str, service: str) -> None:
    check_param("namespaceId", namespace)
    check_param("groupName", group)
    check_service_name(service)


def service_key(*, namespace: str, group: str, service: str) -> str:
    return f"{SERVICES_PREFIX}{namespace}/{group}/{service}"


def service_instances_prefix(*, namespace: str, group: str, service: str) -> str:
    return f"{INSTANCES_PREFIX}{namespace}/{group}/{service}/"


def instance_key(*, namespace: str, group: str, service: str, cluster: str, address: str) -> str:
    prefix = service_instances_prefix(namespace=namespace, group=group, service=service)
    return f"{prefix}{cluster}/{address}"
