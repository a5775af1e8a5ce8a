"""`remora up` is mTLS by default, as a fresh Istio install: every sidecar and gateway gets a
workload certificate from the control plane's CA, sidecars talk mutual TLS to each other by
themselves (auto mTLS), and PeerAuthentication decides what a pod accepts.

The seeds' PeerAuthentication examples, in turn, on one running mesh (istio.io "Mutual TLS
Migration" and the PeerAuthentication reference): mesh-wide STRICT in the root namespace, a
namespace PERMISSIVE beneath it, a workload STRICT whose `portLevelMtls` DISABLEs its port —
seed 004's three documents as written (its "mTLS" section), for its `user-service`.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from remora.runner.netns import PROXY_UID, RUN_DIR
from remora.runner.podnet import ClusterNetwork
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
    _deployment("user-service", "user-service", "v1", 8080, account="user-sa"),
    _deployment("echo", "echo", "v1", 7000, script="echo.py"),
]) + textwrap.dedent('''
    apiVersion: v1
    kind: Service
    metadata: {name: echo}
    spec:
      selector: {app: echo}
      ports: [{name: tcp-echo, port: 7000}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: front}
    spec:
      selector: {app: front}
      ports: [{name: http, port: 8080}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: user-service}
    spec:
      selector: {app: user-service}
      ports: [{name: http, port: 8080}]
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
''')
# seed 004 (004_025b8d0e91e55d5b.txt, lines 3686-3721), as a user pastes it
MESH_STRICT = """\
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT  # 严格模式，所有流量必须使用mTLS
"""
NAMESPACE_PERMISSIVE = """\
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: default
  namespace: default
spec:
  mtls:
    mode: PERMISSIVE  # 宽容模式，允许明文和mTLS
"""
WORKLOAD_PORT_DISABLED = """\
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: user-service
  namespace: default
spec:
  selector:
    matchLabels:
      app: user-service
  mtls:
    mode: STRICT
  portLevelMtls:
    8080:
      mode: DISABLE  # 特定端口禁用mTLS
"""
FRONT_ID = "spiffe://cluster.local/ns/default/sa/front-sa"


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[NamespaceMesh]:
    running = NamespaceMesh(tmp_path, index=5, yaml=MESH + MESH_STRICT)
    yield running
    running.down()
    assert_nothing_left(running.state)


def plain_get(url: str) -> httpx.Response | None:
    """A plain-text GET from the host; None when the connection is refused or cut."""
    try:
        return httpx.get(url, timeout=5, trust_env=False)
    except httpx.TransportError:
        return None


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "5", *args],
                          capture_output=True, text=True, timeout=20, check=False)


def apply(mesh: NamespaceMesh, tmp_path: Path, name: str, yaml: str) -> None:
    path = tmp_path / name
    path.write_text(yaml)
    applied = remora("apply", "-f", str(path), "--server", mesh.controlplane_url())
    assert applied.returncode == 0, applied.stdout + applied.stderr


def test_peer_authentication_levels_under_remora_up(mesh: NamespaceMesh, tmp_path: Path) -> None:
    assert (mesh.mesh / "app.py").read_text() == APP
    mesh.start()
    user = mesh.pod("user-service")
    direct = f"http://{user['ip']}:8080/"
    gateway = mesh.gateway()

    # the sidecar's identity token: a file only its user (Istio's 1337) reads
    token = RUN_DIR / ClusterNetwork.for_state(mesh.state).prefix / f"{user['name']}.token"
    assert (token.stat().st_mode & 0o777, token.stat().st_uid) == (0o600, PROXY_UID)

    # mesh-wide STRICT: the host's plain text never reaches user-service...
    assert plain_get(direct) is None
    # ...while a meshed pod's call does, and the app sees who called (Istio's XFCC)
    answer = mesh.http.get(gateway + "/call/user-service:8080").json()
    assert answer["got"]["pod"] == user["name"]
    xfcc = answer["got"]["xfcc"]
    assert xfcc.startswith("By=spiffe://cluster.local/ns/default/sa/user-sa;Hash=")
    assert xfcc.endswith(f"URI={FRONT_ID}")
    # the gateway has an identity too: it reached front over mTLS
    assert answer["xfcc"].endswith(
        "URI=spiffe://cluster.local/ns/default/sa/istio-ingressgateway-service-account")
    # a TCP client in a meshed pod reaches a STRICT TCP service: its sidecar relays in mTLS
    talk = ("import socket; s = socket.create_connection(('echo', 7000), timeout=5); "
            "s.sendall(b'ping\\n'); print(s.makefile().readline().strip())")
    tcp = remora("exec", mesh.pod("front")["name"], *mesh.args(), "--", "python3", "-c", talk)
    assert tcp.returncode == 0, tcp.stderr
    assert tcp.stdout.strip() == "echo ping"
    assert plain_get(f"http://{mesh.pod('echo')['ip']}:7000/") is None  # plain: refused

    # a TLS client from the host without a mesh certificate fails the handshake
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with pytest.raises((ssl.SSLError, ConnectionError)), \
            socket.create_connection((user["ip"], 8080), timeout=5) as raw, \
            context.wrap_socket(raw) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nhost: user-service\r\n\r\n")
        if tls.recv(100) == b"":
            raise ConnectionError("closed")
    # curl without a client certificate is refused, plain or TLS; with a certificate of the
    # mesh (`remora identity certificate`) it is served, and the app learns who it is
    server = ("--server", mesh.controlplane_url())
    certs = tmp_path / "tester"
    got = remora("identity", "certificate", "--sa", "tester", "--out", str(certs), *server)
    assert got.returncode == 0, got.stderr
    https = f"https://{user['ip']}:8080/"
    for args in ((direct,), ("-k", https)):
        assert curl(*args).returncode != 0
    served = curl("-k", "--cert", str(certs / "cert-chain.pem"), "--key", str(certs / "key.pem"),
                  https)
    assert served.returncode == 0, served.stderr
    assert json.loads(served.stdout)["xfcc"].endswith(
        "URI=spiffe://cluster.local/ns/default/sa/tester")
    # openssl: the server's certificate chains to the mesh's root
    handshake = subprocess.run(
        ["openssl", "s_client", "-connect", f"{user['ip']}:8080", "-cert",
         str(certs / "cert-chain.pem"), "-key", str(certs / "key.pem"), "-CAfile",
         str(certs / "root-cert.pem"), "-verify_return_error", "-brief"],
        input=b"", capture_output=True, timeout=20, check=False)
    assert b"Verification: OK" in handshake.stderr, handshake.stderr

    # what istioctl proxy-config secret and authn tls-check show
    listed = remora("get", "pods", "-o", "json", *server)
    front = next(item["metadata"]["name"] for item in json.loads(listed.stdout)["items"]
                 if item["metadata"]["labels"].get("app") == "front")
    secret = remora("proxy-config", "secret", front, *server)
    assert secret.returncode == 0, secret.stderr
    assert "Cert Chain   ACTIVE   true" in secret.stdout and FRONT_ID in secret.stdout
    check = remora("authn", "tls-check", front, "user-service", *server, "-o", "json")
    assert check.returncode == 0, check.stderr
    assert [(row["status"], row["server"], row["client"]) for row in json.loads(check.stdout)] \
        == [("OK", "STRICT", "ISTIO_MUTUAL")]
    sidecar_log = (mesh.state / "logs" / f"{user['name']}.sidecar.log").read_text()
    assert "refused: plain text to a port whose PeerAuthentication is STRICT" in sidecar_log

    # a namespace-wide PERMISSIVE overrides the mesh-wide STRICT: plain text and mTLS both
    apply(mesh, tmp_path, "permissive.yaml", NAMESPACE_PERMISSIVE)
    wait_for(lambda: plain_get(direct) is not None, timeout=20, what="PERMISSIVE to apply")
    assert plain_get(direct).json()["xfcc"] == ""  # type: ignore[union-attr]
    called = mesh.http.get(gateway + "/call/user-service:8080").json()
    assert called["got"]["xfcc"].endswith(FRONT_ID)

    # the workload's own STRICT with its port DISABLEd: plain only, even from front's sidecar
    # (auto mTLS sees the DISABLE and sends plain text, as pilot's mtlsChecker has it)
    apply(mesh, tmp_path, "user-service.yaml", WORKLOAD_PORT_DISABLED)
    wait_for(lambda: mesh.http.get(gateway + "/call/user-service:8080").json()["got"]["xfcc"] == "",
             timeout=20, what="the port-level DISABLE to apply")
    assert plain_get(direct) is not None

