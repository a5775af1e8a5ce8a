"""Istio's transport security in the proxy: the TLS contexts of a workload certificate, the
identity a peer's certificate proves, and the `x-forwarded-client-cert` value told to the app.

A `WorkloadTls` is one issued certificate with the mesh's roots; it is replaced whole when the
certificate is renewed or the roots change, so a connection keeps the contexts it started with.
Contexts need files to load a key (the `ssl` module reads no PEM from memory): the key is
written 0600 into a private 0700 directory, loaded, and removed at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from remora.mesh.snapshot import Cluster, Endpoint, MeshSettings

SPIFFE = "spiffe://"
TLS_HANDSHAKE = 0x16  # the first byte of a TLS record carrying a ClientHello (RFC 8446 §5.1)
XFCC = "x-forwarded-client-cert"


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    """Istio's workload identity: `spiffe://cluster.local/ns/default/sa/reviews`."""
    return f"{SPIFFE}{trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True, slots=True)
class UpstreamPeer:
    """An endpoint spoken to in Istio's mutual TLS (ISTIO_MUTUAL, by auto mTLS or a
    DestinationRule): the SNI sent, and the identities its certificate may prove (empty: any
    of the trust domain's)."""

    sni: str
    expected: frozenset[str]
    trust_domain: str


def upstream_peer(cluster: Cluster, endpoint: Endpoint, mesh: MeshSettings) -> UpstreamPeer | None:
    """Whether the client sidecar originates mutual TLS to `endpoint`, as Istio decides: a
    DestinationRule's `tls.mode` ISTIO_MUTUAL always, DISABLE never; unset, auto mTLS
    (MeshConfig enableAutoMtls) does when the endpoint, not of a MESH_EXTERNAL service, has
    a sidecar that takes it (its
    `tls_mode`, compiled from `security.istio.io/tlsMode` and the endpoint's
    PeerAuthentication). SIMPLE and MUTUAL origination are not implemented yet (`apply` says
    so): those stay plain text. The SNI is Istio's `outbound_.<port>_.<subset>_.<host>`."""
    policy = cluster.traffic_policy
    mode = policy.tls_mode if policy is not None else ""
    if mode != "ISTIO_MUTUAL" and (mode or not mesh.enable_auto_mtls or cluster.mesh_external
                                   or endpoint.tls_mode != "istio"):
        return None
    known = endpoint.service_account not in ("", "unknown") and endpoint.namespace not in (
        "", "unknown")
    expected = frozenset({spiffe_id(mesh.trust_domain, endpoint.namespace,
                                    endpoint.service_account)} if known else ())
    return UpstreamPeer(f"outbound_.{cluster.port}_.{cluster.subset}_.{cluster.host}", expected,
                        mesh.trust_domain)


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
        STRICT and PERMISSIVE's mTLS half). TLS 1.2 at least, 1.3 preferred."""
        return self._context(ssl.PROTOCOL_TLS_SERVER)

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
