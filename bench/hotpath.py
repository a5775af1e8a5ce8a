"""Benchmark: the proxy's per-request Python cost, without sockets or a second process.

Drives the real DownstreamConnection / HttpStream (the filter chain) / UpstreamConnection
objects with in-memory transports (tests/unit/proxy/harness.py): one request in, one pooled
upstream answer back, all of the routing, codec, telemetry and access log on the way (the
benchmark config of bench/proxy.py). Prints
microseconds per request, so a change to the hot path can be judged in seconds and with
little noise; `--profile` shows where the time goes.

    .venv/bin/python bench/hotpath.py [--requests N] [--profile] [--no-access-log]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # the test tree's in-memory transport

from tests.unit.proxy.harness import MemoryTransport

import _remora
from remora.mesh.snapshot import ListenerPorts, ProxyIdentity
from remora.proxy.config import FileSource
from remora.proxy.env import ProxyOptions
from remora.proxy.runtime import ProxyRuntime
from remora.proxy.server import DownstreamConnection
from remora.proxy.upstream import UpstreamConnection

UPSTREAM_PORT = 18080
REQUEST = (
    b"GET /products/42 HTTP/1.1\r\nHost: backend:8080\r\nUser-Agent: wrk\r\n"
    b"Accept: */*\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 23 Nov 2026 17:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 1024\r\nConnection: keep-alive\r\n\r\n"
    + b"x" * 1024
)


async def measure(requests: int, *, profile: bool, access_log: bool) -> float:
    workdir = Path(tempfile.mkdtemp(prefix="remora-hotpath-"))
    config = workdir / "config"
    config.mkdir()
    (config / "mesh.yaml").write_text(_remora.mesh_config(upstream=UPSTREAM_PORT))
    identity = ProxyIdentity(mode="sidecar", labels={"app": "client", "version": "v1"},
                             workload="client")
    source = FileSource([str(config)], identity=identity, ports=ListenerPorts())
    log = str(workdir / "access.log") if access_log else None
    runtime = ProxyRuntime(source, ProxyOptions(access_log=log), await source.first())
    listener = next(x for x in runtime.snapshot.listeners if x.direction == "outbound")
    downstream = DownstreamConnection(runtime.env, listener, scheme="http",
                                      connections=runtime.connections)
    client = MemoryTransport()
    downstream.connection_made(client)  # type: ignore[arg-type]
    upstream_pool = runtime.env.pools.get("127.0.0.1", UPSTREAM_PORT)
    upstream = UpstreamConnection(upstream_pool)
    server = MemoryTransport()
    upstream.connection_made(server)  # type: ignore[arg-type]
    upstream_pool.connections.add(upstream)
    upstream_pool.idle.append(upstream)
    request = REQUEST.replace(b"8080", str(_remora.SERVICE_PORT).encode())

    def one() -> None:
        downstream.data_received(request)
        upstream.data_received(RESPONSE)
        client.written.clear()
        server.written.clear()

    for _ in range(2000):  # warm caches (label tuples, RE2, pools)
        one()
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    for _ in range(requests):
        one()
    elapsed = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    runtime.env.access_log.close()
    return elapsed / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-access-log", action="store_true", help="measure without it")
    args = parser.parse_args()
    us = asyncio.run(
        measure(args.requests, profile=args.profile, access_log=not args.no_access_log)
    )
    print(f"hot path: {us:.1f} us per request ({1e6 / us:,.0f} req/s of Python on one core)")


if __name__ == "__main__":
    main()
