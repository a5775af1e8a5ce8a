"""The CA's HTTP API through the real ASGI stack (gate, hot paths, app) over httpx's in-memory
transport: certificates for a valid identity token only (auth on or off), join tokens for
whoever may write the service account's identity, roots read by any user and rotated by
admins."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder
from cryptography.x509.verification import Store as TrustStore

from remora.controlplane.app import create_app
from remora.controlplane.auth_gate import AuthGate
from remora.controlplane.ca import Identity, IdentityTokens
from remora.controlplane.fastpaths import FastPaths
from remora.controlplane.state import ControlPlane
from remora.registry.store.sqlite import SqliteStore
from tests.unit.controlplane.test_auth_api import PASSWORD, login, user_with

CERTS, TOKENS, CA = ("/api/remora/v1/certificates", "/api/remora/v1/identitytokens",
                     "/api/remora/v1/ca")
SPIFFE = "spiffe://cluster.local/ns/default/sa/web"

Scenario = Callable[[httpx.AsyncClient, ControlPlane], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario, *, auth: bool = True) -> None:
    async def main() -> None:
        store = await SqliteStore(tmp_path / "remora.db").open()
        state = await ControlPlane.open(store, auth=auth)
        app: Any = FastPaths(create_app(state), state)
        if state.auth is not None:
            await state.auth.bootstrap(data_dir=tmp_path, server="http://cp", password=PASSWORD)
            app = AuthGate(app, state.auth)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://cp") as http:
                await asyncio.wait_for(scenario(http, state), 60)
        finally:
            await state.close()

    asyncio.run(main())


def csr_pem(*names: x509.GeneralName) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=True)
    csr = builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def join_token(http: httpx.AsyncClient, admin: str, **extra: Any) -> str:
    answer = await http.post(TOKENS, headers=bearer(admin), json={
        "namespace": "default", "serviceAccount": "web", **extra})
    assert answer.status_code == 200, answer.text
    assert answer.json()["identity"] == SPIFFE
    return str(answer.json()["token"])


def test_a_join_token_gets_a_certificate_that_verifies_against_the_roots(
        tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, state: ControlPlane) -> None:
        admin = await login(http)
        token = await join_token(http, admin, ttlSeconds=3600, pod="web-1")
        answer = await http.post(CERTS, json={"csr": csr_pem(), "token": token})  # no bearer
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["identity"] == SPIFFE and set(body) == {"certChain", "roots", "identity",
                                                            "expiresAt"}
        leaf = x509.load_pem_x509_certificate(body["certChain"][0].encode())
        roots = [x509.load_pem_x509_certificate(p.encode()) for p in body["roots"]]
        client = PolicyBuilder().store(TrustStore(roots)).build_client_verifier()
        assert client.verify(leaf, []).subjects == [x509.UniformResourceIdentifier(SPIFFE)]
        assert body["expiresAt"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert (await http.post(CERTS, json={"csr": csr_pem(), "token": token,
                                             "ttlSeconds": 600})).status_code == 200
        described = (await http.get(CA, headers=bearer(admin))).json()
        assert described["counters"]["issued"] == 2
        assert described["source"] == "self-signed"
        assert described["trustDomain"] == "cluster.local"

    run(tmp_path, scenario)


def test_certificates_refuse_bad_tokens_401_other_names_403_bad_csrs_400(
        tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, state: ControlPlane) -> None:
        token = await join_token(http, await login(http))
        expired, _ = IdentityTokens(state.ca.tokens.key,
                                    clock=lambda: state.clock() - timedelta(days=31)).issue(
            Identity("default", "web"), trust_domain="cluster.local")
        forged, _ = IdentityTokens(b"x" * 32, clock=state.clock).issue(
            Identity("default", "web"), trust_domain="cluster.local")
        cases = [
            ({"csr": csr_pem(), "token": ""}, 401, "required"),
            ({"csr": csr_pem(), "token": expired}, 401, "expired"),
            ({"csr": csr_pem(), "token": forged}, 401, "signature does not match"),
            ({"csr": csr_pem(x509.UniformResourceIdentifier(
                "spiffe://cluster.local/ns/kube-system/sa/admin")), "token": token}, 403,
             "allows only URI:" + SPIFFE),
            ({"csr": csr_pem(x509.DNSName("web")), "token": token}, 403, "DNSName:web"),
            ({"csr": "not a CSR", "token": token}, 400, "cannot be read"),
            ({"token": token}, 400, "must be strings"),
            ({"csr": csr_pem(), "token": token, "ttlSeconds": -5}, 400, "positive integer"),
        ]
        for body, code, message in cases:
            answer = await http.post(CERTS, json=body)
            assert answer.status_code == code, (body, answer.text)
            assert message in answer.json()["message"], answer.text
        assert (await http.post(CERTS, content=b"{")).status_code == 400
        assert state.ca.counters == {"issued": 0, "refusedToken": 3, "refusedIdentity": 2,
                                     "refusedCsr": 4}

    run(tmp_path, scenario)


def test_a_join_token_needs_write_on_the_service_accounts_identity(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, state: ControlPlane) -> None:
        admin = await login(http)
        body = {"namespace": "default", "serviceAccount": "web"}
        assert (await http.post(TOKENS, json=body)).status_code == 401
        reader = await user_with(http, admin, "reader", ("default:remora:identity/*", "r"))
        answer = await http.post(TOKENS, json=body, headers=bearer(reader))
        assert answer.status_code == 403, answer.text
        assert "w on default:remora:identity/web" in answer.json()["message"]
        operator = await user_with(http, admin, "operator", ("default:remora:identity/web", "w"))
        answer = await http.post(TOKENS, json=body, headers=bearer(operator))
        assert answer.status_code == 200, answer.text
        other = await http.post(TOKENS, json={**body, "serviceAccount": "db"},
                                headers=bearer(operator))
        assert other.status_code == 403
        bad = await http.post(TOKENS, json={**body, "namespace": "Not/A/Label"},
                              headers=bearer(admin))
        assert bad.status_code == 400

    run(tmp_path, scenario)


def test_any_user_with_read_sees_the_ca_and_only_admins_rotate_roots(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, state: ControlPlane) -> None:
        admin = await login(http)
        assert (await http.get(CA)).status_code == 401
        viewer = await user_with(http, admin, "viewer", ("*:remora:ca/*", "r"))
        first = (await http.get(CA, headers=bearer(viewer))).json()
        assert (await http.post(f"{CA}/roots", headers=bearer(viewer))).status_code == 403
        rotated = await http.post(f"{CA}/roots", headers=bearer(admin),
                                  json={"activateAfterSeconds": 0})
        assert rotated.status_code == 200, rotated.text
        added = rotated.json()["added"]
        assert rotated.json()["signing"] == added
        assert len(rotated.json()["roots"]) == 2
        token = await join_token(http, admin)
        issued = (await http.post(CERTS, json={"csr": csr_pem(), "token": token})).json()
        assert len(issued["roots"]) == 2
        bundle = await http.get("/api/v1/namespaces/istio-system/configmaps/istio-ca-root-cert",
                                headers=bearer(admin))
        assert bundle.json()["data"]["root-cert.pem"] == "".join(issued["roots"])
        refused = await http.delete(f"{CA}/roots/{added}", headers=bearer(admin))
        assert refused.status_code == 409, refused.text
        old = first["signing"]
        assert (await http.delete(f"{CA}/roots/{old}", headers=bearer(viewer))).status_code == 403
        removed = await http.delete(f"{CA}/roots/{old}", headers=bearer(admin))
        assert [r["fingerprint"] for r in removed.json()["roots"]] == [added]
        assert (await http.delete(f"{CA}/roots/{old}", headers=bearer(admin))).status_code == 404

    run(tmp_path, scenario)


def test_with_auth_off_a_certificate_still_needs_an_identity_token(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, state: ControlPlane) -> None:
        assert (await http.post(CERTS, json={"csr": csr_pem(), "token": ""})).status_code == 401
        answer = await http.post(TOKENS, json={"namespace": "default", "serviceAccount": "web"})
        assert answer.status_code == 200, answer.text
        issued = await http.post(CERTS, json={"csr": csr_pem(), "token": answer.json()["token"]})
        assert issued.status_code == 200, issued.text
        assert (await http.get(CA)).status_code == 200

    run(tmp_path, scenario, auth=False)
