"""/nacos/v1/ns/instance/list answers are cached per service: a registration in another service
leaves the cached answer in use; a change of the service itself (an instance, or the service's
own attributes) is in the very next answer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from remora.controlplane import nacos
from remora.controlplane.app import create_app
from remora.controlplane.state import ControlPlane
from remora.registry.store.sqlite import SqliteStore

LIST = "/nacos/v1/ns/instance/list"


def test_list_answers_are_cached_per_service(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    original = nacos._list_body

    def counting(registry: Any, **query: Any) -> bytes:
        built.append(query["service"])
        return original(registry, **query)

    monkeypatch.setattr(nacos, "_list_body", counting)

    async def main() -> None:
        store = await SqliteStore(tmp_path / "remora.db").open()
        state = await ControlPlane.open(store)
        transport = httpx.ASGITransport(app=create_app(state))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://nacos") as http:
                async def register(service: str, ip: str) -> None:
                    answer = await http.post("/nacos/v1/ns/instance", params={
                        "serviceName": service, "ip": ip, "port": 80})
                    assert answer.text == "ok"

                async def ips(service: str) -> list[str]:
                    answer = await http.get(LIST, params={"serviceName": service})
                    return sorted(host["ip"] for host in answer.json()["hosts"])

                await register("a", "10.0.0.1")
                await register("b", "10.1.0.1")
                assert await ips("a") == ["10.0.0.1"]
                assert built == ["a"]

                await register("b", "10.1.0.2")  # another service changes
                assert await ips("a") == ["10.0.0.1"]
                assert built == ["a"]  # the cached answer

                await register("a", "10.0.0.2")  # the service itself changes
                assert await ips("a") == ["10.0.0.1", "10.0.0.2"]
                assert built == ["a", "a"]

                answer = await http.put("/nacos/v1/ns/service", params={
                    "serviceName": "a", "metadata": "team=x"})
                assert answer.text == "ok"
                listed = await http.get(LIST, params={"serviceName": "a"})
                assert listed.json()["metadata"] == {"team": "x"}
        finally:
            await state.close()

    asyncio.run(asyncio.wait_for(main(), 30))
