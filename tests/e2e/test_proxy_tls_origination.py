"""End to end: a sidecar originates TLS to a service outside the mesh, as a DestinationRule's
`trafficPolicy.tls` asks (istio.io DestinationRule "ClientTLSSettings"; the "Egress TLS
Origination" task): the app speaks plain HTTP to `api.example.com`, its sidecar speaks TLS to
the real server — SIMPLE (the server verified against `caCertificates`, the SNI and
`subjectAltNames`), MUTUAL (a client certificate from files or from a `credentialName`
Secret), `insecureSkipVerify`. A server that fails the checks is a connection failure (503 UF),
never plain text."""

from __future__ import annotations

import base64
import json
import ssl
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.certkit import MeshCA
from tests.e2e.meshkit import Proxy, run_proxy

pytestmark = pytest.mark.timeout(60)

HOSTS = ("simple", "wrong-name", "unknown-ca", "skip-verify", "mutual", "credential", "sans")


class Handler(BaseHTTPRequestHandler):
    server: TlsServer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        peer = self.connection.getpeercert()  # type: ignore[attr-defined]
        subject = dict(item[0] for item in peer["subject"]) if peer else {}
        body = json.dumps({"client": subject.get("commonName", ""),
                           "sni": self.server.last_sni}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class TlsServer(ThreadingHTTPServer):
    """An HTTPS server on 127.0.0.1 that tells who called (a client certificate's CN, if any)
    and with which SNI."""

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.last_sni = ""
        context.sni_callback = self._sni
        self.socket = context.wrap_socket(self.socket, server_side=True)

    def _sni(self, _sock: Any, name: str | None, _context: Any) -> None:
        self.last_sni = name or ""

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("pki")
    server_ca, client_ca, other = MeshCA.create("servers"), MeshCA.create("clients"), \
        MeshCA.create("someone else")
    (tmp / "server-ca.pem").write_text(server_ca.pem)
    server_cert, server_key = server_ca.write(tmp, "server", dns=("api.example.com",))
    client_cert, client_key = client_ca.write(tmp, "client", common_name="shop-client")
    credential_cert, credential_key = client_ca.issue(common_name="from-a-secret")
    return {"tmp": tmp, "server_ca": server_ca, "client_ca": client_ca, "other": other,
            "server": (server_cert, server_key), "client": (client_cert, client_key),
            "credential": (credential_cert, credential_key)}


@pytest.fixture(scope="module")
def upstream(pki: dict[str, Any]) -> Iterator[TlsServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*pki["server"])
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=pki["client_ca"].pem)
    server = TlsServer(context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def rule(host: str, tls: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {{name: {host}}}
        spec:
          host: {host}.example.com
          trafficPolicy:
            tls: {tls}
        ---
        """)


@pytest.fixture(scope="module")
def sidecar(pki: dict[str, Any], upstream: TlsServer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    tmp = tmp_path_factory.mktemp("origination")
    config = tmp / "config"
    config.mkdir()
    ca = pki["tmp"] / "server-ca.pem"
    client_cert, client_key = pki["client"]
    docs = []
    for host in HOSTS:
        docs.append(textwrap.dedent(f"""\
            apiVersion: networking.istio.io/v1
            kind: ServiceEntry
            metadata: {{name: {host}}}
            spec:
              hosts: [{host}.example.com]
              location: MESH_EXTERNAL
              ports: [{{number: 80, name: http, protocol: HTTP}}]
              resolution: STATIC
              endpoints: [{{address: 127.0.0.1, ports: {{http: {upstream.port}}}}}]
            ---
            """))
    cert, key = pki["credential"]
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "api-client", "namespace": "default"},
              "data": {"tls.crt": base64.b64encode(cert.encode()).decode(),
                       "tls.key": base64.b64encode(key.encode()).decode(),
                       "ca.crt": base64.b64encode(pki["server_ca"].pem.encode()).decode()}}
    docs += [
        rule("simple", f"{{mode: SIMPLE, caCertificates: {ca}, sni: api.example.com}}"),
        rule("wrong-name", f"{{mode: SIMPLE, caCertificates: {ca}, sni: wrong.example.com}}"),
        rule("unknown-ca", "{mode: SIMPLE, sni: api.example.com}"),
        rule("skip-verify", "{mode: SIMPLE, insecureSkipVerify: true}"),
        rule("mutual", f"{{mode: MUTUAL, caCertificates: {ca}, sni: api.example.com, "
                       f"clientCertificate: {client_cert}, privateKey: {client_key}}}"),
        rule("credential", "{mode: MUTUAL, credentialName: api-client, sni: api.example.com}"),
        rule("sans", f"{{mode: SIMPLE, caCertificates: {ca}, sni: api.example.com, "
                     "subjectAltNames: [other.example.com]}"),
        json.dumps(secret) + "\n",
    ]
    (config / "mesh.yaml").write_text("".join(docs))
    with run_proxy(config, "--labels", "app=shop", tmp=tmp) as proxy:
        yield proxy


def call(proxy: Proxy, host: str) -> httpx.Response:
    with httpx.Client(base_url=proxy.url, timeout=10) as http:
        return http.get("/", headers={"host": f"{host}.example.com"})


def test_simple_verifies_the_server_and_sends_the_sni(sidecar: Proxy) -> None:
    response = call(sidecar, "simple")
    assert response.status_code == 200, response.text
    assert response.json() == {"client": "", "sni": "api.example.com"}


@pytest.mark.parametrize("host", ["wrong-name", "unknown-ca", "sans"])
def test_a_server_that_fails_verification_is_a_connection_failure(sidecar: Proxy,
                                                                  host: str) -> None:
    """A certificate for another name, of an unknown CA (the system's roots do not know
    it), or without any of `subjectAltNames`: 503 with Envoy's UF, never plain text."""
    response = call(sidecar, host)
    assert response.status_code == 503
    assert "connection failure" in response.text


def test_insecure_skip_verify_accepts_any_server(sidecar: Proxy) -> None:
    assert call(sidecar, "skip-verify").status_code == 200


def test_mutual_presents_the_client_certificate_from_files_or_a_secret(sidecar: Proxy) -> None:
    assert call(sidecar, "mutual").json()["client"] == "shop-client"
    assert call(sidecar, "credential").json()["client"] == "from-a-secret"


def test_a_missing_credential_fails_the_cluster_and_says_why(tmp_path: Path,
                                                            upstream: TlsServer) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "mesh.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: api}}
        spec:
          hosts: [api.example.com]
          ports: [{{number: 80, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{http: {upstream.port}}}}}]
        ---
        """) + rule("api", "{mode: MUTUAL, credentialName: nowhere}"))
    with run_proxy(config, tmp=tmp_path) as proxy:
        assert call(proxy, "api").status_code == 503
        logs = proxy.logs()
    assert "credentialName 'nowhere': secret default/nowhere not found" in logs
