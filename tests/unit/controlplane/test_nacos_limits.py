"""The Nacos API refuses bad parameters with Nacos's plain-text 400 `caused: ...;`, naming the
field, and stores nothing (the attacks of issue 11 included)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from remora.controlplane.app import create_app
from remora.controlplane.state import ControlPlane
from remora.registry.limits import MAX_CONTENT
from remora.registry.store.sqlite import SqliteStore

Scenario = Callable[[httpx.AsyncClient], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario) -> None:
    async def main() -> None:
        state = await ControlPlane.open(await SqliteStore(tmp_path / "remora.db").open())
        transport = httpx.ASGITransport(app=create_app(state))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://nacos") as http:
                await asyncio.wait_for(scenario(http), 30)
        finally:
            await state.close()

    asyncio.run(main())


async def hosts(http: httpx.AsyncClient) -> list[str]:
    answer = await http.get("/nacos/v1/ns/instance/list", params={"serviceName": "web"})
    return [f"{h['ip']}:{h['port']}" for h in answer.json()["hosts"]]


def test_register_refuses_bad_host_and_keeps_the_registry_usable(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        good = await http.post("/nacos/v1/ns/instance",
                               params={"serviceName": "web", "ip": "10.0.0.1", "port": "80"})
        assert good.text == "ok"
        bad = await http.post("/nacos/v1/ns/instance",
                              params={"serviceName": "web", "ip": "bad_host!", "port": "80"})
        assert bad.status_code == 400
        assert bad.text.startswith("caused: instance format invalid: ip 'bad_host!'")
        assert bad.text.endswith(";")
        assert await hosts(http) == ["10.0.0.1:80"]

    run(tmp_path, scenario)


def test_register_refuses_weight_and_port_out_of_nacos_range(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        base = {"serviceName": "web", "ip": "10.0.0.1", "port": "80"}
        huge = await http.post("/nacos/v1/ns/instance", params={**base, "weight": str(2**40)})
        assert huge.status_code == 400
        assert "The weights range from 0.0 to 10000.0" in huge.text
        port = await http.post("/nacos/v1/ns/instance", params={**base, "port": "70000"})
        assert port.status_code == 400
        assert "port must be between 1 and 65535, got 70000" in port.text
        beat = await http.put("/nacos/v1/ns/instance/beat", params={
            **base, "beat": json.dumps({"ip": "10.0.0.1", "port": 80, "weight": "heavy"})})
        assert beat.status_code == 400
        assert "beat weight must be a number" in beat.text
        assert await hosts(http) == []

    run(tmp_path, scenario)


def test_update_refuses_a_bad_weight_and_keeps_the_old_one(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        base = {"serviceName": "web", "ip": "10.0.0.1", "port": "80"}
        await http.post("/nacos/v1/ns/instance", params={**base, "weight": "3"})
        bad = await http.put("/nacos/v1/ns/instance", params={**base, "weight": "-1"})
        assert bad.status_code == 400
        found = await http.get("/nacos/v1/ns/instance", params=base)
        assert found.json()["weight"] == 3.0

    run(tmp_path, scenario)


def test_register_refuses_service_and_cluster_names_nacos_refuses(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        base = {"ip": "10.0.0.1", "port": "80"}
        service = await http.post("/nacos/v1/ns/instance", params={**base, "serviceName": "a b"})
        assert service.status_code == 400
        assert "serviceName can only have these characters" in service.text
        cluster = await http.post("/nacos/v1/ns/instance",
                                  params={**base, "serviceName": "web", "clusterName": "c_1"})
        assert cluster.status_code == 400
        assert "'clusterName' should be characters with only 0-9a-zA-Z-" in cluster.text

    run(tmp_path, scenario)


def test_publish_refuses_config_over_nacos_10mb(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        key = {"dataId": "big.yaml", "group": "G"}
        big = await http.post("/nacos/v1/cs/configs",
                              data={**key, "content": "x" * (MAX_CONTENT + 1)})
        assert big.status_code == 400
        assert big.text == f"caused: invalid content, over {MAX_CONTENT};"
        assert (await http.get("/nacos/v1/cs/configs", params=key)).status_code == 404
        bad = await http.post("/nacos/v1/cs/configs",
                              data={"dataId": "a/b", "group": "G", "content": "x"})
        assert bad.status_code == 400
        assert "invalid dataId: 'a/b'" in bad.text

    run(tmp_path, scenario)


def test_numbers_that_are_not_finite_are_refused(tmp_path: Path) -> None:
    instance = {"serviceName": "web", "ip": "10.0.0.1", "port": "80"}
    asks = [("GET", "/nacos/v1/ns/service/list", {}, "pageSize", "inf"),
            ("GET", "/nacos/v1/ns/service/list", {}, "pageNo", "nan"),
            ("POST", "/nacos/v1/ns/instance", instance, "weight", "Infinity")]

    async def scenario(http: httpx.AsyncClient) -> None:
        for method, path, params, name, value in asks:
            answer = await http.request(method, path, params={**params, name: value})
            assert answer.status_code == 400
            assert answer.text == f"caused: Param '{name}' must be a number, got '{value}';"

    run(tmp_path, scenario)
