"""Header operations of VirtualService routes (`headers.request` / `headers.response`, on a
route and on each destination): set, add, remove.

Outermost in the chain, so on the way out it runs last, for every response: Envoy applies a
route's response header operations when the response leaves the connection manager
(finalizeResponseHeaders), replies the proxy makes itself included (envoyproxy/envoy#13204:
the 503 or 504 of a failed upstream too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from remora.proxy.filter import CONTINUE, HeadersResult, HttpFilter

if TYPE_CHECKING:
    from remora.proxy.codec.events import ResponseHead
    from remora.proxy.context import RequestContext


class HeaderOperations(HttpFilter):
    name: ClassVar[str] = "envoy.filters.http.header_mutation"

    def request_headers(self, ctx: RequestContext) -> HeadersResult:
        target, route = ctx.target, ctx.route
        if ctx.upstream_headers is None or target is None or route is None:
            return CONTINUE
        if target.request_headers.levels or route.request_headers.levels:
            headers = target.request_headers.apply(ctx.upstream_header_list())
            ctx.upstream_headers = route.request_headers.apply(headers)
        return CONTINUE

    def response_headers(self, ctx: RequestContext, head: ResponseHead) -> HeadersResult:
        route = ctx.route
        if route is None:
            return CONTINUE
        if ctx.local:
            if route.response_headers.levels:
                ctx.response_headers = route.response_headers.apply(ctx.response_header_list())
            return CONTINUE
        target = ctx.target
        if (target is not None and target.response_headers.levels) or \
                route.response_headers.levels:
            headers = ctx.response_header_list()
            if target is not None:
                headers = target.response_headers.apply(headers)
            ctx.response_headers = route.response_headers.apply(headers)
        return CONTINUE
