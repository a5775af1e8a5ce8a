"""Slow clients on real sockets (127.0.0.1) against the control plane's HTTP server, with its
timeouts shortened: a trickled request head gets 408 and is closed at the header timeout, a
connection that says nothing or idles after a response is closed at the idle timeout, an
oversized head gets 431 — while a Nacos long poll or a watch held past both timeouts still
answers."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import uvicorn

from remora.controlplane.app import create_app
from remora.controlplane.bodylimit import BodyLimit
from remora.controlplane.slowclients import guarded_protocol
from remora.controlplane.state import ControlPlane
from remora.registry.configs import ConfigKey
from remora.registry.store.sqlite import SqliteStore

HEADER_TIMEOUT = 0.5
IDLE_TIMEOUT = 1
Scenario = Callable[[int, ControlPlane], Awaitable[None]]


def serve(tmp_path: Path, scenario: Scenario) -> None:
    """Run `scenario(port, state)` against the control plane served as `remora controlplane`
    serves it (httptools, the guarded protocol, the body limit), without auth."""
    async def main() -> None:
        state = await ControlPlane.open(await SqliteStore(tmp_path / "remora.db").open())
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(BodyLimit(create_app(state)), loop="none", lifespan="off",
                                http=guarded_protocol(HEADER_TIMEOUT),
                                timeout_keep_alive=IDLE_TIMEOUT, log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            await asyncio.wait_for(scenario(sock.getsockname()[1], state), 30)
        finally:
            server.should_exit = True
            await task
            sock.close()
            await state.close()

    asyncio.run(main())


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await reader.read()


def test_trickled_head_is_answered_408_and_closed(tmp_path: Path) -> None:
    async def scenario(port: int, state: ControlPlane) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = b"GET /healthz HTTP/1.1\r\nhost: cp\r\n" + b"x-pad: " + b"a" * 200 + b"\r\n\r\n"

        async def trickle() -> None:  # one byte every 0.1 s: 25 s for the whole head
            for at in range(len(head)):
                writer.write(head[at:at + 1])
                await asyncio.sleep(0.1)

        trickling = asyncio.create_task(trickle())
        answer = await read_all(reader)
        assert not trickling.done()  # cut off before the head was complete
        trickling.cancel()
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        writer.close()

    serve(tmp_path, scenario)


def test_silent_connection_is_closed_at_the_idle_timeout(tmp_path: Path) -> None:
    async def scenario(port: int, state: ControlPlane) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await read_all(reader) == b""  # closed by the server, nothing said
        writer.close()

    serve(tmp_path, scenario)


def test_idle_keep_alive_connection_is_closed_after_a_response(tmp_path: Path) -> None:
    async def scenario(port: int, state: ControlPlane) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: cp\r\n\r\n")
        answer = await read_all(reader)  # the answer, then the close when idle
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b"ok")
        writer.close()

    serve(tmp_path, scenario)


def test_oversized_head_is_answered_431(tmp_path: Path) -> None:
    async def scenario(port: int, state: ControlPlane) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: cp\r\n")
        for _ in range(40):  # 40 × 32 KiB headers: past the 1 MiB a head may have
            writer.write(b"x-pad: " + b"a" * 32768 + b"\r\n")
        answer = await read_all(reader)
        assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        writer.close()

    serve(tmp_path, scenario)


def test_long_poll_held_past_the_timeouts_is_not_cut(tmp_path: Path) -> None:
    async def scenario(port: int, state: ControlPlane) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b"Listening-Configs=app.yaml%02G%02%01"
        writer.write(b"POST /nacos/v1/cs/configs/listener HTTP/1.1\r\nhost: cp\r\n"
                     b"long-pulling-timeout: 30000\r\n"
                     b"content-type: application/x-www-form-urlencoded\r\n"
                     b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        # longer than the header and idle timeouts together, then a change wakes the poll
        await asyncio.sleep(HEADER_TIMEOUT + IDLE_TIMEOUT + 1)
        assert not reader.at_eof()
        await state.configs.publish(ConfigKey(data_id="app.yaml", group="G"), "v: 1")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        writer.close()

    serve(tmp_path, scenario)


def test_watch_stream_held_past_the_timeouts_is_not_cut(tmp_path: Path) -> None:
    async def scenario(port: int, state: ControlPlane) -> None:
        path = "/apis/networking.istio.io/v1/namespaces/default/virtualservices"
        vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
              "metadata": {"name": "reviews"},
              "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {
                  "host": "reviews"}}]}]}}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http, \
                http.stream("GET", path, params={"watch": "true"}) as watch:
            assert watch.status_code == 200
            await asyncio.sleep(HEADER_TIMEOUT + IDLE_TIMEOUT + 1)
            created = await http.post(path, json=vs)
            assert created.status_code == 201
            event = json.loads(await anext(watch.aiter_lines()))
            assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "reviews")

    serve(tmp_path, scenario)
