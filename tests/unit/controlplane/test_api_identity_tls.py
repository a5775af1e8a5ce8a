"""The CA's certificate API when the connection presented a workload certificate (the TLS
extension uvicorn's protocol is given, peercert.py, injected here as the server would): the
certificate proves the identity (a renewal needs no token, an expired one does not matter),
and never another one; a certificate of no workload (another trust domain) proves nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509

from remora.controlplane.app import create_app
from remora.controlplane.auth_gate import AuthGate
from remora.controlplane.ca import Identity, IdentityTokens
from remora.controlplane.fastpaths import FastPaths
from remora.controlplane.state import ControlPlane
from remora.registry.store.sqlite import SqliteStore
from tests.certkit import MeshCA
from tests.unit.controlplane.test_api_identity import CERTS, csr_pem
from tests.unit.controlplane.test_auth_api import PASSWORD


def presenting(app: Any, certificate: str) -> Any:
    async def with_certificate(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["extensions"] = {"tls": {"client_cert_chain": [certificate]}}
        await app(scope, receive, send)
    return with_certificate


def test_a_workload_certificate_renews_itself_only(tmp_path: Path) -> None:
    async def main() -> None:
        store = await SqliteStore(tmp_path / "remora.db").open()
        state = await ControlPlane.open(store, auth=True)
        await state.auth.bootstrap(data_dir=tmp_path, server="http://cp", password=PASSWORD)
        app = AuthGate(FastPaths(create_app(state), state), state.auth)
        try:
            issued = await state.ca.sign(csr_pem(), Identity("shop", "payments"))
            expired, _ = IdentityTokens(state.ca.tokens.key, clock=lambda: state.clock() -
                                        timedelta(days=31)).issue(
                Identity("default", "web"), trust_domain="cluster.local")
            transport = httpx.ASGITransport(app=presenting(app, issued.chain[0]))
            async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
                renewed = await http.post(CERTS, json={"csr": csr_pem(), "token": expired})
                assert renewed.status_code == 200, renewed.text
                assert renewed.json()["identity"] == "spiffe://cluster.local/ns/shop/sa/payments"
                other = await http.post(CERTS, json={"csr": csr_pem(
                    x509.UniformResourceIdentifier("spiffe://cluster.local/ns/default/sa/web"))})
                assert other.status_code == 403, other.text
            foreign, _ = MeshCA.create().issue("spiffe://other.domain/ns/shop/sa/payments")
            transport = httpx.ASGITransport(app=presenting(app, foreign))
            async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
                refused = await http.post(CERTS, json={"csr": csr_pem()})
                assert refused.status_code == 401, refused.text
            assert state.ca.counters["byCertificate"] == 2
        finally:
            await state.close()

    asyncio.run(main())
