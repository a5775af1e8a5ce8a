"""End to end: the e-commerce demo of `make run` under `remora up` — the gateway's canary split
(VirtualService weights 90/10), the header rule (x-user-type: tester → v2) and an order that
crosses three services through their sidecars; `remora down` leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from remora.runner.ports import free_port
from tests.e2e.meshkit import REMORA, wait_for

pytestmark = pytest.mark.timeout(120)

DEMO = Path(__file__).resolve().parents[2] / "examples" / "ecommerce"
GATEWAY = "http://127.0.0.1:8080"


def remora(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REMORA, *args], capture_output=True, text=True, timeout=90,
                          check=False)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


ROOT = os.geteuid() == 0 and shutil.which("iptables-restore") is not None


@pytest.fixture(scope="module", params=[
    pytest.param("namespace", marks=pytest.mark.skipif(
        not ROOT, reason="pods with their own network need root and iptables (CI has both)")),
    "host"])
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Path]:
    """The demo unchanged in both network modes: pods with their own network, captured by
    their sidecars, and apps on 127.0.0.1 reaching the mesh through http_proxy."""
    state = tmp_path_factory.mktemp("demo") / "state"
    started = remora("up", "-f", str(DEMO), "--detach", "--state-dir", str(state),
                     "--controlplane-port", str(free_port()), "--timeout", "60",
                     "--network", request.param)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield state
    finally:
        remora("down", "--state-dir", str(state))


def test_canary_split_and_header_rule(demo: Path) -> None:
    """VirtualService product: x-user-type: tester → v2 first, else weights 90/10 (istio.io
    VirtualService HTTPRouteDestination weight)."""
    with httpx.Client(base_url=GATEWAY, timeout=10) as client:
        # a ready pod takes traffic once its endpoint has reached the gateway, as in
        # Kubernetes: wait until both subsets answer there (v2 by the header rule)
        wait_for(lambda: all(client.get("/api/products/1", headers=h).status_code == 200
                             for h in ({}, {"x-user-type": "tester"})), timeout=15)
        versions = Counter(client.get("/api/products/1").json()["version"] for _ in range(300))
        testers = {client.get("/api/products/1", headers={"x-user-type": "tester"}).json()
                   ["version"] for _ in range(20)}
    assert set(versions) <= {"v1", "v2"}
    assert 10 <= versions["v2"] <= 56, versions  # 10 % of 300, ±5 sigma
    assert testers == {"v2"}


def test_an_order_crosses_the_mesh(demo: Path) -> None:
    order = httpx.post(f"{GATEWAY}/api/orders", timeout=10,
                       json={"userId": 1, "productId": 1, "quantity": 2}).json()
    assert order["status"] == "paid"
    assert order["user"]["id"] == 1 and order["payment"]["status"] == "approved"


def test_remora_exec_calls_a_service_from_inside_a_pod(demo: Path) -> None:
    """`remora exec POD -- CMD` as `kubectl exec`: curl by service name from inside order's
    pod goes through its sidecar (captured, or through http_proxy in the host network)."""
    called = remora("exec", "order-v1", "--state-dir", str(demo), "--", "curl", "-s",
                    "--max-time", "10", "http://user:8080/api/users/1")
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["id"] == 1


def pids_in(status: object) -> list[int]:
    """Every "pid" in `remora status -o json` (control plane, apps, sidecars, gateways)."""
    if isinstance(status, dict):
        found = [status["pid"]] if isinstance(status.get("pid"), int) else []
        return found + [pid for value in status.values() for pid in pids_in(value)]
    if isinstance(status, list):
        return [pid for value in status for pid in pids_in(value)]
    return []


def test_status_then_down_leaves_no_process(tmp_path: Path) -> None:
    """A second mesh beside the module's demo (its workloads only: the gateway's port 8080 is
    taken): `remora status -o json` names every process, `remora down` stops them all."""
    state = tmp_path / "state"
    started = remora("up", "-f", str(DEMO / "workloads.yaml"), "-f", str(DEMO / "config.yaml"),
                     "--detach", "--state-dir", str(state),
                     "--controlplane-port", str(free_port()), "--timeout", "60")
    assert started.returncode == 0, started.stdout + started.stderr
    status = remora("status", "-o", "json", "--state-dir", str(state))
    assert status.returncode == 0, status.stderr
    pids = pids_in(json.loads(status.stdout))
    assert len(pids) >= 11  # control plane, 5 apps, 5 sidecars
    assert all(alive(pid) for pid in pids)
    down = remora("down", "--state-dir", str(state))
    assert down.returncode == 0, down.stderr
    assert not any(alive(pid) for pid in pids)
