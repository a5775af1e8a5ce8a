"""`remora up` end to end: a two-service mesh behind a gateway as real processes.

Kubernetes semantics checked (kubernetes.io, "Pod Lifecycle": restartPolicy Always restarts a
container that exits; "Configure Liveness, Readiness and Startup Probes": a pod that fails its
readiness probe is removed from the Service's endpoints and added back when it passes).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from remora.runner import procfs
from remora.runner.ports import free_port
from tests.e2e.meshkit import REMORA

APP = textwrap.dedent('''
    """GET / answers who serves; /call/HOST calls http://HOST/ through http_proxy;
    /toggle flips /ready between 200 and 503."""
    import json, os, urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    READY = [True]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            status, out = 200, {"name": os.environ["APP_NAME"], "pod": os.environ["POD_NAME"],
                                "cwd": os.getcwd(), "data": os.environ["DATA_DIR"]}
            if self.path.startswith("/call/"):
                with urllib.request.urlopen("http://" + self.path[6:] + "/", timeout=5) as r:
                    out["got"] = json.loads(r.read())
            elif self.path == "/toggle":
                READY[0] = not READY[0]
            elif self.path == "/ready" and not READY[0]:
                status = 503
            body = json.dumps(out).encode()
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
''')

MESH = textwrap.dedent('''
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: front}
    spec:
      replicas: 1
      selector: {matchLabels: {app: front}}
      template:
        metadata: {labels: {app: front, version: v1}}
        spec:
          containers:
          - name: front
            image: python:3.11
            command: [python3, app.py]
            env: [{name: APP_NAME, value: front}]
            ports: [{containerPort: 8080}]
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: back}
    spec:
      replicas: 2
      selector: {matchLabels: {app: back}}
      template:
        metadata: {labels: {app: back, version: v1}}
        spec:
          containers:
          - name: back
            image: python:3.11
            command: [python3, app.py]
            env: [{name: APP_NAME, value: back}]
            ports: [{containerPort: 9090, name: http}]
            readinessProbe:
              httpGet: {path: /ready, port: http}
              periodSeconds: 1
              failureThreshold: 1
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


@contextlib.contextmanager
def steady_load(gateway: str) -> Iterator[None]:
    """Requests to `gateway` back to back from a thread while the block runs (far above the
    HPA's 5 req/s per pod)."""
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(trust_env=False, timeout=10) as client:
            while not stop.is_set():
                client.get(gateway + "/")

    loader = threading.Thread(target=load)
    loader.start()
    try:
        yield
    finally:
        stop.set()
        loader.join()


def remora(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REMORA, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_every_pod_to_answer(up: Up, gateway: str, app: str) -> None:
    """A ready pod takes traffic once its endpoint has reached the gateway, as in Kubernetes:
    eventually, not at the moment it turns ready."""
    answered: set[str] = set()

    def every_pod_answers() -> bool:
        answered.update(up.http.get(gateway + "/").json()["pod"] for _ in range(6))
        return answered >= {p["name"] for p in up.pods(app)}

    wait_for(every_pod_answers, timeout=15, what=f"every ready {app} pod answering at {gateway}")


def all_pids(status: dict[str, Any]) -> list[int]:
    pids = [status["controlplane"]["process"]["pid"]]
    pids += [g["process"]["pid"] for g in status["gateways"]]
    for instance in status["instances"]:
        pids += [instance["app"]["pid"], instance["sidecar"]["pid"]]
    return pids


class Up:
    """A detached `remora up` in a temporary state directory."""

    def __init__(self, root: Path, *, app: str = APP, mesh: str = MESH) -> None:
        self.mesh = root / "mesh"
        self.mesh.mkdir()
        (self.mesh / "app.py").write_text(app)
        (self.mesh / "mesh.yaml").write_text(mesh)
        self.state = root / "state"
        self.cp_port = free_port()
        # the gateways (http) and the control plane (https, the mesh's root once it exists)
        self.tls = ssl.create_default_context()
        self.http = httpx.Client(trust_env=False, timeout=10, verify=self.tls)

    def args(self) -> tuple[str, ...]:
        return ("--state-dir", str(self.state))

    def trust_the_mesh(self) -> None:
        root = self.state / "controlplane" / "root-cert.pem"
        if root.exists():
            self.tls.load_verify_locations(cafile=str(root))

    def controlplane_url(self) -> str:
        """Where `remora up` serves its control plane (https, with the mesh's root)."""
        return str(self.status()["controlplane"]["url"])

    def status(self) -> dict[str, Any]:
        result = remora("status", "-o", "json", *self.args())
        assert result.returncode == 0, result.stderr
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer

    def pods(self, workload: str) -> list[dict[str, Any]]:
        return [i for i in self.status()["instances"] if i["workload"] == workload]

    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.status()['gateways'][0]['listen']['80']}"

    def start(self, *extra: str) -> subprocess.CompletedProcess[str]:
        """`remora up --detach`: its output, once the mesh is ready."""
        started = remora("up", "-f", str(self.mesh), *self.args(), "--controlplane-port",
                         str(self.cp_port), *extra, "--detach")
        assert started.returncode == 0, started.stdout + started.stderr
        self.trust_the_mesh()
        return started

    def down(self) -> None:
        """`remora down`, then kill whatever it left (nothing outlives a test)."""
        self.http.close()
        before = self.state / "status.json"
        recorded = json.loads(before.read_text()) if before.exists() else {}
        remora("down", *self.args())
        for instance in recorded.get("instances", []):
            for process in (instance["app"], instance["sidecar"]):
                if process.get("pid") and procfs.is_alive(process["pid"], process["started"]):
                    os.killpg(process["pid"], signal.SIGKILL)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    mesh = Up(tmp_path)
    yield mesh
    mesh.down()


def test_up_serves_restarts_and_down_leaves_nothing(up: Up) -> None:
    started = up.start("--network", "host")  # this test reaches apps at their local ports
    assert "ready in" in started.stdout and "(Gateway port 80)" in started.stdout
    status = up.status()
    assert status["phase"] == "Ready"
    assert [i["ready"] for i in status["instances"]] == [True, True, True]

    # through the gateway (privileged port 80 mapped, printed), then app → sidecar → Service
    gateway = up.gateway_url()
    front = up.http.get(gateway + "/").json()
    assert front["name"] == "front" and front["pod"].startswith("front-")
    assert front["cwd"] == str(up.mesh)  # cwd: the directory of the YAML file
    served = {up.http.get(gateway + "/call/back:9090").json()["got"]["pod"] for _ in range(8)}
    assert served == {pod["name"] for pod in up.pods("back")}

    # the resources are in the control plane: `remora get` works against it
    got = remora("get", "virtualservices", "--server", up.controlplane_url())
    assert "front" in got.stdout, got.stderr

    # every process has a user of its own that may do only its job (runner/accounts.py)
    assert_least_privilege(up, up.controlplane_url())

    # readiness: out of the Service's endpoints while /ready fails, back in when it passes
    victim = up.pods("back")[0]
    app_port = victim["ports"]["app"]["9090"]
    up.http.get(f"http://127.0.0.1:{app_port}/toggle")
    wait_for(lambda: not up.pods("back")[0]["ready"], timeout=10, what="not ready")

    def backs(count: int) -> set[str]:
        return {up.http.get(gateway + "/call/back:9090").json()["got"]["pod"]
                for _ in range(count)}

    wait_for(lambda: victim["name"] not in backs(4), timeout=10, what="the endpoint removed")
    assert victim["name"] not in backs(6)
    up.http.get(f"http://127.0.0.1:{app_port}/toggle")
    wait_for(lambda: up.pods("back")[0]["ready"], timeout=10, what="ready again")

    # kill -9 an app: restarted (restartPolicy Always), counted, ready again
    os.kill(victim["app"]["pid"], signal.SIGKILL)
    restarted = wait_for(
        lambda: next((p for p in up.pods("back") if p["name"] == victim["name"]
                      and p["restarts"] == 1 and p["ready"]), None),
        timeout=20, what="the killed app to be restarted")
    assert restarted["app"]["pid"] != victim["app"]["pid"] and restarted["app"]["alive"]
    assert restarted["last_exit"] == "killed by SIGKILL"

    # logs as kubectl logs -c takes them: the app's container by name, the sidecar as
    # istio-proxy (Istio's name for it); any other name is refused with the choices
    pod = up.pods("back")[0]["name"]
    assert "remora proxy ready" in remora("logs", pod, "-c", "istio-proxy", *up.args()).stdout
    assert remora("logs", pod, "-c", "back", *up.args()).stdout == \
        remora("logs", pod, *up.args()).stdout
    wrong = remora("logs", pod, "-c", "istio-prxy", *up.args())
    assert wrong.returncode == 1
    assert f"container istio-prxy is not valid for pod {pod}: choose one of: [back istio-proxy]" \
        in wrong.stderr

    # down: apps, sidecars, gateways, control plane, supervisor — no process left
    status = up.status()
    pids = {pid: "process" for pid in all_pids(status)} | {status["supervisor"]: "supervisor"}
    stopped = remora("down", *up.args())
    assert stopped.returncode == 0, stopped.stderr
    assert {pid: role for pid, role in pids.items() if procfs.is_alive(pid)} == {}
    assert remora("down", *up.args()).stdout.startswith("nothing runs")


def assert_least_privilege(up: Up, server: str) -> None:
    def token(user: str) -> dict[str, str]:
        creds = json.loads((up.state / "credentials" / f"{user}.json").read_text())
        assert (up.state / "credentials" / f"{user}.json").stat().st_mode & 0o777 == 0o600
        answer = up.http.post(f"{server}/nacos/v1/auth/login", data={
            "username": creds["username"], "password": creds["password"]})
        return {"Authorization": f"Bearer {answer.json()['accessToken']}"}

    sidecar, runner = token("remora-sidecar"), token("remora-runner")
    instance = {"serviceName": "back", "ip": "127.0.0.1", "port": "1"}
    for headers in (sidecar, token("remora-gateway-default")):
        assert up.http.get(f"{server}/api/v1/secrets", headers=headers).status_code == 403
        assert up.http.post(f"{server}/nacos/v1/ns/instance", params=instance,
                            headers=headers).status_code == 403
    assert up.http.post(f"{server}/nacos/v1/ns/instance", params={**instance,
                        "serviceName": "not-ours"}, headers=runner).status_code == 403
    assert up.http.get(f"{server}/apis/networking.istio.io/v1/virtualservices",
                       headers=runner).status_code == 403
    gateway_as_sidecar = up.http.post(f"{server}/api/remora/v1/discovery", headers=sidecar,
                                      json={"node": {"id": "x", "mode": "gateway"}})
    assert gateway_as_sidecar.status_code == 403


def test_up_refuses_invalid_yaml_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"
                   "spec:\n  replicas: -1\n  selector: {}\n  templat: {}\n")
    result = remora("up", "-f", str(bad), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 1
    assert f"{bad}:" in result.stderr
    assert not (tmp_path / "state").exists()


HPA_MESH = textwrap.dedent('''
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: echo}
    spec:
      selector: {matchLabels: {app: echo}}
      template:
        metadata: {labels: {app: echo}}
        spec:
          containers:
          - name: echo
            image: python:3.11
            command: [python3, app.py]
            env: [{name: APP_NAME, value: echo}]
            ports: [{containerPort: 8080}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: echo}
    spec:
      selector: {app: echo}
      ports: [{name: http, port: 8080}]
    ---
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    metadata: {name: echo}
    spec:
      scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: echo}
      minReplicas: 1
      maxReplicas: 3
      metrics:
      - type: Pods
        pods:
          metric: {name: requests_per_second}
          target: {type: AverageValue, averageValue: "5"}
      behavior:
        scaleDown: {stabilizationWindowSeconds: 2}
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
    metadata: {name: echo}
    spec:
      hosts: ["*"]
      gateways: [web]
      http: [{route: [{destination: {host: echo}}]}]
''')


def test_hpa_scales_on_requests_per_second_and_back(up: Up) -> None:
    """kubernetes.io, "Horizontal Pod Autoscaling": desired = ceil(current × metric / target),
    capped by maxReplicas; scale-down waits for the (here shortened) stabilization window."""
    (up.mesh / "mesh.yaml").write_text(HPA_MESH)
    up.start("--hpa-interval", "1")
    gateway = up.gateway_url()
    with steady_load(gateway):
        wait_for(lambda: [p["ready"] for p in up.pods("echo")] == [True] * 3, timeout=30,
                 what="three ready pods")
        wait_for_every_pod_to_answer(up, gateway, "echo")
        # A new pod's rate needs two samples an --hpa-interval apart, as metrics-server's does.
        wait_for(lambda: all(p["rps"] is not None for p in up.pods("echo")), timeout=10,
                 what="a request rate for every pod")
    wait_for(lambda: len(up.pods("echo")) == 1, timeout=20, what="scale-down to minReplicas")
