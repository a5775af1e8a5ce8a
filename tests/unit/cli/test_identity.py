"""`remora identity` against a real control plane (auth on, uvicorn on 127.0.0.1 in a thread)
with the admin credentials it wrote: the join token it prints gets a certificate, and the
roots can be listed, rotated and removed."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from remora.cli.main import main
from remora.controlplane.app import create_app
from remora.controlplane.auth_gate import AuthGate
from remora.controlplane.fastpaths import FastPaths
from remora.controlplane.state import ControlPlane
from remora.registry.store.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The control plane's URL; the CLI finds the admin's credentials through
    $REMORA_CREDENTIALS."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    holder: dict[str, Any] = {}

    async def serve() -> None:
        store = await SqliteStore(tmp_path / "remora.db").open()
        state = await ControlPlane.open(store, auth=True)
        await state.auth.bootstrap(data_dir=tmp_path, server=url, password="pw-admin-1")
        app = AuthGate(FastPaths(create_app(state), state), state.auth)
        holder["server"] = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        try:
            await holder["server"].serve(sockets=[sock])
        finally:
            await state.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not getattr(holder.get("server"), "started", False):
        assert time.monotonic() < deadline and thread.is_alive(), "the control plane did not start"
        time.sleep(0.02)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("REMORA_TOKEN", raising=False)
    monkeypatch.setenv("REMORA_CREDENTIALS", str(tmp_path / "credentials.json"))
    yield url
    holder["server"].should_exit = True
    thread.join(30)
    sock.close()


def remora(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(list(args)) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_identity_token_prints_a_join_token_that_gets_a_certificate(
        server: str, capsys: pytest.CaptureFixture[str]) -> None:
    answer = json.loads(remora(capsys, "identity", "token", "--server", server, "-n", "default",
                               "--service-account", "web", "--ttl", "2h", "-o", "json"))
    assert answer["identity"] == "spiffe://cluster.local/ns/default/sa/web"
    assert set(answer) == {"token", "identity", "expiresAt"}
    plain = remora(capsys, "identity", "token", "--server", server, "--sa", "web").strip()
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    for token in (answer["token"], plain):
        issued = httpx.post(f"{server}/api/remora/v1/certificates", json={
            "csr": csr.public_bytes(serialization.Encoding.PEM).decode(), "token": token})
        assert issued.status_code == 200, issued.text
        assert issued.json()["identity"] == answer["identity"]


def test_identity_ca_lists_rotates_and_removes_roots(
        server: str, capsys: pytest.CaptureFixture[str]) -> None:
    first = json.loads(remora(capsys, "identity", "ca", "--server", server, "-o", "json"))
    old = first["signing"]
    assert [root["fingerprint"] for root in first["roots"]] == [old]
    rotated = remora(capsys, "identity", "rotate-root", "--grace", "0s", "--server", server)
    assert f"remora identity remove-root {old}" in rotated
    table = remora(capsys, "identity", "ca", "--server", server)
    assert old in table and "self-signed" in table and "O=cluster.local" in table
    remora(capsys, "identity", "remove-root", old, "--server", server)
    after = yaml.safe_load(remora(capsys, "identity", "ca", "--server", server, "-o", "yaml"))
    assert [root["fingerprint"] for root in after["roots"]] == [after["signing"]] != [old]
