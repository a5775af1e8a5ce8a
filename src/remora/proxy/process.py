"""Run one proxy process until it is drained: the runtime, the admin and health ports."""

from __future__ import annotations

import contextlib
import logging
import resource
from dataclasses import replace
from typing import TYPE_CHECKING

import uvloop

from remora.errors import RemoraError
from remora.gcpause import settle_heap
from remora.proxy.admin import serve_admin
from remora.proxy.config import SnapshotSource
from remora.proxy.env import ProxyOptions
from remora.proxy.runtime import ProxyRuntime

if TYPE_CHECKING:
    from remora.proxy.certs import CertificateSource  # loads cryptography: only with mTLS

log = logging.getLogger("remora.proxy")


class ListenError(RemoraError):
    """A port the proxy needs is taken or not allowed."""


async def serve(source: SnapshotSource, options: ProxyOptions, *, admin_port: int,
                health_port: int, certificates: CertificateSource | None = None) -> None:
    snapshot = await source.first()  # the first config must be valid: nothing to fall back to
    runtime = ProxyRuntime(source, options, snapshot, certificates=certificates)
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
    source: SnapshotSource, options: ProxyOptions, *, admin_port: int, health_port: int,
    certificates: CertificateSource | None = None,
) -> None:
    """Block until the proxy stops (SIGTERM, SIGINT or POST /drain)."""
    files = raise_open_files_limit()
    if options.max_connections is None:
        options = replace(options, max_connections=connection_limit(files))
    log.info("open files limit %d; at most %d downstream connections", files,
             options.max_connections)
    uvloop.run(serve(source, options, admin_port=admin_port, health_port=health_port,
                     certificates=certificates))


def raise_open_files_limit() -> int:
    """RLIMIT_NOFILE's soft limit raised to its hard limit, as Envoy's packaging and Istio's
    proxy do; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_limit(open_files: int) -> int:
    """Downstream connections allowed for `open_files` descriptors: each may need an upstream
    one too, and some are kept for listeners, logs and the control plane."""
    return max(64, open_files // 2 - 64)
