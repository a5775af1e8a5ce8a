"""End to end: a proxy fed by the control plane follows changes, survives the control plane
going away (it keeps its last good snapshot, as an Envoy keeps its xDS config), and reconnects to
the next address it was given; the control plane reports which version each proxy runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from remora.runner.ports import free_port
from tests.e2e.meshkit import (
    EchoServer,
    echo_servers,
    run_controlplane,
    run_proxy,
    service_yaml,
    wait_for,
)

pytestmark = pytest.mark.timeout(90)

ROUTE = """\
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http: [{{route: [{{destination: {{host: reviews, subset: {subset}}}}}]}}]
"""


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, EchoServer]]:
    with echo_servers("v1", "v2") as servers:
        yield servers


def write_config(folder: Path, upstreams: dict[str, EchoServer], subset: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "mesh.yaml").write_text(
        service_yaml("reviews", 9080, [(upstreams["v1"].port, {"version": "v1"}),
                                       (upstreams["v2"].port, {"version": "v2"})])
        + ROUTE.format(subset=subset))
    return folder


def served(proxy_url: str) -> str:
    response = httpx.get(f"{proxy_url}/", headers={"host": "reviews:9080"}, timeout=5)
    return str(response.json()["upstream"]) if response.status_code == 200 else "error"


def test_changes_reach_the_proxy_and_it_acks(upstreams: dict[str, EchoServer],
                                             tmp_path: Path) -> None:
    with run_controlplane(tmp_path) as plane:
        plane.apply(write_config(tmp_path / "a", upstreams, "v1"))
        with run_proxy(tmp_path, tmp=tmp_path, controlplane=plane.url) as proxy:
            assert served(proxy.url) == "v1"
            plane.apply(write_config(tmp_path / "b", upstreams, "v2"))
            wait_for(lambda: served(proxy.url) == "v2", timeout=10)
            status = httpx.get(f"{plane.url}/api/remora/v1/proxies", headers=plane.headers,
                               timeout=5).json()
            assert len(status) == 1
            wait_for(lambda: httpx.get(f"{plane.url}/api/remora/v1/proxies",
                                       headers=plane.headers, timeout=5).json()[0]["synced"],
                     timeout=10)


def test_the_serving_proxy_loads_no_validation_or_yaml_machinery(
        upstreams: dict[str, EchoServer], tmp_path: Path) -> None:
    """Issue 13: its snapshot arrives compiled, so neither pydantic's core nor YAML's C loader
    is mapped into the process that serves (the PID `remora proxy` was started as)."""
    with run_controlplane(tmp_path) as plane:
        plane.apply(write_config(tmp_path / "a", upstreams, "v1"))
        with run_proxy(tmp_path, tmp=tmp_path, controlplane=plane.url) as proxy:
            assert served(proxy.url) == "v1"
            maps = Path(f"/proc/{proxy.process.pid}/maps").read_text()
            assert "uvloop" in maps  # the serving process itself, not a parent
            assert "pydantic_core" not in maps
            assert "_yaml" not in maps


def test_proxy_keeps_serving_without_a_control_plane_then_moves_to_the_next(
    upstreams: dict[str, EchoServer], tmp_path: Path,
) -> None:
    """Several addresses: when the first control plane dies the proxy serves its last snapshot
    and reconnects (with back-off) to the second one, which has the same state (data dir)."""
    second_port = free_port()
    with run_controlplane(tmp_path) as first:
        first.apply(write_config(tmp_path / "a", upstreams, "v1"))
        addresses = f"{first.url},http://127.0.0.1:{second_port}"
        with run_proxy(tmp_path, tmp=tmp_path, controlplane=addresses) as proxy:
            assert served(proxy.url) == "v1"
            first.stop()
            for _ in range(20):  # no control plane at all: the snapshot keeps serving
                assert served(proxy.url) == "v1"
            with run_controlplane(tmp_path, port=second_port) as second:
                second.apply(write_config(tmp_path / "b", upstreams, "v2"))
                deadline = time.monotonic() + 30
                while served(proxy.url) != "v2":
                    assert time.monotonic() < deadline, proxy.logs()
                    time.sleep(0.2)
