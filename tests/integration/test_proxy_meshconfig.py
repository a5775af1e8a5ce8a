"""End to end: the mesh config (ConfigMap istio-system/istio, key `mesh`) changes what a real
sidecar does, as Istio's MeshConfig does: outboundTrafficPolicy ALLOW_ANY (the default) lets a
request to a host the registry does not know through to that host, REGISTRY_ONLY answers 502;
accessLogFile turns the access log on."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.meshkit import EchoServer, echo_servers, run_proxy, service_yaml

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
    config = write_config(tmp_path, upstreams, "outboundTrafficPolicy: {mode: REGISTRY_ONLY}")
    outside = upstreams["outside"]
    before = outside.hits
    with run_proxy(config, tmp=tmp_path) as proxy:
        blocked = httpx.get(f"{proxy.url}/x", headers={"host": f"127.0.0.1:{outside.port}"},
                            timeout=10)
        assert blocked.status_code == 502
        reviews = upstreams["reviews"].port
        known = httpx.get(f"{proxy.url}/x", headers={"host": f"reviews:{reviews}"}, timeout=10)
        assert known.status_code == 200
    assert outside.hits == before
