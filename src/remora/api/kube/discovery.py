"""Kubernetes discovery.k8s.io/v1 EndpointSlice: the endpoints behind a Service."""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from remora.api.base import Spec, fail
from remora.api.kube.meta import ObjectReference, check_port_number
from remora.api.resource import Resource, served

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class EndpointConditions(Spec):
    """ready / serving / terminating; Kubernetes reads an unset `ready` as true."""

    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None

    @property
    def is_ready(self) -> bool:
        return self.ready is not False


class ForZone(Spec):
    name: str


class ForNode(Spec):
    name: str


class EndpointHints(Spec):
    for_zones: list[ForZone] = Field(default_factory=list)
    for_nodes: list[ForNode] = Field(default_factory=list)


class Endpoint(Spec):
    """endpoints[]: 1-100 addresses of one backend, its conditions and topology."""

    addresses: list[str] = Field(min_length=1, max_length=100)
    conditions: EndpointConditions = Field(default_factory=EndpointConditions)
    hostname: str | None = None
    node_name: str | None = None
    zone: str | None = None
    target_ref: ObjectReference | None = None
    hints: EndpointHints | None = None
    deprecated_topology: dict[str, str] = Field(default_factory=dict)


class EndpointPort(Spec):
    """ports[]: name (matches the Service port name), port, protocol, appProtocol."""

    name: str | None = None
    port: int | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] | None = None
    app_protocol: str | None = None

    @model_validator(mode="after")
    def _rules(self) -> EndpointPort:
        if self.port is not None:
            check_port_number(self.port, "port")
        return self


@served("discovery.k8s.io", "v1")
class EndpointSlice(Resource):
    """A slice of the endpoints of a Service (label kubernetes.io/service-name)."""

    KIND: ClassVar[str] = "EndpointSlice"

    address_type: Literal["IPv4", "IPv6", "FQDN"]
    endpoints: list[Endpoint] = Field(default_factory=list)
    ports: list[EndpointPort] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> EndpointSlice:
        # Kubernetes ValidateEndpointSlice: addresses must fit the addressType.
        if self.address_type == "FQDN":
            return self
        version = 4 if self.address_type == "IPv4" else 6
        for e, endpoint in enumerate(self.endpoints):
            for a, address in enumerate(endpoint.addresses):
                if not _is_ip(address, version):
                    fail(f"must be a valid {self.address_type} address, got {address!r}",
                         "endpoints", e, "addresses", a)  # fmt: skip
        return self

    @property
    def service_name(self) -> str | None:
        return self.labels.get(SERVICE_NAME_LABEL)


def _is_ip(value: Any, version: int) -> bool:
    try:
        return ipaddress.ip_address(value).version == version
    except ValueError:
        return False
