"""The proxy's workload certificate, as Istio's pilot-agent keeps it: a private key made here
(it never leaves the process), a CSR sent to the control plane's CA with the identity token
the proxy was handed, and a renewal at half the certificate's life.

Over https, once the proxy has a certificate its connections to the control plane present it
(cpclient.ControlPlaneTls): the CA renews it on the strength of that certificate, so the
identity token is needed for the first CSR only — a proxy whose token was removed or has
expired keeps renewing while its certificate is valid.

When the CA cannot be reached the proxy keeps serving with the certificate it has and retries
with jittered exponential back-off, warning as expiry nears. The mesh's roots come with each
certificate and with every snapshot (the CA's `istio-ca-root-cert`), so a root added beside
the old one is trusted before any peer presents a certificate it signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from remora.api.duration import parse_duration
from remora.errors import RemoraError
from remora.mesh.pem import certificates
from remora.proxy.cpclient import ControlPlaneClient, ControlPlaneTls
from remora.proxy.mtls import WorkloadTls

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger("remora.proxy")

CERTIFICATES_PATH = "/api/remora/v1/certificates"
RENEW_RATIO = 0.5  # Istio's SECRET_GRACE_PERIOD_RATIO: renew once half the life has passed
WARN_RATIO = 0.2  # warn on each failed renewal once less than this much of the life is left
BACKOFF_BASE = 1.0
BACKOFF_MAX = 60.0


class CertificateSource(Protocol):
    """Where the runtime's workload certificate comes from (the CA, or mounted files)."""

    on_change: Callable[[WorkloadTls], None]

    async def first(self) -> bool: ...

    async def run(self) -> None: ...

    def trust(self, roots: tuple[str, ...]) -> None: ...


class CertificateError(RemoraError):
    """The CA refused the request, or answered something that is no certificate."""


def renewal_delay(issued: float, not_after: float, now: float, rng: random.Random) -> float:
    """Seconds until the renewal of a certificate received at `issued` and valid until
    `not_after`: at half that life (the CA may backdate notBefore for clock skew; what counts
    is the life left when it arrived), spread by up to 1 % of it so that a mesh started at
    once does not renew at once (Istio's jitter); never negative."""
    life = max(0.0, not_after - issued)
    due = issued + life * RENEW_RATIO + rng.uniform(0.0, life * 0.01)
    return max(0.0, due - now)


def requested_ttl(environ: Mapping[str, str]) -> int | None:
    """pilot-agent's SECRET_TTL ("24h", "90s"): the lifetime asked of the CA; None = the CA's
    default. A value that is no duration is ignored with a warning."""
    text = environ.get("SECRET_TTL", "").strip()
    if not text:
        return None
    try:
        return max(1, round(parse_duration(text)))
    except ValueError as exc:
        log.warning("SECRET_TTL ignored: %s", exc)
        return None


def retry_delay(failures: int, rng: random.Random) -> float:
    """Full-jitter exponential back-off after `failures` failed attempts."""
    return rng.uniform(0.0, min(BACKOFF_MAX, BACKOFF_BASE * 2 ** failures))


def new_request() -> tuple[str, str]:
    """A fresh P-256 key and a CSR for it, both PEM. The CSR names no identity: the CA puts
    the one the token proves."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode()


class CertificateAgent:
    """Gets and renews the workload certificate; `current` is what connections use now."""

    def __init__(self, urls: Sequence[str], token_file: Path, *,
                 clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None,
                 tls: ControlPlaneTls | None = None) -> None:
        self.tls = tls or ControlPlaneTls(clock=clock)
        self.clients = [ControlPlaneClient(url, self.tls) for url in urls]
        self.token_file = token_file
        self.on_change: Callable[[WorkloadTls], None] = lambda _: None  # the runtime's
        self.clock = clock
        self.rng = rng or random.Random()
        self.current: WorkloadTls | None = None
        self.issued: WorkloadTls | None = None  # as the CA sent it, before snapshot roots
        self.mesh_roots: tuple[str, ...] = ()
        self.issued_at = 0.0
        self.ttl = requested_ttl(os.environ)
        self.renewals = 0
        self.failures = 0

    def _token(self) -> str:
        """The identity token; "" when it cannot be read but a valid certificate is presented
        over TLS (it proves the identity instead)."""
        try:
            return self.token_file.read_text().strip()
        except OSError as exc:
            presented = self.tls.certificate is not None and any(
                client.tls is not None for client in self.clients)
            if presented:
                return ""
            raise CertificateError(f"identity token {self.token_file}: "
                                   f"{exc.strerror or exc}") from None

    async def request(self) -> WorkloadTls:
        """One CSR to the first control plane that answers."""
        key, csr = new_request()
        token = self._token()
        errors = []
        for client in self.clients:
            try:
                status, body = await client.post_json(
                    CERTIFICATES_PATH, {"csr": csr, "token": token, "ttlSeconds": self.ttl}, {})
            except (OSError, TimeoutError) as exc:
                errors.append(f"{client.authority}: {exc}")
                continue
            return self._issued(status, body, key)
        raise CertificateError("no CA answered: " + "; ".join(errors))

    def _issued(self, status: int, body: bytes, key: str) -> WorkloadTls:
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {}
        if status != 200:
            message = answer.get("message") or answer.get("detail") or body[:200].decode(
                errors="replace")
            raise CertificateError(f"the CA refused the certificate request ({status}): "
                                   f"{message}")
        try:
            chain = tuple(str(pem) for pem in answer["certChain"])
            roots = tuple(str(pem) for pem in answer["roots"])
            leaf = x509.load_pem_x509_certificate(chain[0].encode())
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise CertificateError(f"the CA's answer is no certificate: {exc}") from None
        self.issued_at = self.clock()
        return WorkloadTls(identity=str(answer.get("identity", "")), chain=chain, key=key,
                           roots=roots, not_after=leaf.not_valid_after_utc.timestamp())

    async def first(self, attempts: int = 3) -> bool:
        """The first certificate, retried a few times; False (logged) if there is none yet:
        the proxy starts in plain text and the renewal loop keeps asking."""
        for attempt in range(attempts):
            try:
                self._install(await self.request())
            except CertificateError as exc:
                log.warning("workload certificate: %s", exc)
                await asyncio.sleep(retry_delay(attempt, self.rng))
                continue
            return True
        log.error("no workload certificate: mTLS is off until the CA issues one (STRICT "
                  "ports refuse every connection meanwhile)")
        return False

    async def run(self) -> None:
        """Renew for ever: at half life, or with back-off after a failure."""
        while True:
            now = self.clock()
            current = self.current
            if current is None or self.failures:
                delay = retry_delay(self.failures, self.rng)
            else:
                delay = renewal_delay(self.issued_at, current.not_after, now, self.rng)
            await asyncio.sleep(delay)
            try:
                self._install(await self.request())
            except CertificateError as exc:
                self.failures += 1
                self._warn(exc)
                continue
            self.failures = 0
            self.renewals += 1

    def _warn(self, error: CertificateError) -> None:
        current = self.current
        if current is None:
            log.warning("workload certificate: %s", error)
            return
        left = current.not_after - self.clock()
        life = max(1.0, current.not_after - self.issued_at)
        level = logging.ERROR if left < life * WARN_RATIO else logging.WARNING
        log.log(level, "workload certificate renewal failed (%s); the current one expires "
                       "in %.0f s", error, max(0.0, left))

    def _install(self, issued: WorkloadTls) -> None:
        self.issued = issued
        self._publish()

    def trust(self, roots: tuple[str, ...]) -> None:
        """The snapshot's roots (the mesh's trust bundle): trusted beside the CA's."""
        if roots != self.mesh_roots:
            self.mesh_roots = roots
            if self.issued is not None:
                self._publish()

    def _publish(self) -> None:
        issued = self.issued
        assert issued is not None
        roots = tuple(dict.fromkeys((*issued.roots, *self.mesh_roots)))
        self.current = current = replace(issued, roots=roots)
        self.tls.present(current)
        log.info("workload certificate %s, valid until %s", current.identity,
                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(current.not_after)))
        self.on_change(current)


MOUNTED_FILES = ("cert-chain.pem", "key.pem", "root-cert.pem")
MOUNTED_POLL = 5.0  # seconds between looks at the files


class MountedCertificates:
    """A workload certificate from files, as Istio's file-mounted certificates
    (`/etc/certs/{cert-chain,key,root-cert}.pem`), for a proxy whose certificate another tool
    issues; a change to the files is picked up within MOUNTED_POLL seconds."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.on_change: Callable[[WorkloadTls], None] = lambda _: None
        self.current: WorkloadTls | None = None
        self.mesh_roots: tuple[str, ...] = ()
        self.stamp: tuple[float, ...] = ()

    def load(self) -> WorkloadTls:
        try:
            chain, key, roots = (Path(self.directory, name).read_text() for name in MOUNTED_FILES)
            leaf = x509.load_pem_x509_certificate(chain.encode())
        except (OSError, ValueError) as exc:
            raise CertificateError(f"workload certificate files in {self.directory}: "
                                   f"{exc}") from None
        uris = uri_names(leaf)
        return WorkloadTls(identity=uris[0] if uris else "", chain=certificates(chain), key=key,
                           roots=(*certificates(roots), *self.mesh_roots),
                           not_after=leaf.not_valid_after_utc.timestamp())

    def _stamp(self) -> tuple[float, ...]:
        try:
            return tuple(Path(self.directory, name).stat().st_mtime for name in MOUNTED_FILES)
        except OSError:
            return ()

    def _reload(self) -> None:
        self.stamp = self._stamp()
        self.current = current = self.load()
        log.info("workload certificate %s from %s, valid until %s", current.identity,
                 self.directory, time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                               time.gmtime(current.not_after)))
        self.on_change(current)

    async def first(self) -> bool:
        try:
            self._reload()
        except CertificateError as exc:
            log.error("%s: mTLS is off until they can be read", exc)
            return False
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(MOUNTED_POLL)
            if self._stamp() != self.stamp:
                try:
                    self._reload()
                except CertificateError as exc:
                    log.warning("%s; keeping the certificate in use", exc)

    def trust(self, roots: tuple[str, ...]) -> None:
        if roots != self.mesh_roots:
            self.mesh_roots = roots
            if self.current is not None:
                with contextlib.suppress(CertificateError):
                    self._reload()


def uri_names(certificate: x509.Certificate) -> list[str]:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return names.value.get_values_for_type(x509.UniformResourceIdentifier)


def describe(workload: WorkloadTls | None, now: float) -> dict[str, object]:
    """Envoy's admin /certs for the workload certificate (`cert_chain`) and the roots
    (`ca_cert`): serial, SANs, validity and days until expiration of each."""
    if workload is None:
        return {"certificates": []}

    def details(pem: str) -> dict[str, object]:
        certificate = x509.load_pem_x509_certificate(pem.encode())
        expires = certificate.not_valid_after_utc.timestamp()
        return {
            "serial_number": format(certificate.serial_number, "x"),
            "subject": certificate.subject.rfc4514_string(),
            "subject_alt_names": [{"uri": uri} for uri in uri_names(certificate)],
            "valid_from": certificate.not_valid_before_utc.isoformat(),
            "expiration_time": certificate.not_valid_after_utc.isoformat(),
            "days_until_expiration": str(max(0, int((expires - now) // 86400))),
            "seconds_until_expiration": max(0, int(expires - now)),
        }

    return {"identity": workload.identity, "certificates": [{
        "cert_chain": [details(pem) for pem in workload.chain],
        "ca_cert": [details(pem) for pem in workload.roots],
    }]}
