"""Every API's request bodies are bounded before it reads them: 413 worded as the API asked
would word it (Nacos's `caused: ...;`, else a Kubernetes Status), declared or chunked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx

from remora.controlplane.app import create_app
from remora.controlplane.bodylimit import BodyLimit
from remora.controlplane.state import ControlPlane
from remora.mesh.wire import ACK_PATH
from remora.registry.store.sqlite import SqliteStore

LIMIT = 1000
Scenario = Callable[[httpx.AsyncClient], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario) -> None:
    async def main() -> None:
        state = await ControlPlane.open(await SqliteStore(tmp_path / "remora.db").open())
        transport = httpx.ASGITransport(app=BodyLimit(create_app(state), limit=LIMIT))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
                await asyncio.wait_for(scenario(http), 30)
        finally:
            await state.close()

    asyncio.run(main())


async def chunks(total: int) -> AsyncIterator[bytes]:
    for _ in range(total // 100):
        yield b"x" * 100


def test_nacos_body_over_the_limit_is_a_nacos_413(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        big = await http.post("/nacos/v1/cs/configs",
                              data={"dataId": "a", "group": "G", "content": "x" * LIMIT})
        assert big.status_code == 413
        assert big.text == f"caused: request entity too large: limit is {LIMIT} bytes;"
        assert (await http.get("/nacos/v1/cs/configs",
                               params={"dataId": "a", "group": "G"})).status_code == 404
        small = await http.post("/nacos/v1/cs/configs",
                                data={"dataId": "a", "group": "G", "content": "x"})
        assert small.text == "true"

    run(tmp_path, scenario)


def test_chunked_body_is_cut_off_at_the_limit_with_a_status(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        answer = await http.post(ACK_PATH, content=chunks(LIMIT * 10),
                                 headers={"content-type": "application/json"})
        assert answer.status_code == 413
        body = answer.json()
        assert (body["kind"], body["reason"]) == ("Status", "RequestEntityTooLarge")
        assert body["message"] == f"request entity too large: limit is {LIMIT} bytes"

    run(tmp_path, scenario)
