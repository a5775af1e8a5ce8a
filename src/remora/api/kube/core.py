"""Kubernetes core/v1 kinds: Namespace, Service, ConfigMap, Secret, ServiceAccount.

Rules are those of Kubernetes' API validation (pkg/apis/core/validation) as documented in the
API reference: Service ports and types, ConfigMap/Secret keys, Secret data base64.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from remora.api.base import Spec, fail
from remora.api.kube.meta import (
    IntOrString,
    LocalObjectReference,
    ObjectReference,
    check_int_or_port_name,
    check_port_number,
    is_config_key,
    is_dns1123_label,
)
from remora.api.resource import Resource, served

# ---------------------------------------------------------------------------------------------
# Namespace
# ---------------------------------------------------------------------------------------------


class NamespaceSpec(Spec):
    finalizers: list[str] = Field(default_factory=list)


@served("", "v1")
class Namespace(Resource):
    """A namespace; its labels (istio-injection, istio.io/rev) matter to the mesh."""

    KIND: ClassVar[str] = "Namespace"
    NAMESPACED: ClassVar[bool] = False

    spec: NamespaceSpec | None = None


# ---------------------------------------------------------------------------------------------
# Service
# ---------------------------------------------------------------------------------------------

Protocol = Literal["TCP", "UDP", "SCTP"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]


class ServicePort(Spec):
    """spec.ports[]: port (required), targetPort (number or container port name)."""

    name: str | None = None
    protocol: Protocol | None = None
    app_protocol: str | None = None
    port: int
    target_port: IntOrString | None = None
    node_port: int | None = None

    @model_validator(mode="after")
    def _rules(self) -> ServicePort:
        check_port_number(self.port, "port")
        if self.target_port is not None:
            check_int_or_port_name(self.target_port, "targetPort")
        if self.node_port is not None and self.node_port != 0:
            check_port_number(self.node_port, "nodePort")
        if self.name and not is_dns1123_label(self.name):
            fail(f"must be a DNS-1123 label, got {self.name!r}", "name")
        return self

    @property
    def effective_target_port(self) -> int | str:
        """targetPort; Kubernetes defaults it to `port`."""
        return self.port if self.target_port is None else self.target_port

    @property
    def effective_protocol(self) -> Protocol:
        return self.protocol or "TCP"


class ServiceSpec(Spec):
    """core/v1 ServiceSpec."""

    type: ServiceType | None = None
    selector: dict[str, str] = Field(default_factory=dict)
    ports: list[ServicePort] = Field(default_factory=list)
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    cluster_ips: list[str] = Field(default_factory=list, alias="clusterIPs")
    external_name: str | None = None
    external_ips: list[str] = Field(default_factory=list, alias="externalIPs")
    session_affinity: Literal["ClientIP", "None"] | None = None
    publish_not_ready_addresses: bool | None = None
    # Accepted, not used by Remora:
    allocate_load_balancer_node_ports: bool | None = None
    external_traffic_policy: Literal["Cluster", "Local"] | None = None
    health_check_node_port: int | None = None
    internal_traffic_policy: Literal["Cluster", "Local"] | None = None
    ip_families: list[Literal["IPv4", "IPv6"]] = Field(default_factory=list)
    ip_family_policy: Literal["SingleStack", "PreferDualStack", "RequireDualStack"] | None = None
    load_balancer_class: str | None = None
    load_balancer_ip: str | None = Field(default=None, alias="loadBalancerIP")
    load_balancer_source_ranges: list[str] = Field(default_factory=list)
    session_affinity_config: Any = None
    traffic_distribution: str | None = None

    @property
    def effective_type(self) -> ServiceType:
        return self.type or "ClusterIP"

    @property
    def is_headless(self) -> bool:
        return self.cluster_ip == "None"

    @model_validator(mode="after")
    def _rules(self) -> ServiceSpec:
        kind = self.effective_type
        if kind == "ExternalName":
            if not self.external_name:
                fail("required when type is ExternalName", "externalName")
        elif not self.ports and not self.is_headless:
            fail("required field is missing", "ports")  # Kubernetes: spec.ports Required value
        self._check_ips()
        seen: set[str] = set()
        for i, port in enumerate(self.ports):
            if len(self.ports) > 1 and not port.name:
                fail("required when there is more than one port", "ports", i, "name")
            if port.name and port.name in seen:
                fail(f"duplicate port name {port.name!r}", "ports", i, "name")
            seen.add(port.name or "")
            if port.node_port and kind not in ("NodePort", "LoadBalancer"):
                fail(f"may not be used when type is {kind!r}", "ports", i, "nodePort")
        return self

    def _check_ips(self) -> None:
        for key, values in (("clusterIPs", self.cluster_ips), ("externalIPs", self.external_ips)):
            for i, value in enumerate(values):
                if key == "clusterIPs" and value == "None":
                    continue
                try:
                    ipaddress.ip_address(value)
                except ValueError:
                    fail(f"must be a valid IP address, got {value!r}", key, i)
        if self.cluster_ip not in (None, "", "None"):
            try:
                ipaddress.ip_address(self.cluster_ip)
            except ValueError:
                fail(f"must be a valid IP address or None, got {self.cluster_ip!r}", "clusterIP")
        if self.cluster_ip and self.cluster_ips and self.cluster_ips[0] != self.cluster_ip:
            fail("must match clusterIP", "clusterIPs", 0)

    def port_named(self, name: str) -> ServicePort | None:
        return next((p for p in self.ports if p.name == name), None)

    def port_numbered(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.port == number), None)


@served("", "v1")
class Service(Resource):
    """A Kubernetes Service: the host name `name.namespace.svc.cluster.local` and its ports."""

    KIND: ClassVar[str] = "Service"

    spec: ServiceSpec

    @property
    def selector(self) -> dict[str, str]:
        return self.spec.selector

    @property
    def hostname(self) -> str:
        """The FQDN the mesh uses for this Service."""
        return f"{self.name}.{self.namespace}.svc.cluster.local"


# ---------------------------------------------------------------------------------------------
# ConfigMap, Secret
# ---------------------------------------------------------------------------------------------


def _check_keys(keys: list[str], field: str) -> None:
    for key in keys:
        if not is_config_key(key):
            fail(f"invalid key {key!r}: use alphanumerics, '-', '_' or '.'", field, key)


@served("", "v1")
class ConfigMap(Resource):
    """Configuration data: `data` (UTF-8) and `binaryData` (base64), keys unique across both."""

    KIND: ClassVar[str] = "ConfigMap"

    data: dict[str, str] = Field(default_factory=dict)
    binary_data: dict[str, str] = Field(default_factory=dict)
    immutable: bool | None = None

    @model_validator(mode="after")
    def _rules(self) -> ConfigMap:
        _check_keys(list(self.data), "data")
        _check_keys(list(self.binary_data), "binaryData")
        for key, value in self.binary_data.items():
            if key in self.data:
                fail("duplicate of key present in data", "binaryData", key)
            _check_base64(value, "binaryData", key)
        return self


def _check_base64(value: str, *path: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        fail("must be base64-encoded", *path)


@served("", "v1")
class Secret(Resource):
    """Secret data: `data` values base64, `stringData` plain (merged over data on write)."""

    KIND: ClassVar[str] = "Secret"

    type: str | None = None
    data: dict[str, str] = Field(default_factory=dict)
    string_data: dict[str, str] = Field(default_factory=dict)
    immutable: bool | None = None

    @model_validator(mode="after")
    def _rules(self) -> Secret:
        _check_keys(list(self.data), "data")
        _check_keys(list(self.string_data), "stringData")
        for key, value in self.data.items():
            _check_base64(value, "data", key)
        return self

    def decoded(self) -> dict[str, bytes]:
        """data decoded, with stringData taking precedence (as the API server merges them)."""
        out = {key: base64.b64decode(value) for key, value in self.data.items()}
        out.update({key: value.encode() for key, value in self.string_data.items()})
        return out


# ---------------------------------------------------------------------------------------------
# ServiceAccount
# ---------------------------------------------------------------------------------------------


@served("", "v1")
class ServiceAccount(Resource):
    """A workload identity: spiffe://cluster.local/ns/<namespace>/sa/<name> in the mesh."""

    KIND: ClassVar[str] = "ServiceAccount"

    automount_service_account_token: bool | None = None
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list)
    secrets: list[ObjectReference] = Field(default_factory=list)

    @property
    def principal(self) -> str:
        """The Istio principal (source.principal) of workloads running as this account."""
        return f"cluster.local/ns/{self.namespace}/sa/{self.name}"
