"""`remora up` is mTLS by default, as a fresh Istio install: every sidecar and gateway gets a
workload certificate from the control plane's CA, sidecars talk mutual TLS to each other by
themselves (auto mTLS), and PeerAuthentication decides what a pod accepts.

The seeds' PeerAuthentication examples, in turn, on one running mesh (istio.io "Mutual TLS
Migration" and the PeerAuthentication reference): mesh-wide STRICT in the root namespace, a
namespace PERMISSIVE beneath it, a workload STRICT whose `portLevelMtls` DISABLEs its port.
"""

from __future__ import annotations

import json
import socket
import ssl
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_up_network import (
    APP,
    NamespaceMesh,
    _deployment,
    assert_nothing_left,
    remora,
    wait_for,
)
from tests.e2e.test_up_network import pytestmark as needs_root_network

pytestmark = [needs_root_network, pytest.mark.timeout(240)]

MESH = "".join([
    _deployment("front", "front", "v1", 8080, account="front-sa"),
    _deployment("back", "back", "v1", 9090, account="back-sa"),
]) + textwrap.dedent('''
    apiVersion: v1
    kind: Service
    metadata: {name: front}
    spec:
      selector: {app: front}
      ports: [{name: http, port: 8080}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: back}
    spec:
      selector: {app: back}
      ports: [{name: http, port: 9090}]
    ---
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: web}
    spec:
      selector: {istio: ingressgateway}
      servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: front}
    spec:
      hosts: ["*"]
      gateways: [web]
      http: [{route: [{destination: {host: front, port: {number: 8080}}}]}]
    ---
    apiVersion: security.istio.io/v1
    kind: PeerAuthentication
    metadata: {name: default, namespace: istio-system}
    spec:
      mtls: {mode: STRICT}
''')
NAMESPACE_PERMISSIVE = textwrap.dedent('''
    apiVersion: security.istio.io/v1
    kind: PeerAuthentication
    metadata: {name: default, namespace: default}
    spec:
      mtls: {mode: PERMISSIVE}
''')
BACK_PORT_DISABLED = textwrap.dedent('''
    apiVersion: security.istio.io/v1
    kind: PeerAuthentication
    metadata: {name: back, namespace: default}
    spec:
      selector: {matchLabels: {app: back}}
      mtls: {mode: STRICT}
      portLevelMtls:
        9090: {mode: DISABLE}
''')
FRONT_ID = "spiffe://cluster.local/ns/default/sa/front-sa"


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[NamespaceMesh]:
    running = NamespaceMesh(tmp_path, index=5, yaml=MESH)
    yield running
    running.down()
    assert_nothing_left(running.state)


def plain_get(url: str) -> httpx.Response | None:
    """A plain-text GET from the host; None when the connection is refused or cut."""
    try:
        return httpx.get(url, timeout=5, trust_env=False)
    except httpx.TransportError:
        return None


def apply(mesh: NamespaceMesh, tmp_path: Path, name: str, yaml: str) -> None:
    path = tmp_path / name
    path.write_text(yaml)
    applied = remora("apply", "-f", str(path), "--server", f"http://127.0.0.1:{mesh.cp_port}")
    assert applied.returncode == 0, applied.stdout + applied.stderr


def test_peer_authentication_levels_under_remora_up(mesh: NamespaceMesh, tmp_path: Path) -> None:
    assert (mesh.mesh / "app.py").read_text() == APP
    mesh.start()
    back = mesh.pod("back")
    direct = f"http://{back['ip']}:9090/"
    gateway = mesh.gateway()

    # mesh-wide STRICT: the host's plain text never reaches back's app...
    assert plain_get(direct) is None
    # ...while a meshed pod's call does, and the app sees who called (Istio's XFCC)
    answer = mesh.http.get(gateway + "/call/back:9090").json()
    assert answer["got"]["pod"] == back["name"]
    xfcc = answer["got"]["xfcc"]
    assert xfcc.startswith("By=spiffe://cluster.local/ns/default/sa/back-sa;Hash=")
    assert xfcc.endswith(f"URI={FRONT_ID}")
    # the gateway has an identity too: it reached front over mTLS
    assert answer["xfcc"].endswith(
        "URI=spiffe://cluster.local/ns/default/sa/istio-ingressgateway-service-account")
    # a TLS client from the host without a mesh certificate fails the handshake
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with pytest.raises((ssl.SSLError, ConnectionError)), \
            socket.create_connection((back["ip"], 9090), timeout=5) as raw, \
            context.wrap_socket(raw) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nhost: back\r\n\r\n")
        if tls.recv(100) == b"":
            raise ConnectionError("closed")
    # what istioctl proxy-config secret and authn tls-check show
    server = ("--server", f"http://127.0.0.1:{mesh.cp_port}")
    listed = remora("get", "pods", "-o", "json", *server)
    front = next(item["metadata"]["name"] for item in json.loads(listed.stdout)["items"]
                 if item["metadata"]["labels"].get("app") == "front")
    secret = remora("proxy-config", "secret", front, *server)
    assert secret.returncode == 0, secret.stderr
    assert "Cert Chain   ACTIVE   true" in secret.stdout and FRONT_ID in secret.stdout
    check = remora("authn", "tls-check", front, "back", *server, "-o", "json")
    assert check.returncode == 0, check.stderr
    assert [(row["status"], row["server"], row["client"]) for row in json.loads(check.stdout)] \
        == [("OK", "STRICT", "ISTIO_MUTUAL")]
    sidecar_log = (mesh.state / "logs" / f"{back['name']}.sidecar.log").read_text()
    assert "refused: plain text to a port whose PeerAuthentication is STRICT" in sidecar_log

    # a namespace-wide PERMISSIVE overrides the mesh-wide STRICT: plain text and mTLS both
    apply(mesh, tmp_path, "permissive.yaml", NAMESPACE_PERMISSIVE)
    wait_for(lambda: plain_get(direct) is not None, timeout=20, what="PERMISSIVE to apply")
    assert plain_get(direct).json()["xfcc"] == ""  # type: ignore[union-attr]
    assert mesh.http.get(gateway + "/call/back:9090").json()["got"]["xfcc"].endswith(FRONT_ID)

    # the workload's own STRICT with its port DISABLEd: plain only, even from front's sidecar
    # (auto mTLS sees the DISABLE and sends plain text, as pilot's mtlsChecker has it)
    apply(mesh, tmp_path, "back.yaml", BACK_PORT_DISABLED)
    wait_for(lambda: mesh.http.get(gateway + "/call/back:9090").json()["got"]["xfcc"] == "",
             timeout=20, what="the port-level DISABLE to apply")
    assert plain_get(direct) is not None

