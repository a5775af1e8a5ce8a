"""The CLI against a running `remora up`, as a newcomer uses it: from the directory where `up`
ran, with no flags and no environment (kubectl finds its current context the same way), the
verbs an Istio user reaches for — get pods/all, describe, proxy-config, proxy-status, analyze.

One detached `remora up` (front -> back, behind a gateway) serves the whole module; HOME is a
fresh directory, so nothing is found but what `up` left in ./.remora/up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from remora.runner import procfs
from tests.integration.meshkit import REMORA, free_port
from tests.integration.test_up import APP, MESH


@dataclass
class Project:
    """A directory with a mesh in it, where `remora up` runs."""

    root: Path
    env: dict[str, str]

    def remora(self, *args: str, cwd: Path | None = None, stdin: str | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*REMORA, *args], cwd=cwd or self.root, input=stdin,
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**self.env, **(env or {})})

    def ok(self, *args: str, cwd: Path | None = None) -> str:
        done = self.remora(*args, cwd=cwd)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def status(self) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self.ok("status", "-o", "json"))
        return answer


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("project")
    (root / "mesh").mkdir()
    (root / "mesh" / "app.py").write_text(APP)
    (root / "mesh" / "mesh.yaml").write_text(MESH)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root / "home"),
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    mesh = Project(root, env)
    started = mesh.remora("up", "-f", "mesh", "-d", "--controlplane-port", str(free_port()))
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield mesh
    finally:
        recorded = root / ".remora" / "up" / "status.json"
        status = json.loads(recorded.read_text()) if recorded.exists() else {}
        mesh.remora("down")
        for instance in status.get("instances", []):  # nothing outlives the test
            for process in (instance["app"], instance["sidecar"]):
                if process.get("pid") and procfs.is_alive(process["pid"], process["started"]):
                    os.killpg(process["pid"], signal.SIGKILL)


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip()]


def test_get_and_apply_find_the_running_up_with_no_flags(project: Project) -> None:
    url = project.status()["controlplane"]["url"]
    assert not url.endswith(":8848")
    assert rows(project.ok("get", "vs"))[1][:3] == ["front", "web", "*"]
    sub = project.root / "mesh"  # a subdirectory finds it too, as git finds .git
    assert rows(project.ok("get", "svc", cwd=sub))[1][0] == "back"
    edited = project.root / "route.yaml"  # the newcomer's first edit-and-apply
    edited.write_text(MESH.split("---")[-1].replace("name: front}", "name: front2}"))
    assert project.ok("apply", "-f", str(edited)) == \
        "virtualservice.networking.istio.io/front2 created\n"
    assert [row[0] for row in rows(project.ok("get", "vs"))[1:]] == ["front", "front2"]
    project.ok("delete", "vs", "front2")
    # the environment wins over the state directory, the flag over both
    elsewhere = f"http://127.0.0.1:{free_port()}"
    moved = project.remora("get", "vs", env={"REMORA_CONTROLPLANE": elsewhere})
    assert moved.returncode == 1 and f"cannot reach the control plane at {elsewhere}" in \
        moved.stderr
    back = project.remora("get", "vs", "--controlplane", url,
                          env={"REMORA_CONTROLPLANE": elsewhere})
    assert back.returncode == 0, back.stderr


def test_get_pods_shows_kubectl_columns_for_each_pod_and_gateway(project: Project) -> None:
    table = rows(project.ok("get", "pods"))
    assert table[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    by_name = {row[0]: row for row in table[1:]}
    names = {i["name"] for i in project.status()["instances"]}
    assert len(names) == 3 and names <= set(by_name)
    for name in names:  # app + istio-proxy, as an injected pod
        assert by_name[name][1:4] == ["2/2", "Running", "0"]
    assert by_name["gateway-ingressgateway"][1:3] == ["1/1", "Running"]
    one = next(iter(sorted(names)))
    pod = json.loads(project.ok("get", "pod", one, "-o", "json"))
    assert pod["kind"] == "Pod" and pod["metadata"]["name"] == one
    assert [c["name"] for c in pod["status"]["containerStatuses"]][1] == "istio-proxy"
    listed = yaml.safe_load(project.ok("get", "po", "-o", "yaml"))
    assert {p["metadata"]["name"] for p in listed["items"]} >= names
    missing = project.remora("get", "pod", "nope")
    assert missing.returncode == 1
    assert 'Error from server (NotFound): pods "nope" not found' in missing.stderr


def test_get_all_lists_pods_services_deployments_as_kubectl(project: Project) -> None:
    sections = project.ok("get", "all").split("\n\n")
    assert rows(sections[0])[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows(sections[1])[0][:2] == ["NAME", "TYPE"]
    assert len(sections) == 3  # pods, services, deployments: empty kinds are left out
    names = [row[0] for section in sections for row in rows(section)[1:]]
    assert "service/back" in names and "deployment.apps/front" in names
    assert any(name.startswith("pod/back-") for name in names)
    kinds = {item["kind"] for item in json.loads(project.ok("get", "all", "-o", "json"))["items"]}
    assert kinds == {"Pod", "Service", "Deployment"}
