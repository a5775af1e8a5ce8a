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
from remora.runner.ports import free_port
from tests.e2e.meshkit import REMORA, run_controlplane, run_proxy, service_yaml
from tests.e2e.test_up import APP, MESH, wait_for


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
    # the host network: in a pod network the tables also list each Service's ClusterIP
    started = mesh.remora("up", "-f", "mesh", "-d", "--controlplane-port", str(free_port()),
                          "--network", "host")
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
    backs = rows(project.ok("get", "pods", "-l", "app=back"))[1:]
    assert len(backs) == 2 and all(row[0].startswith("back-") for row in backs)
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


RULES = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: back}
spec:
  host: back
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: back, labels: {team: shop}}
spec:
  hosts: [back]
  http:
  - match: [{uri: {prefix: /v1}}]
    route: [{destination: {host: back, subset: v1}}]
  - route: [{destination: {host: back}}]
"""


@pytest.fixture(scope="module")
def rules(project: Project) -> Iterator[None]:
    """A DestinationRule and a VirtualService for `back`, applied as a user would."""
    assert project.remora("apply", "-f", "-", stdin=RULES).returncode == 0
    yield
    project.remora("delete", "-f", "-", stdin=RULES)


def field(text: str, name: str) -> str:
    """The value of kubectl describe's `Name:   value` line."""
    line = next(line for line in text.splitlines() if line.startswith(f"{name}:"))
    return line.split(":", 1)[1].strip()


def test_describe_service_lists_its_endpoints_and_the_rules_that_apply(
        project: Project, rules: None) -> None:
    shown = project.ok("describe", "svc", "back")
    assert field(shown, "Name") == "back" and field(shown, "Namespace") == "default"
    assert field(shown, "Selector") == "app=back"
    assert field(shown, "Port") == "http  9090/TCP"
    backs = [i for i in project.status()["instances"] if i["workload"] == "back"]
    assert len(field(shown, "Endpoints").split(",")) == len(backs) == 2
    assert "VirtualService: back.default" in shown
    assert 'DestinationRule: back.default for "back"' in shown
    assert "Subsets: v1, v2" in shown and "ROUND_ROBIN" in shown
    front = project.ok("describe", "service", "front")  # routed to by the gateway's VS
    assert "VirtualService: front.default" in front and "No DestinationRules apply" in front


def test_describe_pod_deployment_and_istio_resources(project: Project, rules: None) -> None:
    pod = next(i["name"] for i in project.status()["instances"] if i["workload"] == "back")
    shown = project.ok("describe", "pod", pod)
    assert field(shown, "Name") == pod and field(shown, "Status") == "Running"
    assert field(shown, "Controlled By") == "Deployment/back"
    assert "  istio-proxy:" in shown and "Restart Count:" in shown
    assert "Service: back.default" in shown
    assert "Matching subsets: v1" in shown  # the pod is version v1: v2 does not match it
    deploy = project.ok("describe", "deploy", "back")
    assert field(deploy, "Replicas").startswith("2 desired | 2 total | 2 available")
    vs = project.ok("describe", "vs", "back")
    assert field(vs, "Kind") == "VirtualService" and field(vs, "Labels") == "team=shop"
    assert "Spec:\n  Hosts:\n    back\n  Http:" in vs and "Prefix: /v1" in vs
    missing = project.remora("describe", "pod", "nope")
    assert missing.returncode == 1 and 'pods "nope" not found' in missing.stderr


def test_proxy_config_shows_what_the_sidecar_runs(project: Project, rules: None) -> None:
    pod = next(i["name"] for i in project.status()["instances"] if i["workload"] == "front")

    def routes_ready() -> bool:
        table = rows(project.ok("proxy-config", "routes", pod))
        return any(row[-1] == "back.default" for row in table)
    wait_for(routes_ready, timeout=30, what="the VirtualService on the sidecar")
    routes = rows(project.ok("proxy-config", "routes", pod, "--name", "9090"))
    assert routes[0] == ["NAME", "DOMAINS", "MATCH", "VIRTUAL", "SERVICE"]
    assert ["9090", "back,", "back.default", "+", "2", "more...", "/v1*", "back.default"] in routes
    clusters = rows(project.ok("proxy-config", "clusters", pod))
    assert clusters[0] == ["SERVICE", "FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE",
                           "DESTINATION", "RULE"]
    assert ["back.default.svc.cluster.local", "9090", "v1", "outbound", "EDS",
            "back.default"] in clusters
    endpoints = rows(project.ok("proxy-config", "endpoints", pod, "--cluster",
                                "outbound|9090||back.default.svc.cluster.local"))
    assert endpoints[0] == ["ENDPOINT", "STATUS", "OUTLIER", "CHECK", "CLUSTER"]
    assert len(endpoints) == 3 and all(row[1:3] == ["HEALTHY", "OK"] for row in endpoints[1:])
    listeners = rows(project.ok("proxy-config", "listeners", pod))
    assert listeners[0] == ["ADDRESSES", "PORT", "MATCH", "DESTINATION"]
    assert any(row[-2:] == ["Route:", "9090"] for row in listeners)
    dumped = json.loads(project.ok("proxy-config", "clusters", pod, "-o", "json"))
    assert any(c["name"] == "outbound|9090|v1|back.default.svc.cluster.local" for c in dumped)
    gateway = rows(project.ok("proxy-config", "routes", "gateway-ingressgateway"))
    assert gateway[1][-1] == "front.default"
    unknown = project.remora("proxy-config", "routes", "nope")
    assert unknown.returncode == 1 and 'pods "nope" not found' in unknown.stderr


def test_proxy_status_names_pods_and_says_synced(project: Project, rules: None) -> None:
    pods = {i["name"] for i in project.status()["instances"]}

    def synced() -> list[list[str]] | None:
        table = rows(project.ok("proxy-status"))
        return table if len(table) == 5 and all(row[5] == "SYNCED" for row in table[1:]) \
            else None
    table = wait_for(synced, timeout=30, what="every proxy SYNCED")
    assert table[0][0] == "NAME"
    assert {row[0] for row in table[1:]} == {f"{pod}.default" for pod in pods} | {
        "gateway-ingressgateway.default"}
    one = sorted(pods)[0]
    shown = project.ok("proxy-status", one).splitlines()  # asked of the proxy itself too
    assert len(shown) == 5 and shown[1].split()[0] == f"{one}.default"
    assert [line.split()[:2] for line in shown[2:]] == [
        ["Clusters", "Match"], ["Listeners", "Match"], ["Routes", "Match"]]
    missing = project.remora("proxy-status", "nope")
    assert missing.returncode == 1 and "no connected proxy of pod nope.default" in missing.stderr


def test_analyze_without_files_reads_the_running_control_plane(project: Project,
                                                               rules: None) -> None:
    first = project.remora("analyze")  # subset v2 of `back` selects none of the running pods
    assert first.returncode == 79, first.stdout + first.stderr
    assert first.stdout.splitlines() == [
        "Error [IST0173] (DestinationRule default/back) The Subset v2 defined in the "
        "DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream)."]
    broken = RULES.split("---")[1].replace("name: back,", "name: broken,").replace(
        "subset: v1", "subset: v9")
    assert project.remora("apply", "-f", "-", stdin=broken).returncode == 0
    try:
        found = json.loads(project.remora("analyze", "-o", "json").stdout)
        seen = {(m["code"], m["origin"]) for m in found}
        assert ("IST0101", "VirtualService default/broken") in seen  # subset v9: no such
        assert ("IST0173", "DestinationRule default/back") in seen
        assert all("reference" not in m for m in found)  # stored objects: no file:line
    finally:
        project.remora("delete", "vs", "broken")
    project.remora("apply", "-f", "-", stdin=RULES.split("---", 1)[0].replace(
        ", {name: v2, labels: {version: v2}}", ""))
    assert "No validation issues found when analyzing namespace: default." in \
        project.ok("analyze")


def test_proxy_config_and_get_pods_reach_a_proxy_no_runner_started(tmp_path: Path) -> None:
    """A proxy started by hand (`remora proxy --controlplane`) reports its admin port: the
    control plane's proxies list is how the CLI finds it, with no `remora up` around."""
    with run_controlplane(tmp_path) as plane:
        manifest = tmp_path / "reviews.yaml"
        manifest.write_text(service_yaml("reviews", 9080, [(free_port(), {"version": "v1"})]))
        plane.apply(manifest)
        with run_proxy(tmp_path, "--workload", "productpage", tmp=tmp_path,
                       controlplane=plane.url) as proxy:
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
                   "REMORA_CONTROLPLANE": plane.url, "REMORA_CREDENTIALS": str(plane.credentials)}

            def cli(*args: str) -> str:
                done = subprocess.run([*REMORA, *args], cwd=tmp_path, env=env, text=True,
                                      capture_output=True, timeout=60, check=False)
                assert done.returncode == 0, done.stderr
                return done.stdout
            pod = f"productpage-{proxy.process.pid}"
            assert rows(cli("get", "pods"))[1][:3] == [pod, "1/1", "Running"]
            clusters = rows(cli("proxy-config", "clusters", f"{pod}.default"))
            assert ["reviews.default.svc.cluster.local", "9080", "-", "outbound", "EDS"] in \
                clusters
            assert rows(cli("proxy-status"))[1][0] == f"{pod}.default"
