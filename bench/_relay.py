"""(d): a uvloop byte relay with no HTTP logic at all — the ceiling for a Python proxy here.

Each client connection gets its own upstream connection and bytes are copied both ways, nothing
parsed. Whatever (c) does beyond this (codec, routing, balancing, telemetry) costs throughput;
what (d) cannot reach, no Python proxy on this event loop can.

    python bench/_relay.py PORT UPSTREAM_PORT      (run by bench/proxy.py)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from _procs import Service, wait_for_port


class _Upstream(asyncio.Protocol):
    def __init__(self, client: _Client) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        assert self.client.transport is not None
        self.client.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client.transport is not None:
            self.client.transport.close()


class _Client(asyncio.Protocol):
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.transport: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().create_task(self.connect())

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        self.upstream, _ = await loop.create_connection(
            lambda: _Upstream(self), "127.0.0.1", self.upstream_port
        )
        for data in self.pending:
            self.upstream.write(data)

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self.pending.append(data)
        else:
            self.upstream.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()


async def _serve(port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_server(lambda: _Client(upstream_port), "127.0.0.1", port)
    await asyncio.Event().wait()


def start(workdir: Path, port: int, *, upstream: int) -> Service:
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, __file__, str(port), str(upstream)]
    service = Service("uvloop relay", argv, log=workdir / "relay.log", cwd=workdir)
    wait_for_port(port, service)
    return service


if __name__ == "__main__":
    import uvloop

    uvloop.run(_serve(int(sys.argv[1]), int(sys.argv[2])))
