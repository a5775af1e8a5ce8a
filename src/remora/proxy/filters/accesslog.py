"""The access log (Envoy's file access logger, as MeshConfig accessLogFile/Encoding/Format set
it): one record per finished request, written by remora.telemetry.accesslog in batches.

Log phase only; in the chain only while the log is on.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from remora.proxy.filter import HttpFilter
from remora.proxy.filters.stats import flags_text
from remora.proxy.routing import split_target
from remora.telemetry.accesslog import AccessRecord

if TYPE_CHECKING:
    from remora.proxy.context import RequestContext
    from remora.proxy.env import ProxyEnv


def logged_path(ctx: RequestContext) -> str:
    """%REQ(:PATH)%: an absolute-form target (`curl -x`) is logged by its path, as Envoy's
    codec splits it into :authority and :path, also when the proxy answered itself."""
    if ctx.request is not None:
        return ctx.request.path
    split = split_target(ctx.head, scheme=ctx.scheme)
    return split[1] if split is not None else ctx.head.target


class AccessLogFilter(HttpFilter):
    name: ClassVar[str] = "envoy.access_loggers.file"

    def __init__(self, env: ProxyEnv) -> None:
        self.env = env
        self.epoch_offset = time.time() - env.loop.time()

    def log(self, ctx: RequestContext) -> None:
        env = self.env
        log = env.access_log
        if not log.enabled:
            return
        head = ctx.head
        headers = dict(head.headers)
        endpoint = ctx.endpoint
        state = ctx.cluster
        route = ctx.route
        log.write(AccessRecord(
            start_time=ctx.start + self.epoch_offset,
            method=head.method,
            path=logged_path(ctx),
            protocol=f"HTTP/{head.http_version}",
            response_code=ctx.response_status,
            response_flags=flags_text(ctx),
            response_code_details=ctx.details or "via_upstream",
            bytes_received=ctx.bytes_received,
            bytes_sent=ctx.bytes_sent,
            duration_ms=ctx.duration_ms,
            upstream_service_time_ms=ctx.upstream_service_ms,
            x_forwarded_for=headers.get("x-forwarded-for"),
            user_agent=headers.get("user-agent"),
            # Envoy gives every request an id as it decodes it, answered locally or not
            request_id=ctx.request_id or headers.get("x-request-id") or env.request_id(),
            authority=ctx.request.authority if ctx.request else headers.get("host"),
            upstream_host=f"{endpoint.address}:{endpoint.port}" if endpoint else None,
            upstream_cluster=state.cluster.name if state else None,
            downstream_remote_address=ctx.client_ip,
            downstream_local_address=f"{env.options.bind}:{ctx.listener.port}",
            route_name=route.name if route is not None and route.name else None,
        ))
