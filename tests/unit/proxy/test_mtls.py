"""The proxy's mTLS decisions, without sockets: which endpoints get Istio mutual TLS or a
DestinationRule's origination (istio.io "Auto mutual TLS", DestinationRule ClientTLSSettings),
when a certificate is renewed (pilot-agent: at half its life), what XFCC says."""

from __future__ import annotations

import asyncio
import random
import ssl
from pathlib import Path

import pytest

from remora.mesh.clienttls import ClientTls
from remora.mesh.snapshot import Cluster, ClusterPolicy, Endpoint, MeshSettings
from remora.policy.circuit import PoolLimits
from remora.policy.lb import LbConfig
from remora.proxy.certs import MountedCertificates, renewal_delay, requested_ttl, retry_delay
from remora.proxy.mtls import (
    PeerCertificate,
    expected_peer,
    spiffe_id,
    upstream_peer,
    xfcc_element,
)
from tests.certkit import MeshCA, spiffe

MESH = MeshSettings()
MESHED = Endpoint("10.0.0.5", 9080, namespace="default", service_account="reviews",
                  tls_mode="istio")
PLAIN = Endpoint("10.0.0.6", 9080, namespace="default", service_account="reviews")


def cluster(tls_mode: str = "", tls: ClientTls | None = None, *,
            external: bool = False) -> Cluster:
    policy = ClusterPolicy(limits=PoolLimits.from_api(None, 10.0), outlier=None, locality=None,
                           tls_mode=tls_mode, tls=tls)
    return Cluster(name="outbound|9080||reviews.default.svc.cluster.local",
                   host="reviews.default.svc.cluster.local", port=9080, subset="",
                   service_name="reviews", service_namespace="default", endpoints=(MESHED,),
                   lb=LbConfig.from_api(None), traffic_policy=policy, mesh_external=external)


def test_auto_mtls_goes_to_meshed_endpoints_only_with_istios_sni_and_their_identity() -> None:
    peer = upstream_peer(cluster(), MESHED, MESH)
    assert peer is not None
    assert peer.sni == "outbound_.9080_._.reviews.default.svc.cluster.local"
    assert peer.expected == {"spiffe://cluster.local/ns/default/sa/reviews"}
    assert upstream_peer(cluster(), PLAIN, MESH) is None  # no sidecar: plain text
    assert upstream_peer(cluster(), MESHED, MeshSettings(enable_auto_mtls=False)) is None
    assert upstream_peer(cluster(external=True), MESHED, MESH) is None


def test_a_destination_rule_decides_instead_of_auto_mtls() -> None:
    assert upstream_peer(cluster("DISABLE"), MESHED, MESH) is None
    forced = upstream_peer(cluster("ISTIO_MUTUAL"), PLAIN, MESH)
    assert forced is not None and forced.origination is None
    overridden = upstream_peer(cluster("ISTIO_MUTUAL", ClientTls(
        "ISTIO_MUTUAL", sni="reviews.internal", subject_alt_names=("spiffe://x/ns/a/sa/b",))),
        MESHED, MESH)
    assert overridden is not None
    assert (overridden.sni, overridden.expected) == ("reviews.internal",
                                                     {"spiffe://x/ns/a/sa/b"})
    simple = upstream_peer(cluster("SIMPLE", ClientTls("SIMPLE")), PLAIN, MESH)
    assert simple is not None and simple.origination is not None
    assert simple.sni == "reviews.default.svc.cluster.local"  # no sni: the host (auto_sni)


def test_an_unknown_service_account_accepts_any_identity_of_the_trust_domain() -> None:
    unknown = Endpoint("10.0.0.7", 9080, tls_mode="istio")
    peer = upstream_peer(cluster(), unknown, MESH)
    assert peer is not None and peer.expected == frozenset()
    ours = PeerCertificate(spiffe("other", "x"), "00")
    assert expected_peer(ours, peer.expected, "cluster.local") is None
    foreign = PeerCertificate("spiffe://evil.example/ns/default/sa/x", "00")
    assert "not of trust domain cluster.local" in str(expected_peer(foreign, frozenset(),
                                                                    "cluster.local"))
    assert "has no SPIFFE identity" in str(expected_peer(None, frozenset(), "cluster.local"))


def test_xfcc_is_istios_inbound_element() -> None:
    peer = PeerCertificate(spiffe_id("cluster.local", "shop", "order"), "ab12")
    assert xfcc_element("spiffe://cluster.local/ns/shop/sa/payment", peer) == (
        'By=spiffe://cluster.local/ns/shop/sa/payment;Hash=ab12;Subject="";'
        "URI=spiffe://cluster.local/ns/shop/sa/order")


def test_renewal_is_at_half_the_life_left_with_a_little_jitter() -> None:
    rng = random.Random(1)
    delays = [renewal_delay(1000.0, 1000.0 + 86400, 1000.0, rng) for _ in range(50)]
    assert all(43200 <= d <= 43200 + 864 for d in delays)
    assert renewal_delay(0.0, 100.0, 500.0, rng) == 0.0  # overdue: now
    # back-off after failures: full jitter, growing, capped at a minute
    assert max(retry_delay(0, rng) for _ in range(50)) <= 1.0
    assert max(retry_delay(10, rng) for _ in range(200)) <= 60.0
    assert max(retry_delay(10, rng) for _ in range(200)) > 30.0


def test_secret_ttl_asks_for_a_lifetime() -> None:
    assert requested_ttl({"SECRET_TTL": "4s"}) == 4
    assert requested_ttl({"SECRET_TTL": "12h"}) == 43200
    assert requested_ttl({}) is None
    assert requested_ttl({"SECRET_TTL": "soon"}) is None


def test_contexts_refuse_tls_below_1_2_and_require_a_peer_certificate(tmp_path: Path) -> None:
    ca = MeshCA.create()
    certs = MountedCertificates(ca.mount(tmp_path / "certs", spiffe("default", "reviews")))
    workload = certs.load()
    assert workload.identity == spiffe("default", "reviews")
    for context in (workload.server, workload.client):
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        assert context.verify_mode == ssl.CERT_REQUIRED
    assert not workload.client.check_hostname  # the SPIFFE URI is checked instead


def test_mounted_certificates_are_picked_up_when_the_files_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("remora.proxy.certs.MOUNTED_POLL", 0.01)
    ca = MeshCA.create()
    directory = ca.mount(tmp_path / "certs", spiffe("default", "a"))
    certs = MountedCertificates(directory)
    seen: list[str] = []
    certs.on_change = lambda workload: seen.append(workload.identity)

    async def body() -> None:
        assert await certs.first()
        task = asyncio.create_task(certs.run())
        await asyncio.sleep(0.05)
        ca.mount(directory, spiffe("default", "b"))
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(seen) > 1:
                break
        task.cancel()

    asyncio.run(body())
    assert seen == [spiffe("default", "a"), spiffe("default", "b")]


@pytest.mark.parametrize("missing", ["cert-chain.pem", "key.pem", "root-cert.pem"])
def test_unreadable_mounted_certificates_leave_mtls_off_and_say_why(
        tmp_path: Path, missing: str, caplog: pytest.LogCaptureFixture) -> None:
    directory = MeshCA.create().mount(tmp_path / "certs", spiffe("default", "a"))
    (directory / missing).unlink()
    assert not asyncio.run(MountedCertificates(directory).first())
    assert f"workload certificate files in {directory}" in caplog.text
