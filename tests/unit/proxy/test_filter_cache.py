"""The HTTP cache (envoy.filters.http.cache with the SimpleHttpCache) as users put it in the
chain, an EnvoyFilter HTTP_FILTER patch, through the in-memory proxy.

Envoy's cache filter docs (envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/
cache_filter): a response is cached only with enough data to compute its freshness (a 200 with
`Cache-Control: max-age=60` and no Vary is), the request's and the response's Cache-Control
are respected (no-store; private: Envoy is a shared cache), a Vary only on headers
`allowed_vary_headers` allows; a hit is answered by the proxy with an Age, a stale entry is
validated with the upstream (RFC 9111 §4.3), an unsafe method invalidates (§4.4). The cache
reads the wall clock (freshness is computed against Date): each test sets the filter's clock.
"""

from __future__ import annotations

import gzip

import pytest

from remora.proxy.filters.cache import Cache
from tests.unit.proxy.harness import Client, ProxyHarness, Response, request_bytes, run
from tests.unit.proxy.test_filter_compressor import compressor_value
from tests.unit.proxy.test_filters import SERVICES

ROUTER = "envoy.filters.http.router"
CACHE = "envoy.filters.http.cache"
REVIEWS = "reviews:9080"
T0 = 1_800_000_000.0
SIMPLE_HTTP_CACHE = ("type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3."
                     "SimpleHttpCacheConfig")


def cache_value(*, extra: str = "") -> str:
    """patch.value: CacheConfig v3 with a SimpleHttpCacheConfig, as in Envoy's docs example;
    `extra` adds CacheConfig fields (allowed_vary_headers, max_body_bytes)."""
    return f"""\
        name: envoy.filters.http.cache
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig
          typed_config:
            "@type": {SIMPLE_HTTP_CACHE}
{extra}"""


def patch(value: str) -> str:
    return f"""\
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {{name: envoy.filters.http.router}}
    patch:
      operation: INSERT_BEFORE
      value:
{value}"""


def envoy_filter(*values: str) -> str:
    """One EnvoyFilter whose patches insert `values`, in order, each just before the router."""
    return SERVICES + """\
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: http-cache, namespace: default}
spec:
  configPatches:
""" + "".join(patch(v) for v in values)


SEED_CACHE = SERVICES + f"""\
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: http-cache
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.cache
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig
          typed_config:
            "@type": {SIMPLE_HTTP_CACHE}
"""
"""envoy-cache.yaml of seed 002 (its list bullets made YAML): no match, so every listener, and
INSERT_BEFORE without a subFilter, so first in the chain (Istio's http_filter_patch.go)."""


class Clock:
    """The cache filters' wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def with_clock(proxy: ProxyHarness) -> Clock:
    clock = Clock()
    chains = [*proxy.env.active.chains.values(), *proxy.env.active.port_chains.values()]
    caches = [f for chain in chains for f in chain.filters if isinstance(f, Cache)]
    assert caches, "no cache filter in the chains"
    for cache in caches:
        cache.clock = clock
    return clock


def reply(body: bytes = b"reviews v1", *, status: int = 200, cache_control: str | None =
          "max-age=60", extra: str = "") -> bytes:
    lines = [f"HTTP/1.1 {status} X", "content-type: text/plain",
             f"content-length: {len(body)}"]
    if cache_control is not None:
        lines.append(f"cache-control: {cache_control}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode() + body


class Exchange:
    """A client and the proxy's one upstream connection, request by request."""

    def __init__(self, proxy: ProxyHarness) -> None:
        self.proxy = proxy
        self.client: Client = proxy.client()

    async def send(self, method: str = "GET", *, headers: dict[str, str] | None = None,
                   body: bytes = b"") -> None:
        self.client.send(request_bytes(method, "/r", host=REVIEWS, headers=headers, body=body),
                         method=method)
        await self.proxy.settle()

    def upstream_request(self) -> bytes:
        """What reached the upstream since the last call (b"" for nothing)."""
        return b"".join(u.request() for u in self.proxy.network.opened)

    async def forwarded(self, answer: bytes, method: str = "GET", *,
                        headers: dict[str, str] | None = None, body: bytes = b"") -> Response:
        """A request that must reach the upstream, which answers `answer`."""
        await self.send(method, headers=headers, body=body)
        seen = self.upstream_request()
        assert seen.startswith(f"{method} /r HTTP/1.1".encode()), seen
        self.last_upstream_request = seen
        self.proxy.network.last.respond(answer)
        await self.proxy.settle()
        return self.response()

    def response(self) -> Response:
        return self.client.response()

    async def from_cache(self, *, headers: dict[str, str] | None = None,
                         method: str = "GET") -> Response:
        """A request the proxy must answer itself: nothing upstream, no new connection."""
        opened = len(self.proxy.network.opened)
        await self.send(method, headers=headers)
        assert self.upstream_request() == b""
        assert len(self.proxy.network.opened) == opened
        return self.response()


def test_the_seeds_cache_envoy_filter_goes_first_in_every_chain() -> None:
    """INSERT_BEFORE with no subFilter is an insert at the start (Istio); no match.context
    is every listener kind."""
    async def body() -> None:
        proxy = ProxyHarness(SEED_CACHE)
        first = ("istio.metadata_exchange", CACHE, "istio.stats", ROUTER)
        assert dict(proxy.chain_names) == {kind: first for kind in
                                           ("outbound", "inbound", "gateway")}

    run(body)


@pytest.mark.parametrize("yaml", [SEED_CACHE, envoy_filter(cache_value())],
                         ids=["seed-002", "before-router"])
def test_a_fresh_response_is_served_from_cache_with_its_age(yaml: str) -> None:
    """200 + Cache-Control: max-age=60: the second identical GET is answered by the proxy
    (no upstream request, no new connection) with the stored body and an Age (RFC 9111
    §5.1) of the seconds since it was stored."""
    async def body() -> None:
        proxy = ProxyHarness(yaml)
        clock = with_clock(proxy)
        x = Exchange(proxy)
        first = await x.forwarded(reply())
        assert (first.status, first.body) == (200, b"reviews v1")
        clock.now += 7
        hit = await x.from_cache()
        assert (hit.status, hit.body) == (200, b"reviews v1")
        assert hit.headers["age"] == "7"
        assert hit.headers["cache-control"] == "max-age=60"
        assert hit.headers["content-type"] == "text/plain"

    run(body)


def test_past_max_age_without_a_validator_the_request_goes_upstream_again() -> None:
    async def body() -> None:
        proxy = ProxyHarness(envoy_filter(cache_value()))
        clock = with_clock(proxy)
        x = Exchange(proxy)
        await x.forwarded(reply(cache_control="max-age=10"))
        clock.now += 11
        again = await x.forwarded(reply(b"reviews v2", cache_control="max-age=10"))
        assert again.body == b"reviews v2"
        assert "if-none-match" not in x.last_upstream_request.decode().lower()

    run(body)


@pytest.mark.parametrize("cache_control", [
    "no-store", "private, max-age=60", "max-age=60, no-store", None, "public"])
def test_a_response_that_may_not_be_stored_is_not(cache_control: str | None) -> None:
    """no-store and private (Envoy is a shared cache) are never stored; without max-age,
    s-maxage or Expires there is no freshness to compute, so no storing (Envoy does no
    heuristic freshness)."""
    async def body() -> None:
        proxy = ProxyHarness(envoy_filter(cache_value()))
        with_clock(proxy)
        x = Exchange(proxy)
        await x.forwarded(reply(cache_control=cache_control))
        again = await x.forwarded(reply(b"second", cache_control=cache_control))
        assert again.body == b"second"

    run(body)


def test_a_request_with_no_store_is_forwarded_and_not_stored() -> None:
    """"HTTP Cache respects request's Cache-Control directive": Cache-Control: no-store."""
    async def body() -> None:
        proxy = ProxyHarness(envoy_filter(cache_value()))
        with_clock(proxy)
        x = Exchange(proxy)
        await x.forwarded(reply(), headers={"Cache-Control": "no-store"})
        again = await x.forwarded(reply(b"second"))
        assert again.body == b"second"

    run(body)


VARY_LANGUAGE = "          allowed_vary_headers: [{exact: accept-language}]\n"


def test_vary_on_an_allowed_header_keeps_the_variants_apart() -> None:
    """allowed_vary_headers: a response with Vary: Accept-Language is stored per value of the
    request's Accept-Language; each client gets its own language back from the cache."""
    async def body() -> None:
        proxy = ProxyHarness(envoy_filter(cache_value(extra=VARY_LANGUAGE)))
        with_clock(proxy)
        x = Exchange(proxy)
        vary = "vary: accept-language\r\n"
        english, french = {"Accept-Language": "en"}, {"Accept-Language": "fr"}
        assert (await x.forwarded(reply(b"hello", extra=vary), headers=english)).body \
            == b"hello"
        assert (await x.forwarded(reply(b"bonjour", extra=vary), headers=french)).body \
            == b"bonjour"
        assert (await x.from_cache(headers=english)).body == b"hello"
        assert (await x.from_cache(headers=french)).body == b"bonjour"

    run(body)


def test_vary_on_a_header_not_allowed_is_not_stored() -> None:
    async def body() -> None:
        proxy = ProxyHarness(envoy_filter(cache_value(extra=VARY_LANGUAGE)))
        with_clock(proxy)
        x = Exchange(proxy)
        vary = "vary: x-user\r\n"
        await x.forwarded(reply(b"for alice", extra=vary), headers={"X-User": "alice"})
        again = await x.forwarded(reply(b"for bob", extra=vary), headers={"X-User": "bob"})
        assert again.body == b"for bob"

    run(body)


def test_a_stale_entry_with_an_etag_is_revalidated_and_a_304_serves_the_stored_200() -> None:
    """RFC 9111 §4.3.1: past max-age the cache asks the upstream with If-None-Match (the
    stored ETag); a 304 freshens the entry (§4.3.4) and the client gets the stored 200 and
    body; the freshened entry then serves hits again."""
    async def body() -> None:
        proxy = ProxyHarness(envoy_filter(cache_value()))
        clock = with_clock(proxy)
        x = Exchange(proxy)
        etag = 'etag: "v1"\r\n'
        await x.forwarded(reply(b"reviews v1", cache_control="max-age=10", extra=etag))
        clock.now += 30
        validated = await x.forwarded(
            b'HTTP/1.1 304 Not Modified\r\ncache-control: max-age=10\r\netag: "v1"\r\n\r\n')
        assert 'if-none-match: "v1"' in x.last_upstream_request.decode().lower()
        assert (validated.status, validated.body) == (200, b"reviews v1")
        assert validated.headers["etag"] == '"v1"'
        clock.now += 5
        hit = await x.from_cache()
        assert (hit.status, hit.body, hit.headers["age"]) == (200, b"reviews v1", "5")

    run(body)


def test_a_stale_entry_answered_with_a_new_200_is_replaced() -> None:
    async def body() -> None:
        proxy = ProxyHarness(envoy_filter(cache_value()))
        clock = with_clock(proxy)
        x = Exchange(proxy)
        await x.forwarded(reply(b"reviews v1", cache_control="max-age=10",
                                extra='etag: "v1"\r\n'))
        clock.now += 30
        fresh = await x.forwarded(reply(b"reviews v2", extra='etag: "v2"\r\n'))
        assert fresh.body == b"reviews v2"
        assert (await x.from_cache()).body == b"reviews v2"

    run(body)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_an_unsafe_method_on_the_same_path_invalidates_the_entry(method: str) -> None:
    """RFC 9111 §4.4: a successful unsafe request drops the stored responses of its target;
    the next GET goes upstream."""
    async def body() -> None:
        proxy = ProxyHarness(envoy_filter(cache_value()))
        with_clock(proxy)
        x = Exchange(proxy)
        await x.forwarded(reply(b"old"))
        assert (await x.from_cache()).body == b"old"
        changed = await x.forwarded(reply(b"done", cache_control=None), method,
                                    body=b'{"rating": 5}')
        assert changed.status == 200
        assert (await x.forwarded(reply(b"new"))).body == b"new"

    run(body)


def test_a_failed_post_leaves_the_entry() -> None:
    """§4.4 invalidates on a non-error status only."""
    async def body() -> None:
        proxy = ProxyHarness(envoy_filter(cache_value()))
        with_clock(proxy)
        x = Exchange(proxy)
        await x.forwarded(reply(b"old"))
        await x.forwarded(reply(b"no", status=500, cache_control=None), "POST", body=b"x")
        assert (await x.from_cache()).body == b"old"

    run(body)


def test_a_body_beyond_max_body_bytes_is_forwarded_whole_but_not_stored() -> None:
    """CacheConfig.max_body_bytes: a larger response is not inserted; the client still gets
    all of it, even when it arrives in pieces."""
    async def body() -> None:
        proxy = ProxyHarness(envoy_filter(cache_value(
            extra="          max_body_bytes: 1000\n")))
        with_clock(proxy)
        x = Exchange(proxy)
        big = bytes(range(256)) * 20  # 5120 bytes
        await x.send()
        assert x.upstream_request().startswith(b"GET /r HTTP/1.1")
        answer = reply(big)
        upstream = proxy.network.last
        for start in range(0, len(answer), 700):
            upstream.respond(answer[start:start + 700])
            await proxy.settle()
        response = x.client.response()
        assert response.body == big
        assert (await x.forwarded(reply(b"small"))).body == b"small"
        assert (await x.from_cache()).body == b"small"  # a body within the limit is stored

    run(body)


# the compressor and the cache together ------------------------------------------------------
def compressor_then_cache() -> str:
    return envoy_filter(compressor_value(min_content_length=30,
                                         content_type="[text/plain]"), cache_value())


BIG = b"reviews are in: " + b"five stars, " * 200


@pytest.mark.parametrize("order", [["gzip", "identity", "gzip"], ["identity", "gzip", "gzip"]])
def test_a_cached_response_is_compressed_for_a_gzip_client_only(order: list[str]) -> None:
    """The compressor before the cache (two INSERT_BEFORE router patches, in order): the cache
    stores the upstream's identity response, the compressor encodes each answer, hits
    included, for the client that asked: gzip for Accept-Encoding: gzip, plain otherwise."""
    async def body() -> None:
        proxy = ProxyHarness(compressor_then_cache())
        assert proxy.chain_names["outbound"] == (
            "istio.metadata_exchange", "envoy.filters.http.compressor", CACHE,
            "istio.stats", ROUTER)
        with_clock(proxy)
        x = Exchange(proxy)
        for index, encoding in enumerate(order):
            headers = {"Accept-Encoding": encoding}
            if index == 0:
                response = await x.forwarded(reply(BIG), headers=headers)
            else:
                response = await x.from_cache(headers=headers)
            if encoding == "gzip":
                assert response.headers.get("content-encoding") == "gzip", index
                assert gzip.decompress(response.body) == BIG
            else:
                assert "content-encoding" not in response.headers, index
                assert response.body == BIG
            assert [v.lower() for v in response.header_list("vary")] == ["accept-encoding"]

    run(body)


# framing of the answers the cache gives itself ------------------------------------------------
async def cached(proxy: ProxyHarness, *, etag: bool = False) -> Client:
    with_clock(proxy)
    client = proxy.client()
    client.get("/r", host=REVIEWS)
    await proxy.settle()
    assert proxy.network.last.request().startswith(b"GET /r HTTP/1.1")
    proxy.network.last.respond(reply(extra='etag: "v1"\r\n' if etag else ""))
    await proxy.settle()
    assert client.response().body == b"reviews v1"
    return client


def content_lengths(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode().lower().split("\r\n")
    return [line.split(":", 1)[1].strip() for line in head if line.startswith("content-length:")]


def test_a_cache_hit_has_one_content_length() -> None:
    """RFC 9112 §6.3: a message with several Content-Length lines is one a recipient may
    reject (Remora's own decoder does: 502 Duplicate Content-Length, so a Remora proxy in
    front of a caching one fails every hit)."""
    async def body() -> None:
        proxy = ProxyHarness(envoy_filter(cache_value()))
        client = await cached(proxy)
        client.get("/r", host=REVIEWS)
        await proxy.settle()
        assert not proxy.network.last.request()
        assert content_lengths(client.transport.take()) == ["10"]

    run(body)


def test_a_head_served_from_the_cache_has_the_stored_content_length_only() -> None:
    """Envoy serves HEAD from a stored GET (never stores a HEAD): the head of the 200 with its
    Content-Length (RFC 9110 §9.3.2), and no body; conflicting Content-Length values make the
    response invalid (RFC 9112 §6.3 item 5: an unrecoverable framing error)."""
    async def body() -> None:
        proxy = ProxyHarness(envoy_filter(cache_value()))
        client = await cached(proxy)
        client.send(request_bytes("HEAD", "/r", host=REVIEWS), method="HEAD")
        await proxy.settle()
        assert not proxy.network.last.request()
        raw = client.transport.take()
        assert raw.startswith(b"HTTP/1.1 200 ")
        assert content_lengths(raw) == ["10"]
        assert raw.endswith(b"\r\n\r\n")

    run(body)


def test_a_revalidated_entry_is_compressed_for_a_gzip_client() -> None:
    """Compressor before the cache: the stored 200 the cache answers after a 304 passes the
    compressor on its way out like any hit."""
    async def body() -> None:
        proxy = ProxyHarness(compressor_then_cache())
        clock = with_clock(proxy)
        x = Exchange(proxy)
        gzip_client = {"Accept-Encoding": "gzip"}
        await x.forwarded(reply(BIG, cache_control="max-age=10", extra='etag: "v1"\r\n'),
                          headers=gzip_client)
        clock.now += 30
        validated = await x.forwarded(
            b'HTTP/1.1 304 Not Modified\r\ncache-control: max-age=10\r\netag: "v1"\r\n\r\n',
            headers=gzip_client)
        assert 'if-none-match: "v1"' in x.last_upstream_request.decode().lower()
        assert validated.status == 200
        assert validated.headers.get("content-encoding") == "gzip"
        assert gzip.decompress(validated.body) == BIG
        # the stored head only, not the 304's lines as well (the compressor drops the strong
        # ETag, as Envoy's does)
        assert validated.header_list("cache-control") == ["max-age=10"]
        assert validated.header_list("etag") == []

    run(body)


def cache_then_compressor(vary: str) -> str:
    return envoy_filter(cache_value(extra=vary), compressor_value(
        min_content_length=30, content_type="[text/plain]"))


def test_the_cache_before_the_compressor_stores_nothing_compressible_without_vary_allowed(
) -> None:
    """The cache outside the compressor sees its responses: each has Vary: Accept-Encoding
    (the compressor adds it to every compressible response), and a Vary on a header
    allowed_vary_headers does not list is not stored (Envoy's cache filter docs), for gzip
    and identity clients alike."""
    async def body() -> None:
        proxy = ProxyHarness(cache_then_compressor(""))
        assert proxy.chain_names["outbound"] == (
            "istio.metadata_exchange", CACHE, "envoy.filters.http.compressor",
            "istio.stats", ROUTER)
        with_clock(proxy)
        x = Exchange(proxy)
        for encoding in ("gzip", "gzip", "identity", "identity"):
            await x.forwarded(reply(BIG), headers={"Accept-Encoding": encoding})

    run(body)


def test_the_cache_before_the_compressor_keeps_encodings_apart_with_vary_allowed() -> None:
    """allowed_vary_headers: accept-encoding: the compressed and the identity responses are
    two variants; each client gets its own from the cache (no second compression)."""
    async def body() -> None:
        proxy = ProxyHarness(cache_then_compressor(
            "          allowed_vary_headers: [{exact: accept-encoding}]\n"))
        with_clock(proxy)
        x = Exchange(proxy)
        gzip_client, identity_client = {"Accept-Encoding": "gzip"}, {"Accept-Encoding": "identity"}
        first = await x.forwarded(reply(BIG), headers=gzip_client)
        assert first.headers.get("content-encoding") == "gzip"
        assert "content-encoding" not in (
            await x.forwarded(reply(BIG), headers=identity_client)).headers
        for _ in range(2):
            hit = await x.from_cache(headers=gzip_client)
            assert hit.headers.get("content-encoding") == "gzip"
            assert gzip.decompress(hit.body) == BIG
            plain = await x.from_cache(headers=identity_client)
            assert "content-encoding" not in plain.headers
            assert plain.body == BIG

    run(body)


def test_the_age_of_a_hit_counts_the_upstreams_age_and_a_too_old_response_is_not_served(
) -> None:
    """RFC 9111 §4.2.3: a hit's Age is the Age the upstream gave plus the seconds it has been
    stored; a response whose Age is already past its max-age is stale at once."""
    async def body() -> None:
        proxy = ProxyHarness(envoy_filter(cache_value()))
        clock = with_clock(proxy)
        x = Exchange(proxy)
        await x.forwarded(reply(extra="age: 10\r\n"))
        clock.now += 5
        assert (await x.from_cache()).headers["age"] == "15"
        proxy2 = ProxyHarness(envoy_filter(cache_value()))
        with_clock(proxy2)
        y = Exchange(proxy2)
        await y.forwarded(reply(extra="age: 100\r\n"))
        assert (await y.forwarded(reply(b"again"))).body == b"again"

    run(body)


def test_the_query_and_the_host_are_part_of_the_key() -> None:
    """Envoy's cache key: host, path and query (and scheme): /r?page=1 is not /r?page=2, and
    the same path of another service is another entry."""
    async def body() -> None:
        proxy = ProxyHarness(envoy_filter(cache_value()))
        with_clock(proxy)
        client = proxy.client()

        async def get(target: str, host: str = REVIEWS, answer: bytes | None = None) -> bytes:
            sent = sum(len(u.transport.written) for u in proxy.network.opened)
            client.send(request_bytes("GET", target, host=host))
            await proxy.settle()
            if answer is not None:
                proxy.network.last.respond(answer)
                await proxy.settle()
            else:
                assert sum(len(u.transport.written) for u in proxy.network.opened) == sent
            return client.response().body

        assert await get("/r?page=1", answer=reply(b"page 1")) == b"page 1"
        assert await get("/r?page=2", answer=reply(b"page 2")) == b"page 2"
        assert await get("/r?page=1") == b"page 1"
        assert await get("/r?page=2") == b"page 2"
        assert await get("/r?page=1", host="shadow:9090", answer=reply(b"shadow")) == b"shadow"
        assert await get("/r?page=1") == b"page 1"

    run(body)


def test_a_head_response_is_never_stored_for_a_later_get() -> None:
    """"HTTP Cache wont store HTTP HEAD Requests" (Envoy's cache filter docs): a GET after a
    cacheable HEAD answer goes upstream and gets the body, not the HEAD's empty one."""
    async def body() -> None:
        proxy = ProxyHarness(envoy_filter(cache_value()))
        with_clock(proxy)
        x = Exchange(proxy)
        await x.send("HEAD")
        assert x.upstream_request().startswith(b"HEAD /r HTTP/1.1")
        proxy.network.last.respond(reply().split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
        await proxy.settle()
        assert x.response().body == b""
        assert (await x.forwarded(reply())).body == b"reviews v1"
        assert (await x.from_cache()).body == b"reviews v1"

    run(body)


def test_a_304_from_the_cache_has_no_misleading_content_length() -> None:
    """RFC 9110 §8.6: a server MUST NOT send Content-Length in a 304 unless it is the length
    the 200 would have had; a cache downstream that takes it (RFC 7234 caches did) would
    keep an empty body."""
    async def body() -> None:
        proxy = ProxyHarness(envoy_filter(cache_value()))
        client = await cached(proxy, etag=True)
        client.get("/r", host=REVIEWS, headers={"If-None-Match": '"v1"'})
        await proxy.settle()
        assert not proxy.network.last.request()
        raw = client.transport.take()
        assert raw.startswith(b"HTTP/1.1 304 ")
        assert content_lengths(raw) in ([], ["10"])

    run(body)
