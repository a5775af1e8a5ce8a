"""What `remora status` says about a running mesh, and how a mesh run in the foreground (or by
`make run`) ends when `remora down` stops it from another terminal.

Envoy's vocabulary (envoyproxy.io, "Access logging", response flags): a gateway with no healthy
endpoint for a route answers 503 with flag UH; kubernetes.io "Pod Lifecycle": a container's
last termination is reported with its exit code or signal.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import httpx

from tests.e2e.meshkit import REMORA
from tests.e2e.test_up import APP, MESH, Up, remora, up, wait_for

__all__ = ["up"]  # the fixture

ROOT = Path(__file__).resolve().parents[2]
TOGGLE = '        elif self.path == "/toggle":'
EXITING_APP = APP.replace(TOGGLE, '''\
        elif self.path.startswith("/exit/"):
            os._exit(int(self.path[6:]))
        elif self.path == "/hog":  # 300 MB, written (so resident), kept
            READY.append(b"x" * (300 << 20))
''' + TOGGLE)
FRONT_PORTS = "        ports: [{containerPort: 8080}]\n"
LIMITED = MESH.replace(FRONT_PORTS, FRONT_PORTS + "        resources: {limits: {memory: 100Mi}}\n")
GHOST_ROUTE = "http: [{route: [{destination: {host: front, port: {number: 8080}}}]}]"
WITH_GHOST = MESH.replace(GHOST_ROUTE, "http: [{match: [{uri: {prefix: /ghost}}], route: "
                          "[{destination: {host: ghost, port: {number: 7070}}}]}, "
                          "{route: [{destination: {host: front, port: {number: 8080}}}]}]") + '''
---
apiVersion: v1
kind: Service
metadata: {name: ghost}
spec:
  selector: {app: ghost}
  ports: [{name: http, port: 7070}]
'''
assert GHOST_ROUTE in MESH and TOGGLE in APP and FRONT_PORTS in MESH


def start(up: Up) -> None:
    started = remora("up", "-f", str(up.mesh), *up.args(), "--controlplane-port",
                     str(up.cp_port), "--detach", "--network", "host")  # apps at local ports
    assert started.returncode == 0, started.stdout + started.stderr


def status_line(up: Up, name: str) -> str:
    """The row of `remora status` that starts with `name`."""
    result = remora("status", *up.args())
    assert result.returncode == 0, result.stderr
    return next((line for line in result.stdout.splitlines() if line.strip().startswith(name)),
                "")


def rps(line: str) -> float | None:
    """The REQ/S cell of an instance row (after NAME WORKLOAD READY STATUS RESTARTS LAST EXIT;
    then ERRORS, IP, PORTS)."""
    found = re.search(r"\s(-|\d+\.\d)\s+(-|\d+)(?: \([^)]*\))?\s+[\d.]+\s+app ", line)
    assert found, line
    return None if found[1] == "-" else float(found[1])


def test_status_counts_the_gateways_503s_and_real_rates(up: Up) -> None:
    (up.mesh / "mesh.yaml").write_text(WITH_GHOST)
    start(up)
    gateway = up.gateway_url()
    answers = [up.http.get(gateway + "/ghost") for _ in range(20)]
    assert {(a.status_code, a.text) for a in answers} == {(503, "no healthy upstream")}
    name = up.status()["gateways"][0]["name"]
    wait_for(lambda: re.search(r"\s20 \(503 UH\)\s", status_line(up, name)), timeout=10,
             what="the gateway's 20 503 UH in remora status")

    front = up.pods("front")[0]["name"]
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(trust_env=False, timeout=10) as client:
            while not stop.is_set():
                client.get(gateway + "/")

    loader = threading.Thread(target=load)
    loader.start()
    try:
        wait_for(lambda: (rps(status_line(up, front)) or 0) > 1, timeout=10,
                 what="front's requests per second")
    finally:
        stop.set()
        loader.join()
    wait_for(lambda: rps(status_line(up, front)) == 0.0, timeout=30,
             what="front's rate back to 0.0 once the load stopped (not a stale figure)")


def test_status_shows_why_an_app_last_exited(up: Up) -> None:
    """front's container has resources.limits.memory 100Mi: beyond it the app is OOMKilled."""
    (up.mesh / "app.py").write_text(EXITING_APP)
    (up.mesh / "mesh.yaml").write_text(LIMITED)
    start(up)
    front = up.pods("front")[0]
    with contextlib.suppress(httpx.HTTPError):  # it exits before answering
        up.http.get(f"http://127.0.0.1:{front['ports']['app']['8080']}/exit/3")
    wait_for(lambda: "exited 3" in status_line(up, front["name"]), timeout=20,
             what="`exited 3` in the table")
    back = up.pods("back")[0]
    os.kill(back["app"]["pid"], signal.SIGKILL)
    wait_for(lambda: "killed by SIGKILL" in status_line(up, back["name"]), timeout=20,
             what="`killed by SIGKILL` in the table")
    assert [p["last_exit"] for p in up.pods("front")] == ["exited 3"]

    wait_for(lambda: up.pods("front")[0]["ready"], timeout=20, what="front restarted")
    with contextlib.suppress(httpx.HTTPError):  # killed while it allocates
        up.http.get(f"http://127.0.0.1:{front['ports']['app']['8080']}/hog")
    wait_for(lambda: "OOMKilled" in status_line(up, front["name"]), timeout=20,
             what="`OOMKilled` in the table")


def test_up_in_the_foreground_ends_when_down_runs_elsewhere(up: Up) -> None:
    process = subprocess.Popen(
        [*REMORA, "up", "-f", str(up.mesh), *up.args(), "--controlplane-port", str(up.cp_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: (up.state / "status.json").exists() and
                 up.status()["phase"] == "Ready", timeout=60, what="the mesh to be ready")
        stopped = remora("down", *up.args())
        assert stopped.returncode == 0, stopped.stderr
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert "stopping: apps, sidecars, gateways, control plane" in output


def test_make_run_says_the_mesh_was_stopped_when_down_runs_elsewhere(up: Up) -> None:
    env = {**os.environ, "REMORA_DEMO_DIR": str(up.mesh), "REMORA_DEMO_STATE": str(up.state),
           "REMORA_DEMO_CONTROLPLANE_PORT": str(up.cp_port), "REMORA_DEMO_LOAD_SECONDS": "0"}
    process = subprocess.Popen(["bash", str(ROOT / "scripts" / "run-demo.sh")], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")))
    reader.start()
    try:
        wait_for(lambda: any("The mesh keeps running" in line for line in lines), timeout=90,
                 what="run-demo.sh waiting: " + "".join(lines[-5:]))
        assert remora("down", *up.args()).returncode == 0
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        reader.join()
    assert process.returncode == 0, "".join(lines)
    assert any(line.startswith("The mesh was stopped") for line in lines), "".join(lines)
