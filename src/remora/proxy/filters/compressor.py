"""Response compression (envoy.filters.http.compressor with the gzip library, and the older
envoy.filters.http.gzip), put in the chain by an EnvoyFilter: remora.policy.compression
decides from the request's Accept-Encoding and the response's headers, and compresses the
body as it streams (each piece sync-flushed, so the client can decode what it has)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from remora.policy.compression import (
    CompressorConfig,
    GzipStream,
    decide_response,
    forward_request_headers,
)
from remora.proxy.filter import CONTINUE, HeadersResult, HttpFilter

if TYPE_CHECKING:
    from remora.proxy.codec.events import ResponseHead
    from remora.proxy.context import RequestContext


class Compressor(HttpFilter):
    name: ClassVar[str] = "envoy.filters.http.compressor"

    def __init__(self, config: CompressorConfig) -> None:
        self.config = config
        self.key = f"{self.name}@{id(self)}"  # per-request state: a chain may hold two

    def request_headers(self, ctx: RequestContext) -> HeadersResult:
        config = self.config
        if config.enabled and config.remove_accept_encoding_header \
                and ctx.upstream_headers is not None:
            ctx.upstream_headers = forward_request_headers(config, ctx.upstream_header_list())
        return CONTINUE

    def response_headers(self, ctx: RequestContext, head: ResponseHead) -> HeadersResult:
        decision = decide_response(
            self.config, request_headers=ctx.head.headers, response_status=head.status,
            response_headers=ctx.response_header_list(), head_request=ctx.head.method == "HEAD")
        ctx.response_headers = decision.headers
        if decision.compress:
            head.content_length = None  # the stream frames the compressed body itself
            ctx.state = {**(ctx.state or {}), self.key: self.config.gzip.stream()}
        return CONTINUE

    def response_body(self, ctx: RequestContext, data: bytes, end: bool) -> bytes:
        stream = ctx.state.get(self.key) if ctx.state is not None else None
        if not isinstance(stream, GzipStream):
            return data
        out = stream.compress(data) if data else b""
        return out + stream.finish() if end else out
