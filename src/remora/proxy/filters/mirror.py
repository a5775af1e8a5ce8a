"""Traffic mirroring (VirtualService `mirror` / `mirrors`): fire-and-forget copies of requests.

Envoy's request mirror policy: the copy goes to the mirror cluster with "-shadow" appended to
the host of its authority, its response is dropped, and nothing about it — failure, slowness —
reaches the client's request. Each mirror is drawn on its own `mirrorPercentage` (absent: 100).
Only bodiless requests are mirrored.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, ClassVar

from remora.mesh.snapshot import RouteAction
from remora.proxy.codec.events import Data, EndOfMessage, ProtocolError, ResponseHead
from remora.proxy.codec.http1_encode import encode_request_head
from remora.proxy.filter import CONTINUE, HeadersResult, HttpFilter

if TYPE_CHECKING:
    from collections.abc import Sequence

    from remora.mesh.snapshot import MirrorTarget
    from remora.proxy.clusters import ClusterState, ClusterTable
    from remora.proxy.context import RequestContext
    from remora.proxy.env import ProxyEnv
    from remora.proxy.mtls import WorkloadTls

MIRROR_TIMEOUT = 10.0  # a mirror that takes longer is dropped (its connection closed)


def shadow_authority(authority: str) -> str:
    """Envoy appends "-shadow" to the host, keeping the port: "a:80" → "a-shadow:80"."""
    host, sep, port = authority.rpartition(":")
    if sep and port.isdigit():
        return f"{host}-shadow:{port}"
    return f"{authority}-shadow"


class Mirror(HttpFilter):
    name: ClassVar[str] = "envoy.filters.http.router.mirror"

    def __init__(self, env: ProxyEnv) -> None:
        self.env = env

    def request_headers(self, ctx: RequestContext) -> HeadersResult:
        route = ctx.route
        action = route.action if route is not None else None
        if (isinstance(action, RouteAction) and action.mirrors and ctx.request_done
                and not ctx.head.content_length and ctx.upstream_headers is not None):
            # the request as the router sends it (same headers, same x-request-id), to the
            # shadow authority: the filters before this one have done their work on it
            shadow = shadow_authority(ctx.authority)
            headers = [("host", shadow) if name == "host" else (name, value)
                       for name, value in ctx.upstream_header_list()]
            send_mirrors(self.env, ctx.tables, action.mirrors,
                         data=encode_request_head(ctx.head.method, ctx.path, headers),
                         method=ctx.head.method)
        return CONTINUE


def send_mirrors(env: ProxyEnv, tables: ClusterTable, mirrors: Sequence[MirrorTarget],
                 *, data: bytes, method: str) -> None:
    """A copy of the request head `data` to each mirror drawn by its percentage."""
    rng = env.rng
    for target in mirrors:
        if target.percentage < 100 and rng.random() * 100 >= target.percentage:
            continue
        state = tables.states.get(target.cluster)
        if state is None:
            continue
        host = state.pick(rng=rng, key=None)
        if host is None:
            continue
        env.spawn(mirror_once(state, host, data, method=method, workload=env.tls))


class _Discard:
    """Reads a mirrored response to its end and drops it."""

    def __init__(self) -> None:
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def on_response_events(self, events: list[ResponseHead | Data | EndOfMessage]) -> None:
        keep = next((e.keep_alive for e in events if isinstance(e, ResponseHead)), True)
        if isinstance(events[-1], EndOfMessage) and not self.done.done():
            self.done.set_result(keep)

    def on_upstream_error(self, *, error: ProtocolError | None, eof: bool) -> None:
        if not self.done.done():
            self.done.set_result(False)

    def on_upstream_writable(self, writable: bool) -> None:
        pass


async def mirror_once(state: ClusterState, host: int, data: bytes, *, method: str,
                      workload: WorkloadTls | None = None) -> None:
    pool = state.pools[host]
    connection = pool.take_idle()
    try:
        if connection is None:
            connection = await pool.connect(timeout=state.limits.connect_timeout,
                                            workload=workload)
    except (OSError, TimeoutError):
        return  # a mirror failure is nobody's business
    sink = _Discard()
    connection.start(sink, method=method)
    connection.write(data)
    try:
        reusable = await asyncio.wait_for(sink.done, MIRROR_TIMEOUT)
    except TimeoutError:
        reusable = False
    now = asyncio.get_running_loop().time()
    connection.release(reusable=reusable, idle_until=state.limits.idle_deadline(now))
