"""Run one proxy process until it is drained: the runtime, the admin and health ports."""

from __future__ import annotations

import logging

import uvloop

from remora.errors import RemoraError
from remora.gcpause import settle_heap
from remora.proxy.admin import serve_admin
from remora.proxy.config import SnapshotSource
from remora.proxy.env import ProxyOptions
from remora.proxy.runtime import ProxyRuntime

log = logging.getLogger("remora.proxy")


class ListenError(RemoraError):
    """A port the proxy needs is taken or not allowed."""


async def serve(source: SnapshotSource, options: ProxyOptions, *, admin_port: int,
                health_port: int) -> None:
    snapshot = await source.first()  # the first config must be valid: nothing to fall back to
    runtime = ProxyRuntime(source, options, snapshot)
    try:
        await runtime.start()
        admin = await serve_admin(runtime, port=admin_port, health_only=False)
        health = await serve_admin(runtime, port=health_port, health_only=True)
    except OSError as exc:
        raise ListenError(f"cannot listen: {exc.strerror or exc}") from exc
    ports = ", ".join(f"{listener.direction} {listener.port}"
                      for listener in runtime.snapshot.listeners)
    settle_heap()
    log.info("remora proxy ready: %s; admin %d, health %d", ports, admin_port, health_port)
    await runtime.stopped.wait()
    admin.close()
    health.close()
    log.info("remora proxy drained and stopped")


def run(
    source: SnapshotSource, options: ProxyOptions, *, admin_port: int, health_port: int
) -> None:
    """Block until the proxy stops (SIGTERM, SIGINT or POST /drain)."""
    uvloop.run(serve(source, options, admin_port=admin_port, health_port=health_port))
