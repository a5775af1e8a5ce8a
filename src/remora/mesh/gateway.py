"""Gateway mode: the Gateways that select this proxy, their servers as listeners, and the
VirtualService hosts each server exposes.

Istio's semantics ("Gateway" reference):
- a Gateway applies to the workloads whose labels contain its `selector`, in any namespace
  (PILOT_SCOPE_GATEWAY_TO_NAMESPACE is false by default);
- a server's `hosts` are `ns/dnsName` (`*` any namespace, `.` the Gateway's; a bare dnsName is
  `*/dnsName`): a VirtualService of a listed namespace bound to the Gateway is exposed for the
  part of its hosts the server host covers (the narrower name of the two);
- TLS SIMPLE, MUTUAL (client certificate required, checked against the client CA),
  OPTIONAL_MUTUAL (checked when presented) terminate with serverCertificate/privateKey/
  caCertificates files or the Secret `credentialName` in the gateway workload's namespace
  (istio.io "Secure Gateways", Key formats: see `credential`); ISTIO_MUTUAL with the proxy's
  workload certificate and the mesh's roots. A credential that is missing or not PEM leaves
  the server out, with a note. minProtocolVersion/maxProtocolVersion (TLS 1.2 to 1.3 unless
  set) and cipherSuites (unknown names ignored, as Istio does) are the server's; servers on
  one port are picked by the ClientHello's SNI against their hosts (`sni_names`);
- `tls.httpsRedirect` on an HTTP server answers 301 to https for its hosts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from remora.api.kube.core import Secret
from remora.api.networking.gateway import (
    VALID_CIPHER_SUITES,
    Gateway,
    Server,
    ServerTLSSettings,
)
from remora.api.networking.names import host_matches, host_subset_of
from remora.api.networking.virtual_service import VirtualService
from remora.api.resource import Resource
from remora.mesh.hosts import labels_subset
from remora.mesh.routes import VirtualServices, oldest_first
from remora.mesh.snapshot import ListenerTls, ProxyIdentity


@dataclass(frozen=True, slots=True)
class GatewayServer:
    """A server of a Gateway that selects this proxy; `gateway` is `ns/name`."""

    gateway: str
    namespace: str
    server: Server

    @property
    def port(self) -> int:
        return self.server.port.number

    @property
    def https_redirect(self) -> bool:
        return bool(self.server.tls and self.server.tls.https_redirect)


def selected_servers(resources: Iterable[Resource], identity: ProxyIdentity) -> list[GatewayServer]:
    """Servers of every Gateway whose selector this proxy's labels satisfy, oldest first."""
    out: list[GatewayServer] = []
    for gateway in oldest_first(r for r in resources if isinstance(r, Gateway)):
        if labels_subset(gateway.spec.selector, identity.labels):
            out.extend(
                GatewayServer(gateway.key, gateway.namespace, server)
                for server in gateway.spec.servers
            )
    return out


def exposed_hosts(server: GatewayServer, vs: VirtualService) -> list[str]:
    """Domains of `vs` the server exposes: each host intersected with the server's hosts."""
    out: list[str] = []
    for entry in server.server.hosts:
        namespace, slash, name = entry.rpartition("/")
        namespace = namespace if slash else "*"
        if namespace == ".":
            namespace = server.namespace
        if namespace not in ("*", vs.namespace):
            continue
        for host in VirtualServices.hosts(vs):
            if not host_matches(host, name):
                continue
            domain = host if host_subset_of(host, name) else name
            if domain not in out:
                out.append(domain)
    return out


def server_problem(server: GatewayServer) -> str | None:
    """Why Remora does not serve this server (HTTP/1.1, and TLS it terminates), or None."""
    port = server.server.port
    tls = server.server.tls
    if port.is_tls:
        if tls is None or tls.mode not in TERMINATING_MODES:
            mode = (tls.mode if tls else None) or "PASSTHROUGH"
            return f"{server.gateway} port {port.number}: TLS mode {mode} is not supported"
        return None
    if not port.is_http:
        return f"{server.gateway} port {port.number}: protocol {port.protocol} is not supported"
    return None


def listener_tls(
    server: GatewayServer, secrets: dict[tuple[str, str], Secret], namespace: str
) -> ListenerTls | str | None:
    """The TLS server Envoy's filter chain for `server` would be; a message when its
    credential cannot be used (the server is then left out); None for plain HTTP."""
    tls: ServerTLSSettings | None = server.server.tls
    if tls is None or not server.server.port.is_tls:
        return None
    label = f"{server.gateway} port {server.port}"
    versions = _versions(tls)
    if isinstance(versions, str):
        return f"{label}: {versions}"
    common = {"mode": tls.mode or "SIMPLE", "min_version": versions[0],
              "max_version": versions[1], "ciphers": cipher_list(tls.cipher_suites),
              "server_names": sni_names(server.server.hosts), "server": label}
    if tls.mode == "ISTIO_MUTUAL":  # the workload certificate and the mesh's roots
        return ListenerTls(**common)  # type: ignore[arg-type]
    mutual = tls.mode in ("MUTUAL", "OPTIONAL_MUTUAL")
    name = tls.credential_name or (tls.credential_names[0] if tls.credential_names else "")
    if not name:
        cert, key = tls.server_certificate, tls.private_key
        if tls.tls_certificates:
            cert, key = tls.tls_certificates[0].server_certificate, \
                tls.tls_certificates[0].private_key
        ca = tls.ca_certificates if mutual else None
        if mutual and not ca:
            return f"{label}: TLS mode {tls.mode} needs caCertificates"
        return ListenerTls(cert_path=cert, key_path=key, ca_path=ca, **common)  # type: ignore[arg-type]
    found = credential(secrets, namespace, name)
    if isinstance(found, str):
        return f"{label}: credentialName {name!r}: {found}"
    cert_pem, key_pem = found
    ca_pem = None
    if mutual:
        ca_name = tls.ca_cert_credential_name or f"{name}{CA_SUFFIX}"
        ca_found = ca_certificate(secrets, namespace, ca_name, fallback=(
            None if tls.ca_cert_credential_name else name))
        if isinstance(ca_found, str):
            return f"{label}: TLS mode {tls.mode}: {ca_found}"
        ca_pem = ca_found
    return ListenerTls(cert_pem=cert_pem, key_pem=key_pem, ca_pem=ca_pem, **common)  # type: ignore[arg-type]


# Istio's Secret formats (istio.io "Secure Gateways", Key formats; pilot/pkg/credentials/kube
# secrets.go): a generic Secret `cert`/`key` (`cacert`), else a kubernetes.io/tls one
# `tls.crt`/`tls.key` (`ca.crt`); the CA of MUTUAL may also be a Secret `<name>-cacert`,
# which takes precedence
TERMINATING_MODES = frozenset({"SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL", "ISTIO_MUTUAL"})
_SECRET_KEYS = (("cert", "key"), ("tls.crt", "tls.key"))
_CA_KEYS = ("cacert", "ca.crt")
CA_SUFFIX = "-cacert"


def credential(secrets: dict[tuple[str, str], Secret], namespace: str,
               name: str) -> tuple[bytes, bytes] | str:
    """The certificate chain and key of Secret `namespace/name`, or why there is none."""
    secret = secrets.get((namespace, name))
    if secret is None:
        return f"secret {namespace}/{name} not found"
    data = secret.decoded()
    for cert_key, key_key in _SECRET_KEYS:
        if cert_key in data and key_key in data:
            cert, key = data[cert_key], data[key_key]
            if not cert or not key:
                return f"found keys {cert_key!r} and {key_key!r}, but they were empty"
            for field, value, what in ((cert_key, cert, "certificate"), (key_key, key, "key")):
                if problem := pem_problem(value, what):
                    return f"secret {namespace}/{name}: {field} {problem}"
            return cert, key
    return (f"secret {namespace}/{name} has none of the expected keys (cert and key) or "
            f"(tls.crt and tls.key); found: {', '.join(sorted(data)) or 'none'}")


def ca_certificate(secrets: dict[tuple[str, str], Secret], namespace: str, name: str, *,
                   fallback: str | None) -> bytes | str:
    """The client CA bundle of Secret `name` (`cacert`, else `ca.crt`), else of `fallback`."""
    for candidate in (name, fallback):
        secret = secrets.get((namespace, candidate)) if candidate else None
        if secret is None:
            continue
        data = secret.decoded()
        for key in _CA_KEYS:
            if data.get(key):
                problem = pem_problem(data[key], "certificate")
                if problem:
                    return f"secret {namespace}/{candidate}: {key} {problem}"
                return data[key]
    names = " or ".join(f"{namespace}/{n}" for n in (name, fallback) if n)
    return f"no client CA: no secret {names} with a cacert or ca.crt key"


def pem_problem(data: bytes, what: str) -> str | None:
    """Why `data` is not a PEM certificate (bundle) or private key, or None."""
    try:
        if what == "key":
            serialization.load_pem_private_key(data, password=None)
        elif not x509.load_pem_x509_certificates(data):
            return "holds no certificate"
    except (ValueError, TypeError) as exc:
        return f"is not a PEM {what} ({str(exc).splitlines()[0][:80]})" if str(exc) else \
            f"is not a PEM {what}"
    return None


# TLS protocol versions (ServerTLSSettings.TLSProtocol); TLS_AUTO: Envoy's defaults for a
# server, TLS 1.2 to 1.3 (Istio's minimum for gateways is TLS 1.2)
_VERSION_ORDER = ("TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3")


def _versions(tls: ServerTLSSettings) -> tuple[str, str] | str:
    low = tls.min_protocol_version if tls.min_protocol_version not in (None, "TLS_AUTO") \
        else "TLSV1_2"
    high = tls.max_protocol_version if tls.max_protocol_version not in (None, "TLS_AUTO") \
        else "TLSV1_3"
    assert low is not None and high is not None
    if _VERSION_ORDER.index(low) > _VERSION_ORDER.index(high):
        return f"minProtocolVersion {low} is above maxProtocolVersion {high}"
    return low, high




def cipher_list(suites: Iterable[str]) -> tuple[str, ...]:
    """The suites Istio would configure: the known ones (OpenSSL's names too), duplicates and
    unknown ones left out (Istio's filteredGatewayCipherSuites); () = Envoy's default list."""
    return tuple(dict.fromkeys(suite for suite in suites if suite in VALID_CIPHER_SUITES))


def sni_names(hosts: Iterable[str]) -> tuple[str, ...]:
    """The server names of a TLS server's filter chain (Istio getSNIHostsForServer): the
    dnsName part of each host; a `*` host matches any SNI (no server_names)."""
    names = tuple(dict.fromkeys(host.rpartition("/")[2] for host in hosts))
    return () if "*" in names else names
