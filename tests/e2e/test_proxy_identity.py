"""End to end: proxies outside `remora up` get their identity from the control plane's CA
with a join token an operator creates (`remora identity token`), as istiod's CA signs the
CSRs of pilot-agents that present a service account token; certificates rotate before they
expire with no failed request (pilot-agent renews at half life; SECRET_TTL sets the lifetime
asked for)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.meshkit import (
    REMORA,
    ControlPlaneProcess,
    EchoServer,
    Proxy,
    echo_servers,
    join_token,
    run_controlplane,
    run_proxy,
)
from tests.e2e.test_proxy_mtls import reviews_service

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def controlplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    with run_controlplane(tmp_path_factory.mktemp("cp")) as plane:
        yield plane


@pytest.fixture(scope="module")
def app() -> Iterator[EchoServer]:
    with echo_servers("reviews") as servers:
        yield servers["reviews"]


def sidecar(tmp: Path, controlplane: ControlPlaneProcess, account: str,
            *args: str, ttl: str = "4s") -> contextlib.AbstractContextManager[Proxy]:
    tmp.mkdir(parents=True, exist_ok=True)
    token = join_token(tmp, controlplane, account)
    return run_proxy(tmp, "--labels", f"app={account}", "--service-account", account,
                     "--identity-token-file", str(token), *args, tmp=tmp,
                     controlplane=controlplane.url, env={"SECRET_TTL": ttl})


def mesh_yaml(server: Proxy) -> str:
    """Service reviews: the server sidecar's inbound port, a meshed workload; a connection per
    request (each shows the certificate of its moment); STRICT mesh-wide."""
    return reviews_service(server.inbound) + textwrap.dedent("""\
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews, namespace: default}
        spec:
          host: reviews
          trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: 1}}}
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        """)


def test_join_tokens_get_certificates_that_rotate_with_no_failed_request(
        tmp_path: Path, controlplane: ControlPlaneProcess, app: EchoServer) -> None:
    with sidecar(tmp_path / "server", controlplane, "reviews", "--app-port",
                 str(app.port), "--container-port", "9080") as server, \
            sidecar(tmp_path / "client", controlplane, "productpage") as client:
        mesh = tmp_path / "mesh.yaml"
        mesh.write_text(mesh_yaml(server))
        controlplane.apply(mesh)
        hashes: set[str] = set()
        failures: list[int] = []
        deadline = time.monotonic() + 12  # three lifetimes of 4 s: renewals at about 2 s
        with httpx.Client(base_url=client.url, timeout=10) as http:
            while time.monotonic() < deadline or len(hashes) < 3:
                response = http.get("/rotating", headers={"host": "reviews:9080"})
                if response.status_code != 200:
                    failures.append(response.status_code)
                elif "x-forwarded-client-cert" in app.headers.get("/rotating", {}):
                    xfcc = app.headers["/rotating"]["x-forwarded-client-cert"]
                    assert xfcc.endswith("URI=spiffe://cluster.local/ns/default/sa/productpage")
                    hashes.add(re.search(r"Hash=([0-9a-f]+)", xfcc).group(1))  # type: ignore[union-attr]
                time.sleep(0.02)
                assert time.monotonic() < deadline + 20, (hashes, client.logs())
        # the first requests may precede the PeerAuthentication push; none ever failed
        assert failures == []
        assert len(hashes) >= 3  # the client presented at least three certificates
        renewed = client.logs().count("workload certificate spiffe://cluster.local/ns/default/"
                                      "sa/productpage")
        assert renewed >= 3

        # a new root beside the old one: trusted everywhere (10 s of grace) before its
        # certificates are presented; requests keep succeeding while every proxy moves to it
        rotated = subprocess.run([*REMORA, "identity", "rotate-root", "--server",
                                  controlplane.url], capture_output=True, text=True,
                                 timeout=30, check=False)
        assert rotated.returncode == 0, rotated.stderr
        deadline = time.monotonic() + 15
        with httpx.Client(base_url=client.url, timeout=10) as http:
            while time.monotonic() < deadline:
                response = http.get("/rotating", headers={"host": "reviews:9080"})
                if response.status_code != 200:
                    failures.append(response.status_code)
                time.sleep(0.02)
        assert failures == []
        for proxy in (client, server):
            certs = httpx.get(f"{proxy.admin_url}/certs", timeout=5).json()["certificates"][0]
            assert len(certs["ca_cert"]) == 2
        described = subprocess.run([*REMORA, "identity", "ca", "-o", "json", "--server",
                                    controlplane.url], capture_output=True, text=True,
                                   timeout=30, check=True)
        assert json.loads(described.stdout)["signing"] in rotated.stdout  # the new one signs


def test_a_forged_token_gets_no_certificate_and_says_why(
        tmp_path: Path, controlplane: ControlPlaneProcess) -> None:
    token = tmp_path / "forged.token"
    token.write_text("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl")
    with run_proxy(tmp_path, "--identity-token-file", str(token), tmp=tmp_path,
                   controlplane=controlplane.url, ready_timeout=30) as proxy:
        logs = proxy.logs()
    assert "the CA refused the certificate request (401)" in logs
    assert "no workload certificate: mTLS is off until the CA issues one" in logs


def test_a_ca_outage_breaks_nothing_while_certificates_are_valid(
        tmp_path: Path, app: EchoServer) -> None:
    """The control plane (its CA) dies: proxies keep their configuration and certificates,
    new mTLS connections keep working, renewals are retried and each failure says when the
    certificate expires."""
    (tmp_path / "cp").mkdir()
    with run_controlplane(tmp_path / "cp") as controlplane, \
            sidecar(tmp_path / "server", controlplane, "reviews", "--app-port", str(app.port),
                    "--container-port", "9080", ttl="10s") as server, \
            sidecar(tmp_path / "client", controlplane, "productpage", ttl="10s") as client:
        mesh = tmp_path / "mesh.yaml"
        mesh.write_text(mesh_yaml(server))
        controlplane.apply(mesh)
        with httpx.Client(base_url=client.url, timeout=10) as http:
            def call() -> int:
                return http.get("/outage", headers={"host": "reviews:9080"}).status_code

            deadline = time.monotonic() + 10
            while "x-forwarded-client-cert" not in app.headers.get("/outage", {}):
                assert call() == 200 and time.monotonic() < deadline
                time.sleep(0.05)
            controlplane.stop()
            until = time.monotonic() + 6  # past the renewals due at ~5 s, before expiry
            statuses = set()
            while time.monotonic() < until:
                statuses.add(call())
                time.sleep(0.05)
        assert statuses == {200}
        assert "workload certificate renewal failed" in client.logs()
        assert "the current one expires in" in client.logs()
