"""ServiceEntry (services added to the registry) and WorkloadEntry (one non-Kubernetes workload).

Rules follow istio/istio pkg/config/validation/validation.go (ValidateServiceEntry,
ValidateWorkloadEntry, validateWorkloadEntry) and the CRD rules in istio/api
networking/v1alpha3/service_entry.proto and workload_entry.proto.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from remora.api.base import Spec, fail
from remora.api.common import UInt32
from remora.api.networking import names
from remora.api.networking.shared import WorkloadSelector
from remora.api.resource import WORKLOAD_NAME_LABEL, Resource, served

UNIX_PREFIX = "unix://"
AUTO_REGISTRATION_GROUP = "istio.io/autoRegistrationGroup"  # the WorkloadGroup of a VM entry
Location = Literal["MESH_EXTERNAL", "MESH_INTERNAL"]
Resolution = Literal["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"]
DYNAMIC_DNS_PROTOCOLS = frozenset({"HTTP", "TLS", "GRPC", "HTTP2"})


class WorkloadEntrySpec(Spec):
    """Istio's WorkloadEntry message: a workload's address, ports, labels, network, weight."""

    address: Annotated[str, Field(max_length=256)] | None = None
    ports: dict[str, UInt32] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    network: str | None = None
    locality: str | None = None
    weight: UInt32 | None = None
    service_account: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> WorkloadEntrySpec:
        # validateWorkloadEntry; the address may be an IP, an FQDN or unix://path
        address = self.address or ""
        if not address and not self.network:
            fail("address is required", "address")
        if address.startswith(UNIX_PREFIX):
            if problem := names.check_unix_address(address.removeprefix(UNIX_PREFIX)):
                fail(problem, "address")
            if self.ports:
                fail(f"unix endpoint {address} must not include ports", "ports")
        elif address and not names.is_ip(address) and names.check_fqdn(address):
            fail(f"endpoint address {address!r} is not a valid FQDN or an IP address", "address")
        for name, number in self.ports.items():
            if problem := names.check_port_name(name) or names.check_port(number):
                fail(problem, "ports", name)
        if problem := names.check_labels(self.labels):
            fail(problem, "labels")
        return self

    @property
    def is_unix(self) -> bool:
        return (self.address or "").startswith(UNIX_PREFIX)


class ServicePort(Spec):
    """A port of a ServiceEntry: number, protocol, name, targetPort."""

    number: UInt32
    protocol: str | None = None
    name: Annotated[str, Field(max_length=256)]
    target_port: UInt32 | None = None

    @model_validator(mode="after")
    def _valid(self) -> ServicePort:
        if problem := names.check_port(self.number):
            fail(problem, "number")
        if self.target_port and (problem := names.check_port(self.target_port)):
            fail(problem, "targetPort")
        if problem := names.check_port_name(self.name):
            fail(problem, "name")
        if problem := names.check_protocol(self.protocol or ""):
            fail(problem, "protocol")
        return self

    @property
    def protocol_upper(self) -> str:
        return (self.protocol or "").upper()


class ServiceEntrySpec(Spec):
    """Hosts added to Istio's service registry, with their ports, endpoints and resolution."""

    hosts: Annotated[list[str], Field(max_length=256)] = Field(default_factory=list)
    addresses: Annotated[list[str], Field(max_length=256)] = Field(default_factory=list)
    ports: Annotated[list[ServicePort], Field(max_length=256)] = Field(default_factory=list)
    location: Location | None = None
    resolution: Resolution | None = None
    endpoints: Annotated[list[WorkloadEntrySpec], Field(max_length=4096)] | None = None
    workload_selector: WorkloadSelector | None = None
    export_to: list[str] = Field(default_factory=list)
    subject_alt_names: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> ServiceEntrySpec:
        if self.workload_selector is not None and self.endpoints is not None:
            fail("only one of workloadSelector or endpoints can be set", "endpoints")
        self._check_hosts()
        for position, address in enumerate(self.addresses):
            if problem := names.check_ip_subnet(address):
                fail(problem, "addresses", position)
        if any("/" in a for a in self.addresses) and self.resolution_mode not in ("NONE", "STATIC"):
            fail("CIDR addresses are allowed only for NONE/STATIC resolution types", "addresses")
        self._check_ports()
        self._check_resolution()
        if self.resolution_mode != "NONE" and len(self.hosts) > 1:
            for position, port in enumerate(self.ports):
                upper = port.protocol_upper
                if upper not in names.HTTP_PROTOCOLS and upper not in names.TLS_PROTOCOLS:
                    fail("multiple hosts provided with non-HTTP, non-TLS ports", "ports", position)
        if problem := names.check_export_to(self.export_to, service_entry=True):
            fail(problem, "exportTo")
        return self

    def _check_hosts(self) -> None:
        if not self.hosts:
            fail("service entry must have at least one host", "hosts")
        for position, host in enumerate(self.hosts):
            if host == "*":
                fail(f"invalid host {host}", "hosts", position)
            if problem := names.check_wildcard_domain(host):
                fail(problem, "hosts", position)

    def _check_ports(self) -> None:
        numbers: set[int] = set()
        port_names: set[str] = set()
        for position, port in enumerate(self.ports):
            if port.name in port_names:
                fail(f"service entry port name {port.name!r} already defined",
                     "ports", position, "name")  # fmt: skip
            if port.number in numbers:
                fail(f"service entry port {port.number} already defined",
                     "ports", position, "number")  # fmt: skip
            port_names.add(port.name)
            numbers.add(port.number)

    def _check_resolution(self) -> None:
        mode, endpoints = self.resolution_mode, self.endpoints or []
        if mode == "NONE" and endpoints:
            fail("no endpoints should be provided for resolution type NONE", "endpoints")
        if mode == "STATIC":
            for position, endpoint in enumerate(endpoints):
                address = endpoint.address or ""
                if address and not endpoint.is_unix and not names.is_ip(address):
                    fail(f"endpoint address {address!r} is not a valid IP address",
                         "endpoints", position, "address")  # fmt: skip
            if any(e.is_unix for e in endpoints) and len(self.ports) != 1:
                fail("exactly 1 service port required for unix endpoints", "ports")
        if mode in ("DNS", "DNS_ROUND_ROBIN") and not endpoints:
            for position, host in enumerate(self.hosts):
                if problem := names.check_fqdn(host):
                    fail(f"hosts must be FQDN or contain only prefix wildcards if no endpoints are "
                         f"provided for resolution mode {mode}, {problem}",
                         "hosts", position)  # fmt: skip
        if mode == "DNS_ROUND_ROBIN" and len(endpoints) > 1:
            fail(f"there must only be 0 or 1 endpoint for resolution mode {mode}", "endpoints")
        if mode == "DYNAMIC_DNS":
            self._check_dynamic_dns()
        port_names = {port.name for port in self.ports}
        for position, endpoint in enumerate(endpoints):
            for name, number in endpoint.ports.items():
                if name not in port_names:
                    fail(f"endpoint port {number} is not defined by the service entry",
                         "endpoints", position, "ports", name)  # fmt: skip

    def _check_dynamic_dns(self) -> None:
        for position, host in enumerate(self.hosts):
            if not host.startswith("*"):
                fail("host must be wildcarded for resolution mode DYNAMIC_DNS", "hosts", position)
        if self.addresses:
            fail("addresses cannot be set for resolution type DYNAMIC_DNS", "addresses")
        if self.endpoints:
            fail("endpoints cannot be set for resolution type DYNAMIC_DNS", "endpoints")
        for position, port in enumerate(self.ports):
            if port.protocol_upper not in DYNAMIC_DNS_PROTOCOLS:
                fail("only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution "
                     "type DYNAMIC_DNS", "ports", position, "protocol")  # fmt: skip

    @property
    def resolution_mode(self) -> Resolution:
        """The resolution, NONE when unset."""
        return self.resolution or "NONE"

    @property
    def location_mode(self) -> Location:
        """The location, MESH_EXTERNAL when unset."""
        return self.location or "MESH_EXTERNAL"


@served("networking.istio.io", "v1alpha3", "v1beta1", "v1")
class ServiceEntry(Resource):
    """networking.istio.io ServiceEntry."""

    KIND: ClassVar[str] = "ServiceEntry"

    spec: ServiceEntrySpec


@served("networking.istio.io", "v1alpha3", "v1beta1", "v1")
class WorkloadEntry(Resource):
    """networking.istio.io WorkloadEntry."""

    KIND: ClassVar[str] = "WorkloadEntry"

    spec: WorkloadEntrySpec

    @property
    def workload_name(self) -> str:
        """Its workload name in telemetry (istio/istio pkg/kube/labels
        WorkloadNameFromWorkloadEntry): the auto-registration group annotation, else the
        `service.istio.io/workload-name` label, else the entry's name."""
        return (self.metadata.annotations.get(AUTO_REGISTRATION_GROUP)
                or self.labels.get(WORKLOAD_NAME_LABEL) or self.name)
