"""The control plane's own certificate (istiod's DNS certificate): its names, a server verifier
accepting it for each of them against the mesh's root, the root file, renewal at half life and
when a root is added; and which workload a presented client certificate proves."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder
from cryptography.x509.verification import Store as TrustStore

from remora.controlplane.ca import CertificateAuthority, Identity
from remora.controlplane.peercert import certificate_identity, client_certificate
from remora.controlplane.resources import ResourceStore
from remora.controlplane.servingcert import (
    DNS_NAMES,
    ServingTls,
    serving_addresses,
    serving_leaf,
)
from remora.registry.store.sqlite import SqliteStore
from tests.unit.controlplane.test_ca import csr_pem

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
Scenario = Callable[[CertificateAuthority, list[datetime]], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario) -> None:
    clock = [NOW]

    async def main() -> None:
        store = await SqliteStore(tmp_path / "remora.db").open()
        resources = ResourceStore(store, clock=lambda: clock[0])
        await resources.ensure_namespaces()
        try:
            ca = await CertificateAuthority.open(store, resources, clock=lambda: clock[0])
            await asyncio.wait_for(scenario(ca, clock), 30)
        finally:
            await store.close()

    asyncio.run(main())


def test_the_serving_leaf_is_verified_for_each_name_of_the_control_plane(
        tmp_path: Path) -> None:
    async def scenario(ca: CertificateAuthority, _: list[datetime]) -> None:
        signer = await ca.signer()
        ips = serving_addresses(["0.0.0.0", "10.244.0.1", "127.0.0.1", "localhost"])
        assert [str(ip) for ip in ips] == ["127.0.0.1", "10.244.0.1"]
        chain = serving_leaf(ec.generate_private_key(ec.SECP256R1()), dns=DNS_NAMES, ips=ips,
                             signer=signer, now=NOW)
        leaf = x509.load_pem_x509_certificate(chain[0].encode())
        anchors = [x509.load_pem_x509_certificate(p.encode()) for p in signer.roots]
        for name in (x509.DNSName("istiod.istio-system.svc"), x509.DNSName("localhost"),
                     x509.DNSName("remora-controlplane"),
                     x509.IPAddress(ipaddress.ip_address("10.244.0.1"))):
            subject = name.value if isinstance(name, x509.DNSName) else None
            policy = PolicyBuilder().store(TrustStore(anchors)).time(NOW)
            verifier = policy.build_server_verifier(
                x509.DNSName(subject) if subject else x509.IPAddress(name.value))
            verifier.verify(leaf, [])  # raises when the name or the chain is wrong
        assert leaf.not_valid_after_utc == NOW + timedelta(hours=24)
        assert certificate_identity(chain[0], "cluster.local") is None  # proves no workload

    run(tmp_path, scenario)


def test_it_is_renewed_at_half_life_and_when_a_root_is_added(tmp_path: Path) -> None:
    async def scenario(ca: CertificateAuthority, clock: list[datetime]) -> None:
        tls = ServingTls(ca, data_dir=tmp_path / "data", hosts=["127.0.0.1"],
                         ttl=timedelta(seconds=4))
        await tls.start()
        root_file = tmp_path / "data" / "root-cert.pem"
        assert root_file.read_text() == (await ca.signer()).bundle
        assert tls.context.verify_mode == ssl.CERT_OPTIONAL
        assert tls.renewals == 1
        clock[0] = NOW + timedelta(seconds=1)
        await tls.refresh()
        assert tls.renewals == 1  # not due yet
        clock[0] = NOW + timedelta(seconds=2)
        await tls.refresh()
        assert tls.renewals == 2  # half of its life
        await ca.add_root(grace=timedelta(0))
        await tls.refresh()
        assert tls.renewals == 3  # the new root signs it
        assert root_file.read_text().count("BEGIN CERTIFICATE") == 2
        assert len(tls.context.get_ca_certs()) == 2  # client certificates of either root

    run(tmp_path, scenario)


def test_a_client_certificate_proves_its_spiffe_identity_of_the_trust_domain_only(
        tmp_path: Path) -> None:
    async def scenario(ca: CertificateAuthority, _: list[datetime]) -> None:
        issued = await ca.sign(csr_pem(), Identity("shop", "payments"))
        leaf = issued.chain[0]
        assert certificate_identity(leaf, "cluster.local") == Identity("shop", "payments")
        assert certificate_identity(leaf, "other.domain") is None
        assert certificate_identity("not a certificate", "cluster.local") is None
        scope = {"extensions": {"tls": {"client_cert_chain": [leaf]}}}
        assert client_certificate(scope) == leaf
        assert client_certificate({"extensions": {"tls": {"client_cert_chain": []}}}) is None
        assert client_certificate({}) is None

    run(tmp_path, scenario)
