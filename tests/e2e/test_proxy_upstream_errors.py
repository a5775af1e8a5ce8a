"""End to end: an upstream that does not speak HTTP/1.1 → 502 with flag UPE, as Envoy answers an
upstream protocol error (envoyproxy/envoy#15033); the proxy keeps serving."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.meshkit import REGISTRY_ONLY, run_proxy, service_yaml

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def garbage_upstream() -> Iterator[int]:
    """Accepts connections and answers every request with bytes that are not HTTP."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"garbage\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_upstream_protocol_error_is_502_upe(garbage_upstream: int, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "svc.yaml").write_text(service_yaml("broken", 8000, [(garbage_upstream, {})]))
    (config / "mesh.yaml").write_text(REGISTRY_ONLY)
    log = tmp_path / "access.log"
    with run_proxy(config, "--access-log", str(log), tmp=tmp_path) as proxy:
        response = httpx.get(f"{proxy.url}/x", headers={"host": "broken:8000"}, timeout=5)
        assert response.status_code == 502
        assert response.text.endswith("reset reason: protocol error")
        time.sleep(1.3)  # the access log is flushed every second
        entry = json.loads(log.read_text().splitlines()[-1])
        assert entry["response_flags"] == "UPE"
        assert entry["response_code"] == 502
        assert httpx.get(f"{proxy.url}/x", headers={"host": "nosuch:8000"},
                         timeout=5).status_code == 502  # still serving: blocked, a local 502
