"""The proxy's https to its control plane, against a real TLS server on 127.0.0.1 that asks for
a client certificate (as `remora controlplane --tls auto`): the server verified with --ca-cert
(another root: refused, saying so), the workload certificate presented once there is one, and
not once it has expired."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from remora.proxy.cpclient import ControlPlaneClient, ControlPlaneHTTPError, ControlPlaneTls
from remora.proxy.mtls import WorkloadTls
from tests.certkit import MeshCA, spiffe

pytestmark = [pytest.mark.timeout(10), pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def tls_server(ca: MeshCA, tmp: Path, seen: list[str]) -> AsyncIterator[str]:
    """Answers `{}`; records the URI of each client certificate ("" for none)."""
    cert, key = ca.write(tmp, "server", dns=("localhost",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=ca.pem)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert") or {}
        seen.append(next((v for k, v in peer.get("subjectAltName", ()) if k == "URI"), ""))
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    listening = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    try:
        yield f"https://localhost:{listening.sockets[0].getsockname()[1]}"
    finally:
        listening.close()


def workload(ca: MeshCA, uri: str, *, not_after: float) -> WorkloadTls:
    chain, key = ca.issue(uri)
    return WorkloadTls(identity=uri, chain=(chain,), key=key, roots=(ca.pem,),
                       not_after=not_after)


async def test_the_root_verifies_and_the_workload_certificate_is_presented_while_valid(
        tmp_path: Path) -> None:
    mesh = MeshCA.create()
    root = tmp_path / "root-cert.pem"
    root.write_text(mesh.pem)
    now = [time.time()]
    tls = ControlPlaneTls(str(root), clock=lambda: now[0])
    seen: list[str] = []
    async with tls_server(mesh, tmp_path, seen) as url:
        client = ControlPlaneClient(url, tls)
        assert await client.post_json("/x", {}, {}) == (200, b"{}")
        tls.present(workload(mesh, spiffe("default", "reviews"), not_after=now[0] + 60))
        await client.post_json("/x", {}, {})
        now[0] += 61  # expired: a handshake with it would be refused
        await client.post_json("/x", {}, {})
    assert seen == ["", spiffe("default", "reviews"), ""]


async def test_a_control_plane_of_another_root_is_refused_with_the_reason(
        tmp_path: Path) -> None:
    root = tmp_path / "root-cert.pem"
    root.write_text(MeshCA.create("ours").pem)
    async with tls_server(MeshCA.create("theirs"), tmp_path, []) as url:
        client = ControlPlaneClient(url, ControlPlaneTls(str(root)))
        with pytest.raises(ControlPlaneHTTPError, match=r"is not trusted \(verified with "
                           r"--ca-cert .*root-cert.pem\): (self-signed|unable to get)"):
            await client.post_json("/x", {}, {})
