"""End to end: a gateway's TLS servers as Istio's, against a real `remora proxy --mode gateway`
fed from files, with the clients users have (curl, openssl s_client, Python ssl, httpx).

istio.io references: networking Gateway ServerTLSSettings (mode SIMPLE, MUTUAL,
OPTIONAL_MUTUAL, ISTIO_MUTUAL; credentialName; min/maxProtocolVersion; cipherSuites), the
"Secure Gateways" task (Key formats: kubernetes.io/tls `tls.crt`/`tls.key`/`ca.crt`, generic
`cert`/`key`/`cacert`, a `<name>-cacert` Secret; rotating a credential; SNI routing);
envoyproxy.io TLS Inspector and FilterChainMatch.server_names (the ClientHello's SNI picks the
server of a port).
"""

from __future__ import annotations

import base64
import datetime
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from remora.runner.ports import free_port
from tests.certkit import MeshCA, spiffe
from tests.e2e.meshkit import EchoServer, Proxy, echo_servers, run_proxy, service_yaml

pytestmark = pytest.mark.timeout(90)
PEM = serialization.Encoding.PEM


@dataclass
class Issuer:
    """A CA (as the task's `example.com` root) that signs server and client certificates."""

    ca: MeshCA
    folder: Path

    def issue(self, name: str, *, serial: int, client: bool = False) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(self.ca.cert.subject).public_key(key.public_key())
                   .serial_number(serial).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1)))
        if not client:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]),
                                            critical=False)
        cert = builder.sign(self.ca.key, hashes.SHA256())
        cert_path = self.folder / f"{name}-{serial}.crt"
        key_path = self.folder / f"{name}-{serial}.key"
        cert_path.write_bytes(cert.public_bytes(PEM))
        key_path.write_bytes(key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path

    @property
    def ca_file(self) -> Path:
        path = self.folder / f"ca-{id(self)}.pem"
        path.write_text(self.ca.pem)
        return path


def b64(path: Path | str) -> str:
    data = path.read_bytes() if isinstance(path, Path) else path.encode()
    return base64.b64encode(data).decode()


def secret(name: str, data: dict[str, str], kind: str = "Opaque") -> str:
    lines = "\n".join(f"  {key}: {value}" for key, value in data.items())
    return (f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\n"
            f"type: {kind}\ndata:\n{lines}\n---\n")


VIRTUAL_SERVICE = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front}
spec:
  hosts: ["*"]
  gateways: [public]
  http: [{route: [{destination: {host: front, port: {number: 9080}}}]}]
---
"""


def gateway_yaml(servers: list[str]) -> str:
    body = "".join(f"  - {server}\n" for server in servers)
    return ("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: public}\n"
            "spec:\n  selector: {istio: ingressgateway}\n  servers:\n" + body + "---\n")


@pytest.fixture(scope="module")
def front() -> Iterator[EchoServer]:
    with echo_servers("front") as servers:
        yield servers["front"]


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return Issuer(MeshCA.create("example Inc."), tmp_path)


@pytest.fixture
def other_issuer(tmp_path: Path) -> Issuer:
    return Issuer(MeshCA.create("someone else"), tmp_path)


@dataclass
class Gateway:
    proxy: Proxy
    config: Path

    def write(self, text: str) -> None:
        (self.config / "gateway.yaml").write_text(text)

    def reload(self) -> None:
        self.proxy.process.send_signal(signal.SIGHUP)


def start(tmp_path: Path, front: EchoServer, text: str, *args: str) -> Iterator[Gateway]:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "services.yaml").write_text(service_yaml("front", 9080, [(front.port, {})]))
    (config / "gateway.yaml").write_text(text)
    with run_proxy(config, "--mode", "gateway", "--labels", "istio=ingressgateway",
                   "--namespace", "default", *args, tmp=tmp_path) as proxy:
        yield Gateway(proxy, config)


def handshake(port: int, *, sni: str | None, ca: Path, cert: tuple[Path, Path] | None = None,
              context: ssl.SSLContext | None = None) -> tuple[x509.Certificate, ssl.SSLSocket]:
    """A Python ssl client's handshake; the server's certificate and the open connection."""
    context = context or ssl.create_default_context(cafile=str(ca))
    if sni is None:
        context.check_hostname = False
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                               server_hostname=sni)
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der), sock


def get(sock: ssl.SSLSocket, host: str) -> bytes:
    """One HTTP/1.1 request on an open TLS connection; the response's status line."""
    sock.sendall(f"GET /x HTTP/1.1\r\nhost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0]


def refused(port: int, **kwargs: object) -> bool:
    """Whether the handshake, or the first request after it (TLS 1.3 sends the server's
    certificate-required alert after the client's Finished), fails."""
    try:
        _, sock = handshake(port, **kwargs)  # type: ignore[arg-type]
        with sock:
            return get(sock, "shop.example") == b""
    except (ssl.SSLError, ConnectionError, OSError):
        return True


def curl(port: int, host: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--resolve",
         f"{host}:{port}:127.0.0.1", *extra, f"https://{host}:{port}/status"],
        capture_output=True, text=True, timeout=15, check=False)


# MUTUAL, OPTIONAL_MUTUAL ---------------------------------------------------------------------
def test_mutual_with_a_tls_secret_needs_a_client_certificate_of_its_ca_crt(
        tmp_path: Path, front: EchoServer, issuer: Issuer, other_issuer: Issuer) -> None:
    """Secure Gateways, "Configure a mutual TLS ingress gateway": tls.key, tls.crt, ca.crt;
    curl without --cert fails, with the CA's client certificate answers."""
    port = free_port()
    cert, key = issuer.issue("shop.example", serial=1001)
    text = secret("shop-credential", {"tls.crt": b64(cert), "tls.key": b64(key),
                                      "ca.crt": b64(issuer.ca.pem)}, "kubernetes.io/tls")
    text += gateway_yaml([f"{{port: {{number: {port}, name: https, protocol: HTTPS}}, hosts: "
                          f"[shop.example], tls: {{mode: MUTUAL, credentialName: "
                          f"shop-credential}}}}"]) + VIRTUAL_SERVICE
    client = issuer.issue("client.example", serial=7, client=True)
    stranger = other_issuer.issue("client.example", serial=8, client=True)
    ca = issuer.ca_file
    for gateway in start(tmp_path, front, text):
        assert curl(port, "shop.example", "--cacert", str(ca)).stdout != "200"
        answered = curl(port, "shop.example", "--cacert", str(ca), "--cert", str(client[0]),
                        "--key", str(client[1]))
        assert answered.stdout == "200", answered.stderr
        assert curl(port, "shop.example", "--cacert", str(ca), "--cert", str(stranger[0]),
                    "--key", str(stranger[1])).stdout != "200"
        assert "refused" in gateway.proxy.stderr_path.read_text()


def test_optional_mutual_verifies_a_certificate_only_when_presented(
        tmp_path: Path, front: EchoServer, issuer: Issuer, other_issuer: Issuer) -> None:
    """OPTIONAL_MUTUAL, with Istio's split generic Secrets: `key`/`cert` in the credential,
    `cacert` in `<name>-cacert` (Secure Gateways, Key formats)."""
    port = free_port()
    cert, key = issuer.issue("shop.example", serial=1002)
    text = secret("shop", {"cert": b64(cert), "key": b64(key)})
    text += secret("shop-cacert", {"cacert": b64(issuer.ca.pem)})
    text += gateway_yaml([f"{{port: {{number: {port}, name: https, protocol: HTTPS}}, hosts: "
                          f"[shop.example], tls: {{mode: OPTIONAL_MUTUAL, credentialName: shop}}}}"
                          ]) + VIRTUAL_SERVICE
    ca = issuer.ca_file
    for _ in start(tmp_path, front, text):
        _, sock = handshake(port, sni="shop.example", ca=ca)
        with sock:
            assert get(sock, "shop.example") == b"HTTP/1.1 200 OK"
        _, sock = handshake(port, sni="shop.example", ca=ca,
                            cert=issuer.issue("client", serial=9, client=True))
        with sock:
            assert get(sock, "shop.example") == b"HTTP/1.1 200 OK"
        assert refused(port, sni="shop.example", ca=ca,
                       cert=other_issuer.issue("client", serial=10, client=True))


def test_mutual_with_file_paths_takes_ca_certificates(
        tmp_path: Path, front: EchoServer, issuer: Issuer) -> None:
    """serverCertificate/privateKey/caCertificates file paths, as before Secrets."""
    port = free_port()
    cert, key = issuer.issue("shop.example", serial=1003)
    ca = issuer.ca_file
    text = gateway_yaml([f"{{port: {{number: {port}, name: https, protocol: HTTPS}}, hosts: "
                         f"[shop.example], tls: {{mode: MUTUAL, serverCertificate: {cert}, "
                         f"privateKey: {key}, caCertificates: {ca}}}}}"]) + VIRTUAL_SERVICE
    for _ in start(tmp_path, front, text):
        assert refused(port, sni="shop.example", ca=ca)
        _, sock = handshake(port, sni="shop.example", ca=ca,
                            cert=issuer.issue("client", serial=11, client=True))
        with sock:
            assert get(sock, "shop.example") == b"HTTP/1.1 200 OK"


def test_istio_mutual_serves_the_workload_certificate_to_mesh_clients(
        tmp_path: Path, front: EchoServer) -> None:
    """ISTIO_MUTUAL: the gateway's own workload certificate, clients of the mesh's roots."""
    mesh = MeshCA.create()
    certs = mesh.mount(tmp_path / "certs", spiffe("default", "istio-ingressgateway"))
    port = free_port()
    text = gateway_yaml([f"{{port: {{number: {port}, name: https, protocol: HTTPS}}, hosts: "
                         f"['*'], tls: {{mode: ISTIO_MUTUAL}}}}"]) + VIRTUAL_SERVICE
    client_cert, client_key = mesh.issue(spiffe("default", "sleep"))
    (tmp_path / "client.crt").write_text(client_cert)
    (tmp_path / "client.key").write_text(client_key)
    ca = tmp_path / "root.pem"
    ca.write_text(mesh.pem)
    for _ in start(tmp_path, front, text, "--workload-certs", str(certs)):
        context = ssl.create_default_context(cafile=str(ca))
        context.check_hostname = False  # a SPIFFE URI, no DNS name
        served, sock = handshake(port, sni=None, ca=ca, context=context,
                                 cert=(tmp_path / "client.crt", tmp_path / "client.key"))
        with sock:
            assert get(sock, "shop.example") == b"HTTP/1.1 200 OK"
        uris = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert spiffe("default", "istio-ingressgateway") in \
            uris.get_values_for_type(x509.UniformResourceIdentifier)
        assert refused(port, sni=None, ca=ca, context=ssl.create_default_context(cafile=str(ca)))


# credentials -----------------------------------------------------------------------------------
def test_a_missing_or_malformed_credential_leaves_only_that_server_out(
        tmp_path: Path, front: EchoServer, issuer: Issuer) -> None:
    """InvalidGatewayCredential (istio.io IST0161): the server is not served, one log line
    says why; the others are."""
    good, missing, broken = free_port(), free_port(), free_port()
    cert, key = issuer.issue("shop.example", serial=1004)
    text = secret("good", {"tls.crt": b64(cert), "tls.key": b64(key)}, "kubernetes.io/tls")
    text += secret("broken", {"tls.crt": b64("not a certificate"), "tls.key": b64(key)})
    text += gateway_yaml([
        f"{{port: {{number: {n}, name: https-{n}, protocol: HTTPS}}, hosts: [shop.example], "
        f"tls: {{mode: SIMPLE, credentialName: {name}}}}}"
        for n, name in ((good, "good"), (missing, "absent"), (broken, "broken"))
    ]) + VIRTUAL_SERVICE
    ca = issuer.ca_file
    for gateway in start(tmp_path, front, text):
        _, sock = handshake(good, sni="shop.example", ca=ca)
        sock.close()
        for port in (missing, broken):
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
        log = gateway.proxy.stderr_path.read_text()
        assert "credentialName 'absent': secret default/absent not found" in log
        assert "secret default/broken: tls.crt" in log


# SNI -------------------------------------------------------------------------------------------
def s_client_serial(port: int, *args: str) -> str:
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
                          input="", capture_output=True, text=True, timeout=15, check=False)
    shown = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=done.stdout,
                           capture_output=True, text=True, timeout=15, check=False)
    return shown.stdout.strip()


def test_sni_picks_the_server_and_its_certificate_on_a_shared_port(
        tmp_path: Path, front: EchoServer, issuer: Issuer) -> None:
    """Secure Gateways, "multiple hosts": two servers on port 443, each its credentialName;
    openssl s_client -servername sees each one's certificate. With no SNI and no `*` server,
    no filter chain matches: the connection is closed (istio.io common problems: "Configuring
    SNI routing when not sending SNI")."""
    port = free_port()
    text = ""
    for name, serial in (("shop", 0x51), ("blog", 0x52)):
        cert, key = issuer.issue(f"{name}.example", serial=serial)
        text += secret(f"{name}-credential", {"tls.crt": b64(cert), "tls.key": b64(key)},
                       "kubernetes.io/tls")
    text += gateway_yaml([
        f"{{port: {{number: {port}, name: https-{name}, protocol: HTTPS}}, hosts: "
        f"[{name}.example], tls: {{mode: SIMPLE, credentialName: {name}-credential}}}}"
        for name in ("shop", "blog")
    ]) + VIRTUAL_SERVICE
    for _ in start(tmp_path, front, text):
        assert s_client_serial(port, "-servername", "shop.example") == "serial=51"
        assert s_client_serial(port, "-servername", "blog.example") == "serial=52"
        assert s_client_serial(port, "-noservername") == ""
        assert s_client_serial(port, "-servername", "other.example") == ""
        ca = issuer.ca_file
        assert curl(port, "blog.example", "--cacert", str(ca)).stdout == "200"


# rotation --------------------------------------------------------------------------------------
def test_a_rotated_secret_is_served_to_new_handshakes_without_closing_the_port(
        tmp_path: Path, front: EchoServer, issuer: Issuer) -> None:
    """Secure Gateways: "change the gateway's credentials" — the Secret is replaced and new
    connections see the new certificate; a connection made before keeps working."""
    port = free_port()

    def config(serial: int) -> str:
        cert, key = issuer.issue("shop.example", serial=serial)
        return secret("shop-credential", {"tls.crt": b64(cert), "tls.key": b64(key)},
                      "kubernetes.io/tls") + gateway_yaml([
            f"{{port: {{number: {port}, name: https, protocol: HTTPS}}, hosts: "
            f"[shop.example], tls: {{mode: SIMPLE, credentialName: shop-credential}}}}"
        ]) + VIRTUAL_SERVICE

    ca = issuer.ca_file
    for gateway in start(tmp_path, front, config(0xA1)):
        served, before = handshake(port, sni="shop.example", ca=ca)
        assert served.serial_number == 0xA1
        gateway.write(config(0xA2))
        gateway.reload()
        deadline = time.monotonic() + 10
        while served.serial_number != 0xA2 and time.monotonic() < deadline:
            served, sock = handshake(port, sni="shop.example", ca=ca)  # the port stays open
            sock.close()
            time.sleep(0.1)
        assert served.serial_number == 0xA2
        with before:
            assert get(before, "shop.example") == b"HTTP/1.1 200 OK"


def test_rotated_certificate_files_are_picked_up_on_sighup(
        tmp_path: Path, front: EchoServer, issuer: Issuer) -> None:
    port = free_port()
    cert, key = issuer.issue("shop.example", serial=0xB1)
    text = gateway_yaml([f"{{port: {{number: {port}, name: https, protocol: HTTPS}}, hosts: "
                         f"[shop.example], tls: {{mode: SIMPLE, serverCertificate: "
                         f"{tmp_path}/tls.crt, privateKey: {tmp_path}/tls.key}}}}"]) \
        + VIRTUAL_SERVICE
    (tmp_path / "tls.crt").write_bytes(cert.read_bytes())
    (tmp_path / "tls.key").write_bytes(key.read_bytes())
    ca = issuer.ca_file
    for gateway in start(tmp_path, front, text):
        assert handshake(port, sni="shop.example", ca=ca)[0].serial_number == 0xB1
        cert, key = issuer.issue("shop.example", serial=0xB2)
        (tmp_path / "tls.key").write_bytes(key.read_bytes())
        (tmp_path / "tls.crt").write_bytes(cert.read_bytes())
        gateway.reload()
        deadline = time.monotonic() + 10
        serial = 0
        while serial != 0xB2 and time.monotonic() < deadline:
            time.sleep(0.1)
            served, sock = handshake(port, sni="shop.example", ca=ca)
            sock.close()
            serial = served.serial_number
        assert serial == 0xB2


# protocol versions and ciphers -----------------------------------------------------------------
def test_protocol_versions_and_cipher_suites_are_the_servers(
        tmp_path: Path, front: EchoServer, issuer: Issuer) -> None:
    """minProtocolVersion TLSV1_3 refuses a TLS 1.2 client; maxProtocolVersion TLSV1_2 with
    cipherSuites [ECDHE-ECDSA-AES128-GCM-SHA256] negotiates exactly that; the default range
    is TLS 1.2 to 1.3 (Istio's minimum for gateways)."""
    only13, only12, default = free_port(), free_port(), free_port()
    cert, key = issuer.issue("shop.example", serial=0xC1)
    text = secret("shop", {"tls.crt": b64(cert), "tls.key": b64(key)}, "kubernetes.io/tls")
    text += gateway_yaml([
        f"{{port: {{number: {only13}, name: https-13, protocol: HTTPS}}, hosts: [shop.example], "
        "tls: {mode: SIMPLE, credentialName: shop, minProtocolVersion: TLSV1_3}}",
        f"{{port: {{number: {only12}, name: https-12, protocol: HTTPS}}, hosts: [shop.example], "
        "tls: {mode: SIMPLE, credentialName: shop, maxProtocolVersion: TLSV1_2, "
        "cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256, NOT-A-CIPHER]}}",
        f"{{port: {{number: {default}, name: https-d, protocol: HTTPS}}, hosts: [shop.example], "
        "tls: {mode: SIMPLE, credentialName: shop}}",
    ]) + VIRTUAL_SERVICE
    ca = issuer.ca_file

    def client(high: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(ca))
        context.maximum_version = high
        if ciphers:
            context.set_ciphers(ciphers)
        return context

    for _ in start(tmp_path, front, text):
        assert refused(only13, sni="shop.example", ca=ca,
                       context=client(ssl.TLSVersion.TLSv1_2))
        _, sock = handshake(only12, sni="shop.example", ca=ca,
                            context=client(ssl.TLSVersion.TLSv1_3))
        with sock:
            assert sock.version() == "TLSv1.2"
            assert sock.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"  # type: ignore[index]
        assert refused(only12, sni="shop.example", ca=ca,
                       context=client(ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-GCM-SHA384"))
        _, sock = handshake(default, sni="shop.example", ca=ca,
                            context=client(ssl.TLSVersion.TLSv1_3))
        with sock:
            assert sock.version() == "TLSv1.3"


# httpsRedirect ---------------------------------------------------------------------------------
def test_https_redirect_answers_301_with_an_empty_body_as_envoy_require_tls(
        tmp_path: Path, front: EchoServer) -> None:
    """tls.httpsRedirect on an HTTP server: Envoy's virtual host require_tls ALL answers 301,
    `location: https://<host><path>`, no body."""
    port = free_port()
    text = gateway_yaml([f"{{port: {{number: {port}, name: http, protocol: HTTP}}, hosts: "
                         f"[shop.example], tls: {{httpsRedirect: true}}}}"]) + VIRTUAL_SERVICE
    for _ in start(tmp_path, front, text):
        answer = httpx.get(f"http://127.0.0.1:{port}/cart?item=1",
                           headers={"host": "shop.example"}, timeout=5)
        assert answer.status_code == 301
        assert answer.headers["location"] == "https://shop.example/cart?item=1"
        assert answer.content == b""
