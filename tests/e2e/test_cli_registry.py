"""`remora services | instances | config`: what a Nacos client sees, from the terminal."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.meshkit import REMORA, run_controlplane

pytestmark = pytest.mark.timeout(60)


def remora(*args: str, server: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REMORA, *args, "--server", server], capture_output=True, text=True,
                          timeout=30, check=False)


def test_services_instances_and_configs(tmp_path: Path) -> None:
    with run_controlplane(tmp_path) as plane:
        for port, version in ((9001, "v1"), (9002, "v2")):
            httpx.post(f"{plane.url}/nacos/v1/ns/instance", headers=plane.headers, params={
                "serviceName": "orders", "ip": "127.0.0.1", "port": port,
                "metadata": f"version={version}"}).raise_for_status()
        listed = json.loads(remora("services", "-o", "json", server=plane.url).stdout)
        assert listed == [{"name": "orders", "group": "DEFAULT_GROUP", "namespace": "public",
                           "instances": 2, "healthy": 2}]
        hosts = json.loads(remora("instances", "orders", "-o", "json", server=plane.url).stdout)
        assert sorted((h["port"], h["metadata"]) for h in hosts) == [
            (9001, "version=v1"), (9002, "version=v2")]
        table = remora("instances", "orders", server=plane.url).stdout
        assert "9001" in table and "version=v2" in table

        assert remora("config", "set", "app.yaml", "a: 1", server=plane.url).returncode == 0
        assert remora("config", "get", "app.yaml", server=plane.url).stdout == "a: 1\n"
        missing = remora("config", "get", "nope.yaml", server=plane.url)
        assert missing.returncode == 1 and "does not exist" in missing.stderr

        listener = subprocess.Popen(
            [*REMORA, "config", "listen", "app.yaml", "--once", "--server", plane.url],
            stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(1.0)  # the listener's long poll is open
            remora("config", "set", "app.yaml", "a: 2", server=plane.url)
            out, _ = listener.communicate(timeout=20)
        finally:
            listener.kill()
        assert out.splitlines() == ["a: 1", "a: 2"]
