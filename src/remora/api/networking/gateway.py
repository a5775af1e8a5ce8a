"""Gateway: the servers (port, hosts, TLS) a gateway proxy listens with.

Rules follow istio/istio pkg/config/validation/validation.go (ValidateGateway, validateServer,
validateServerPort, validateServerBind, validateTLSOptions).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from remora.api.base import Spec, fail
from remora.api.common import UInt32
from remora.api.networking import names
from remora.api.resource import Resource, served

UNIX_PREFIX = "unix://"
TLSProtocol = Literal["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"]
ServerTLSMode = Literal[
    "PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"
]


# Gateway.server.tls.cipherSuites Istio knows (pkg/config/security ValidCipherSuites, the
# BoringSSL names `bssl ciphers -openssl-name ALL` prints; OpenSSL's names too). Another name
# is ignored with a warning (validateTLSOptions: "ignoring invalid cipher suites")
VALID_CIPHER_SUITES = frozenset({
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA", "AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA",
    "AES256-SHA", "DES-CBC3-SHA",
})


class Port(Spec):
    """A server port: number, protocol (HTTP|HTTPS|GRPC|HTTP2|MONGO|TCP|TLS...), name."""

    number: UInt32 = 0
    protocol: str
    name: str
    target_port: UInt32 | None = None  # deprecated; an error on Gateways

    @property
    def protocol_upper(self) -> str:
        return self.protocol.upper()

    @property
    def is_http(self) -> bool:
        return self.protocol_upper in names.HTTP_PROTOCOLS

    @property
    def is_tls(self) -> bool:
        return self.protocol_upper in names.TLS_PROTOCOLS


class TLSCertificate(Spec):
    server_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None


class ServerTLSSettings(Spec):
    """TLS a server terminates (SIMPLE, MUTUAL...) or passes through, and HTTPS redirection."""

    https_redirect: bool | None = None
    mode: ServerTLSMode | None = None
    server_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    ca_crl: str | None = None
    credential_name: str | None = None
    credential_names: Annotated[list[str], Field(max_length=2)] = Field(default_factory=list)
    ca_cert_credential_name: str | None = None
    tls_certificates: Annotated[list[TLSCertificate], Field(max_length=2)] = Field(
        default_factory=list
    )
    subject_alt_names: list[str] = Field(default_factory=list)
    verify_certificate_spki: list[str] = Field(default_factory=list)
    verify_certificate_hash: list[str] = Field(default_factory=list)
    min_protocol_version: TLSProtocol | None = None
    max_protocol_version: TLSProtocol | None = None
    cipher_suites: list[str] = Field(default_factory=list)  # unknown suites only warn
    insecure_skip_verify: bool | None = None

    @model_validator(mode="after")
    def _valid(self) -> ServerTLSSettings:
        # validateTLSOptions (+ the CRD's oneof rules for credentialName(s)/tlsCertificates)
        if self.mode == "ISTIO_MUTUAL":
            self._check_istio_mutual()
            return self
        sources = [
            bool(self.server_certificate and self.private_key),
            bool(self.credential_name),
            bool(self.credential_names),
            bool(self.tls_certificates),
        ]
        if sum(sources) > 1:
            fail("only one of credentialName, credentialNames, serverCertificate/privateKey, "
                 "tlsCertificates should be specified")  # fmt: skip
        terminating = self.mode in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL")
        if terminating and not (self.credential_name or self.credential_names):
            self._check_certificates()
        if self.ca_crl:
            if self.credential_name:
                fail("CRL is not supported with credentialName. CRL has to be specified in the "
                     "credential", "caCrl")  # fmt: skip
            if self.mode == "SIMPLE":
                fail("CRL is not supported with SIMPLE TLS", "caCrl")
        return self

    def _check_istio_mutual(self) -> None:
        for field, alias in (("server_certificate", "serverCertificate"),
                             ("private_key", "privateKey"),
                             ("ca_certificates", "caCertificates"),
                             ("tls_certificates", "tlsCertificates"),
                             ("credential_name", "credentialName"),
                             ("credential_names", "credentialNames")):  # fmt: skip
            if getattr(self, field):
                fail(f"ISTIO_MUTUAL TLS cannot have associated {alias}", alias)

    def _check_certificates(self) -> None:
        prefix = "SIMPLE TLS" if self.mode == "SIMPLE" else "MUTUAL TLS"
        if self.mode != "SIMPLE" and not self.ca_certificates:
            fail(f"{prefix} requires a client CA bundle", "caCertificates")
        certificates = self.tls_certificates or [
            TLSCertificate(server_certificate=self.server_certificate, private_key=self.private_key)
        ]
        for position, cert in enumerate(certificates):
            where: tuple[str | int, ...] = (
                ("tlsCertificates", position) if self.tls_certificates else ()
            )
            if not cert.server_certificate:
                fail(f"{prefix} requires a server certificate", *where, "serverCertificate")
            if not cert.private_key:
                fail(f"{prefix} requires a private key", *where, "privateKey")

    @property
    def is_passthrough(self) -> bool:
        """PASSTHROUGH (the default mode) or AUTO_PASSTHROUGH."""
        return self.mode in (None, "PASSTHROUGH", "AUTO_PASSTHROUGH")


class Server(Spec):
    """One listener of a gateway: port, bind address, hosts (`namespace/dnsName`), TLS."""

    port: Port
    bind: str | None = None
    hosts: list[str] = Field(default_factory=list)
    tls: ServerTLSSettings | None = None
    default_endpoint: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> Server:
        # validateServer
        if not self.hosts:
            fail("server config must contain at least one host", "hosts")
        for position, host in enumerate(self.hosts):
            if problem := names.check_namespace_slash_host(host, gateway=True):
                fail(problem, "hosts", position)
        self._check_port_and_bind()
        if self.port.is_tls and self.tls is None:
            fail("server must have TLS settings for HTTPS/TLS protocols", "tls")
        if not self.port.is_tls and self.tls is not None:
            # a plain HTTP server may carry only `httpsRedirect`
            tls = self.tls
            certs = tls.ca_certificates or tls.private_key or tls.server_certificate
            if not self.port.is_http:
                fail("server cannot have TLS settings for non HTTPS/TLS ports", "tls")
            if not tls.is_passthrough or certs:
                fail("server cannot have TLS settings for plain text HTTP ports", "tls")
        return self

    def _check_port_and_bind(self) -> None:
        # validateServerPort, validateServerBind
        port, bind = self.port, self.bind or ""
        if port.protocol_upper not in names.PROTOCOLS:
            fail(f"invalid protocol {port.protocol!r}, supported protocols are HTTP, HTTPS, HTTP2, "
                 "GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP, TLS", "port", "protocol")  # fmt: skip
        unix = bind.startswith(UNIX_PREFIX)
        if (port.number > 0 or not unix) and (problem := names.check_port(port.number)):
            fail(problem, "port", "number")
        if port.target_port:
            fail("targetPort has no impact on Gateways", "port", "targetPort")
        if not port.name:
            fail("port name must be set", "port", "name")
        if unix:
            if problem := names.check_unix_address(bind.removeprefix(UNIX_PREFIX)):
                fail(problem, "bind")
            if port.number != 0:
                fail("port number must be 0 for unix domain socket", "port", "number")
        elif bind and (problem := names.check_ip(bind)):
            fail(problem, "bind")


class GatewaySpec(Spec):
    """The gateway workloads (`selector`) and the servers they expose."""

    servers: list[Server] = Field(default_factory=list)
    selector: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid(self) -> GatewaySpec:
        if not self.servers:
            fail("gateway must have at least one server", "servers")
        seen: set[str] = set()
        for position, server in enumerate(self.servers):
            if server.port.name in seen:
                fail(f"port names in servers must be unique: duplicate name {server.port.name}",
                     "servers", position, "port", "name")  # fmt: skip
            seen.add(server.port.name)
        return self


@served("networking.istio.io", "v1alpha3", "v1beta1", "v1")
class Gateway(Resource):
    """networking.istio.io Gateway."""

    KIND: ClassVar[str] = "Gateway"

    spec: GatewaySpec

    @model_validator(mode="after")
    def _valid_name(self) -> Gateway:
        # ValidateGateway: "Gateway name must conform to the DNS label format (no dots)"
        name = self.metadata.name
        if name and not names.is_dns1123_label(name):
            fail(f"invalid gateway name: {name!r}", "metadata", "name")
        return self
