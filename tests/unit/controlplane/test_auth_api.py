"""Authentication and authorization on every API, through the real ASGI stack (gate, hot paths,
app) over httpx's in-memory transport. Nacos paths answer as Nacos's AuthFilter (403 with
`user not found!` / `token invalid!` / `token expired!` / `authorization failed!`); the
Kubernetes-style API as the API server (401 Unauthorized, 403 Forbidden naming the user)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import jwt

from remora.controlplane.app import create_app
from remora.controlplane.auth_gate import AuthGate
from remora.controlplane.fastpaths import FastPaths
from remora.controlplane.state import ControlPlane
from remora.registry.store.sqlite import SqliteStore

PASSWORD = "s3cret-admin"
VS = "/apis/networking.istio.io/v1/namespaces/default/virtualservices"
VS_BODY = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
           "metadata": {"name": "reviews", "namespace": "default"},
           "spec": {"hosts": ["reviews"],
                    "http": [{"route": [{"destination": {"host": "reviews"}}]}]}}
INSTANCE = {"serviceName": "web", "ip": "127.0.0.1", "port": "8080"}

Scenario = Callable[[httpx.AsyncClient, ControlPlane], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario) -> None:
    async def main() -> None:
        store = await SqliteStore(tmp_path / "remora.db").open()
        state = await ControlPlane.open(store, auth=True)
        assert state.auth is not None
        created = await state.auth.bootstrap(data_dir=tmp_path, server="http://cp",
                                             password=PASSWORD)
        assert created == tmp_path / "credentials.json"
        app = AuthGate(FastPaths(create_app(state), state), state.auth)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
                await asyncio.wait_for(scenario(http, state), 60)
        finally:
            await state.close()

    asyncio.run(main())


async def login(http: httpx.AsyncClient, username: str = "admin",
                password: str = PASSWORD) -> str:
    answer = await http.post("/nacos/v1/auth/login",
                             data={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["accessToken"])


async def user_with(http: httpx.AsyncClient, admin: str, name: str,
                    *grants: tuple[str, str]) -> str:
    """A user with a role of its own holding `grants`; its token."""
    for path, params in [("/nacos/v1/auth/users", {"username": name, "password": "pw-" + name}),
                         ("/nacos/v1/auth/roles", {"role": f"role-{name}", "username": name})]:
        answer = await http.post(path, params={**params, "accessToken": admin})
        assert answer.status_code == 200, answer.text
    for resource, action in grants:
        answer = await http.post("/nacos/v1/auth/permissions", params={
            "role": f"role-{name}", "resource": resource, "action": action,
            "accessToken": admin})
        assert answer.json() == {"code": 200, "message": "add permission ok!", "data": None}
    return await login(http, name, "pw-" + name)


def test_the_first_admin_is_written_to_the_data_dir_readable_by_its_owner_only(
        tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, state: ControlPlane) -> None:
        path = tmp_path / "credentials.json"
        assert path.stat().st_mode & 0o777 == 0o600
        assert json.loads(path.read_text()) == {"server": "http://cp", "username": "admin",
                                                "password": PASSWORD}
        assert state.auth is not None
        assert await state.auth.bootstrap(data_dir=tmp_path, server="x") is None  # only once
        stored = await state.store.get("/auth/users/admin")
        assert stored is not None and PASSWORD.encode() not in stored.value
        assert json.loads(stored.value)["password"].startswith("$2b$10$")  # bcrypt, strength 10
    run(tmp_path, scenario)


def test_login_answers_as_nacos(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, _: ControlPlane) -> None:
        for path in ("/nacos/v1/auth/login", "/nacos/v1/auth/users/login"):
            ok = await http.post(path, params={"username": "admin", "password": PASSWORD})
            body = ok.json()
            assert set(body) == {"accessToken", "tokenTtl", "globalAdmin", "username"}
            assert body["tokenTtl"] == 18000 and body["globalAdmin"] is True
        wrong = await http.post("/nacos/v1/auth/login",
                                data={"username": "admin", "password": "nope"})
        assert (wrong.status_code, wrong.text) == (403, "user not found!")
        nobody = await http.post("/nacos/v1/auth/login", data={"username": "x", "password": "y"})
        assert nobody.status_code == 403
    run(tmp_path, scenario)


def test_the_attack_unauthenticated_registration_is_refused(tmp_path: Path) -> None:
    """Issue 11: an anonymous POST /nacos/v1/ns/instance with weight=10000 drew all traffic."""
    async def scenario(http: httpx.AsyncClient, state: ControlPlane) -> None:
        attack = await http.post("/nacos/v1/ns/instance", params={**INSTANCE, "weight": "10000"})
        assert (attack.status_code, attack.text) == (403, "user not found!")
        forged = await http.post("/nacos/v1/ns/instance",
                                 params={**INSTANCE, "accessToken": "eyJ.forged.token"})
        assert (forged.status_code, forged.text) == (403, "token invalid!")
        assert state.registry.instances(namespace="public", group="DEFAULT_GROUP",
                                        service="web").hosts == ()
    run(tmp_path, scenario)


def test_the_token_is_taken_from_the_query_the_form_body_the_header_or_bearer(
        tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, _: ControlPlane) -> None:
        token = await login(http)
        url = "/nacos/v1/ns/instance"
        ways = [
            http.post(url, params={**INSTANCE, "port": "1", "accessToken": token}),
            http.post(url, data={**INSTANCE, "port": "2", "accessToken": token}),
            http.post(url, params={**INSTANCE, "port": "3"}, headers={"accessToken": token}),
            http.post(url, params={**INSTANCE, "port": "4"},
                      headers={"Authorization": f"Bearer {token}"}),
        ]
        for answer in await asyncio.gather(*ways):
            assert (answer.status_code, answer.text) == (200, "ok")
        listed = await http.get("/nacos/v1/ns/instance/list",
                                params={"serviceName": "web", "accessToken": token})
        assert sorted(h["port"] for h in listed.json()["hosts"]) == [1, 2, 3, 4]
    run(tmp_path, scenario)


def test_an_expired_token_is_refused_with_nacos_reason(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, state: ControlPlane) -> None:
        assert state.auth is not None
        old = jwt.encode({"sub": "admin", "exp": 1_000_000}, state.auth.tokens.key, "HS256")
        answer = await http.get("/nacos/v1/ns/instance/list",
                                params={"serviceName": "web", "accessToken": old})
        assert (answer.status_code, answer.text) == (403, "token expired!")
        kube = await http.get(VS, headers={"Authorization": f"Bearer {old}"})
        assert kube.status_code == 401 and kube.json()["reason"] == "Unauthorized"
    run(tmp_path, scenario)


def test_secrets_are_not_served_to_anonymous_or_unprivileged_callers(tmp_path: Path) -> None:
    """Issue 11: TLS private keys could be read through GET /api/v1/secrets."""
    async def scenario(http: httpx.AsyncClient, _: ControlPlane) -> None:
        anonymous = await http.get("/api/v1/secrets")
        assert anonymous.status_code == 401
        assert anonymous.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                    "status": "Failure", "message": "Unauthorized",
                                    "reason": "Unauthorized", "code": 401}
        admin = await login(http)
        dev = await user_with(http, admin, "dev", ("default:*:*", "rw"))
        denied = await http.get("/api/v1/namespaces/istio-system/secrets/tls",
                                headers={"Authorization": f"Bearer {dev}"})
        assert denied.status_code == 403
        assert denied.json()["message"] == (
            'secrets "tls" is forbidden: User "dev" cannot get resource "secrets" in API '
            'group "" in the namespace "istio-system"')
        assert (await http.get("/api/v1/secrets", params={"accessToken": admin})).status_code \
            == 200
    run(tmp_path, scenario)


def test_resource_permissions_by_namespace_and_action(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, _: ControlPlane) -> None:
        admin = await login(http)
        reader = await user_with(http, admin, "reader", ("default:*:*", "r"))
        writer = await user_with(http, admin, "writer", ("default:networking.istio.io:*", "rw"))
        as_reader = {"Authorization": f"Bearer {reader}"}
        as_writer = {"Authorization": f"Bearer {writer}"}
        assert (await http.post(VS, json=VS_BODY, headers=as_reader)).status_code == 403
        assert (await http.post(VS, json=VS_BODY, headers=as_writer)).status_code == 201
        assert (await http.get(f"{VS}/reviews", headers=as_reader)).status_code == 200
        other = "/apis/networking.istio.io/v1/namespaces/prod/virtualservices"
        assert (await http.get(other, headers=as_writer)).status_code == 403
        everywhere = await http.get("/apis/networking.istio.io/v1/virtualservices",
                                    headers=as_writer)
        assert everywhere.status_code == 403  # a list across namespaces needs every namespace
    run(tmp_path, scenario)


def test_bulk_apply_checks_every_object_before_writing_any(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, state: ControlPlane) -> None:
        admin = await login(http)
        dev = await user_with(http, admin, "dev", ("default:*:*", "rw"))
        secret = {"apiVersion": "v1", "kind": "Secret",
                  "metadata": {"name": "stolen", "namespace": "istio-system"}, "data": {}}
        answer = await http.post("/api/remora/apply",
                                 json={"apiVersion": "v1", "kind": "List",
                                       "items": [VS_BODY, secret]},
                                 headers={"Authorization": f"Bearer {dev}"})
        assert answer.status_code == 403, answer.text
        assert answer.json()["reason"] == "Forbidden"
        assert 'User "dev"' in answer.json()["message"]
        listed = await http.get(VS, params={"accessToken": admin})
        assert listed.json()["items"] == []  # nothing written, not even the allowed object
        ok = await http.post("/api/remora/apply", json=VS_BODY,
                             headers={"Authorization": f"Bearer {dev}"})
        assert ok.status_code == 200, ok.text
    run(tmp_path, scenario)


def test_a_proxy_token_subscribes_as_its_mode_and_namespace_only(tmp_path: Path) -> None:
    """A gateway's view carries its namespace's TLS Secrets: a sidecar token must not get it."""
    async def scenario(http: httpx.AsyncClient, _: ControlPlane) -> None:
        admin = await login(http)
        proxy = await user_with(http, admin, "proxy", ("*:remora:discovery/sidecar", "r"))
        node = {"id": "sidecar~x", "mode": "gateway", "namespace": "istio-system"}
        as_proxy = {"Authorization": f"Bearer {proxy}"}
        gateway = await http.post("/api/remora/v1/discovery", json={"node": node},
                                  headers=as_proxy)
        assert gateway.status_code == 403
        assert (await http.get("/api/v1/secrets", headers=as_proxy)).status_code == 403
        register = await http.post("/nacos/v1/ns/instance", params=INSTANCE, headers=as_proxy)
        assert (register.status_code, register.text) == (403, "authorization failed!")
        anonymous = await http.post("/api/remora/v1/discovery",
                                    json={"node": {**node, "mode": "sidecar"}})
        assert anonymous.status_code == 401
    run(tmp_path, scenario)


def test_only_admins_manage_users_and_the_last_admin_stays(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, _: ControlPlane) -> None:
        admin = await login(http)
        dev = await user_with(http, admin, "dev", ("*", "rw"))
        create = await http.post("/nacos/v1/auth/users",
                                 params={"username": "eve", "password": "x", "accessToken": dev})
        assert (create.status_code, create.text) == (403, "authorization failed!")
        promote = await http.post("/nacos/v1/auth/roles", params={
            "role": "ROLE_ADMIN", "username": "dev", "accessToken": dev})
        assert promote.status_code == 403
        last = await http.delete("/nacos/v1/auth/users",
                                 params={"username": "admin", "accessToken": admin})
        assert last.status_code == 409
        users = await http.get("/nacos/v1/auth/users", params={"accessToken": admin})
        assert [u["username"] for u in users.json()["pageItems"]] == ["admin", "dev"]
        assert "password" not in users.json()["pageItems"][0]
    run(tmp_path, scenario)


def test_a_deleted_users_tokens_stop_working_and_a_new_password_takes_effect(
        tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, _: ControlPlane) -> None:
        admin = await login(http)
        dev = await user_with(http, admin, "dev", ("public:*:*", "rw"))
        params = {"serviceName": "web", "accessToken": dev}
        assert (await http.get("/nacos/v1/ns/instance/list", params=params)).status_code == 200
        changed = await http.put("/nacos/v1/auth/users", params={
            "username": "dev", "newPassword": "new-pw", "accessToken": admin})
        assert changed.json()["message"] == "update user ok!"
        assert (await http.post("/nacos/v1/auth/login", data={
            "username": "dev", "password": "pw-dev"})).status_code == 403
        await login(http, "dev", "new-pw")
        await http.delete("/nacos/v1/auth/users", params={"username": "dev",
                                                          "accessToken": admin})
        gone = await http.get("/nacos/v1/ns/instance/list", params=params)
        assert (gone.status_code, gone.text) == (403, "token invalid!")
    run(tmp_path, scenario)


def test_health_stays_open(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, _: ControlPlane) -> None:
        assert (await http.get("/healthz")).text == "ok"
    run(tmp_path, scenario)
