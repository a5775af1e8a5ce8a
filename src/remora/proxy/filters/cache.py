"""The HTTP cache (envoy.filters.http.cache with the SimpleHttpCache), put in the chain by an
EnvoyFilter: remora.policy.httpcache keeps responses in bounded memory by RFC 9111; this filter
answers fresh hits itself, revalidates stale entries with the upstream (a 304 refreshes the
entry), stores what may be stored as it streams by, and drops a target's entries after an
unsafe method succeeds. The cache lives as long as the chain (one snapshot)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from remora.policy.httpcache import HttpCache, Lookup
from remora.proxy.filter import CONTINUE, HeadersResult, HttpFilter, LocalReply

if TYPE_CHECKING:
    from collections.abc import Callable

    from remora.policy.httpcache import CacheConfig
    from remora.proxy.codec.events import Headers, ResponseHead
    from remora.proxy.context import RequestContext

SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@dataclass(slots=True)
class _Pending:
    """A request the cache may learn from: its lookup, and the response as it goes by."""

    lookup: Lookup
    request_time: float
    status: int = 0
    headers: Headers = field(default_factory=list)
    body: list[bytes] | None = None  # None: not buffering (not storable, or too big)
    size: int = 0


def _reply(lookup: Lookup) -> LocalReply:
    return LocalReply(lookup.status, headers=list(lookup.headers), body=lookup.body,
                      details="cache_hit")


class Cache(HttpFilter):
    name: ClassVar[str] = "envoy.filters.http.cache"

    def __init__(self, config: CacheConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.cache = HttpCache(config)
        self.clock = clock  # wall clock: freshness is computed against Date headers
        self.key = f"{self.name}@{id(self)}"

    def _target(self, ctx: RequestContext) -> tuple[str, str] | None:
        request = ctx.request
        if request is None:
            return None
        return request.authority, request.path

    def request_headers(self, ctx: RequestContext) -> HeadersResult:
        target = self._target(ctx)
        if target is None or ctx.head.method not in ("GET", "HEAD"):
            return CONTINUE
        now = self.clock()
        lookup = self.cache.lookup(method=ctx.head.method, scheme=ctx.scheme,
                                   authority=target[0], path=target[1],
                                   request_headers=ctx.head.headers, now=now)
        if lookup.kind == "hit":
            return _reply(lookup)
        if lookup.kind == "validate" and ctx.upstream_headers is not None:
            conditions = {name for name, _ in lookup.conditional_headers}
            kept = [h for h in ctx.upstream_header_list() if h[0] not in conditions]
            ctx.upstream_headers = [*kept, *lookup.conditional_headers]
        if lookup.request is not None:
            ctx.state = {**(ctx.state or {}), self.key: _Pending(lookup, now)}
        return CONTINUE

    def response_headers(self, ctx: RequestContext, head: ResponseHead) -> HeadersResult:
        if ctx.local:
            return CONTINUE
        method = ctx.head.method
        if method not in SAFE:
            target = self._target(ctx)
            if target is not None:
                self.cache.invalidate(method=method, scheme=ctx.scheme, authority=target[0],
                                      path=target[1], status=head.status)
            return CONTINUE
        pending = ctx.state.get(self.key) if ctx.state is not None else None
        if not isinstance(pending, _Pending):
            return CONTINUE
        lookup = pending.lookup
        if lookup.kind == "validate" and head.status == 304:
            updated = self.cache.update_after_304(
                lookup, headers=ctx.response_header_list(), request_time=pending.request_time,
                response_time=self.clock())
            if updated is not None:
                return _reply(updated)
        if lookup.store_allowed:
            pending.status = head.status
            pending.headers = list(ctx.response_header_list())
            pending.body = []
        return CONTINUE

    def response_body(self, ctx: RequestContext, data: bytes, end: bool) -> bytes:
        pending = ctx.state.get(self.key) if ctx.state is not None else None
        if not isinstance(pending, _Pending) or pending.body is None:
            return data
        pending.size += len(data)
        if pending.size > self.cache.body_limit:
            pending.body = None  # too big to keep: forwarded, not stored
            return data
        pending.body.append(data)
        if end:
            self.cache.store(pending.lookup, status=pending.status, headers=pending.headers,
                             body=b"".join(pending.body), request_time=pending.request_time,
                             response_time=self.clock())
        return data
