"""The router (envoy.filters.http.router), last in every chain: it forwards the request to the
cluster the route chose, through an `UpstreamCall` (host choice, circuit breakers, retries,
outlier detection), and answers itself when there is nowhere to go.

It sends the route decision's reply when there is one (404 NR, redirects, direct responses,
503 NC for a cluster the snapshot lacks), applies the route timeout (504 UT, or a cut when the
response had started), frames the request body for the upstream, answers `Expect:
100-continue` itself (Envoy's default) and, on the way back, sets x-envoy-upstream-service-time
and the Set-Cookie of a cookie hash policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from remora.policy.flags import ResponseFlag
from remora.proxy.call import UpstreamCall
from remora.proxy.codec.http1 import LAST_CHUNK, encode_chunk, encode_request_head, encode_trailers
from remora.proxy.codec.http1_encode import encode_request_lines
from remora.proxy.filter import CONTINUE, HeadersResult, HttpFilter, LocalReply

if TYPE_CHECKING:
    from remora.proxy.codec.events import ResponseHead
    from remora.proxy.context import RequestContext
    from remora.proxy.env import ProxyEnv

ROUTE_TIMEOUT = LocalReply(504, ResponseFlag.UT, b"upstream request timeout",
                           details="upstream_response_timeout")


class Router(HttpFilter):
    name: ClassVar[str] = "envoy.filters.http.router"

    def __init__(self, env: ProxyEnv) -> None:
        self.env = env

    def request_headers(self, ctx: RequestContext) -> HeadersResult:
        if ctx.no_route is not None:
            return ctx.no_route
        state, policies, headers = ctx.cluster, ctx.policies, ctx.upstream_headers
        assert state is not None and policies is not None and headers is not None
        key = None
        if state.hash_policy is not None:
            from remora.proxy.clusters import request_hash  # noqa: PLC0415 - rare path

            assert ctx.request is not None
            key, cookie = request_hash(state.hash_policy, ctx.request, client_ip=ctx.client_ip)
            if cookie is not None:
                ctx.state = {**(ctx.state or {}), self.name: cookie}
        if policies.timeout is not None:
            ctx.timer = self.env.loop.call_later(policies.timeout, self.on_route_timeout, ctx)
        head = ctx.head
        if head.expect_continue:
            ctx.stream.send_continue()
        if head.chunked:
            headers.append(("transfer-encoding", "chunked"))
        raw = ctx.upstream_raw
        data = (encode_request_head(head.method, ctx.path, headers) if raw is None
                else encode_request_lines(head.method, ctx.path, ctx.authority, raw, headers))
        call = UpstreamCall(
            self.env, ctx.stream, state, head=data,
            method=head.method, retry=policies.retry, key=key, body_done=ctx.request_done,
        )
        ctx.upstream = call
        call.start()
        return CONTINUE

    def request_body(self, ctx: RequestContext, data: bytes, end: bool) -> bytes:
        call = ctx.upstream
        if isinstance(call, UpstreamCall):
            if ctx.head.chunked:
                out = encode_chunk(data)
                if end:
                    trailers = ctx.request_trailers
                    out += encode_trailers(trailers) if trailers else LAST_CHUNK
            else:
                out = data
            call.send(out, end=end)
        return b""

    def response_headers(self, ctx: RequestContext, head: ResponseHead) -> HeadersResult:
        if ctx.state is not None and self.name in ctx.state:
            ctx.response_headers.append(("set-cookie", ctx.state[self.name]))
        if ctx.upstream_service_ms is not None:
            ctx.response_headers.append(
                ("x-envoy-upstream-service-time", str(int(ctx.upstream_service_ms))))
        return CONTINUE

    def on_route_timeout(self, ctx: RequestContext) -> None:
        """VirtualService `timeout` (Envoy route timeout): 504 UT, or a cut if answering."""
        ctx.timer = None
        if ctx.finished:
            return
        call, ctx.upstream = ctx.upstream, None
        if isinstance(call, UpstreamCall):
            call.abandon(timed_out=True)
        if not ctx.response_head_sent:
            ctx.stream.send_local_reply(ROUTE_TIMEOUT)
        else:
            ctx.stream.reset(ResponseFlag.UT, None)
