"""The control plane's own certificate, as istiod's: signed by the mesh CA for its DNS names.

Theory of operation. With `remora controlplane --tls auto` the API is served over TLS with a
certificate the mesh's CA signs for the control plane itself (istiod's `istiod.istio-system.svc`
DNS certificate): DNS SANs `istiod.istio-system.svc`, `remora-controlplane` and `localhost`,
IP SANs 127.0.0.1 and every address it listens on. It is renewed at half its life, and at
once when the roots change (a root added signs from then on). The mesh's roots are written to
`root-cert.pem` in the data directory, as istiod publishes `istio-ca-root-cert`, for proxies
(`remora proxy --ca-cert`) and clients to verify the control plane with.

Either way (this certificate, or the user's `--tls-cert`/`--tls-key`) the server asks for a
client certificate and verifies one it gets against the mesh's roots (CERT_OPTIONAL): a proxy
presents its workload certificate, which authenticates its renewals (api_identity.py); a
client without one is served as before. `serving_leaf` is pure (the time is an argument);
`ServingTls` keeps the one `ssl.SSLContext` uvicorn serves with up to date: new connections
get the renewed certificate, open ones keep theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import ssl
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from remora.controlplane.ca import BACKDATE, ROOT_CERT, CertificateAuthority, Signer, pem

log = logging.getLogger(__name__)

DNS_NAMES = ("istiod.istio-system.svc", "remora-controlplane", "localhost")
SERVING_TTL = timedelta(hours=24)
RENEW_RATIO = 0.5
ROOTS_POLL = 5.0  # seconds between looks at the roots (a root added or removed)
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def serving_addresses(hosts: Sequence[str]) -> tuple[IpAddress, ...]:
    """The IP SANs: 127.0.0.1 and each listen address that is an IP (not a wildcard)."""
    found: dict[IpAddress, None] = {ipaddress.ip_address("127.0.0.1"): None}
    for host in hosts:
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(host)
            if not address.is_unspecified:
                found[address] = None
    return tuple(found)


def serving_leaf(key: ec.EllipticCurvePrivateKey, *, dns: Sequence[str],
                 ips: Sequence[IpAddress], signer: Signer, now: datetime,
                 ttl: timedelta = SERVING_TTL) -> tuple[str, ...]:
    """The control plane's certificate chain (leaf PEM first), for `key`, by `signer`."""
    not_after = min(now + ttl, signer.cert.not_valid_after_utc)
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
    names += [x509.IPAddress(ip) for ip in ips]
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([]))
            .issuer_name(signer.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(names), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                x509.SubjectKeyIdentifier.from_public_key(signer.cert.public_key())),
                critical=False)
            .sign(signer.key, hashes.SHA256()))
    return (pem(leaf), *signer.chain)


def server_context() -> ssl.SSLContext:
    """TLS 1.2 at least; a client certificate asked for, verified when one is sent."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


@contextlib.contextmanager
def _private_files(*contents: str) -> Iterator[tuple[str, ...]]:
    """Each text in a file only this user reads, removed after (ssl loads keys from files)."""
    with tempfile.TemporaryDirectory(prefix="remora-cp-tls-") as directory:
        paths = []
        for index, text in enumerate(contents):
            path = Path(directory, str(index))
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                           "w") as out:
                out.write(text)
            paths.append(str(path))
        yield tuple(paths)


def write_root(path: Path, bundle: str) -> None:
    """The roots where proxies read them (public: 0644), replaced in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(bundle)
    partial.chmod(0o644)
    partial.replace(path)


class ServingTls:
    """The SSL context the API is served with, and the task that keeps it current.

    `own=None`: the certificate is the CA's for this control plane (renewed here); else
    `own` is the user's (cert, key) files, loaded once."""

    def __init__(self, ca: CertificateAuthority, *, data_dir: Path, hosts: Sequence[str],
                 own: tuple[Path, Path] | None = None, ttl: timedelta = SERVING_TTL) -> None:
        self.ca = ca
        self.root_file = data_dir / ROOT_CERT
        self.ips = serving_addresses(hosts)
        self.own = own
        self.ttl = ttl
        self.context = server_context()
        self.roots = ""  # the bundle trusted and written now
        self.not_after: datetime | None = None
        self.renewals = 0

    async def start(self) -> None:
        """The context loaded (certificate and roots) and the root file written."""
        if self.own is not None:
            self.context.load_cert_chain(*self.own)
        await self.refresh(force=True)

    async def refresh(self, *, force: bool = False) -> None:
        """Trust the current roots (write them out) and, when the roots changed, the
        certificate is due or `force`, sign a new certificate."""
        signer = await self.ca.signer()
        changed = signer.bundle != self.roots
        if changed:
            # a root removed stays trusted by this context until a restart (ssl cannot
            # forget a CA); the file proxies read has only the current ones
            self.context.load_verify_locations(cadata=signer.bundle)
            write_root(self.root_file, signer.bundle)
            self.roots = signer.bundle
        if self.own is None and (force or changed or self._due()):
            self._renew(signer)

    def _due(self) -> bool:
        if self.not_after is None:
            return True
        return self.ca.clock() >= self.not_after - self.ttl * (1 - RENEW_RATIO)

    def _renew(self, signer: Signer) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        now = self.ca.clock()
        chain = serving_leaf(key, dns=DNS_NAMES, ips=self.ips, signer=signer, now=now,
                             ttl=self.ttl)
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        with _private_files("".join(chain), key_pem) as (cert_file, key_file):
            self.context.load_cert_chain(cert_file, key_file)
        self.not_after = min(now + self.ttl, signer.cert.not_valid_after_utc)
        log.info("serving certificate for %s and %s, valid until %s", ", ".join(DNS_NAMES),
                     ", ".join(str(ip) for ip in self.ips), self.not_after.isoformat())
        self.renewals += 1

    async def run(self, poll: float = ROOTS_POLL) -> None:
        """Renew for ever (a failure is logged and tried again at the next look)."""
        while True:
            await asyncio.sleep(poll)
            try:
                await self.refresh()
            except Exception:  # keep serving with the certificate in use
                log.exception("cannot renew the control plane's serving certificate")
