"""End to end: upstream connection lifetime from DestinationRule connectionPool
(istio.io DestinationRule ConnectionPoolSettings: http.idleTimeout, tcp.maxConnectionDuration)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.meshkit import echo_servers, run_proxy, service_yaml

pytestmark = pytest.mark.timeout(60)

RULE = """\
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: pooled}}
spec:
  host: pooled
  trafficPolicy:
    connectionPool:
      http: {{idleTimeout: {idle}}}
      tcp: {{maxConnectionDuration: {duration}}}
"""


def host_counters(admin_url: str) -> dict[str, int]:
    data = httpx.get(f"{admin_url}/clusters?format=json", timeout=5).json()
    cluster = next(c for c in data["cluster_statuses"]
                   if c["name"] == "outbound|8000||pooled.default.svc.cluster.local")
    return cluster["hosts"][0]


def test_idle_upstream_connection_is_closed_after_idle_timeout(tmp_path: Path) -> None:
    with echo_servers("up") as servers:
        config = tmp_path / "config"
        config.mkdir()
        (config / "mesh.yaml").write_text(
            service_yaml("pooled", 8000, [(servers["up"].port, {})])
            + RULE.format(idle="1s", duration="1h"))
        with run_proxy(config, tmp=tmp_path) as proxy:
            assert httpx.get(f"{proxy.url}/", headers={"host": "pooled:8000"}).status_code == 200
            assert host_counters(proxy.admin_url)["cx_idle"] == 1
            deadline = time.monotonic() + 10
            while host_counters(proxy.admin_url)["cx_active"] and time.monotonic() < deadline:
                time.sleep(0.2)
            assert host_counters(proxy.admin_url)["cx_active"] == 0


def test_connection_past_max_duration_is_not_reused(tmp_path: Path) -> None:
    with echo_servers("up") as servers:
        config = tmp_path / "config"
        config.mkdir()
        (config / "mesh.yaml").write_text(
            service_yaml("pooled", 8000, [(servers["up"].port, {})])
            + RULE.format(idle="1h", duration="1s"))
        with run_proxy(config, tmp=tmp_path) as proxy, httpx.Client(base_url=proxy.url) as c:
            c.get("/", headers={"host": "pooled:8000"})
            c.get("/", headers={"host": "pooled:8000"})
            assert host_counters(proxy.admin_url)["cx_total"] == 1  # reused within 1 s
            time.sleep(1.2)
            c.get("/", headers={"host": "pooled:8000"})  # released past 1 s: closed after
            c.get("/", headers={"host": "pooled:8000"})
            assert host_counters(proxy.admin_url)["cx_total"] == 2
