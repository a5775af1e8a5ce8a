"""`remora up` carries out the replicas the control plane holds, and reports them as kubectl does.

Kubernetes semantics checked (kubernetes.io, "Deployments": a changed spec.replicas is carried
out and `kubectl get deploy` shows READY ready/desired, UP-TO-DATE, AVAILABLE; "Horizontal Pod
Autoscaling": the HPA scales its target through the scale subresource, so spec.replicas is what
it decided, and `kubectl get hpa` shows TARGETS current/target and REPLICAS).
"""

from __future__ import annotations

import json
import re

from tests.e2e.test_up import (
    HPA_MESH,
    Up,
    remora,
    steady_load,
    up,
    wait_for,
    wait_for_every_pod_to_answer,
)

__all__ = ["up"]  # the fixture

FRONT = '''
apiVersion: apps/v1
kind: Deployment
metadata: {name: front}
spec:
  replicas: %d
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
'''


ECHO_3 = '''
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 3
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
'''


def start(up: Up, *extra: str) -> str:
    started = remora("up", "-f", str(up.mesh), *up.args(), "--controlplane-port",
                     str(up.cp_port), "--detach", *extra)
    assert started.returncode == 0, started.stdout + started.stderr
    up.trust_the_mesh()
    return up.controlplane_url()


def table(server: str, *args: str) -> list[list[str]]:
    """`remora get ...` as rows of cells (the header first)."""
    result = remora("get", *args, "--server", server)
    assert result.returncode == 0, result.stderr
    return [line.split() for line in result.stdout.splitlines()]


def test_applied_replicas_are_carried_out_and_shown(up: Up) -> None:
    server = start(up)
    assert table(server, "deploy")[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    wait_for(lambda: table(server, "deploy", "front")[1][1:4] == ["1/1", "1", "1"],
             timeout=10, what="front 1/1")

    (up.mesh / "front.yaml").write_text(FRONT % 2)
    applied = remora("apply", "-f", str(up.mesh / "front.yaml"), "--server", server)
    assert applied.stdout.strip() == "deployment.apps/front configured", applied.stderr
    wait_for(lambda: [p["ready"] for p in up.pods("front")] == [True, True], timeout=30,
             what="two ready front pods")
    wait_for(lambda: table(server, "deploy", "front")[1][1:4] == ["2/2", "2", "2"],
             timeout=10, what="get deploy: front 2/2")
    gateway = up.gateway_url()
    wait_for_every_pod_to_answer(up, gateway, "front")  # both take traffic

    (up.mesh / "front.yaml").write_text(FRONT % 1)
    remora("apply", "-f", str(up.mesh / "front.yaml"), "--server", server)
    wait_for(lambda: len(up.pods("front")) == 1, timeout=30, what="back to one front pod")
    wait_for(lambda: table(server, "deploy", "front")[1][1:4] == ["1/1", "1", "1"],
             timeout=10, what="get deploy: front 1/1")
    status = remora("get", "deploy", "front", "-o", "json", "--server", server).stdout
    assert '"type": "Available"' in status and '"readyReplicas": 1' in status

    # the runner wrote that status, yet may not change the Deployment itself
    creds = json.loads((up.state / "credentials" / "remora-runner.json").read_text())
    login = up.http.post(f"{server}/nacos/v1/auth/login", data={
        "username": creds["username"], "password": creds["password"]})
    runner = {"Authorization": f"Bearer {login.json()['accessToken']}"}
    item = f"{server}/apis/apps/v1/namespaces/default/deployments/front"
    current = up.http.get(item + "/status", headers=runner)
    assert current.status_code == 200
    assert up.http.put(item, headers=runner, json=current.json()).status_code == 403
    assert up.http.put(item + "/status", headers=runner, json=current.json()).status_code == 200


def test_the_hpa_writes_spec_replicas_and_its_status(up: Up) -> None:
    (up.mesh / "mesh.yaml").write_text(HPA_MESH)
    server = start(up, "--hpa-interval", "1")
    gateway = up.gateway_url()
    with steady_load(gateway):
        wait_for(lambda: [p["ready"] for p in up.pods("echo")] == [True] * 3, timeout=30,
                 what="three ready pods")
        wait_for(lambda: table(server, "deploy", "echo")[1][1:4] == ["3/3", "3", "3"],
                 timeout=10, what="get deploy: echo 3/3")
        hpa = table(server, "hpa", "echo")
        assert hpa[0] == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS",
                          "AGE"]
        name, reference, targets, low, high, replicas, _ = hpa[1]
        assert (name, reference, low, high, replicas) == ("echo", "Deployment/echo", "1", "3",
                                                          "3")
        assert re.fullmatch(r"\d+[mk]?/5", targets), targets  # measured, not <unknown>
        described = remora("get", "hpa", "echo", "-o", "json", "--server", server).stdout
        assert '"desiredReplicas": 3' in described and '"lastScaleTime"' in described
        assert '"reason": "TooManyReplicas"' in described  # the load asks for more than 3
    wait_for(lambda: len(up.pods("echo")) == 1, timeout=30, what="scale-down to minReplicas")
    wait_for(lambda: table(server, "deploy", "echo")[1][1] == "1/1", timeout=10,
             what="get deploy: echo 1/1")
    # the HPA's status says so at its next run (every second here)
    wait_for(lambda: table(server, "hpa", "echo")[1][5] == "1", timeout=10,
             what="get hpa: echo REPLICAS 1")

    # replicas applied by hand: the HPA that owns the workload writes its own count back
    (up.mesh / "echo.yaml").write_text(ECHO_3)
    applied = remora("apply", "-f", str(up.mesh / "echo.yaml"), "--server", server)
    assert applied.stdout.strip() == "deployment.apps/echo configured", applied.stderr
    wait_for(lambda: "autoscaler default/echo: echo 3 -> 1" in
             (up.state / "supervisor.log").read_text(), timeout=20,
             what="the HPA to scale echo back from 3 to 1")
    wait_for(lambda: table(server, "deploy", "echo")[1][1] == "1/1" and
             len(up.pods("echo")) == 1, timeout=30, what="echo back at 1/1")
