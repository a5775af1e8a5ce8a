"""The proxy's client to its control plane: a JSON POST answered whole, one answered as a
stream of NDJSON lines (chunked, as uvicorn streams), and a broken stream as an OSError."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from remora.proxy.cpclient import ControlPlaneClient, ControlPlaneHTTPError

pytestmark = [pytest.mark.timeout(10), pytest.mark.anyio]

Handler = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[str]:
    """A server on 127.0.0.1 that reads one request (head and body) and lets `handler`
    answer it."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        body = await reader.readexactly(length)
        await handler(head + body, writer)
        writer.close()

    listening = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/base"
    finally:
        listening.close()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def test_a_json_post_sends_its_body_and_reads_the_answer() -> None:
    seen: list[bytes] = []

    async def answer(request: bytes, writer: asyncio.StreamWriter) -> None:
        seen.append(request)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{\"accepted\":1}\n")

    async with server(answer) as url:
        status, body = await ControlPlaneClient(url).post_json(
            "/ack", {"node": "n"}, {"authorization": "Bearer t"})
    assert (status, json.loads(body)) == (200, {"accepted": 1})
    head, _, sent = seen[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /base/ack HTTP/1.1\r\n")
    assert b"\r\nauthorization: Bearer t" in head
    assert json.loads(sent) == {"node": "n"}


async def test_a_streamed_answer_gives_its_lines_as_they_come() -> None:
    async def answer(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (b'{"a":', b'1}\n{"b":2}\n', b'{"c":3}\n'):
            writer.write(chunk(piece))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")

    async with server(answer) as url:
        response, connection = await ControlPlaneClient(url).post("/s", {}, {})
        lines = [json.loads(line) async for line in response.lines()]
        connection.close()
    assert lines == [{"a": 1}, {"b": 2}, {"c": 3}]


async def test_a_stream_cut_short_is_an_os_error() -> None:
    async def answer(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunk(b"{}\n"))

    async with server(answer) as url:
        response, connection = await ControlPlaneClient(url).post("/s", {}, {})
        with pytest.raises(ControlPlaneHTTPError):
            async for _ in response.lines():
                pass
        connection.close()


async def test_no_server_is_an_os_error_and_a_bad_url_a_value_error() -> None:
    async with server(lambda request, writer: asyncio.sleep(0)) as url:
        pass  # closed: nothing listens there any more
    with pytest.raises(OSError):
        await ControlPlaneClient(url).post_json("/ack", {}, {})
    with pytest.raises(ValueError, match="http"):
        ControlPlaneClient("ftp://127.0.0.1/")
