"""Certificates for tests: a root and workload certificates shaped as Istio's (empty subject,
a SPIFFE URI SAN, server and client auth), written as Istio's file-mounted certificates."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEM = serialization.Encoding.PEM


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@dataclass
class MeshCA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, name: str = "test root") -> MeshCA:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        return cls(key, cert)

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(PEM).decode()

    def issue(self, uri: str = "", *, days: float = 1.0, dns: tuple[str, ...] = (),
              common_name: str = "", expired: bool = False) -> tuple[str, str]:
        """A certificate for `uri` (a workload's) or `dns` names (a server's), and its key;
        `expired`: one whose validity ended a day ago."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2 if expired else 0)
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
        if uri:
            names.append(x509.UniformResourceIdentifier(uri))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
                            if common_name else [])
        builder = (x509.CertificateBuilder().subject_name(subject)
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=1))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                    critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                               critical=True))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names),
                                            critical=not common_name)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(PEM).decode(), _pem_key(key)

    def write(self, directory: Path, name: str, **issue: Any) -> tuple[Path, Path]:
        """A certificate and its key as `<name>.pem` and `<name>-key.pem` in `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        chain, key = self.issue(**issue)
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
        cert_path.write_text(chain)
        key_path.write_text(key)
        key_path.chmod(0o600)
        return cert_path, key_path

    def mount(self, directory: Path, uri: str) -> Path:
        """Istio's file-mounted layout: cert-chain.pem, key.pem, root-cert.pem."""
        directory.mkdir(parents=True, exist_ok=True)
        chain, key = self.issue(uri)
        (directory / "cert-chain.pem").write_text(chain)
        (directory / "key.pem").write_text(key)
        (directory / "key.pem").chmod(0o600)
        (directory / "root-cert.pem").write_text(self.pem)
        return directory


def spiffe(namespace: str, account: str, trust_domain: str = "cluster.local") -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{account}"
