"""End to end, issue 11 items 3 and 4: one bad resource in the store (written straight into it,
past every check at the door, as an old release or another writer could have left it) does not
freeze the mesh - a running proxy follows a later VirtualService change, a new proxy starts,
and `remora proxy-status` and the resource's status show what was skipped and why; and what
Remora does not enforce is logged by the proxy once, not on every push."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from remora.registry.store.sqlite import SqliteStore
from tests.e2e.meshkit import (
    EchoServer,
    echo_servers,
    run_controlplane,
    run_proxy,
    wait_for,
)
from tests.e2e.test_proxy_controlplane import served
from tests.e2e.test_proxy_controlplane import write_config as write_route

pytestmark = pytest.mark.timeout(120)

BAD_KEY = "/resources/networking.istio.io/WorkloadEntry/default/reviews-bad-host"
BAD = {"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
       "metadata": {"name": "reviews-bad-host", "namespace": "default", "generation": 1},
       "spec": {"address": "bad_host!", "labels": {"app": "reviews", "version": "v1"},
                "ports": {"http": 9080}}}
DENY_ALL = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all}
spec: {action: DENY, rules: [{}]}
"""


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, EchoServer]]:
    with echo_servers("v1", "v2") as servers:
        yield servers


def write_config(folder: Path, upstreams: dict[str, EchoServer], subset: str) -> Path:
    """The reviews route of test_proxy_controlplane, plus a DENY policy nothing enforces."""
    folder = write_route(folder, upstreams, subset)
    (folder / "policy.yaml").write_text(DENY_ALL)
    return folder


def seed_bad_entry(data_dir: Path) -> None:
    """The control plane's SQLite store, before it starts, holding a resource no model accepts."""
    async def put() -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        store = await SqliteStore(data_dir / "remora.db").open()
        try:
            await store.put(BAD_KEY, json.dumps(BAD).encode())
        finally:
            await store.close()

    asyncio.run(put())


def remora(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "remora.cli.main", *args], capture_output=True,
                          text=True, timeout=30, check=False)


def test_a_bad_entry_in_the_store_never_blocks_the_rest(upstreams: dict[str, EchoServer],
                                                        tmp_path: Path) -> None:
    seed_bad_entry(tmp_path / "cp-data")
    with run_controlplane(tmp_path) as plane:
        plane.apply(write_config(tmp_path / "a", upstreams, "v1"))
        with run_proxy(tmp_path, tmp=tmp_path, controlplane=plane.url) as running:
            assert served(running.url) == "v1"
            plane.apply(write_config(tmp_path / "b", upstreams, "v2"))
            wait_for(lambda: served(running.url) == "v2", timeout=15,
                     message="the VirtualService change reached the running proxy")
            with run_proxy(tmp_path, tmp=tmp_path, controlplane=plane.url) as newcomer:
                assert served(newcomer.url) == "v2"  # it started: no "no snapshot in 30 s"

                def all_synced() -> bool:
                    table = remora("proxy-status", "-o", "json", "--server", plane.url)
                    proxies = json.loads(table.stdout or "[]")
                    return len(proxies) == 2 and all(p["synced"] for p in proxies)

                wait_for(all_synced, timeout=15, message="both proxies synced")
                shown = remora("proxy-status", "--server", plane.url)
                assert shown.returncode == 0, shown.stderr
                header, *rows = shown.stdout.splitlines()
                assert header.split() == ["NAME", "MODE", "NAMESPACE", "SENT", "ACKED", "SYNCED",
                                          "ERRORS"]
                assert sum(" SYNCED " in row for row in rows) == 2
                skipped = [row for row in rows if "skipped WorkloadEntry default/reviews-bad-host"
                           in row]
                assert len(skipped) == 2 and all("spec.address" in row for row in skipped)
                entry = httpx.get(f"{plane.url}/apis/networking.istio.io/v1/namespaces/default/"
                                  "workloadentries/reviews-bad-host", headers=plane.headers,
                                  timeout=5).json()
                (condition,) = entry["status"]["conditions"]
                assert condition["type"] == "Reconciled" and condition["status"] == "False"
                assert "2 of 2 connected proxies" in condition["message"]
            logs = running.logs()
            assert "skipped WorkloadEntry default/reviews-bad-host" in logs
            # pushed twice (v1, then v2), the policy is logged once, plainly
            assert logs.count("AuthorizationPolicy default/deny-all: AuthorizationPolicy is NOT "
                              "enforced") == 1
            assert "Traceback" not in logs


ENVOY_FILTER = """\
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: timeout}
spec: {configPatches: [{applyTo: CLUSTER, patch: {operation: MERGE, value: {}}}]}
"""


def test_file_mode_names_what_it_does_not_enforce_once(upstreams: dict[str, EchoServer],
                                                       tmp_path: Path) -> None:
    """`remora proxy -f`: an EnvoyFilter patch Remora does not act on (applyTo CLUSTER) and an
    AuthorizationPolicy (not enforced) are logged once each, with the field path, however often
    the files are reloaded; routing works."""
    config = write_config(tmp_path / "mesh", upstreams, "v1")
    (config / "filter.yaml").write_text(ENVOY_FILTER)
    with run_proxy(config, tmp=tmp_path) as proxy:
        assert served(proxy.url) == "v1"
        (config / "mesh.yaml").write_text((config / "mesh.yaml").read_text()
                                          .replace("subset: v1", "subset: v2"))
        wait_for(lambda: served(proxy.url) == "v2", timeout=15, message="reloaded")
        logs = proxy.logs()
        assert logs.count("EnvoyFilter default/timeout: spec.configPatches[0].applyTo is not "
                          "enforced by Remora: only HTTP_FILTER patches, and NETWORK_FILTER "
                          "MERGE patches") == 1
        assert logs.count("AuthorizationPolicy default/deny-all: AuthorizationPolicy is NOT "
                          "enforced") == 1
