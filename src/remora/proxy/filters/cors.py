"""CORS (envoy.filters.http.cors) from a VirtualService route's `corsPolicy`: a preflight is
answered by the proxy; an actual request's response gets the Access-Control-* headers."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from remora.proxy.filter import CONTINUE, HeadersResult, HttpFilter, LocalReply

if TYPE_CHECKING:
    from remora.proxy.codec.events import ResponseHead
    from remora.proxy.context import RequestContext


class Cors(HttpFilter):
    name: ClassVar[str] = "envoy.filters.http.cors"

    def request_headers(self, ctx: RequestContext) -> HeadersResult:
        route = ctx.route
        if route is None or route.cors is None or ctx.head.method != "OPTIONS":
            return CONTINUE
        assert ctx.request is not None
        preflight = route.cors.preflight(ctx.request)
        if preflight is None:
            return CONTINUE
        return LocalReply(200, headers=preflight, details="cors_preflight")

    def response_headers(self, ctx: RequestContext, head: ResponseHead) -> HeadersResult:
        route = ctx.route
        if not ctx.local and route is not None and route.cors is not None \
                and ctx.request is not None:
            added = route.cors.response_headers(ctx.request)
            if added:  # Envoy's CORS filter sets these: the upstream's own are replaced
                names = {name for name, _ in added}
                ctx.response_headers = [h for h in ctx.response_header_list()
                                        if h[0] not in names] + added
        return CONTINUE
