"""Sidecar: what a sidecar proxy listens on (ingress) and which services it can reach (egress).

Rules follow istio/istio pkg/config/validation/validation.go (ValidateSidecar,
validateSidecarOutboundTrafficPolicy, validateSidecarEgressPortBindAndCaptureMode,
validateSidecarIngressPortAndBind) and agent.ValidateNamespaceSlashWildcardHostname.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from remora.api.base import Spec, fail
from remora.api.common import UInt32
from remora.api.networking import names
from remora.api.networking.gateway import ServerTLSSettings
from remora.api.networking.shared import Destination, WorkloadSelector
from remora.api.networking.traffic_policy import ConnectionPoolSettings
from remora.api.resource import Resource, served

UNIX_PREFIX = "unix://"
CaptureMode = Literal["DEFAULT", "IPTABLES", "NONE"]
_LOCAL_HOSTS = frozenset({"127.0.0.1", "0.0.0.0", "::1", "::"})


class SidecarPort(Spec):
    """A listener port: number (0 for a unix socket bind), protocol, name."""

    number: UInt32 = 0
    protocol: str | None = None
    name: str | None = None
    target_port: UInt32 | None = None  # deprecated; an error on Sidecars


def _check_port(port: SidecarPort, bind: str, *, egress: bool) -> None:
    if port.name and (problem := names.check_port_name(port.name)):
        fail(problem, "port", "name")
    if problem := names.check_protocol(port.protocol or ""):
        fail(problem, "port", "protocol")
    if port.target_port:
        fail("targetPort has no impact on Sidecars", "port", "targetPort")
    if egress and port.number == 0:
        if not bind.startswith(UNIX_PREFIX):
            fail("ports with 0 value must have a unix domain socket bind address", "bind")
        if problem := names.check_unix_address(bind.removeprefix(UNIX_PREFIX)):
            fail(problem, "bind")
        return
    if problem := names.check_port(port.number):
        fail(problem, "port", "number")
    if bind and (problem := names.check_ip(bind)):
        fail(problem, "bind")


def _check_default_endpoint(endpoint: str) -> str | None:
    """127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port>, :<port> or unix://path."""
    if endpoint.startswith(UNIX_PREFIX):
        return names.check_unix_address(endpoint.removeprefix(UNIX_PREFIX))
    host, colon, port = endpoint.rpartition(":")
    if not colon:
        return f"address {endpoint}: missing port in address"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host and host not in _LOCAL_HOSTS:
        return ("defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,"
                "[::]:port,unix://filepath or unset")  # fmt: skip
    if not port.isdigit():
        return f"defaultEndpoint port ({port}) is not a number"
    return names.check_port(int(port))


class IstioIngressListener(Spec):
    """An inbound listener: port, bind, captureMode, defaultEndpoint, TLS, connection pool."""

    port: SidecarPort
    bind: str | None = None
    capture_mode: CaptureMode | None = None
    default_endpoint: str | None = None
    tls: ServerTLSSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None

    @model_validator(mode="after")
    def _valid(self) -> IstioIngressListener:
        _check_port(self.port, self.bind or "", egress=False)
        if self.default_endpoint and (problem := _check_default_endpoint(self.default_endpoint)):
            fail(problem, "defaultEndpoint")
        if self.tls is not None:
            self._check_tls(self.tls)
        return self

    def _check_tls(self, tls: ServerTLSSettings) -> None:
        unsupported = (
            ("subject_alt_names", "subjectAltNames"),
            ("https_redirect", "httpsRedirect"),
            ("credential_name", "credentialName"),
            ("credential_names", "credentialNames"),
            ("tls_certificates", "tlsCertificates"),
        )
        for field, alias in unsupported:
            if getattr(tls, field):
                fail(f"{alias} is not supported in sidecar ingress tls", "tls", alias)
        if tls.mode in ("ISTIO_MUTUAL", "AUTO_PASSTHROUGH"):
            fail(f"cannot set mode to {tls.mode} in sidecar ingress tls", "tls", "mode")
        if (self.port.protocol or "").upper() not in names.TLS_PROTOCOLS:
            fail("server cannot have TLS settings for non HTTPS/TLS ports", "tls")


class IstioEgressListener(Spec):
    """An outbound listener (or the catch-all without port) and the hosts it can reach."""

    port: SidecarPort | None = None
    bind: str | None = None
    capture_mode: CaptureMode | None = None
    hosts: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> IstioEgressListener:
        if self.port is not None:
            bind = self.bind or ""
            _check_port(self.port, bind, egress=True)
            unix = self.port.number == 0
            if unix and self.capture_mode not in (None, "DEFAULT", "NONE"):
                fail("captureMode must be DEFAULT/NONE for unix domain socket listeners",
                     "captureMode")  # fmt: skip
        if not self.hosts:
            fail("egress listener must contain at least one host", "hosts")
        for position, host in enumerate(self.hosts):
            if problem := names.check_namespace_slash_host(host, gateway=False):
                fail(problem, "hosts", position)
        return self


class OutboundTrafficPolicy(Spec):
    """REGISTRY_ONLY or ALLOW_ANY, and an optional egress proxy for unknown destinations."""

    mode: Literal["REGISTRY_ONLY", "ALLOW_ANY"] | None = None
    egress_proxy: Destination | None = None

    @model_validator(mode="after")
    def _valid(self) -> OutboundTrafficPolicy:
        proxy = self.egress_proxy
        if proxy is None:
            return self
        if self.mode != "ALLOW_ANY":
            fail("egressProxy must be set only with ALLOW_ANY outboundTrafficPolicy mode",
                 "egressProxy")  # fmt: skip
        if problem := names.check_fqdn(proxy.host):
            fail(problem, "egressProxy", "host")
        if proxy.port is None:
            fail("egressProxy port must be set", "egressProxy", "port")
        return self


class SidecarSpec(Spec):
    """Which workloads (`workloadSelector`), their listeners, and outbound policy."""

    workload_selector: WorkloadSelector | None = None
    ingress: list[IstioIngressListener] = Field(default_factory=list)
    egress: list[IstioEgressListener] = Field(default_factory=list)
    inbound_connection_pool: ConnectionPoolSettings | None = None
    outbound_traffic_policy: OutboundTrafficPolicy | None = None

    @model_validator(mode="after")
    def _valid(self) -> SidecarSpec:
        if not (self.egress or self.ingress or self.outbound_traffic_policy
                or self.inbound_connection_pool):  # fmt: skip
            fail("sidecar: empty configuration provided")
        ports: set[int] = set()
        for position, listener in enumerate(self.ingress):
            if listener.port.number in ports:
                fail("ports on IP bound listeners must be unique", "ingress", position, "port")
            ports.add(listener.port.number)
        self._check_egress()
        return self

    def _check_egress(self) -> None:
        ports: set[int] = set()
        sockets: set[str] = set()
        last = len(self.egress) - 1
        for position, listener in enumerate(self.egress):
            port = listener.port
            if port is None:
                if position != last:
                    fail("the egress listener with empty port should be the last listener in "
                         "the list", "egress", position)  # fmt: skip
                continue
            if port.number == 0:
                if (listener.bind or "") in sockets:
                    fail("unix domain socket values for listeners must be unique",
                         "egress", position, "bind")  # fmt: skip
                sockets.add(listener.bind or "")
            else:
                if port.number in ports:
                    fail("ports on IP bound listeners must be unique", "egress", position, "port")
                ports.add(port.number)


@served("networking.istio.io", "v1alpha3", "v1beta1", "v1")
class Sidecar(Resource):
    """networking.istio.io Sidecar."""

    KIND: ClassVar[str] = "Sidecar"

    spec: SidecarSpec
