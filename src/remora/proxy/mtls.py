"""Istio's transport security in the proxy: the TLS contexts of a workload certificate, the
identity a peer's certificate proves, and the `x-forwarded-client-cert` value told to the app.

A `WorkloadTls` is one issued certificate with the mesh's roots; it is replaced whole when the
certificate is renewed or the roots change, so a connection keeps the contexts it started with.
Contexts need files to load a key (the `ssl` module reads no PEM from memory): the key is
written 0600 into a private 0700 directory, loaded, and removed at once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from remora.mesh.clienttls import ClientTls
    from remora.mesh.snapshot import Cluster, Endpoint, MeshSettings

SPIFFE = "spiffe://"
TLS_HANDSHAKE = 0x16  # the first byte of a TLS record carrying a ClientHello (RFC 8446 §5.1)
XFCC = "x-forwarded-client-cert"


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    """Istio's workload identity: `spiffe://cluster.local/ns/default/sa/reviews`."""
    return f"{SPIFFE}{trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True, slots=True)
class UpstreamPeer:
    """An endpoint spoken to in TLS: Istio's mutual TLS (ISTIO_MUTUAL, by auto mTLS or a
    DestinationRule), or a DestinationRule's own SIMPLE / MUTUAL origination (`origination`).
    `sni` is sent; `expected` are the names the server's certificate must carry (SPIFFE URIs
    for ISTIO_MUTUAL, empty: any of the trust domain's; subjectAltNames, empty: the SNI as a
    host name, for origination)."""

    sni: str
    expected: frozenset[str]
    trust_domain: str
    origination: ClientTls | None = None

    def context(self, workload: WorkloadTls | None) -> ssl.SSLContext | None:
        """The client context for a new connection; None: plain text (ISTIO_MUTUAL before
        this proxy has a certificate)."""
        if self.origination is not None:
            return origination_context(self.origination)
        return workload.client if workload is not None else None


def upstream_peer(cluster: Cluster, endpoint: Endpoint, mesh: MeshSettings) -> UpstreamPeer | None:
    """Whether and how the client sidecar originates TLS to `endpoint`, as Istio decides: a
    DestinationRule's `tls.mode` SIMPLE or MUTUAL with its own settings, ISTIO_MUTUAL always,
    DISABLE never; unset, auto mTLS (MeshConfig enableAutoMtls) does ISTIO_MUTUAL when the
    endpoint, not of a MESH_EXTERNAL service, has a sidecar that takes it (its `tls_mode`,
    compiled from `security.istio.io/tlsMode` and the endpoint's PeerAuthentication). The
    ISTIO_MUTUAL SNI is Istio's `outbound_.<port>_.<subset>_.<host>`; a DestinationRule's
    `sni` and `subjectAltNames` override it and the destination's identities."""
    policy = cluster.traffic_policy
    mode = policy.tls_mode if policy is not None else ""
    settings = policy.tls if policy is not None else None
    if settings is not None and settings.originates:
        return UpstreamPeer(settings.sni or cluster.host, frozenset(settings.subject_alt_names),
                            mesh.trust_domain, settings)
    if mode != "ISTIO_MUTUAL" and (mode or not mesh.enable_auto_mtls or cluster.mesh_external
                                   or endpoint.tls_mode != "istio"):
        return None
    known = endpoint.service_account not in ("", "unknown") and endpoint.namespace not in (
        "", "unknown")
    expected = frozenset({spiffe_id(mesh.trust_domain, endpoint.namespace,
                                    endpoint.service_account)} if known else ())
    sni = f"outbound_.{cluster.port}_.{cluster.subset}_.{cluster.host}"
    if settings is not None:  # ISTIO_MUTUAL with sni / subjectAltNames
        sni = settings.sni or sni
        expected = frozenset(settings.subject_alt_names) or expected
    return UpstreamPeer(sni, expected, mesh.trust_domain)


@functools.lru_cache(maxsize=256)
def origination_context(tls: ClientTls) -> ssl.SSLContext:
    """A DestinationRule's SIMPLE / MUTUAL client context: the server verified against
    `caCertificates` (or the credential's CA, or the system's roots), unless
    `insecureSkipVerify`; MUTUAL presents the client certificate. Names are checked after the
    handshake (`origination_problem`). Built once per setting."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    if tls.insecure_skip_verify:
        context.verify_mode = ssl.CERT_NONE
    elif tls.ca_pem:
        context.load_verify_locations(cadata=tls.ca_pem.decode())
    elif tls.ca_path:
        context.load_verify_locations(cafile=tls.ca_path)
    else:
        context.load_default_certs()
    if tls.cert_pem and tls.key_pem:
        with private_files((tls.cert_pem.decode(), tls.key_pem.decode())) as (chain, key):
            context.load_cert_chain(chain, key)
    elif tls.cert_path and tls.key_path:
        context.load_cert_chain(tls.cert_path, tls.key_path)
    return context


def origination_problem(ssl_object: Any, peer: UpstreamPeer) -> str | None:
    """Why a SIMPLE / MUTUAL server's certificate is refused: none of `subjectAltNames` (or,
    without them, the SNI host name) is among its names. None: accepted."""
    tls = peer.origination
    assert tls is not None
    if tls.insecure_skip_verify:
        return None
    certificate = ssl_object.getpeercert() if ssl_object is not None else None
    if not certificate:
        return "the server sent no certificate"
    names = {value for kind, value in certificate.get("subjectAltName", ())
             if kind in ("DNS", "URI", "IP Address")}
    if peer.expected:
        if names & peer.expected:
            return None
        return f"the server's names {sorted(names)} match none of {sorted(peer.expected)}"
    if any(_host_matches(name, peer.sni) for name in names):
        return None
    return f"the server's names {sorted(names)} do not cover {peer.sni}"


def _host_matches(pattern: str, host: str) -> bool:
    """RFC 6125 §6.4.3: exact, or one leading `*.` label."""
    pattern, host = pattern.lower(), host.lower()
    if pattern.startswith("*."):
        return host.partition(".")[2] == pattern[2:] and "." in host
    return pattern == host


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """What a verified peer certificate says: its SPIFFE identity and its SHA-256 (XFCC Hash)."""

    uri: str
    digest: str

    @classmethod
    def of(cls, ssl_object: Any) -> PeerCertificate | None:
        """The peer of a finished handshake (None: it sent no certificate)."""
        if ssl_object is None:
            return None
        der = ssl_object.getpeercert(binary_form=True)
        if not der:
            return None
        names = (ssl_object.getpeercert() or {}).get("subjectAltName", ())
        uri = next((value for kind, value in names if kind == "URI"
                    and value.startswith(SPIFFE)), "")
        return cls(uri, hashlib.sha256(der).hexdigest())


def xfcc_element(own: str, peer: PeerCertificate) -> str:
    """One element of Envoy's XFCC header as Istio's sidecars set it on inbound requests
    (`forward_client_cert_details: APPEND_FORWARD`, `set_current_client_cert_details` subject,
    URI, DNS): `By=<our URI>;Hash=<peer's sha256>;Subject="";URI=<peer's URI>` — Istio's
    certificates have an empty subject and no DNS name."""
    return f'By={own};Hash={peer.digest};Subject="";URI={peer.uri}'


@dataclass(frozen=True, eq=False)
class WorkloadTls:
    """One workload certificate (leaf first, then intermediates), its key, the roots peers'
    certificates must chain to, and when it expires (epoch seconds)."""

    identity: str
    chain: tuple[str, ...]
    key: str = field(repr=False)
    roots: tuple[str, ...]
    not_after: float

    @cached_property
    def server(self) -> ssl.SSLContext:
        """Inbound: a client certificate is required and must chain to a root (PeerAuthentication
        STRICT and PERMISSIVE's mTLS half). TLS 1.2 at least, 1.3 preferred. No TLS 1.3
        session tickets: client sidecars never resume, and making the two tickets OpenSSL
        sends by default was a fifth of the server's handshake (bench/mtls.py)."""
        context = self._context(ssl.PROTOCOL_TLS_SERVER)
        context.num_tickets = 0
        return context

    @cached_property
    def client(self) -> ssl.SSLContext:
        """Outbound ISTIO_MUTUAL: our certificate, the peer's verified against the roots; the
        name checked is its SPIFFE URI (`expected_peer`), not a host name."""
        context = self._context(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        return context

    def _context(self, protocol: int) -> ssl.SSLContext:
        context = ssl.SSLContext(protocol)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata="".join(self.roots))
        with private_files(("".join(self.chain), self.key)) as (chain, key):
            context.load_cert_chain(chain, key)
        return context


@contextlib.contextmanager
def private_files(contents: tuple[str, ...]) -> Any:
    """Each text in a file only this user can read (0600 in a 0700 directory), removed after."""
    with tempfile.TemporaryDirectory(prefix="remora-tls-") as directory:
        paths = []
        for index, text in enumerate(contents):
            path = Path(directory, str(index))
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(text)
            paths.append(str(path))
        yield tuple(paths)


def expected_peer(peer: PeerCertificate | None, expected: frozenset[str],
                  trust_domain: str) -> str | None:
    """Why an upstream's certificate is refused (None: it is who the cluster expects): its URI
    SAN must be one of the destination's identities, or, when those are not known, any
    identity of the trust domain."""
    if peer is None or not peer.uri:
        return "the peer certificate has no SPIFFE identity"
    if expected:
        if peer.uri in expected:
            return None
        return f"peer identity {peer.uri} is not one of {', '.join(sorted(expected))}"
    if peer.uri.startswith(f"{SPIFFE}{trust_domain}/"):
        return None
    return f"peer identity {peer.uri} is not of trust domain {trust_domain}"
