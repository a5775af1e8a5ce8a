"""End to end: the ingress gateway (Gateway servers as listeners, TLS SIMPLE termination,
httpsRedirect, VirtualServices bound by `gateways`, delegate) and the sidecar inbound listener.
istio.io reference: networking Gateway, VirtualService `gateways` and `delegate`."""

from __future__ import annotations

import datetime
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from remora.runner.ports import free_port
from tests.e2e.meshkit import EchoServer, Proxy, echo_servers, run_proxy, service_yaml

pytestmark = pytest.mark.timeout(60)

GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: bookinfo-gateway}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {http}, name: http, protocol: HTTP}}
    hosts: ["*"]
  - port: {{number: {https}, name: https, protocol: HTTPS}}
    hosts: [secure.example]
    tls: {{mode: SIMPLE, serverCertificate: {cert}, privateKey: {key}}}
  - port: {{number: {redirect}, name: http-redirect, protocol: HTTP}}
    hosts: [secure.example]
    tls: {{httpsRedirect: true}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bookinfo}}
spec:
  hosts: ["*"]
  gateways: [bookinfo-gateway]
  http:
  - match: [{{uri: {{prefix: /productpage}}}}]
    route: [{{destination: {{host: productpage, port: {{number: 9080}}}}}}]
  - match: [{{uri: {{prefix: /api}}}}]
    delegate: {{name: api-routes}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: api-routes}}
spec:
  http:
  - match: [{{uri: {{prefix: /api/v1}}}}]
    route: [{{destination: {{host: reviews, subset: v1}}}}]
  - route: [{{destination: {{host: reviews, subset: v2}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: secure}}
spec:
  hosts: [secure.example]
  gateways: [bookinfo-gateway]
  http:
  - route: [{{destination: {{host: productpage}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: mesh-only}}
spec:
  hosts: [productpage]
  http:
  - route: [{{destination: {{host: reviews, subset: v1}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
"""


def self_signed(folder: Path, host: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, EchoServer]]:
    with echo_servers("productpage", "v1", "v2", "app") as servers:
        yield servers


@pytest.fixture(scope="module")
def gateway(upstreams: dict[str, EchoServer], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Proxy, dict[str, int], Path]]:
    tmp = tmp_path_factory.mktemp("gateway")
    config = tmp / "config"
    config.mkdir()
    cert, key = self_signed(tmp, "secure.example")
    ports = {"http": free_port(), "https": free_port(), "redirect": free_port()}
    (config / "services.yaml").write_text("---\n".join([
        service_yaml("productpage", 9080, [(upstreams["productpage"].port, {})]),
        service_yaml("reviews", 9080, [(upstreams["v1"].port, {"version": "v1"}),
                                       (upstreams["v2"].port, {"version": "v2"})]),
    ]))
    (config / "gateway.yaml").write_text(GATEWAY.format(cert=cert, key=key, **ports))
    with run_proxy(config, "--mode", "gateway", "--labels", "istio=ingressgateway",
                   "--namespace", "default", tmp=tmp) as proxy:
        yield proxy, ports, cert


def test_gateway_server_routes_by_virtual_service(
    gateway: tuple[Proxy, dict[str, int], Path],
) -> None:
    _, ports, _ = gateway
    body = httpx.get(f"http://127.0.0.1:{ports['http']}/productpage", timeout=5).json()
    # the mesh-only VirtualService for productpage does not apply at the gateway
    assert body["upstream"] == "productpage"


def test_delegate_routes_come_from_the_delegate_virtual_service(
    gateway: tuple[Proxy, dict[str, int], Path],
) -> None:
    _, ports, _ = gateway
    base = f"http://127.0.0.1:{ports['http']}"
    assert httpx.get(f"{base}/api/v1/books", timeout=5).json()["upstream"] == "v1"
    assert httpx.get(f"{base}/api/v2/books", timeout=5).json()["upstream"] == "v2"
    assert httpx.get(f"{base}/other", timeout=5).status_code == 404  # no route: NR


def test_https_server_terminates_tls_with_the_configured_certificate(
    gateway: tuple[Proxy, dict[str, int], Path],
) -> None:
    _, ports, cert = gateway
    out = subprocess.run(
        ["curl", "-s", "--cacert", str(cert), "--resolve",
         f"secure.example:{ports['https']}:127.0.0.1", f"https://secure.example:{ports['https']}/x"],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout
    body = json.loads(out)
    assert body["upstream"] == "productpage"
    assert body["headers"]["x-forwarded-proto"] == "https"


def test_https_redirect_server_sends_clients_to_https(
    gateway: tuple[Proxy, dict[str, int], Path],
) -> None:
    _, ports, _ = gateway
    response = httpx.get(f"http://127.0.0.1:{ports['redirect']}/page?q=1",
                         headers={"host": "secure.example"}, timeout=5)
    assert response.status_code == 301
    assert response.headers["location"] == "https://secure.example/page?q=1"


def test_sidecar_inbound_forwards_to_the_local_app(
    upstreams: dict[str, EchoServer], tmp_path: Path,
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "services.yaml").write_text(service_yaml("ratings", 9080, []))
    app = upstreams["app"]
    with run_proxy(config, "--labels", "app=ratings,version=v1", "--app-port", str(app.port),
                   tmp=tmp_path) as proxy:
        response = httpx.get(f"http://127.0.0.1:{proxy.inbound}/ratings/1",
                             headers={"host": "ratings:9080"}, timeout=5)
        assert response.json()["upstream"] == "app"
        assert response.json()["path"] == "/ratings/1"
        text = httpx.get(f"{proxy.admin_url}/stats/prometheus", timeout=5).text
        inbound = [line for line in text.splitlines()
                   if line.startswith("istio_requests_total{") and 'reporter="destination"' in line]
        assert inbound and 'destination_app="ratings"' in inbound[0]
        # no Service targets the app port: the service is not known (Istio prints "unknown")
        assert 'destination_service="unknown"' in inbound[0]
