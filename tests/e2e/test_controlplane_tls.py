"""End to end: the control plane's channel over TLS, as istiod's. `remora controlplane --tls
auto` serves with a certificate its own CA signs (DNS and IP SANs), writes the mesh's root to
DATA_DIR/root-cert.pem; proxies verify it with `--ca-cert` (and refuse a control plane another
root signed, saying why), and once they have a workload certificate they present it: renewals
need no identity token, and a certificate never gets another identity."""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.meshkit import (
    REMORA,
    ControlPlaneProcess,
    join_token,
    run_controlplane,
    run_proxy,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)
CERTS = "/api/remora/v1/certificates"
RENEWED = "workload certificate spiffe://cluster.local/ns/default/sa/reviews"


@pytest.fixture(scope="module")
def controlplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    with run_controlplane(tmp_path_factory.mktemp("cp"), tls=True) as plane:
        yield plane


def other_root(tmp: Path) -> Path:
    """A root of no mesh of ours."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "elsewhere")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = tmp / "other-root.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_the_serving_certificate_is_the_mesh_cas_for_the_control_planes_names(
        controlplane: ControlPlaneProcess) -> None:
    assert controlplane.root is not None
    context = ssl.create_default_context(cafile=str(controlplane.root))
    port = int(controlplane.url.rsplit(":", 1)[1])
    for host in ("127.0.0.1", "localhost"):  # the IP SAN, a DNS SAN
        assert httpx.get(f"https://{host}:{port}/healthz", verify=context).text == "ok"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{controlplane.url}/healthz")  # the system's store does not know it
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    leaf = x509.load_pem_x509_certificate(pem.encode())
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [
        "istiod.istio-system.svc", "remora-controlplane", "localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_a_proxy_refuses_a_control_plane_another_root_signed_and_says_why(
        tmp_path: Path, controlplane: ControlPlaneProcess) -> None:
    with run_proxy(tmp_path, "--ca-cert", str(other_root(tmp_path)), tmp=tmp_path,
                   controlplane=controlplane.url, expect_ready=False) as proxy:
        wait_for(lambda: "certificate is not trusted" in proxy.logs(), timeout=20)
        logs = proxy.logs()
        assert proxy.process.poll() is None  # it keeps trying
    assert "not trusted: self-signed certificate in certificate chain" in logs
    assert "connected to control plane" not in logs


def test_renewals_need_only_the_workload_certificate(
        tmp_path: Path, controlplane: ControlPlaneProcess) -> None:
    token = join_token(tmp_path, controlplane, "reviews")
    assert controlplane.root is not None
    with run_proxy(tmp_path, "--labels", "app=reviews", "--service-account", "reviews",
                   "--identity-token-file", str(token), "--ca-cert", str(controlplane.root),
                   tmp=tmp_path, controlplane=controlplane.url,
                   env={"SECRET_TTL": "4s"}) as proxy:
        wait_for(lambda: RENEWED in proxy.logs(), timeout=20)
        token.unlink()  # the bootstrap token is gone (revoked, expired): the certificate
        before = proxy.logs().count(RENEWED)  # proves who the proxy is from here on
        time.sleep(7)  # renewals every ~2 s
        logs = proxy.logs()
    assert "connected to control plane" in logs  # discovery over TLS
    assert logs.count(RENEWED) >= before + 2, logs
    assert "renewal failed" not in logs
    ca = httpx.get(f"{controlplane.url}/api/remora/v1/ca", headers=controlplane.headers,
                   verify=controlplane.verify).json()
    assert ca["counters"]["byCertificate"] >= 2


def certificate_for(controlplane: ControlPlaneProcess, tmp: Path, token: Path,
                    name: str) -> tuple[Path, Path]:
    """A workload certificate as a proxy gets its first: a CSR with the identity token."""
    key = ec.generate_private_key(ec.SECP256R1())
    answer = httpx.post(f"{controlplane.url}{CERTS}", verify=controlplane.verify, json={
        "csr": csr(key), "token": token.read_text()}, timeout=30)
    assert answer.status_code == 200, answer.text
    chain, key_file = tmp / f"{name}.pem", tmp / f"{name}.key"
    chain.write_text("".join(answer.json()["certChain"]))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return chain, key_file


def csr(key: ec.EllipticCurvePrivateKey, *names: x509.GeneralName) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def test_a_workload_certificate_never_gets_another_identity(
        tmp_path: Path, controlplane: ControlPlaneProcess) -> None:
    assert controlplane.root is not None
    chain, key = certificate_for(controlplane, tmp_path,
                                 join_token(tmp_path, controlplane, "ratings"), "ratings")
    other = join_token(tmp_path, controlplane, "payments").read_text()
    context = ssl.create_default_context(cafile=str(controlplane.root))
    context.load_cert_chain(chain, key)
    fresh = ec.generate_private_key(ec.SECP256R1())
    with httpx.Client(base_url=controlplane.url, verify=context, timeout=30) as http:
        renewed = http.post(CERTS, json={"csr": csr(fresh)})  # no token: the certificate
        assert renewed.status_code == 200, renewed.text
        assert renewed.json()["identity"] == "spiffe://cluster.local/ns/default/sa/ratings"
        asked = http.post(CERTS, json={"csr": csr(fresh, x509.UniformResourceIdentifier(
            "spiffe://cluster.local/ns/default/sa/payments"))})
        assert asked.status_code == 403, asked.text
        assert "allows only URI:spiffe://cluster.local/ns/default/sa/ratings" in asked.text
        # the connection's certificate is who asks, whatever token comes with it
        with_token = http.post(CERTS, json={"csr": csr(fresh), "token": other})
        assert with_token.json()["identity"] == "spiffe://cluster.local/ns/default/sa/ratings"
    # without a certificate, neither a token nor anything else: 401
    anonymous = httpx.post(f"{controlplane.url}{CERTS}", verify=controlplane.verify,
                           json={"csr": csr(fresh)}, timeout=30)
    assert anonymous.status_code == 401


def test_remora_up_with_controlplane_tls_serves_verifies_and_the_cli_follows(
        tmp_path: Path) -> None:
    """`remora up --controlplane-tls`: the runner, the sidecars and gateways (--ca-cert), and
    `remora get` (the root beside the saved credentials) all verify the control plane."""
    from tests.e2e.test_up import Up  # noqa: PLC0415 - its mesh and helpers

    up = Up(tmp_path)
    try:
        started = up.start("--network", "host")  # --controlplane-tls is the default
        assert "ready in" in started.stdout
        status = up.status()
        assert status["phase"] == "Ready"
        url = status["controlplane"]["url"]
        assert url == f"https://127.0.0.1:{up.cp_port}"
        front = up.http.get(up.gateway_url() + "/call/back:9090").json()
        assert front["got"]["pod"].startswith("back-")
        env = {k: v for k, v in os.environ.items() if k != "REMORA_CREDENTIALS"}  # the module's
        got = subprocess.run([*REMORA, "get", "virtualservices", "--server", url], env=env,
                             capture_output=True, text=True, timeout=60, check=False)
        assert "front" in got.stdout, got.stderr
        logs = up.state / "logs"
        sidecar = next(logs.glob("front-*.sidecar.log")).read_text()
        assert f"connected to control plane {url}" in sidecar
        assert "workload certificate spiffe://cluster.local/ns/default/sa/" in sidecar
        root = up.state / "controlplane" / "root-cert.pem"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz")  # not the system's store: the mesh's root
        assert httpx.get(f"{url}/healthz",
                         verify=ssl.create_default_context(cafile=str(root))).text == "ok"
    finally:
        up.down()
