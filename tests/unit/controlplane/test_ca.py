"""The CA on its own, over a real store: what a leaf carries, which CSRs and tokens it refuses,
replicas converging on one root, Secret cacerts (Istio's plug-in CA), and root rotation with
the trust bundle published as ConfigMap istio-ca-root-cert."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, VerificationError
from cryptography.x509.verification import Store as TrustStore

from remora.controlplane.ca import (
    BadCSRError,
    CAUnavailableError,
    CertificateAuthority,
    Identity,
    IdentityRefusedError,
    IdentityTokens,
    Issued,
    RootConflictError,
    TokenRefusedError,
    fingerprint,
)
from remora.controlplane.kindnames import by_kind
from remora.controlplane.resources import ResourceStore
from remora.registry.store.sqlite import SqliteStore

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
WEB = Identity("default", "web")
SPIFFE = "spiffe://cluster.local/ns/default/sa/web"
CONFIGMAP, SECRET = by_kind("", "ConfigMap"), by_kind("", "Secret")

Scenario = Callable[[CertificateAuthority, ResourceStore], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario) -> None:
    async def main() -> None:
        store = await SqliteStore(tmp_path / "remora.db").open()
        resources = ResourceStore(store, clock=lambda: NOW)
        await resources.ensure_namespaces()
        try:
            ca = await CertificateAuthority.open(store, resources, clock=lambda: NOW)
            await asyncio.wait_for(scenario(ca, resources), 30)
        finally:
            await store.close()

    asyncio.run(main())


def csr_pem(*names: x509.GeneralName, key: object = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(  # type: ignore[arg-type]
        serialization.Encoding.PEM).decode()


def verified_names(issued: Issued, roots: list[str] | None = None) -> list[x509.GeneralName]:
    """The leaf's names once a TLS client's verifier accepted its chain against the roots."""
    certs = [x509.load_pem_x509_certificate(p.encode()) for p in issued.chain]
    anchors = [x509.load_pem_x509_certificate(p.encode()) for p in roots or issued.roots]
    verifier = PolicyBuilder().store(TrustStore(anchors)).time(NOW).build_client_verifier()
    return list(verifier.verify(certs[0], certs[1:]).subjects or [])


def test_a_leaf_carries_the_spiffe_id_alone_for_a_day_as_istios(tmp_path: Path) -> None:
    async def scenario(ca: CertificateAuthority, _: ResourceStore) -> None:
        issued = await ca.sign(csr_pem(), WEB)
        assert verified_names(issued) == [x509.UniformResourceIdentifier(SPIFFE)]
        leaf = x509.load_pem_x509_certificate(issued.chain[0].encode())
        assert leaf.subject == x509.Name([])
        assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
        assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
            ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert leaf.not_valid_after_utc - NOW == timedelta(hours=24)
        assert NOW - leaf.not_valid_before_utc == timedelta(minutes=1)
        assert issued.identity == SPIFFE and issued.not_after == NOW + timedelta(hours=24)
        assert len(issued.chain) == 1 and len(issued.roots) == 1
        root = x509.load_pem_x509_certificate(issued.roots[0].encode())
        assert root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == \
            "cluster.local"
        assert root.not_valid_after_utc - NOW > timedelta(days=3649)
        assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
        assert ca.counters["issued"] == 1

    run(tmp_path, scenario)


def test_a_csr_may_name_its_own_spiffe_id_and_no_other_name(tmp_path: Path) -> None:
    async def scenario(ca: CertificateAuthority, _: ResourceStore) -> None:
        own = await ca.sign(csr_pem(x509.UniformResourceIdentifier(SPIFFE)), WEB)
        assert verified_names(own) == [x509.UniformResourceIdentifier(SPIFFE)]
        for names in ([x509.UniformResourceIdentifier("spiffe://cluster.local/ns/prod/sa/db")],
                      [x509.UniformResourceIdentifier(SPIFFE), x509.DNSName("web.default")],
                      [x509.DNSName("anything.example")]):
            with pytest.raises(IdentityRefusedError, match="allows only URI:spiffe://"):
                await ca.sign(csr_pem(*names), WEB)
        assert ca.counters["refusedIdentity"] == 3

    run(tmp_path, scenario)


def test_lifetimes_are_capped_at_90_days_and_weak_or_broken_csrs_refused(
        tmp_path: Path) -> None:
    async def scenario(ca: CertificateAuthority, _: ResourceStore) -> None:
        long = await ca.sign(csr_pem(), WEB, timedelta(days=400))
        assert long.not_after == NOW + timedelta(days=90)
        short = await ca.sign(csr_pem(), WEB, timedelta(hours=1))
        assert short.not_after == NOW + timedelta(hours=1)
        rsa_ok = await ca.sign(csr_pem(key=rsa.generate_private_key(65537, 2048)), WEB)
        assert verified_names(rsa_ok)
        with pytest.raises(BadCSRError, match="RSA 1024 bits is too small"):
            await ca.sign(csr_pem(key=rsa.generate_private_key(65537, 1024)), WEB)
        with pytest.raises(BadCSRError, match="curve secp521r1 is not accepted"):
            await ca.sign(csr_pem(key=ec.generate_private_key(ec.SECP521R1())), WEB)
        with pytest.raises(BadCSRError, match="cannot be read"):
            await ca.sign("-----BEGIN CERTIFICATE REQUEST-----\nnope\n", WEB)
        good = csr_pem()
        tampered = good.replace(good.splitlines()[3][:8], "AAAAAAAA", 1)
        with pytest.raises(BadCSRError):
            await ca.sign(tampered, WEB)

    run(tmp_path, scenario)


def test_identity_tokens_name_one_service_account_and_are_refused_when_bad(
        tmp_path: Path) -> None:
    async def scenario(ca: CertificateAuthority, _: ResourceStore) -> None:
        token, expires = ca.tokens.issue(Identity("default", "web", "web-1"),
                                         trust_domain="cluster.local")
        assert expires == NOW + timedelta(days=30)
        assert ca.verify_token(token) == Identity("default", "web", "web-1")
        past = IdentityTokens(ca.tokens.key, clock=lambda: NOW - timedelta(days=31))
        old, _ = past.issue(WEB, trust_domain="cluster.local")
        forged, _ = IdentityTokens(b"another key of 32 bytes or more!!", clock=lambda: NOW).issue(
            WEB, trust_domain="cluster.local")
        for bad, reason in ((old, "has expired"), (forged, "signature does not match"),
                            ("", "is required"), ("not.a.jwt", "invalid")):
            with pytest.raises(TokenRefusedError, match=reason):
                ca.verify_token(bad)
        assert ca.counters["refusedToken"] == 4

    run(tmp_path, scenario)


def test_a_token_for_another_audience_is_refused() -> None:
    import jwt  # noqa: PLC0415

    tokens = IdentityTokens(b"k" * 32, clock=lambda: NOW)
    other = jwt.encode({"sub": SPIFFE, "ns": "default", "sa": "web", "aud": "kubernetes",
                        "exp": int((NOW + timedelta(hours=1)).timestamp())}, b"k" * 32,
                       algorithm="HS256")
    with pytest.raises(TokenRefusedError, match="not for remora-ca"):
        tokens.verify(other)


def test_replicas_over_one_store_sign_with_the_same_root_and_token_key(tmp_path: Path) -> None:
    async def scenario(ca: CertificateAuthority, resources: ResourceStore) -> None:
        twin = await CertificateAuthority.open(ca.store, resources, clock=lambda: NOW)
        assert twin.tokens.key == ca.tokens.key
        issued = await twin.sign(csr_pem(), ca.verify_token(
            ca.tokens.issue(WEB, trust_domain="cluster.local")[0]))
        assert issued.roots == (await ca.signer()).roots
        assert verified_names(issued, list((await ca.signer()).roots))

    run(tmp_path, scenario)


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
          issuer_key: ec.EllipticCurvePrivateKey | None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer.subject if issuer else name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                            False), critical=True)
               .add_extension(ski, critical=False))
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()),  # type: ignore[arg-type]
            critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def test_a_cacerts_secret_plugs_in_an_intermediate_and_its_roots(tmp_path: Path) -> None:
    async def scenario(ca: CertificateAuthority, resources: ResourceStore) -> None:
        root_key, other_key, ca_key = (ec.generate_private_key(ec.SECP256R1()) for _ in "abc")
        root = _cert("Corporate Root", root_key, None, None)
        other = _cert("Old Corporate Root", other_key, None, None)
        intermediate = _cert("Mesh CA", ca_key, root, root_key)
        key_pem = ca_key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()).decode()
        files = {"ca-cert.pem": _pem(intermediate), "ca-key.pem": key_pem,
                 "root-cert.pem": _pem(root, other), "cert-chain.pem": _pem(intermediate, root)}
        await resources.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": "cacerts", "namespace": "istio-system"}, "data": {
                name: base64.b64encode(text.encode()).decode() for name, text in files.items()}})
        issued = await ca.sign(csr_pem(), WEB)
        assert issued.chain[1:] == (_pem(intermediate), _pem(root))
        assert issued.roots == (_pem(root), _pem(other))
        assert verified_names(issued) == [x509.UniformResourceIdentifier(SPIFFE)]
        described = await ca.describe()
        assert described["source"] == "cacerts"
        assert described["signing"] == fingerprint(intermediate)
        published = await resources.get(CONFIGMAP, "istio-system", "istio-ca-root-cert")
        assert published["data"]["root-cert.pem"] == _pem(root, other)
        with pytest.raises(RootConflictError, match="Secret cacerts"):
            await ca.add_root()
        await resources.delete(SECRET, "istio-system", "cacerts")
        assert (await ca.sign(csr_pem(), WEB)).chain[1:] == ()
        assert (await ca.describe())["source"] == "self-signed"

    run(tmp_path, scenario)


def test_rotation_trusts_both_roots_signs_with_the_new_and_publishes_the_bundle(
        tmp_path: Path) -> None:
    async def scenario(ca: CertificateAuthority, resources: ResourceStore) -> None:
        old = await ca.sign(csr_pem(), WEB)
        old_print = (await ca.describe())["signing"]
        new_print = await ca.add_root(grace=timedelta(0))
        described = await ca.describe()
        assert [r["fingerprint"] for r in described["roots"]] == [old_print, new_print]
        assert described["signing"] == new_print
        new = await ca.sign(csr_pem(), WEB)
        assert len(new.roots) == 2 and new.roots[0] == old.roots[0]
        assert verified_names(new, [new.roots[1]])  # chains to the new root alone
        with pytest.raises(VerificationError, match="signature does not match"):
            verified_names(new, [new.roots[0]])
        assert verified_names(old, list(new.roots))  # certificates out there keep working
        published = await resources.get(CONFIGMAP, "istio-system", "istio-ca-root-cert")
        assert published["data"]["root-cert.pem"] == "".join(new.roots)
        with pytest.raises(RootConflictError, match="signs certificates"):
            await ca.remove_root(new_print)
        await ca.remove_root(old_print)
        published = await resources.get(CONFIGMAP, "istio-system", "istio-ca-root-cert")
        assert published["data"]["root-cert.pem"] == new.roots[1]
        assert [r["fingerprint"] for r in (await ca.describe())["roots"]] == [new_print]

    run(tmp_path, scenario)


def test_the_trust_domain_and_root_namespace_come_from_meshconfig(tmp_path: Path) -> None:
    async def scenario(ca: CertificateAuthority, resources: ResourceStore) -> None:
        await resources.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "istio", "namespace": "istio-system"},
            "data": {"mesh": "trustDomain: example.org\nrootNamespace: default\n"}})
        issued = await ca.sign(csr_pem(), WEB)
        assert issued.identity == "spiffe://example.org/ns/default/sa/web"
        assert verified_names(issued) == [x509.UniformResourceIdentifier(issued.identity)]
        published = await resources.get(CONFIGMAP, "default", "istio-ca-root-cert")
        assert published["data"]["root-cert.pem"] == "".join(issued.roots)

    run(tmp_path, scenario)


def test_a_broken_cacerts_secret_stops_signing_with_the_reason_not_the_start(
        tmp_path: Path) -> None:
    async def scenario(ca: CertificateAuthority, resources: ResourceStore) -> None:
        await resources.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": "cacerts", "namespace": "istio-system"},
            "stringData": {"ca-cert.pem": "nope"}})
        with pytest.raises(CAUnavailableError, match=r"lacks ca-key\.pem, root-cert\.pem"):
            await ca.sign(csr_pem(), WEB)
        again = await CertificateAuthority.open(ca.store, resources, clock=lambda: NOW)
        with pytest.raises(CAUnavailableError):
            await again.describe()

    run(tmp_path, scenario)


def test_a_new_root_is_trusted_at_once_and_signs_only_after_its_grace(tmp_path: Path) -> None:
    """Rotation as Istio's plug-in CA guide orders it: the bundle with both roots reaches the
    proxies first, then the new root signs; no proxy is shown a certificate of a root it does
    not trust yet."""
    async def scenario(ca: CertificateAuthority, resources: ResourceStore) -> None:
        old_print = (await ca.describe())["signing"]
        new_print = await ca.add_root()  # ROTATION_GRACE: 10 s
        described = await ca.describe()
        assert described["signing"] == old_print
        assert described["roots"][1]["signsFrom"] == "2026-12-07T12:00:10Z"
        published = await resources.get(CONFIGMAP, "istio-system", "istio-ca-root-cert")
        assert published["data"]["root-cert.pem"].count("BEGIN CERTIFICATE") == 2
        during = await ca.sign(csr_pem(), WEB)
        assert verified_names(during, [during.roots[0]])  # still the old root's
        with pytest.raises(RootConflictError, match="signs certificates"):
            await ca.remove_root(old_print)
        ca.clock = lambda: NOW + timedelta(seconds=11)
        after = await ca.sign(csr_pem(), WEB)
        assert verified_names(after, [after.roots[1]])
        assert (await ca.describe())["signing"] == new_print
        await ca.remove_root(old_print)

    run(tmp_path, scenario)
