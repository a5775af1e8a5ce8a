"""End to end: locality load balancing as Istio configures Envoy (istio.io "Locality failover"
and "Locality weighted distribution"): with outlierDetection the proxy's own locality takes
the traffic, then the same region, then the rest; `distribute` splits by weight."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.meshkit import EchoServer, echo_servers, run_proxy

pytestmark = pytest.mark.timeout(60)

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: geo}
spec:
  selector: {app: geo}
  ports: [{name: http, port: 8000, targetPort: 8000}]
"""

ENTRY = """\
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: geo-{name}}}
spec:
  address: 127.0.0.1
  labels: {{app: geo, instance: {name}}}
  locality: {locality}
  ports: {{http: {port}}}
"""

LOCALITIES = {"near": "us-east/zone1", "region": "us-east/zone2", "far": "us-west/zone1"}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, EchoServer]]:
    with echo_servers(*LOCALITIES) as servers:
        yield servers


def config(tmp: Path, upstreams: dict[str, EchoServer], rule: str) -> Path:
    folder = tmp / "config"
    folder.mkdir()
    text = SERVICE + "".join(
        ENTRY.format(name=name, locality=locality, port=upstreams[name].port)
        for name, locality in LOCALITIES.items()
    )
    (folder / "mesh.yaml").write_text(text + "---\n" + rule)
    return folder


def served(proxy_url: str, count: int, path: str = "/") -> Counter[str]:
    with httpx.Client(base_url=proxy_url, timeout=10) as client:
        return Counter(
            client.get(path, headers={"host": "geo:8000"}).json()["upstream"]
            for _ in range(count)
        )


FAILOVER = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: geo}
spec:
  host: geo
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s,
                       maxEjectionPercent: 100}
"""


def test_own_locality_first_then_same_region(
    upstreams: dict[str, EchoServer], tmp_path: Path
) -> None:
    """Priority 0 = same region/zone, 1 = same region, 2 = other regions (Istio default
    failover, active because outlierDetection is set)."""
    folder = config(tmp_path, upstreams, FAILOVER)
    with run_proxy(folder, "--locality", "us-east/zone1", tmp=tmp_path) as proxy:
        assert served(proxy.url, 20) == Counter({"near": 20})
        # the near instance fails once (a 503 passes through: 503 is not retried by default)
        # and outlier detection ejects it: traffic fails over within the region
        status = httpx.get(f"{proxy.url}/status/503", headers={"host": "geo:8000"}).status_code
        assert status == 503
        assert served(proxy.url, 20) == Counter({"region": 20})
        clusters = httpx.get(f"{proxy.admin_url}/clusters?format=json").json()
        geo = next(c for c in clusters["cluster_statuses"]
                   if c["name"] == "outbound|8000||geo.default.svc.cluster.local")
        flags = {h["address"]: h["health_flags"] for h in geo["hosts"]}
        assert flags[f"127.0.0.1:{upstreams['near'].port}"] == "/failed_outlier_check"
        stats = httpx.get(f"{proxy.admin_url}/stats/prometheus").text
        assert ('envoy_cluster_outlier_detection_ejections_active{cluster_name='
                '"outbound|8000||geo.default.svc.cluster.local"} 1') in stats


def test_without_outlier_detection_locality_is_ignored(
    upstreams: dict[str, EchoServer], tmp_path: Path
) -> None:
    """Istio applies locality failover only with outlierDetection: all hosts share the load."""
    rule = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n" \
           "metadata: {name: geo}\nspec: {host: geo}\n"
    folder = config(tmp_path, upstreams, rule)
    with run_proxy(folder, "--locality", "us-east/zone1", tmp=tmp_path) as proxy:
        assert set(served(proxy.url, 60)) == set(LOCALITIES)


def test_distribute_splits_by_locality_weight(
    upstreams: dict[str, EchoServer], tmp_path: Path
) -> None:
    rule = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: geo}
spec:
  host: geo
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute:
        - from: us-east/zone1/*
          to: {"us-east/zone1/*": 80, "us-west/zone1/*": 20}
"""
    folder = config(tmp_path, upstreams, rule)
    with run_proxy(folder, "--locality", "us-east/zone1", tmp=tmp_path) as proxy:
        counts = served(proxy.url, 300)
    assert counts["region"] == 0, json.dumps(counts)
    assert 195 <= counts["near"] <= 285, counts  # 80 % of 300, ±5 sigma
