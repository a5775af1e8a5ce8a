"""Header operations of VirtualService routes (`headers.request` / `headers.response`, on a
route and on each destination): set, add, remove.

Outermost in the chain, so on the way out it runs last, for every response: Envoy applies a
route's response header operations when the response leaves the connection manager
(finalizeResponseHeaders), replies the proxy makes itself included, except the 5xx ones it
makes when the upstream failed.
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
        headers = ctx.upstream_headers
        target = ctx.target
        if headers is not None and target is not None:
            headers = target.request_headers.apply(headers)
            route = ctx.route
            if route is not None:
                headers = route.request_headers.apply(headers)
            ctx.upstream_headers = headers
        return CONTINUE

    def response_headers(self, ctx: RequestContext, head: ResponseHead) -> HeadersResult:
        route = ctx.route
        if ctx.local:
            if route is not None and ctx.response_status < 500:
                ctx.response_headers = route.response_headers.apply(ctx.response_headers)
            return CONTINUE
        headers = ctx.response_headers
        if ctx.target is not None:
            headers = ctx.target.response_headers.apply(headers)
        if route is not None:
            headers = route.response_headers.apply(headers)
        ctx.response_headers = headers
        return CONTINUE
