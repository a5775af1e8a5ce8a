"""The mesh's certificate authority, as istiod's: workload certificates for SPIFFE identities.

Theory of operation. A proxy proves who it runs as with an identity token (a JWT the control
plane issued an operator for one namespace and service account) and sends a CSR; the CA signs a
leaf whose only name is `spiffe://<trust domain>/ns/<ns>/sa/<sa>`. What signs it is, in
Istio's order:

- a plug-in CA: Secret `cacerts` in the root namespace (`ca-cert.pem`, `ca-key.pem`,
  `root-cert.pem`, `cert-chain.pem`); the chain handed out is the leaf + cert-chain.pem and the
  roots are root-cert.pem. It is read again whenever the Secret's revision changes;
- else the self-signed roots kept in the store at ROOTS_KEY, created by the first replica to
  start (a write that requires the key to be absent, so every replica converges on one).
  `add_root` puts a new root beside the old ones and signs with it from then on; proxies trust
  every root until an operator removes the old one (`remove_root`).

The trust bundle is published where Istio publishes it, ConfigMap `istio-ca-root-cert` (key
`root-cert.pem`) in the root namespace, after start and whenever the roots change. The trust
domain and root namespace come from MeshConfig (ConfigMap istio-system/istio), read on each
signature but parsed only when it changes. Certificate building is pure (`new_root`,
`sign_csr`: the time is an argument); `CertificateAuthority` does the store I/O around it.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from remora.api.errors import ConfigError
from remora.api.meshconfig import (
    DEFAULT_MESH_CONFIG,
    MESH_CONFIGMAP,
    MESH_KEY,
    MESH_NAMESPACE,
    MeshConfig,
    parse_mesh_config,
)
from remora.controlplane.kindnames import ResourceType, by_kind
from remora.controlplane.resources import ResourceError, ResourceStore, key_of
from remora.registry.store.base import ABSENT, ConflictError, Store

log = logging.getLogger(__name__)

ROOTS_KEY = "/ca/roots"
"""JSON list of {cert, key} PEM; the last one signs."""
TOKEN_KEY = "/ca/token-key"
ROTATION_GRACE = timedelta(seconds=10)  # a new root is trusted this long before it signs
ROOT_CONFIGMAP = "istio-ca-root-cert"
ROOT_CERT = "root-cert.pem"
CACERTS = "cacerts"
CA_CERT, CA_KEY, CERT_CHAIN = "ca-cert.pem", "ca-key.pem", "cert-chain.pem"
SELF_SIGNED, PLUGGED = "self-signed", "cacerts"
ROOT_TTL = timedelta(days=3650)  # istiod's self-signed root: 10 years
DEFAULT_TTL = timedelta(hours=24)  # DEFAULT_WORKLOAD_CERT_TTL
MAX_TTL = timedelta(days=90)  # MAX_WORKLOAD_CERT_TTL
BACKDATE = timedelta(minutes=1)  # clock skew between the CA and whoever checks the cert
AUDIENCE = "remora-ca"
TOKEN_TTL = timedelta(days=30)
ALGORITHM = "HS256"
_SPIFFE_PATH = re.compile(r"^spiffe://[^/]+/ns/(?P<ns>[^/]+)/sa/(?P<sa>[^/]+)$")
_CURVES = (ec.SECP256R1, ec.SECP384R1)
_MIN_RSA = 2048
SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class CAError(ResourceError):
    """A request the CA refuses; `code` is the HTTP status it answers with."""


class TokenRefusedError(CAError):
    code, reason = 401, "Unauthorized"


class IdentityRefusedError(CAError):
    code, reason = 403, "Forbidden"


class BadCSRError(CAError):
    code, reason = 400, "BadRequest"


class RootConflictError(CAError):
    code, reason = 409, "Conflict"


class RootNotFoundError(CAError):
    code, reason = 404, "NotFound"


class CAUnavailableError(CAError):
    code, reason = 503, "ServiceUnavailable"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a certificate is for: a service account of a namespace (and the pod, if known)."""

    namespace: str
    service_account: str
    pod: str | None = None

    def spiffe(self, trust_domain: str) -> str:
        return f"spiffe://{trust_domain}/ns/{self.namespace}/sa/{self.service_account}"


@dataclass(frozen=True, slots=True)
class Signer:
    """What signs leaves now: its certificate and key, the certificates handed out after the
    leaf, and the roots proxies must trust."""

    cert: x509.Certificate
    key: SigningKey
    chain: tuple[str, ...]
    roots: tuple[str, ...]
    source: str

    @property
    def bundle(self) -> str:
        return "".join(self.roots)


@dataclass(frozen=True, slots=True)
class Issued:
    chain: tuple[str, ...]  # leaf PEM, then the intermediates
    roots: tuple[str, ...]
    identity: str
    not_after: datetime


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER, lowercase hex without colons (usable in a URL)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_root(*, now: datetime, trust_domain: str) -> tuple[str, str]:
    """A self-signed root as istiod makes one (O=<trust domain>, CA, keyCertSign, 10 years),
    on an EC P-256 key: (cert PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + ROOT_TTL)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return pem(cert), key_pem.decode()


def _check_key(csr: x509.CertificateSigningRequest) -> None:
    public = csr.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        if not isinstance(public.curve, _CURVES):
            raise BadCSRError(f"CSR key: curve {public.curve.name} is not accepted "
                              "(EC P-256 or P-384, or RSA of 2048 bits or more)")
    elif isinstance(public, rsa.RSAPublicKey):
        if public.key_size < _MIN_RSA:
            raise BadCSRError(f"CSR key: RSA {public.key_size} bits is too small (2048 or "
                              "more)")
    else:
        raise BadCSRError(f"CSR key: {type(public).__name__} is not accepted (EC P-256 or "
                          "P-384, or RSA of 2048 bits or more)")


def _sans(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    try:
        return list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def _check_names(sans: list[x509.GeneralName], spiffe: str) -> None:
    """The CSR may ask for the SPIFFE id the token proves, or for nothing; no other name."""
    asked = [f"{type(name).__name__}:{name.value}" for name in sans
             if not (isinstance(name, x509.UniformResourceIdentifier) and name.value == spiffe)]
    if asked:
        raise IdentityRefusedError(f"the CSR asks for {', '.join(asked)}; this identity token "
                                   f"allows only URI:{spiffe}")


def sign_csr(csr_pem: str, *, spiffe: str, signer: Signer, now: datetime,
             ttl: timedelta | None = None) -> Issued:
    """A workload leaf for `spiffe` from a CSR (as Istio's: empty subject, the URI SAN
    critical, server and client auth); BadCSRError or IdentityRefusedError."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        valid = csr.is_signature_valid
        sans = _sans(csr)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise BadCSRError(f"the CSR cannot be read: {exc}") from None
    if not valid:
        raise BadCSRError("the CSR's signature does not match its key")
    _check_key(csr)
    _check_names(sans, spiffe)
    lifetime = min(ttl or DEFAULT_TTL, MAX_TTL)
    not_after = min(now + lifetime, signer.cert.not_valid_after_utc)
    issuer_ski = x509.SubjectKeyIdentifier.from_public_key(signer.cert.public_key())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([]))
            .issuer_name(signer.cert.subject).public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(spiffe)]), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                issuer_ski), critical=False)
            .sign(signer.key, hashes.SHA256()))
    return Issued((pem(leaf), *signer.chain), signer.roots, spiffe, not_after)


def _certs(text: str, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(text.encode())
    except ValueError as exc:
        raise CAUnavailableError(f"{what}: {exc}") from None
    return certs


def self_signed(roots: list[dict[str, str]], now: datetime) -> tuple[Signer, datetime | None]:
    """The signer of the stored roots — the last whose `signsFrom` has come; all are trusted
    — and when a newer root starts signing (None: none is waiting)."""
    starts = [datetime.fromisoformat(root["signsFrom"]) if root.get("signsFrom") else None
              for root in roots]
    active = max((i for i, start in enumerate(starts) if start is None or start <= now),
                 default=0)
    waiting = [start for start in starts[active + 1:] if start is not None]
    cert = x509.load_pem_x509_certificate(roots[active]["cert"].encode())
    key = serialization.load_pem_private_key(roots[active]["key"].encode(), password=None)
    assert isinstance(key, SigningKey), "new_root makes EC keys"
    return (Signer(cert, key, (), tuple(root["cert"] for root in roots), SELF_SIGNED),
            min(waiting, default=None))


def plugged(files: dict[str, bytes]) -> Signer:
    """The signer of a `cacerts` Secret's files; CAUnavailableError naming what is wrong."""
    where = f"Secret {CACERTS}"
    missing = [name for name in (CA_CERT, CA_KEY, ROOT_CERT, CERT_CHAIN) if name not in files]
    if missing:
        raise CAUnavailableError(f"{where} lacks {', '.join(missing)}")
    text = {name: value.decode("utf-8", "replace") for name, value in files.items()}
    cert = _certs(text[CA_CERT], f"{where} {CA_CERT}")[0]
    try:
        key = serialization.load_pem_private_key(files[CA_KEY], password=None)
    except (ValueError, TypeError) as exc:
        raise CAUnavailableError(f"{where} {CA_KEY}: {exc}") from None
    if not isinstance(key, SigningKey):
        raise CAUnavailableError(f"{where} {CA_KEY}: an EC or RSA key is needed")
    if key.public_key() != cert.public_key():
        raise CAUnavailableError(f"{where}: {CA_KEY} is not the key of {CA_CERT}")
    chain = tuple(pem(c) for c in _certs(text[CERT_CHAIN], f"{where} {CERT_CHAIN}"))
    roots = tuple(pem(c) for c in _certs(text[ROOT_CERT], f"{where} {ROOT_CERT}"))
    return Signer(cert, key, chain, roots, PLUGGED)


@dataclass
class IdentityTokens:
    """Join tokens: HS256 JWTs naming one service account, for the CA only (`aud`)."""

    key: bytes
    clock: Callable[[], datetime]

    def issue(self, identity: Identity, *, trust_domain: str,
              ttl: timedelta = TOKEN_TTL) -> tuple[str, datetime]:
        expires = self.clock() + ttl
        claims: dict[str, Any] = {"sub": identity.spiffe(trust_domain),
                                  "ns": identity.namespace, "sa": identity.service_account,
                                  "aud": AUDIENCE, "exp": int(expires.timestamp())}
        if identity.pod:
            claims["pod"] = identity.pod
        return jwt.encode(claims, self.key, algorithm=ALGORITHM), expires

    def verify(self, token: str) -> Identity:
        """Whose token it is; TokenRefusedError saying why not (expired, forged, not ours).
        The trust domain in `sub` is not kept: certificates name the mesh's current one."""
        if not token:
            raise TokenRefusedError("an identity token is required")
        try:
            claims = jwt.decode(token, self.key, algorithms=[ALGORITHM], audience=AUDIENCE,
                                options={"require": ["sub", "ns", "sa", "aud", "exp"],
                                         "verify_exp": False})
        except jwt.InvalidAudienceError:
            raise TokenRefusedError(f"the identity token is not for {AUDIENCE}") from None
        except jwt.InvalidSignatureError:
            raise TokenRefusedError("the identity token's signature does not match: it was "
                                    "not issued by this control plane") from None
        except jwt.PyJWTError as exc:
            raise TokenRefusedError(f"the identity token is invalid: {exc}") from None
        namespace, account, expiry = claims["ns"], claims["sa"], claims["exp"]
        found = _SPIFFE_PATH.match(str(claims["sub"]))
        if not isinstance(expiry, int) or found is None or \
                (found["ns"], found["sa"]) != (namespace, account):
            raise TokenRefusedError("the identity token is invalid: its claims disagree")
        if expiry <= self.clock().timestamp():
            raise TokenRefusedError("the identity token has expired")
        pod = claims.get("pod")
        return Identity(namespace, account, pod if isinstance(pod, str) else None)


def _type(kind: str) -> ResourceType:
    rtype = by_kind("", kind)
    assert rtype is not None, f"the config model serves {kind}"
    return rtype


_SECRET, _CONFIGMAP = _type("Secret"), _type("ConfigMap")
_MESH_KEY = key_of(_CONFIGMAP, MESH_NAMESPACE, MESH_CONFIGMAP)


def _decoded(secret: dict[str, Any]) -> dict[str, bytes]:
    files = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    files.update({k: v.encode() for k, v in (secret.get("stringData") or {}).items()})
    return files


@dataclass
class CertificateAuthority:
    """The CA over the store: open it with `open`, then `sign`, and rotate roots."""

    store: Store
    resources: ResourceStore
    tokens: IdentityTokens
    clock: Callable[[], datetime]
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("issued", "refusedToken", "refusedIdentity", "refusedCsr"), 0))

    def __post_init__(self) -> None:
        self._mesh: tuple[int, MeshConfig] = (0, DEFAULT_MESH_CONFIG)
        # (key read, its revision, signer, when a waiting root starts signing)
        self._signer: tuple[str, int, Signer, datetime | None] | None = None
        self._published = ("", "")  # (namespace, bundle) of ConfigMap istio-ca-root-cert

    @classmethod
    async def open(cls, store: Store, resources: ResourceStore, *,
                   clock: Callable[[], datetime]) -> CertificateAuthority:
        """The CA with its token key and roots (created by the first replica), its trust
        bundle published."""
        key = await _create_once(store, TOKEN_KEY, lambda: secrets.token_hex(32).encode())
        ca = cls(store, resources, IdentityTokens(key, clock), clock)
        mesh = await ca.mesh()
        await _create_once(store, ROOTS_KEY, lambda: ca._roots_json([], mesh.domain))
        try:
            await ca.signer()
        except CAUnavailableError as exc:  # the control plane must start to let it be fixed
            log.error("the CA cannot sign until this is fixed: %s", exc)
        return ca

    def _roots_json(self, roots: list[dict[str, str]], trust_domain: str) -> bytes:
        cert, key = new_root(now=self.clock(), trust_domain=trust_domain)
        return json.dumps([*roots, {"cert": cert, "key": key}]).encode()

    async def mesh(self) -> MeshConfig:
        """MeshConfig as ConfigMap istio-system/istio has it now (parsed once per change)."""
        entry = await self.store.get(_MESH_KEY)
        revision = entry.modified if entry else 0
        if revision != self._mesh[0]:
            mesh = DEFAULT_MESH_CONFIG
            if entry is not None:
                text = (json.loads(entry.value).get("data") or {}).get(MESH_KEY)
                try:
                    mesh = parse_mesh_config(text) if text else mesh
                except ConfigError:
                    log.warning("ConfigMap %s/%s does not parse: the CA uses Istio's "
                                "defaults", MESH_NAMESPACE, MESH_CONFIGMAP)
            self._mesh = (revision, mesh)
        return self._mesh[1]

    async def signer(self) -> Signer:
        """The signer now: the plug-in CA's when Secret cacerts exists, else the stored roots;
        read again when either changes, and the bundle published when it differs."""
        mesh = await self.mesh()
        key = key_of(_SECRET, mesh.root, CACERTS)
        entry = await self.store.get(key)
        if entry is None:
            key = ROOTS_KEY
            entry = await self.store.get(key)
            if entry is None:  # deleted under us: start again with a new root
                await _create_once(self.store, key, lambda: self._roots_json([], mesh.domain))
                entry = await self.store.get(key)
                assert entry is not None
        cached, now = self._signer, self.clock()
        if cached is None or cached[:2] != (key, entry.modified) or (
                cached[3] is not None and cached[3] <= now):
            value = json.loads(entry.value)
            signer, waiting = self_signed(value, now) if key == ROOTS_KEY else (
                plugged(_decoded(value)), None)
            self._signer = cached = (key, entry.modified, signer, waiting)
        if (mesh.root, cached[2].bundle) != self._published:
            await self._publish(cached[2].bundle, mesh.root)
        return cached[2]

    async def _publish(self, bundle: str, namespace: str) -> None:
        """ConfigMap istio-ca-root-cert, as istiod writes it (replicas write the same)."""
        document = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CONFIGMAP, "namespace": namespace},
                    "data": {ROOT_CERT: bundle}}
        try:
            await self.resources.apply(document)
        except ResourceError as exc:
            log.warning("cannot publish ConfigMap %s/%s: %s", namespace, ROOT_CONFIGMAP, exc)
            return
        self._published = (namespace, bundle)

    async def trust_domain(self) -> str:
        return (await self.mesh()).domain

    async def sign(self, csr_pem: str, identity: Identity,
                   ttl: timedelta | None = None) -> Issued:
        """A leaf for `identity` (already proven by its token); counted issued or refused."""
        try:
            mesh = await self.mesh()
            issued = sign_csr(csr_pem, spiffe=identity.spiffe(mesh.domain),
                              signer=await self.signer(), now=self.clock(), ttl=ttl)
        except IdentityRefusedError:
            self.counters["refusedIdentity"] += 1
            raise
        except BadCSRError:
            self.counters["refusedCsr"] += 1
            raise
        self.counters["issued"] += 1
        return issued

    def verify_token(self, token: str) -> Identity:
        try:
            return self.tokens.verify(token)
        except TokenRefusedError:
            self.counters["refusedToken"] += 1
            raise

    async def add_root(self, grace: timedelta = ROTATION_GRACE) -> str:
        """A new self-signed root beside the others, trusted at once and signing `grace`
        later — the time the new trust bundle takes to reach every proxy, so that no proxy
        is shown a certificate of a root it does not know yet; its fingerprint."""
        await self._require_self_signed()
        domain = (await self.mesh()).domain
        starts = rfc3339(self.clock() + grace)

        def added(roots: list[dict[str, str]]) -> list[dict[str, str]]:
            value: list[dict[str, str]] = json.loads(self._roots_json(roots, domain))
            value[-1]["signsFrom"] = starts
            return value

        value = await self._update_roots(added)
        return fingerprint(x509.load_pem_x509_certificate(value[-1]["cert"].encode()))

    async def remove_root(self, wanted: str) -> None:
        """Stop trusting a root (by SHA-256 fingerprint, colons allowed); never the signing
        one."""
        await self._require_self_signed()
        wanted = wanted.replace(":", "").lower()
        signing = fingerprint((await self.signer()).cert)

        def without(roots: list[dict[str, str]]) -> list[dict[str, str]]:
            prints = [fingerprint(x509.load_pem_x509_certificate(r["cert"].encode()))
                      for r in roots]
            if wanted not in prints:
                raise RootNotFoundError(f"no root has fingerprint {wanted}")
            if signing == wanted:
                raise RootConflictError(f"root {wanted} signs certificates: add a new root "
                                        "first, then remove this one")
            return [root for root, print_ in zip(roots, prints, strict=True)
                    if print_ != wanted]

        await self._update_roots(without)

    async def _require_self_signed(self) -> None:
        if (await self.signer()).source == PLUGGED:
            raise RootConflictError(f"the roots come from Secret {CACERTS}: rotate them by "
                                    "updating that Secret")

    async def _update_roots(self, change: Callable[[list[dict[str, str]]],
                                                   list[dict[str, str]]]
                            ) -> list[dict[str, str]]:
        """Compare-and-swap the stored roots (another replica may rotate at the same time)."""
        while True:
            entry = await self.store.get(ROOTS_KEY)
            assert entry is not None, "open() created the roots"
            value = change(json.loads(entry.value))
            try:
                await self.store.put(ROOTS_KEY, json.dumps(value).encode(),
                                     expected=entry.modified)
            except ConflictError:
                continue
            await self.signer()
            return value

    async def describe(self) -> dict[str, Any]:
        """What `GET /api/remora/v1/ca` answers: roots, who signs, the counters."""
        signer = await self.signer()
        roots = [x509.load_pem_x509_certificate(text.encode()) for text in signer.roots]
        starts: dict[str, str] = {}
        if signer.source == SELF_SIGNED:
            entry = await self.store.get(ROOTS_KEY)
            stored = json.loads(entry.value) if entry is not None else []
            starts = {root["cert"]: root["signsFrom"] for root in stored
                      if root.get("signsFrom")}
        return {"source": signer.source, "trustDomain": (await self.mesh()).domain,
                "signing": fingerprint(signer.cert),
                "roots": [{"fingerprint": fingerprint(c), "subject": c.subject.rfc4514_string(),
                           "notAfter": rfc3339(c.not_valid_after_utc),
                           **({"signsFrom": starts[text]} if text in starts else {})}
                          for c, text in zip(roots, signer.roots, strict=True)],
                "counters": dict(self.counters)}


async def _create_once(store: Store, key: str, make: Callable[[], bytes]) -> bytes:
    """The key's value, written by whichever replica got there first."""
    entry = await store.get(key)
    if entry is None:
        try:
            entry = await store.put(key, make(), expected=ABSENT)
        except ConflictError:
            entry = await store.get(key)
    assert entry is not None
    return entry.value

