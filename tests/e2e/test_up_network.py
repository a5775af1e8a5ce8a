"""`remora up --network namespace`: pods with their own network, traffic captured as Istio's
istio-init rules capture it (istio.io, "Traffic Management / Architecture of sidecar traffic
interception"; Envoy's original destination listener filter).

Checked as a user would see it: an app that ignores http_proxy is still routed by a
VirtualService; a connection from the host to a pod's IP and app port arrives through the pod's
sidecar, never straight at the app; Service names resolve at their ClusterIPs with Kubernetes'
service variables set; `remora down` (and a crashed supervisor's next `down`) leaves the host's
network as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from remora.runner import procfs
from remora.runner.netns import leftovers
from remora.runner.podnet import ClusterNetwork
from remora.runner.ports import free_port
from tests.e2e.meshkit import REMORA

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("iptables-restore") is None or shutil.which("ip") is None,
    reason="network namespaces and iptables need root with iproute2 and iptables (CI has both)")

# Ignores http_proxy on purpose: urllib with no proxy handler, and a raw socket client.
APP = textwrap.dedent('''
    import json, os, socket, urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            out = {"name": os.environ["APP_NAME"], "version": os.environ["VERSION"],
                   "pod": os.environ["POD_NAME"], "ip": os.environ["POD_IP"],
                   "proxy": os.environ.get("http_proxy", ""),
                   "xfcc": self.headers.get("x-forwarded-client-cert", ""),
                   "service_env": {k: v for k, v in os.environ.items() if "_SERVICE_" in k}}
            if self.path.startswith("/call/"):
                with DIRECT.open("http://" + self.path[6:] + "/", timeout=5) as r:
                    out["got"] = json.loads(r.read())
            elif self.path.startswith("/raw/"):
                host, _, port = self.path[5:].partition(":")
                with socket.create_connection((host, int(port)), timeout=5) as s:
                    s.sendall(b"GET / HTTP/1.1\\r\\nHost: " + host.encode() +
                              b"\\r\\nConnection: close\\r\\n\\r\\n")
                    data = b""
                    while chunk := s.recv(65536):
                        data += chunk
                out["got"] = json.loads(data.split(b"\\r\\n\\r\\n", 1)[1])
            body = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
''')


# A TCP echo server (not HTTP): what a captured connection that is no HTTP must still reach.
ECHO = textwrap.dedent('''
    import os, socketserver

    class Echo(socketserver.StreamRequestHandler):
        def handle(self):
            while line := self.rfile.readline():
                self.wfile.write(b"echo " + line)

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer(("127.0.0.1", int(os.environ["PORT"])), Echo).serve_forever()
''')


def _deployment(name: str, app: str, version: str, port: int, *, annotations: str = "{}",
                script: str = "app.py", account: str = "default") -> str:
    return textwrap.dedent(f'''
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: {name}}}
        spec:
          replicas: 1
          selector: {{matchLabels: {{app: {app}, version: {version}}}}}
          template:
            metadata:
              labels: {{app: {app}, version: {version}}}
              annotations: {annotations}
            spec:
              serviceAccountName: {account}
              containers:
              - name: {app}
                image: python:3.11
                command: [python3, {script}]
                env: [{{name: APP_NAME, value: {app}}}, {{name: VERSION, value: {version}}}]
                ports: [{{containerPort: {port}, name: http}}]
        ---
    ''')


MESH = "".join([
    _deployment("front", "front", "v1", 8080),
    _deployment("back-v1", "back", "v1", 9090),
    _deployment("back-v2", "back", "v2", 9090),
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
    metadata: {name: back}
    spec:
      selector: {app: back}
      ports: [{name: http, port: 9090, targetPort: http}]
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: back}
    spec:
      host: back
      subsets:
      - {name: v1, labels: {version: v1}}
      - {name: v2, labels: {version: v2}}
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: back}
    spec:
      hosts: [back]
      http: [{route: [{destination: {host: back, subset: v2}}]}]
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
''')


REGISTRY_ONLY = textwrap.dedent('''
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: front}
    spec:
      workloadSelector: {labels: {app: front}}
      outboundTrafficPolicy: {mode: REGISTRY_ONLY}
''')


def wait_for(condition: Callable[[], object], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def remora(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REMORA, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def host_network() -> dict[str, Any]:
    """What `remora up` may change on the host: links, namespaces, routes, addresses, the
    host's own iptables rules, /etc/netns. Another run's (its names start with `rmr`, and it
    may come and go meanwhile) is left out: each test checks its own prefix is gone."""
    def out(*argv: str) -> list[str]:
        text = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
        return [line for line in text.splitlines() if "rmr" not in line]

    return {
        "links": sorted(name for name in os.listdir("/sys/class/net")
                        if not name.startswith("rmr")),
        "netns": out("ip", "netns", "list"),
        "routes": out("ip", "route", "show", "table", "all"),
        "addresses": out("ip", "-br", "addr"),
        "iptables": [line for line in out("iptables-save") if not line.startswith("#")],
        "etc_netns": sorted(name for name in os.listdir("/etc/netns") if "rmr" not in name)
        if os.path.isdir("/etc/netns") else [],
    }


def assert_nothing_left(state: Path) -> None:
    prefix = ClusterNetwork.for_state(state).prefix
    assert leftovers(prefix) == {"namespaces": [], "links": [], "etc": [], "run": []}


class NamespaceMesh:
    """A detached `remora up --network namespace` with its own CIDRs and state directory."""

    def __init__(self, root: Path, index: int, yaml: str = MESH) -> None:
        self.mesh = root / "mesh"
        self.mesh.mkdir()
        (self.mesh / "app.py").write_text(APP)
        (self.mesh / "echo.py").write_text(ECHO)
        (self.mesh / "mesh.yaml").write_text(yaml)
        self.state = root / "state"
        self.cp_port = free_port()
        # CIDRs of their own, so a mesh another test left running cannot collide
        self.cidrs = ("--pod-cidr", f"10.{200 + index}.0.0/16",
                      "--service-cidr", f"10.{210 + index}.0.0/16")
        self.http = httpx.Client(trust_env=False, timeout=10)

    def args(self) -> tuple[str, ...]:
        return ("--state-dir", str(self.state))

    def start(self) -> None:
        started = remora("up", "-f", str(self.mesh), *self.args(), "--controlplane-port",
                         str(self.cp_port), "--network", "namespace", *self.cidrs, "--detach")
        assert started.returncode == 0, started.stdout + started.stderr

    def controlplane_url(self) -> str:
        """Where `remora up` serves its control plane (https, with the mesh's root)."""
        return str(self.status()["controlplane"]["url"])

    def status(self) -> dict[str, Any]:
        result = remora("status", "-o", "json", *self.args())
        assert result.returncode == 0, result.stderr
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer

    def pod(self, workload: str) -> dict[str, Any]:
        return next(i for i in self.status()["instances"] if i["workload"] == workload)

    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.status()['gateways'][0]['listen']['80']}"

    def down(self) -> None:
        self.http.close()
        remora("down", *self.args())


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[NamespaceMesh]:
    before = host_network()
    running = NamespaceMesh(tmp_path, index=1)
    yield running
    running.down()
    assert host_network() == before
    assert_nothing_left(running.state)


def inbound_requests(pod: dict[str, Any]) -> int:
    """istio_requests_total of the pod's sidecar as the destination reported them."""
    text = httpx.get(f"http://{pod['ip']}:{pod['ports']['admin']}/stats/prometheus",
                     timeout=5).text
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("istio_requests_total{") and 'reporter="destination"' in line)


def test_captured_traffic_is_routed_and_nothing_reaches_an_app_around_its_sidecar(
        mesh: NamespaceMesh) -> None:
    mesh.start()
    status = mesh.status()
    assert status["network"]["mode"] == "namespace"
    front, back_v2 = mesh.pod("front"), mesh.pod("back-v2")
    # remora status -o json: per pod its IP, its app's ports, its sidecar's ports
    assert front["ip"].startswith("10.201.") and front["network"].endswith(front["name"])
    assert front["ports"]["app"] == {"8080": 8080}
    assert (front["ports"]["outbound"], front["ports"]["inbound"], front["ports"]["admin"]) == \
        (15001, 15006, 15000)

    gateway = mesh.gateway()
    answer = mesh.http.get(gateway + "/").json()
    assert answer["name"] == "front" and answer["proxy"] == ""  # no http_proxy in the pod
    assert answer["ip"] == front["ip"]
    # the app ignores http_proxy; its sidecar still applies the VirtualService (all to v2)
    versions = {mesh.http.get(gateway + "/call/back:9090").json()["got"]["version"]
                for _ in range(6)}
    assert versions == {"v2"}
    # the same by FQDN and with a raw TCP client that speaks HTTP/1.1 itself
    fqdn = mesh.http.get(gateway + "/call/back.default.svc.cluster.local:9090").json()
    assert fqdn["got"]["version"] == "v2"
    raw = mesh.http.get(gateway + "/raw/back:9090").json()
    assert raw["got"]["version"] == "v2"

    # Kubernetes' service variables, at the Services' ClusterIPs
    env = answer["service_env"]
    assert env["BACK_SERVICE_PORT"] == "9090" and env["BACK_SERVICE_HOST"].startswith("10.211.")
    assert env["FRONT_SERVICE_PORT_HTTP"] == "8080"
    hosts = remora("exec", front["name"], *mesh.args(), "--", "getent", "hosts",
                   "back.default.svc.cluster.local")
    assert hosts.returncode == 0, hosts.stderr
    assert hosts.stdout.split()[0] == env["BACK_SERVICE_HOST"]

    # from the host to the pod's IP and app port: through its sidecar (counted inbound)
    counted = inbound_requests(back_v2)
    direct = mesh.http.get(f"http://{back_v2['ip']}:9090/").json()
    assert direct["pod"] == back_v2["name"]
    deadline = time.monotonic() + 5
    while inbound_requests(back_v2) <= counted and time.monotonic() < deadline:
        time.sleep(0.1)
    assert inbound_requests(back_v2) == counted + 1

    # a TCP client that speaks no HTTP, to a TCP Service by name: relayed to an endpoint
    talk = ("import socket; s = socket.create_connection(('echo', 7000), timeout=5); "
            "s.sendall(b'ping\\n'); print(s.makefile().readline().strip())")
    tcp = remora("exec", front["name"], *mesh.args(), "--", "python3", "-c", talk)
    assert tcp.returncode == 0, tcp.stderr
    assert tcp.stdout.strip() == "echo ping"
    # and from the host to the echo pod's IP: through its sidecar's inbound relay
    echo = mesh.pod("echo")
    with socket.create_connection((echo["ip"], 7000), timeout=5) as conn:
        conn.sendall(b"pong\n")
        assert conn.makefile("rb").readline() == b"echo pong\n"

    # a Sidecar resource's outboundTrafficPolicy on captured traffic: REGISTRY_ONLY answers
    # a host the registry does not know with 502 (Istio's BlackHoleCluster), a known one works
    sidecar = mesh.mesh / "sidecar.yaml"
    sidecar.write_text(REGISTRY_ONLY)
    applied = remora("apply", "-f", str(sidecar), "--server", mesh.controlplane_url())
    assert applied.returncode == 0, applied.stderr
    unknown = ("import urllib.request, urllib.error; o = urllib.request.build_opener("
               "urllib.request.ProxyHandler({}))\ntry:\n o.open('http://10.123.45.67:9090/', "
               "timeout=5); print(200)\nexcept urllib.error.HTTPError as e: print(e.code)")

    def blocked() -> bool:
        run = remora("exec", front["name"], *mesh.args(), "--", "python3", "-c", unknown)
        return run.stdout.strip() == "502"

    wait_for(blocked, timeout=10, what="REGISTRY_ONLY to reach the front sidecar")
    assert mesh.http.get(gateway + "/call/back:9090").json()["got"]["version"] == "v2"

    # a pod whose sidecar dies loses its traffic until it is back: never sent around it
    os.kill(back_v2["sidecar"]["pid"], signal.SIGKILL)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{back_v2['ip']}:9090/", timeout=2)
    wait_for(lambda: (pod := mesh.pod("back-v2"))["ready"]
             and pod["sidecar"].get("pid") not in (None, back_v2["sidecar"]["pid"]),
             timeout=30, what="back-v2 ready again with a new sidecar")
    assert mesh.http.get(f"http://{back_v2['ip']}:9090/").json()["pod"] == back_v2["name"]

    # remora exec runs in the pod: its network, its sidecar capturing what it sends
    inside = remora("exec", front["name"], *mesh.args(), "--", "python3", "-c",
                    "import urllib.request, json; o = urllib.request.build_opener("
                    "urllib.request.ProxyHandler({})); "
                    "print(json.loads(o.open('http://back:9090/').read())['version'])")
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.strip() == "v2"


def test_a_cidr_over_a_host_route_is_refused_before_anything_starts(tmp_path: Path) -> None:
    before = host_network()
    mesh = NamespaceMesh(tmp_path, index=3)
    route = next(line.split()[0] for line in subprocess.run(
        ["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout.splitlines()
        if not line.startswith("default") and "rmr" not in line)
    refused = remora("up", "-f", str(mesh.mesh), *mesh.args(), "--network", "namespace",
                     "--pod-cidr", route, "--detach")
    assert refused.returncode == 1
    assert f"--pod-cidr {route} overlaps the host route" in refused.stderr
    assert "--network host" in refused.stderr and "Traceback" not in refused.stderr
    assert not (mesh.state / "supervisor.pid").exists()
    assert host_network() == before


def test_ctrl_c_of_a_foreground_up_leaves_nothing(tmp_path: Path) -> None:
    before = host_network()
    mesh = NamespaceMesh(tmp_path, index=4)
    process = subprocess.Popen(
        [*REMORA, "up", "-f", str(mesh.mesh), *mesh.args(), "--controlplane-port",
         str(mesh.cp_port), "--network", "namespace", *mesh.cidrs],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: (mesh.state / "status.json").exists()
                 and mesh.status()["phase"] == "Ready", timeout=60, what="the mesh ready")
        assert leftovers(mesh.status()["network"]["bridge"])["namespaces"]
        process.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0, out
        assert host_network() == before
        assert_nothing_left(mesh.state)
    finally:
        if process.poll() is None:
            process.kill()
        mesh.down()


def test_a_crashed_supervisor_leaves_nothing_after_down(tmp_path: Path) -> None:
    before = host_network()
    mesh = NamespaceMesh(tmp_path, index=2)
    try:
        mesh.start()
        status = mesh.status()
        found = leftovers(status["network"]["bridge"])
        assert found["links"] and len(found["namespaces"]) == len(status["instances"])
        supervisor = int((mesh.state / "supervisor.pid").read_text().split()[0])
        os.kill(supervisor, signal.SIGKILL)  # no stop in order: everything is left behind
        deadline = time.monotonic() + 5
        while procfs.is_alive(supervisor) and time.monotonic() < deadline:
            time.sleep(0.05)
        stopped = remora("down", *mesh.args())
        assert stopped.returncode == 0, stopped.stderr
        assert host_network() == before
        assert_nothing_left(mesh.state)
    finally:
        mesh.down()
