"""End to end: the mesh config (ConfigMap istio-system/istio, key `mesh`) changes what a real
sidecar does, as Istio's MeshConfig does: outboundTrafficPolicy ALLOW_ANY (the default) lets a
request to a host the registry does not know through to that host, REGISTRY_ONLY answers 502;
accessLogFile turns the access log on."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.meshkit import (
    REMORA,
    ControlPlaneProcess,
    EchoServer,
    echo_servers,
    run_controlplane,
    run_proxy,
    service_yaml,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)


def mesh_configmap(text: str) -> str:
    body = "".join(f"    {line}\n" for line in text.splitlines())
    return ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\n"
            f"data:\n  mesh: |\n{body}---\n")


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, EchoServer]]:
    with echo_servers("reviews", "outside") as servers:
        yield servers


def write_config(tmp: Path, upstreams: dict[str, EchoServer], mesh: str) -> Path:
    config = tmp / "config"
    config.mkdir()
    reviews = upstreams["reviews"].port
    (config / "mesh.yaml").write_text(
        mesh_configmap(mesh) + service_yaml("reviews", reviews, [(reviews, {"app": "reviews"})]))
    return config


def test_allow_any_passes_unknown_hosts_through(upstreams: dict[str, EchoServer],
                                                tmp_path: Path) -> None:
    """ALLOW_ANY (the default): "outbound traffic to unknown destinations will be allowed" —
    to the destination the request names, on a port a service uses or not."""
    config = write_config(tmp_path, upstreams, "accessLogFile: /dev/stdout\n"
                                               "accessLogEncoding: JSON")
    outside = upstreams["outside"].port
    with run_proxy(config, tmp=tmp_path) as proxy:
        answer = httpx.get(f"{proxy.url}/x", headers={"host": f"127.0.0.1:{outside}"}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["upstream"] == "outside"
        reviews = upstreams["reviews"].port
        known = httpx.get(f"{proxy.url}/x", headers={"host": f"reviews:{reviews}"}, timeout=10)
        assert known.json()["upstream"] == "reviews"
        deadline = time.monotonic() + 10  # the log is flushed once a second
        while time.monotonic() < deadline and len(access_lines(proxy.logs())) < 2:
            time.sleep(0.1)
        lines = access_lines(proxy.logs())
    assert [(entry["upstream_cluster"], entry["response_code"]) for entry in lines] == [
        ("PassthroughCluster", 200),
        (f"outbound|{reviews}||reviews.default.svc.cluster.local", 200),
    ]


def access_lines(logs: str) -> list[dict[str, object]]:
    """The JSON access log lines (accessLogEncoding: JSON) among the proxy's output."""
    return [json.loads(line) for line in logs.splitlines()
            if line.startswith("{") and '"upstream_cluster"' in line]


def test_registry_only_answers_502_for_unknown_hosts(upstreams: dict[str, EchoServer],
                                                     tmp_path: Path) -> None:
    """REGISTRY_ONLY: only services of the registry (and ServiceEntries); Istio's block_all
    route answers 502 and nothing reaches the unknown host."""
    config = write_config(tmp_path, upstreams, "outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
                                               "accessLogFile: /dev/stdout\n"
                                               "accessLogEncoding: JSON")
    outside = upstreams["outside"]
    before = outside.hits
    with run_proxy(config, tmp=tmp_path) as proxy:
        blocked = httpx.get(f"{proxy.url}/x", headers={"host": f"127.0.0.1:{outside.port}"},
                            timeout=10)
        assert blocked.status_code == 502
        reviews = upstreams["reviews"].port
        known = httpx.get(f"{proxy.url}/x", headers={"host": f"reviews:{reviews}"}, timeout=10)
        assert known.status_code == 200
        # as `curl -x` sends it (absolute form): logged by its path, as Envoy splits it
        via_proxy = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-x", proxy.url,
             f"http://127.0.0.1:{outside.port}/absolute?q=1"],
            capture_output=True, text=True, timeout=30, check=True)
        assert via_proxy.stdout == "502"
        wait_for(lambda: len(access_lines(proxy.logs())) >= 3, timeout=10)
        lines = access_lines(proxy.logs())
    assert outside.hits == before
    assert [(entry["path"], entry["route_name"]) for entry in lines] == [
        ("/x", "block_all"), ("/x", "default"), ("/absolute?q=1", "block_all")]
    assert all(entry["request_id"] for entry in lines)  # local replies too, as Envoy's


def remora_apply(plane: ControlPlaneProcess, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REMORA, "apply", "-f", str(path), "--server", plane.url],
                          capture_output=True, text=True, timeout=30, check=False,
                          env={**os.environ, "REMORA_CREDENTIALS": str(plane.credentials)})


def test_mesh_config_through_the_control_plane(upstreams: dict[str, EchoServer],
                                               tmp_path: Path) -> None:
    """istiod reads ConfigMap istio in its namespace and pushes what follows from it: an
    invalid mesh config is refused with its file:line and field path, what Remora does not act
    on is a warning, and a change reaches the proxies already connected."""
    config = write_config(tmp_path, upstreams, "enableTracing: true")
    outside = upstreams["outside"].port
    bad = tmp_path / "bad.yaml"
    bad.write_text(mesh_configmap("outboundTrafficPolicy: {mode: NOPE}"))
    with run_controlplane(tmp_path) as plane:
        applied = remora_apply(plane, config)
        assert applied.returncode == 0, applied.stderr
        assert "data.mesh.enableTracing is not enforced by Remora" in applied.stderr
        refused = remora_apply(plane, bad)
        assert refused.returncode != 0
        assert str(bad) in refused.stderr and "Invalid" in refused.stderr  # 422, as kubectl's
        assert "data.mesh.outboundTrafficPolicy.mode: must be one of" in refused.stderr
        assert "Traceback" not in refused.stderr
        with run_proxy(tmp_path, tmp=tmp_path, controlplane=plane.url) as proxy:
            def status() -> int:
                return httpx.get(f"{proxy.url}/x", headers={"host": f"127.0.0.1:{outside}"},
                                 timeout=10).status_code
            assert status() == 200  # ALLOW_ANY, the default
            (config / "mesh.yaml").write_text(
                mesh_configmap("outboundTrafficPolicy: {mode: REGISTRY_ONLY}"))
            assert remora_apply(plane, config / "mesh.yaml").returncode == 0
            wait_for(lambda: status() == 502, timeout=10)
