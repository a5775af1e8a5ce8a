"""Gateway mode: the Gateways that select this proxy, their servers as listeners, and the
VirtualService hosts each server exposes.

Istio's semantics ("Gateway" reference):
- a Gateway applies to the workloads whose labels contain its `selector`, in any namespace
  (PILOT_SCOPE_GATEWAY_TO_NAMESPACE is false by default);
- a server's `hosts` are `ns/dnsName` (`*` any namespace, `.` the Gateway's; a bare dnsName is
  `*/dnsName`): a VirtualService of a listed namespace bound to the Gateway is exposed for the
  part of its hosts the server host covers (the narrower name of the two);
- TLS SIMPLE terminates with serverCertificate/privateKey files or the kubernetes.io/tls Secret
  `credentialName` (keys tls.crt/tls.key, or cert/key) in the gateway workload's namespace;
- `tls.httpsRedirect` on an HTTP server answers 301 to https for its hosts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from remora.api.kube.core import Secret
from remora.api.networking.gateway import Gateway, Server, ServerTLSSettings
from remora.api.networking.names import host_matches, host_subset_of
from remora.api.networking.virtual_service import VirtualService
from remora.api.resource import Resource
from remora.mesh.hosts import labels_subset
from remora.mesh.routes import VirtualServices, oldest_first
from remora.mesh.snapshot import ListenerTls, ProxyIdentity

_SECRET_KEYS = (("tls.crt", "tls.key"), ("cert", "key"))


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
    """Why Remora does not serve this server (HTTP/1.1 and TLS termination only), or None."""
    port = server.server.port
    tls = server.server.tls
    if port.is_tls:
        if tls is None or tls.mode != "SIMPLE":
            mode = (tls.mode if tls else None) or "PASSTHROUGH"
            return f"{server.gateway} port {port.number}: TLS mode {mode} is not supported"
        return None
    if not port.is_http:
        return f"{server.gateway} port {port.number}: protocol {port.protocol} is not supported"
    return None


def listener_tls(
    server: GatewayServer, secrets: dict[tuple[str, str], Secret], namespace: str
) -> ListenerTls | str | None:
    """The certificate of a TLS server; a message when it cannot be found; None for plain HTTP."""
    tls: ServerTLSSettings | None = server.server.tls
    if tls is None or not server.server.port.is_tls:
        return None
    if tls.server_certificate and tls.private_key:
        return ListenerTls(cert_path=tls.server_certificate, key_path=tls.private_key)
    if tls.tls_certificates:
        first = tls.tls_certificates[0]
        return ListenerTls(cert_path=first.server_certificate, key_path=first.private_key)
    name = tls.credential_name or (tls.credential_names[0] if tls.credential_names else "")
    secret = secrets.get((namespace, name))
    if secret is None:
        return f"{server.gateway}: credentialName {name!r}: no Secret {namespace}/{name}"
    data = secret.decoded()
    for cert, key in _SECRET_KEYS:
        if cert in data and key in data:
            return ListenerTls(cert_pem=data[cert], key_pem=data[key])
    return f"{server.gateway}: Secret {namespace}/{name} has no tls.crt/tls.key"
