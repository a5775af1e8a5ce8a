"""The Nacos v1 routes on the wire, through the real app (httpx's ASGI transport): beat codes
(NamingResponseCode OK 10200 / RESOURCE_NOT_FOUND 20404), the listener's answer
(MD5Util.compareMd5ResultString: URL-encoded `dataId^2group[^2tenant]^1`), Nacos-style 400s."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from remora.controlplane.app import create_app
from remora.controlplane.state import ControlPlane
from remora.registry.store.sqlite import SqliteStore


def run(tmp_path: Path, scenario: object) -> None:
    async def main() -> None:
        store = await SqliteStore(tmp_path / "remora.db").open()
        state = await ControlPlane.open(store)
        transport = httpx.ASGITransport(app=create_app(state))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://nacos") as http:
                await asyncio.wait_for(scenario(http), 30)  # type: ignore[operator]
        finally:
            await state.close()

    asyncio.run(main())


def test_beat_codes(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        params = {"serviceName": "DEFAULT_GROUP@@svc", "ip": "1.1.1.1", "port": "80"}
        unknown = await http.put("/nacos/v1/ns/instance/beat", params=params)
        assert unknown.json()["code"] == 20404
        beat = {"ip": "1.1.1.1", "port": 80, "serviceName": "DEFAULT_GROUP@@svc",
                "metadata": {"preserved.heart.beat.interval": "2000"}}
        known = await http.put("/nacos/v1/ns/instance/beat",
                               params={**params, "beat": json.dumps(beat)})
        assert known.json() == {"clientBeatInterval": 2000, "code": 10200,
                                "lightBeatEnabled": False}
        again = await http.put("/nacos/v1/ns/instance/beat", params=params)
        assert again.json()["code"] == 10200

    run(tmp_path, scenario)


def test_listener_answers_url_encoded_changed_keys(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        for tenant in ("", "dev"):
            publish = await http.post("/nacos/v1/cs/configs", data={
                "dataId": "a.yaml", "group": "G", "content": "x", "tenant": tenant})
            assert publish.text == "true"
        probe = "a.yaml\x02G\x02stale\x01a.yaml\x02G\x02stale\x02dev\x01"
        answer = await http.post("/nacos/v1/cs/configs/listener",
                                 data={"Listening-Configs": probe},
                                 headers={"Long-Pulling-Timeout": "30000"})
        assert answer.text == "a.yaml%02G%01a.yaml%02G%02dev%01"
        md5 = (await http.get("/nacos/v1/cs/configs",
                              params={"dataId": "a.yaml", "group": "G"})).headers["Content-MD5"]
        quiet = await http.post("/nacos/v1/cs/configs/listener",
                                data={"Listening-Configs": f"a.yaml\x02G\x02{md5}\x01"},
                                headers={"Long-Pulling-Timeout": "30000",
                                         "Long-Pulling-Timeout-No-Hangup": "true"})
        assert quiet.status_code == 200 and quiet.text == ""

    run(tmp_path, scenario)


def test_missing_and_bad_params_are_400_with_nacos_wording(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        cases = [
            ("GET", "/nacos/v1/ns/instance/list", {}, "Param 'serviceName' is required."),
            ("POST", "/nacos/v1/ns/instance", {"serviceName": "s", "ip": "1.1.1.1",
                                               "port": "x"}, "Param 'port'"),
            ("POST", "/nacos/v1/ns/instance", {"serviceName": "s", "ip": "1.1.1.1",
                                               "port": "1", "weight": "20000"}, "weight"),
            ("POST", "/nacos/v1/cs/configs", {"dataId": "a", "group": "G"},
             "Param 'content' is required."),
            ("POST", "/nacos/v1/cs/configs", {"dataId": "a b", "content": "x"}, "dataId"),
            ("PUT", "/nacos/v1/ns/instance/beat", {"serviceName": "s", "beat": "[1]"}, "beat"),
        ]
        for method, path, params, message in cases:
            answer = await http.request(method, path, params=params)
            assert answer.status_code == 400, (path, params, answer.text)
            assert answer.text.startswith("caused: ") and message in answer.text
        missing = await http.get("/nacos/v1/cs/configs", params={"dataId": "none", "group": "G"})
        assert (missing.status_code, missing.text) == (404, "config data not exist")

    run(tmp_path, scenario)


def test_service_endpoints(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        base = {"serviceName": "orders", "groupName": "G"}
        created = await http.post("/nacos/v1/ns/service",
                                  params={**base, "protectThreshold": "0.5",
                                          "metadata": "team=a,tier=1"})
        assert created.text == "ok"
        await http.put("/nacos/v1/ns/service", params={**base, "protectThreshold": "0.7"})
        got = (await http.get("/nacos/v1/ns/service", params=base)).json()
        assert (got["name"], got["groupName"], got["protectThreshold"], got["metadata"]) \
            == ("orders", "G", 0.7, {"team": "a", "tier": "1"})
        listed = (await http.get("/nacos/v1/ns/service/list",
                                 params={"groupName": "G", "pageNo": 1, "pageSize": 10})).json()
        assert listed == {"count": 1, "doms": ["orders"]}
        assert (await http.delete("/nacos/v1/ns/service", params=base)).text == "ok"
        gone = await http.get("/nacos/v1/ns/service", params=base)
        assert gone.status_code == 404

    run(tmp_path, scenario)
