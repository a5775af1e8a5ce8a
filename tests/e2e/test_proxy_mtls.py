"""End to end: Istio's mutual TLS between two real sidecars with file-mounted certificates
(istio.io "Mutual TLS Migration", "PeerAuthentication", "Auto mutual TLS"), checked with real
clients: httpx and curl in plain text, Python's `ssl` module and openssl with and without a
client certificate."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import ssl
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.certkit import MeshCA, spiffe
from tests.e2e.meshkit import EchoServer, Proxy, echo_servers, run_proxy

pytestmark = pytest.mark.timeout(90)

SERVER_ID = spiffe("default", "reviews")
CLIENT_ID = spiffe("default", "productpage")


def reviews_service(port: int, *, account: str = "reviews", tls_mode: bool = True) -> str:
    """The Service `reviews` whose one endpoint is 127.0.0.1:<port>, a meshed workload."""
    labels = {"app": "reviews", **({"security.istio.io/tlsMode": "istio"} if tls_mode else {})}
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: reviews, namespace: default}}
        spec:
          selector: {{app: reviews}}
          ports: [{{name: http, port: 9080, targetPort: 9080}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {{name: reviews-0, namespace: default}}
        spec:
          address: 127.0.0.1
          labels: {json.dumps(labels)}
          serviceAccount: {account}
          ports: {{http: {port}}}
        """)


def peer_authentication(mode: str, extra: str = "") -> str:
    return textwrap.dedent(f"""\
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {{name: reviews, namespace: default}}
        spec:
          selector: {{matchLabels: {{app: reviews}}}}
          mtls: {{mode: {mode}}}
        """) + extra


@pytest.fixture(scope="module")
def ca() -> MeshCA:
    return MeshCA.create()


@pytest.fixture(scope="module")
def app() -> Iterator[EchoServer]:
    with echo_servers("reviews") as servers:
        yield servers["reviews"]


@contextlib.contextmanager
def server_sidecar(tmp: Path, ca: MeshCA, app: EchoServer, policy: str) -> Iterator[Proxy]:
    config = tmp / "server"
    config.mkdir()
    (config / "mesh.yaml").write_text(policy)
    certs = ca.mount(tmp / "server-certs", SERVER_ID)
    with run_proxy(config, "--labels", "app=reviews,version=v1", "--workload", "reviews-v1",
                   "--service-account", "reviews", "--app-port", str(app.port),
                   "--container-port", "9080", "--workload-certs", str(certs),
                   tmp=tmp) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, ca: MeshCA,
           app: EchoServer) -> Iterator[Proxy]:
    with server_sidecar(tmp_path_factory.mktemp("strict"), ca, app,
                        peer_authentication("STRICT")) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def permissive(tmp_path_factory: pytest.TempPathFactory, ca: MeshCA,
               app: EchoServer) -> Iterator[Proxy]:
    with server_sidecar(tmp_path_factory.mktemp("permissive"), ca, app,
                        peer_authentication("PERMISSIVE")) as proxy:
        yield proxy


@contextlib.contextmanager
def client_sidecar(tmp: Path, ca: MeshCA, server: Proxy, *,
                   account: str = "reviews") -> Iterator[Proxy]:
    config = tmp / "client"
    config.mkdir()
    (config / "mesh.yaml").write_text(reviews_service(server.inbound, account=account))
    certs = ca.mount(tmp / "client-certs", CLIENT_ID)
    with run_proxy(config, "--labels", "app=productpage,version=v1", "--workload",
                   "productpage-v1", "--service-account", "productpage",
                   "--workload-certs", str(certs), tmp=tmp) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, ca: MeshCA,
           strict: Proxy) -> Iterator[Proxy]:
    with client_sidecar(tmp_path_factory.mktemp("client"), ca, strict) as proxy:
        yield proxy


def get(proxy: Proxy, path: str) -> httpx.Response:
    with httpx.Client(base_url=proxy.url, timeout=10) as http:
        return http.get(path, headers={"host": "reviews:9080"})


def plain_request(port: int) -> bytes:
    """What a plain-text HTTP client gets from a port: the bytes before the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nhost: reviews\r\n\r\n")
        try:
            return sock.recv(65536)
        except ConnectionResetError:
            return b""


def test_auto_mtls_reaches_a_strict_workload_and_the_app_sees_the_caller(
        client: Proxy, app: EchoServer) -> None:
    """istio.io "Auto mutual TLS": the client sidecar originates ISTIO_MUTUAL to an endpoint
    with a sidecar; the server's Envoy sets XFCC (APPEND_FORWARD) for the app."""
    response = get(client, "/auto-mtls")
    assert response.status_code == 200, response.text
    xfcc = app.headers["/auto-mtls"]["x-forwarded-client-cert"]
    assert xfcc.startswith(f"By={SERVER_ID};Hash=")
    assert xfcc.endswith(f';Subject="";URI={CLIENT_ID}')


def test_plain_text_to_a_strict_port_is_refused_and_counted(strict: Proxy,
                                                            app: EchoServer) -> None:
    """PeerAuthentication STRICT: "connection is an mTLS tunnel" only; a plain client gets no
    answer, the app never sees it, the proxy says why once and counts it."""
    before = app.hits
    assert plain_request(strict.inbound) == b""
    curl = subprocess.run(["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{strict.inbound}/"],
                          capture_output=True, text=True, check=False)
    assert curl.returncode != 0
    assert app.hits == before
    assert "refused: plain text to a port whose PeerAuthentication is STRICT" in strict.logs()
    stats = httpx.get(f"{strict.admin_url}/stats/prometheus", timeout=5).text
    assert re.search(r"envoy_listener_no_filter_chain_match\{[^}]*\} [1-9]", stats)


def test_a_client_without_a_certificate_or_with_a_foreign_one_is_refused(
        strict: Proxy, tmp_path: Path) -> None:
    """Python's ssl: no client certificate, or one from another root, fails the handshake."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with pytest.raises((ssl.SSLError, ConnectionError)), \
            socket.create_connection(("127.0.0.1", strict.inbound), timeout=5) as raw, \
            context.wrap_socket(raw) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nhost: reviews\r\n\r\n")
        assert tls.recv(100) == b""  # TLS 1.3: the refusal arrives after the handshake
        raise ConnectionError("closed")
    foreign = MeshCA.create("someone else").mount(tmp_path / "foreign", CLIENT_ID)
    context.load_cert_chain(foreign / "cert-chain.pem", foreign / "key.pem")
    with pytest.raises((ssl.SSLError, ConnectionError)), \
            socket.create_connection(("127.0.0.1", strict.inbound), timeout=5) as raw, \
            context.wrap_socket(raw) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nhost: reviews\r\n\r\n")
        assert tls.recv(100) == b""
        raise ConnectionError("closed")


def test_an_expired_certificate_of_the_mesh_is_refused(strict: Proxy, ca: MeshCA,
                                                       tmp_path: Path) -> None:
    chain, key = ca.issue(CLIENT_ID, expired=True)
    (tmp_path / "chain.pem").write_text(chain)
    (tmp_path / "key.pem").write_text(key)
    context = ssl.create_default_context(cadata=ca.pem)
    context.check_hostname = False
    context.load_cert_chain(tmp_path / "chain.pem", tmp_path / "key.pem")
    with pytest.raises((ssl.SSLError, ConnectionError)), \
            socket.create_connection(("127.0.0.1", strict.inbound), timeout=5) as raw, \
            context.wrap_socket(raw) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nhost: reviews\r\n\r\n")
        if tls.recv(100) == b"":
            raise ConnectionError("closed")
    deadline = time.monotonic() + 10  # TLS 1.3: the server's verdict may follow the client's
    while "TLS handshake failed: certificate has expired" not in strict.logs():
        assert time.monotonic() < deadline, strict.logs()
        time.sleep(0.1)


def test_a_handshake_that_stalls_is_closed(strict: Proxy) -> None:
    """A client that starts a TLS record and sends nothing more is dropped after the
    handshake timeout (10 s), and the listener goes on serving others meanwhile."""
    with socket.create_connection(("127.0.0.1", strict.inbound), timeout=20) as stalled:
        stalled.sendall(b"\x16\x03\x01")
        assert plain_request(strict.inbound) == b""  # others are still answered (refused)
        started = time.monotonic()
        assert stalled.recv(100) == b""
        assert time.monotonic() - started < 15


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
def test_openssl_with_a_mesh_certificate_is_served(strict: Proxy, ca: MeshCA,
                                                   tmp_path: Path) -> None:
    """A client holding a certificate of the mesh's root is served over mTLS, and the
    server presents its SPIFFE identity."""
    certs = ca.mount(tmp_path / "openssl", spiffe("default", "tester"))
    request = b"GET /openssl HTTP/1.1\r\nhost: reviews\r\nconnection: close\r\n\r\n"
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{strict.inbound}", "-quiet",
         "-cert", str(certs / "cert-chain.pem"), "-key", str(certs / "key.pem"),
         "-CAfile", str(certs / "root-cert.pem"), "-verify_return_error"],
        input=request, capture_output=True, timeout=20, check=False)
    assert b"HTTP/1.1 200" in done.stdout, done.stderr


def test_the_servers_metrics_name_both_principals(client: Proxy, strict: Proxy) -> None:
    """istio.io "Istio Standard Metrics": source_principal, destination_principal and
    connection_security_policy (mutual_tls on the destination side)."""
    assert get(client, "/metrics-check").status_code == 200
    text = httpx.get(f"{strict.admin_url}/stats/prometheus", timeout=5).text
    series = [s for family in text_string_to_metric_families(text)
              if family.name == "istio_requests" for s in family.samples
              if s.labels.get("reporter") == "destination"]
    assert any(s.labels["connection_security_policy"] == "mutual_tls"
               and s.labels["source_principal"] == CLIENT_ID
               and s.labels["destination_principal"] == SERVER_ID for s in series), series
    text = httpx.get(f"{client.admin_url}/stats/prometheus", timeout=5).text
    series = [s for family in text_string_to_metric_families(text)
              if family.name == "istio_requests" for s in family.samples
              if s.labels.get("reporter") == "source"]
    assert any(s.labels["source_principal"] == CLIENT_ID
               and s.labels["destination_principal"] == SERVER_ID for s in series), series


def test_a_server_with_another_identity_than_expected_is_refused(
        tmp_path: Path, ca: MeshCA, strict: Proxy) -> None:
    """The client checks the server's SAN against the destination's service account: a
    certificate of the mesh, but not the one expected, is a connection failure (503 UF)."""
    with client_sidecar(tmp_path, ca, strict, account="ratings") as caller:
        response = get(caller, "/wrong-identity")
        assert response.status_code == 503
        assert response.headers.get("x-envoy-response-flags", "UF") == "UF"
        assert "is not one of " + SERVER_ID.replace("reviews", "ratings") in caller.logs()


def test_permissive_takes_plain_text_and_mtls_on_one_port(
        tmp_path: Path, ca: MeshCA, permissive: Proxy, app: EchoServer) -> None:
    """PERMISSIVE: "connection can be either plaintext or mTLS tunnel"; a plain caller's
    forged XFCC is removed (Envoy sanitizes it unless the client is mTLS)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{permissive.inbound}", timeout=10) as http:
        response = http.get("/plain", headers={"x-forwarded-client-cert": "URI=spiffe://x"})
    assert response.status_code == 200
    assert "x-forwarded-client-cert" not in app.headers["/plain"]
    with client_sidecar(tmp_path, ca, permissive) as caller:
        assert get(caller, "/mtls").status_code == 200
    assert app.headers["/mtls"]["x-forwarded-client-cert"].endswith(f"URI={CLIENT_ID}")
