"""The compressor (envoy.filters.http.compressor with the gzip library, and the deprecated
envoy.filters.http.gzip) as users put it in the chain: an EnvoyFilter HTTP_FILTER patch
(istio.io/latest/docs/reference/config/networking/envoy-filter/: INSERT_BEFORE the router,
match.context, match.listener.portNumber, workloadSelector), through the in-memory proxy.

What a client sees is Envoy's "How it works" (envoyproxy.io/docs/envoy/latest/configuration/
http/http_filters/compressor_filter): a response is compressed when the request's
Accept-Encoding takes gzip and the response is big enough (min_content_length), of a listed
content type, not already encoded, has a body (not HEAD, 204, 304); a compressed response
loses its Content-Length, is sent chunked with Content-Encoding: gzip, and every compressible
response gets Vary: Accept-Encoding."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from tests.unit.proxy.harness import ProxyHarness, Response, request_bytes, run
from tests.unit.proxy.test_filters import SERVICES

ROUTER = "envoy.filters.http.router"
COMPRESSOR = "envoy.filters.http.compressor"
BASE = ("istio.metadata_exchange", "istio.stats", ROUTER)
WITH_COMPRESSOR = ("istio.metadata_exchange", COMPRESSOR, "istio.stats", ROUTER)
ITEMS = [{"id": i, "name": f"item-{i}", "tags": ["a", "b"]} for i in range(60)]
BODY = json.dumps({"items": ITEMS, "pad": ""}).encode()
BODY = json.dumps({"items": ITEMS, "pad": "p" * (4096 - len(BODY))}).encode()  # 4 KiB JSON
REVIEWS = "reviews:9080"
SHADOW = "shadow:9090"


def compressor_value(*, min_content_length: int = 100,
                     content_type: str = "[application/json, text/plain]",
                     level: str = "BEST_SPEED") -> str:
    """patch.value: the current form (compressor v3 with the gzip library, response settings
    in response_direction_config), as in Envoy's compressor filter docs example."""
    return f"""\
        name: envoy.filters.http.compressor
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
          response_direction_config:
            common_config:
              min_content_length: {min_content_length}
              content_type: {content_type}
          compressor_library:
            name: text_optimized
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip
              memory_level: 3
              window_bits: 10
              compression_level: {level}
"""


def envoy_filter(value: str, *, match: str = "", name: str = "gzip",
                 namespace: str = "default", selector: str = "") -> str:
    """An EnvoyFilter with one HTTP_FILTER patch, INSERT_BEFORE the router, as users write it;
    `match` adds lines under match (context, listener.portNumber)."""
    return f"""\
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {{name: {name}, namespace: {namespace}}}
spec:
{selector}  configPatches:
  - applyTo: HTTP_FILTER
    match:
{match}      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {{name: envoy.filters.http.router}}
    patch:
      operation: INSERT_BEFORE
      value:
{value}"""


def outbound_on(port: int) -> str:
    return envoy_filter(compressor_value(),
                        match="      context: SIDECAR_OUTBOUND\n").replace(
        "      listener:\n", f"      listener:\n        portNumber: {port}\n", 1)


GZIP_EVERYWHERE = SERVICES + envoy_filter(compressor_value())


def head(status: int = 200, *, content_type: str | None = "application/json",
         length: int | None = None, extra: str = "") -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    if content_type is not None:
        lines.append(f"content-type: {content_type}")
    if length is not None:
        lines.append(f"content-length: {length}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


async def exchange(proxy: ProxyHarness, upstream_reply: list[bytes], *, host: str = REVIEWS,
                   headers: dict[str, str] | None = None, method: str = "GET",
                   direction: str = "outbound") -> Response:
    """One request through the proxy; the upstream answers in the given pieces."""
    client = proxy.client(direction)
    client.send(request_bytes(method, "/r", host=host, headers=headers), method=method)
    await proxy.settle()
    upstream = proxy.network.last
    for piece in upstream_reply:
        upstream.respond(piece)
        await proxy.settle()
    return client.response()


def assert_gzipped(response: Response, original: bytes) -> None:
    assert response.status == 200
    assert response.headers.get("content-encoding") == "gzip"
    assert "content-length" not in response.headers
    assert response.head.chunked and response.headers.get("transfer-encoding") == "chunked"
    assert [v.lower() for v in response.header_list("vary")] == ["accept-encoding"]
    assert gzip.decompress(response.body) == original


GZIP_CLIENT = {"Accept-Encoding": "gzip, deflate"}


# where the patch puts the filter -------------------------------------------------------------
def test_an_outbound_patch_on_a_port_puts_the_compressor_in_that_ports_chain_only() -> None:
    """match.context SIDECAR_OUTBOUND + listener.portNumber 9080: Istio patches the outbound
    listener of port 9080 only; INSERT_BEFORE the router puts the compressor just before it
    (Remora's istio.stats, log phase only, stays next to the router). A request to another
    port (shadow:9090) is not compressed, one to reviews:9080 is."""
    async def body() -> None:
        proxy = ProxyHarness(SERVICES + outbound_on(9080))
        assert dict(proxy.chain_names) == {"outbound": BASE, "inbound": BASE, "gateway": BASE}
        port_chains = {key: chain.names for key, chain in proxy.env.active.port_chains.items()}
        assert port_chains == {("outbound", 9080): WITH_COMPRESSOR}

        reply = [head(length=len(BODY)) + BODY]
        assert_gzipped(await exchange(proxy, reply, headers=GZIP_CLIENT), BODY)
        other = await exchange(proxy, reply, host=SHADOW, headers=GZIP_CLIENT)
        assert "content-encoding" not in other.headers
        assert other.headers["content-length"] == str(len(BODY))
        assert other.body == BODY

    run(body)


@pytest.mark.parametrize(("context", "direction"), [
    ("SIDECAR_OUTBOUND", "outbound"), ("SIDECAR_INBOUND", "inbound"), ("GATEWAY", "gateway")])
def test_match_context_selects_one_listener_kind(context: str, direction: str) -> None:
    """EnvoyFilter.PatchContext: SIDECAR_OUTBOUND, SIDECAR_INBOUND and GATEWAY each patch only
    the listeners of that kind; no portNumber: the chain of every port."""
    async def body() -> None:
        proxy = ProxyHarness(SERVICES + envoy_filter(
            compressor_value(), match=f"      context: {context}\n"))
        expected = {kind: BASE for kind in ("outbound", "inbound", "gateway")}
        expected[direction] = WITH_COMPRESSOR
        assert dict(proxy.chain_names) == expected
        assert not proxy.env.active.port_chains

    run(body)


def test_without_a_context_every_listener_kind_gets_the_compressor() -> None:
    """match.context unset is ANY."""
    async def body() -> None:
        proxy = ProxyHarness(GZIP_EVERYWHERE)
        assert set(proxy.chain_names.values()) == {WITH_COMPRESSOR}

    run(body)


def test_the_inbound_compressor_compresses_what_the_app_answers() -> None:
    """SIDECAR_INBOUND: the sidecar compresses the app's own responses to its callers."""
    async def body() -> None:
        proxy = ProxyHarness(SERVICES + envoy_filter(
            compressor_value(), match="      context: SIDECAR_INBOUND\n"), app_port=8080)
        response = await exchange(proxy, [head(length=len(BODY)) + BODY], host="client:8080",
                                  headers=GZIP_CLIENT, direction="inbound")
        assert_gzipped(response, BODY)

    run(body)


def test_workload_selector_and_namespace_decide_which_proxies_get_it() -> None:
    """EnvoyFilter.workloadSelector: only proxies with the labels; an EnvoyFilter in the root
    namespace (istio-system) without selector applies to every proxy, one in another
    namespace to none of this namespace's proxies."""
    selected = SERVICES + envoy_filter(compressor_value(),
                                       selector="  workloadSelector:\n    labels: {app: web}\n")
    root = SERVICES + envoy_filter(compressor_value(), namespace="istio-system")
    elsewhere = SERVICES + envoy_filter(compressor_value(), namespace="other")

    async def body() -> None:
        assert ProxyHarness(selected, labels={"app": "web"}).chain_names["outbound"] \
            == WITH_COMPRESSOR
        assert ProxyHarness(selected, labels={"app": "api"}).chain_names["outbound"] == BASE
        assert ProxyHarness(selected).chain_names["outbound"] == BASE
        assert ProxyHarness(root, labels={"app": "api"}).chain_names["outbound"] \
            == WITH_COMPRESSOR
        assert ProxyHarness(elsewhere).chain_names["outbound"] == BASE

    run(body)


# what the client gets ------------------------------------------------------------------------
@pytest.mark.parametrize("pieces", [1, 3, 7])
def test_a_json_response_is_gzipped_for_a_client_that_accepts_gzip(pieces: int) -> None:
    """A 4 KiB JSON body with Content-Length, arriving from the upstream in one or several
    reads: Content-Encoding gzip, chunked, Vary: Accept-Encoding, no Content-Length, and the
    body gunzips to what the upstream sent."""
    async def body() -> None:
        proxy = ProxyHarness(GZIP_EVERYWHERE)
        size = -(-len(BODY) // pieces)
        reply = [head(length=len(BODY)) + BODY[:size]]
        reply += [BODY[i:i + size] for i in range(size, len(BODY), size)]
        assert len(reply) == pieces
        assert len(BODY) == 4096
        assert_gzipped(await exchange(proxy, reply, headers=GZIP_CLIENT), BODY)

    run(body)


def test_a_chunked_upstream_response_is_gzipped_too() -> None:
    """No Content-Length from the upstream (chunked): still compressed (Envoy 1.2x compresses
    without a Content-Length); the chunks gunzip to the whole body."""
    async def body() -> None:
        proxy = ProxyHarness(GZIP_EVERYWHERE)
        chunks = [BODY[i:i + 1000] for i in range(0, len(BODY), 1000)]
        encoded = [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks] + [b"0\r\n\r\n"]
        reply = [head(extra="transfer-encoding: chunked\r\n") + encoded[0], *encoded[1:]]
        assert_gzipped(await exchange(proxy, reply, headers=GZIP_CLIENT), BODY)

    run(body)


def test_each_piece_is_flushed_so_the_client_can_decode_what_it_has() -> None:
    """Envoy's zlib compressor flushes at each data frame: a slow upstream's first piece is
    decodable by the client before the rest arrives (a streamed response is not held back)."""
    async def body() -> None:
        proxy = ProxyHarness(GZIP_EVERYWHERE)
        client = proxy.client()
        client.get("/r", host=REVIEWS, headers=GZIP_CLIENT)
        await proxy.settle()
        upstream = proxy.network.last
        upstream.respond(head(length=len(BODY)) + BODY[:1500])
        await proxy.settle()
        written = client.transport.written.split(b"\r\n\r\n", 1)[1]
        compressed = b""
        while written:  # de-chunk what was written so far
            size_line, _, rest = written.partition(b"\r\n")
            size = int(size_line, 16)
            compressed += rest[:size]
            written = rest[size + 2:]
        assert zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(compressed) == BODY[:1500]
        upstream.respond(BODY[1500:])
        await proxy.settle()
        assert_gzipped(client.response(), BODY)

    run(body)


def test_a_client_without_accept_encoding_gets_the_body_as_is_with_vary() -> None:
    """No Accept-Encoding: not compressed, Content-Length kept; Envoy still adds Vary:
    Accept-Encoding so that a cache in front does not serve this copy to a gzip client."""
    async def body() -> None:
        proxy = ProxyHarness(GZIP_EVERYWHERE)
        response = await exchange(proxy, [head(length=len(BODY)) + BODY])
        assert "content-encoding" not in response.headers
        assert response.headers["content-length"] == str(len(BODY))
        assert [v.lower() for v in response.header_list("vary")] == ["accept-encoding"]
        assert response.body == BODY

    run(body)


NOT_COMPRESSED = {
    "below-min-content-length": ({}, head(length=60) + BODY[:60], BODY[:60]),
    "content-type-not-listed": ({}, head(content_type="text/html", length=len(BODY)) + BODY,
                                BODY),
    "identity-only": ({"Accept-Encoding": "identity"}, head(length=len(BODY)) + BODY, BODY),
    "gzip-q-0": ({"Accept-Encoding": "gzip;q=0, identity"}, head(length=len(BODY)) + BODY,
                 BODY),
    "already-content-encoded": (
        {}, head(length=len(BODY), extra="content-encoding: br\r\n") + BODY, BODY),
    "cache-control-no-transform": (
        {}, head(length=len(BODY), extra="cache-control: no-transform\r\n") + BODY, BODY),
}


@pytest.mark.parametrize("case", list(NOT_COMPRESSED))
def test_what_envoy_does_not_compress_passes_unchanged(case: str) -> None:
    """"By default compression will be skipped when" (Envoy's compressor filter docs): the
    response is smaller than min_content_length, its content type is not listed, the request
    does not accept gzip, it already has a Content-Encoding, Cache-Control: no-transform."""
    request_headers, reply, original = NOT_COMPRESSED[case]

    async def body() -> None:
        proxy = ProxyHarness(GZIP_EVERYWHERE)
        response = await exchange(proxy, [reply], headers={**GZIP_CLIENT, **request_headers})
        assert response.status == 200
        assert response.headers.get("content-encoding") in (None, "br")
        assert response.headers["content-length"] == str(len(original))
        assert response.body == original

    run(body)


def test_a_head_request_is_not_compressed_and_keeps_its_content_length() -> None:
    """HEAD: the response has no body (Envoy sees end_stream on the headers and skips)."""
    async def body() -> None:
        proxy = ProxyHarness(GZIP_EVERYWHERE)
        response = await exchange(proxy, [head(length=len(BODY))], headers=GZIP_CLIENT,
                                  method="HEAD")
        assert response.status == 200
        assert "content-encoding" not in response.headers
        assert response.headers["content-length"] == str(len(BODY))
        assert response.body == b""

    run(body)


@pytest.mark.parametrize("status", [204, 304])
def test_a_response_without_a_body_is_not_compressed(status: int) -> None:
    async def body() -> None:
        proxy = ProxyHarness(GZIP_EVERYWHERE)
        response = await exchange(proxy, [head(status, extra='etag: "v1"\r\n')],
                                  headers=GZIP_CLIENT)
        assert response.status == status
        assert "content-encoding" not in response.headers
        assert response.headers.get("etag") == '"v1"'
        assert response.body == b""

    run(body)


# the configuration forms ---------------------------------------------------------------------
GZIP_FILTER = """\
        name: envoy.filters.http.gzip
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.gzip.v3.Gzip
          memory_level: 3
          compression_level: LEVEL
          content_type: ["application/json", "text/plain"]
"""


def xfl(compressed: bytes) -> int:
    """The gzip header's XFL byte (RFC 1952 §2.3.1): 2 for zlib level 9, 4 for level 1,
    0 otherwise: the level a response was compressed with, as a client sees it."""
    return compressed[8]


@pytest.mark.parametrize(("level", "flag"), [("BEST", 2), ("SPEED", 4), ("DEFAULT", 0)])
def test_the_deprecated_gzip_filter_compresses_with_its_own_level_names(level: str,
                                                                        flag: int) -> None:
    """envoy.filters.http.gzip (gzip.v3.Gzip, deprecated by the compressor): its
    CompressionLevel.Enum is DEFAULT, BEST, SPEED (not the gzip library's BEST_COMPRESSION);
    the filter still runs as the compressor."""
    async def body() -> None:
        proxy = ProxyHarness(SERVICES + envoy_filter(GZIP_FILTER.replace("LEVEL", level)))
        assert proxy.chain_names["outbound"] == WITH_COMPRESSOR
        response = await exchange(proxy, [head(length=len(BODY)) + BODY], headers=GZIP_CLIENT)
        assert_gzipped(response, BODY)
        assert xfl(response.body) == flag

    run(body)


def test_the_gzip_filter_with_the_compressor_librarys_level_name_is_left_out() -> None:
    """BEST_COMPRESSION is not a gzip.v3.Gzip CompressionLevel: Envoy rejects that config;
    Remora leaves the EnvoyFilter out of the proxy's chains (nothing compressed) instead of
    guessing a level."""
    async def body() -> None:
        proxy = ProxyHarness(SERVICES + envoy_filter(
            GZIP_FILTER.replace("LEVEL", "BEST_COMPRESSION")))
        assert set(proxy.chain_names.values()) == {BASE}
        response = await exchange(proxy, [head(length=len(BODY)) + BODY], headers=GZIP_CLIENT)
        assert "content-encoding" not in response.headers

    run(body)


@pytest.mark.parametrize(("level", "flag"), [
    ("BEST_COMPRESSION", 2), ("best_compression", 2), ("BEST_SPEED", 4),
    ("DEFAULT_COMPRESSION", 0)])
def test_the_gzip_library_level_reaches_the_response(level: str, flag: int) -> None:
    """compression.gzip.compressor.v3.Gzip CompressionLevel (Envoy's docs example writes
    `best_compression`, lower case)."""
    async def body() -> None:
        proxy = ProxyHarness(SERVICES + envoy_filter(compressor_value(level=level)))
        response = await exchange(proxy, [head(length=len(BODY)) + BODY], headers=GZIP_CLIENT)
        assert_gzipped(response, BODY)
        assert xfl(response.body) == flag

    run(body)


# local replies -------------------------------------------------------------------------------
DIRECT = SERVICES + """\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - match: [{uri: {prefix: /r}}]
    directResponse: {status: 503, body: {string: "MESSAGE"}}
""".replace("MESSAGE", "down for maintenance, " * 8) + envoy_filter(compressor_value())


def test_a_direct_response_goes_through_the_compressor() -> None:
    """The router's own answer (HTTPDirectResponse, text/plain) passes every filter on the
    way out, the compressor included, as Envoy's local replies do."""
    message = ("down for maintenance, " * 8).encode()

    async def body() -> None:
        proxy = ProxyHarness(DIRECT)
        client = proxy.client()
        client.get("/r", host=REVIEWS, headers=GZIP_CLIENT)
        await proxy.settle()
        response = client.response()
        assert not proxy.network.opened
        assert response.status == 503
        assert response.headers.get("content-encoding") == "gzip"
        # compressed whole: a Content-Length, if any, is the compressed body's
        assert response.headers.get("content-length", str(len(response.body))) \
            == str(len(response.body))
        assert gzip.decompress(response.body) == message

        client.get("/r", host=REVIEWS)
        await proxy.settle()
        plain = client.response()
        assert "content-encoding" not in plain.headers
        assert plain.body == message

    run(body)


# validators and request headers -----------------------------------------------------------------
@pytest.mark.parametrize(("etag", "weaken", "sent"), [
    ('"v1"', False, None), ('W/"v1"', False, 'W/"v1"'), ('"v1"', True, 'W/"v1"')])
def test_a_compressed_response_keeps_no_strong_etag(etag: str, weaken: bool,
                                                    sent: str | None) -> None:
    """A strong ETag names the identity bytes: Envoy drops it from a compressed response,
    keeps a weak one, and with weaken_etag_on_compress makes the strong one weak."""
    value = compressor_value()
    if weaken:
        value = value.replace("          compressor_library:",
                              "            weaken_etag_on_compress: true\n"
                              "          compressor_library:")

    async def body() -> None:
        proxy = ProxyHarness(SERVICES + envoy_filter(value))
        response = await exchange(
            proxy, [head(length=len(BODY), extra=f"etag: {etag}\r\n") + BODY],
            headers=GZIP_CLIENT)
        assert_gzipped(response, BODY)
        assert response.headers.get("etag") == sent

    run(body)


def test_remove_accept_encoding_header_keeps_the_upstream_from_compressing() -> None:
    """response_direction_config.remove_accept_encoding_header: the upstream never sees the
    client's Accept-Encoding, and the client still gets gzip from the proxy."""
    value = compressor_value().replace(
        "          compressor_library:",
        "            remove_accept_encoding_header: true\n          compressor_library:")

    async def body() -> None:
        proxy = ProxyHarness(SERVICES + envoy_filter(value))
        client = proxy.client()
        client.get("/r", host=REVIEWS, headers=GZIP_CLIENT)
        await proxy.settle()
        upstream = proxy.network.last
        assert "accept-encoding" not in upstream.request().decode().lower()
        upstream.respond(head(length=len(BODY)) + BODY)
        await proxy.settle()
        assert_gzipped(client.response(), BODY)

    run(body)


@pytest.mark.parametrize(("accept", "content_type", "compressed"), [
    ("br, GZIP", "Application/JSON; charset=utf-8", True),
    ("*", "application/json", True),
    ("gzip;q=0.5, identity;q=1", "application/json", False),
    ("br", "application/json", False),
], ids=["other-coding-and-upper-case", "star", "identity-preferred", "brotli-only"])
def test_accept_encoding_and_content_type_are_read_as_envoy_reads_them(
        accept: str, content_type: str, compressed: bool) -> None:
    """Envoy's chooseEncoding: the highest q among gzip, identity and `*` wins (codings the
    chain has no compressor for do not count); the content type is compared without its
    parameters (charset) and case-insensitively."""
    async def body() -> None:
        proxy = ProxyHarness(GZIP_EVERYWHERE)
        response = await exchange(
            proxy, [head(content_type=content_type, length=len(BODY)) + BODY],
            headers={"Accept-Encoding": accept})
        if compressed:
            assert_gzipped(response, BODY)
        else:
            assert "content-encoding" not in response.headers
            assert response.body == BODY

    run(body)


def test_an_upstream_vary_is_kept_and_accept_encoding_added_to_it() -> None:
    async def body() -> None:
        proxy = ProxyHarness(GZIP_EVERYWHERE)
        response = await exchange(
            proxy, [head(length=len(BODY), extra="vary: Origin\r\n") + BODY], headers=GZIP_CLIENT)
        assert response.header_list("vary") == ["Origin, Accept-Encoding"]
        assert gzip.decompress(response.body) == BODY

    run(body)


@pytest.mark.parametrize(("port", "compressed"), [(8080, True), (9999, False)])
def test_an_inbound_port_number_is_the_apps_port(port: int, compressed: bool) -> None:
    """SIDECAR_INBOUND with listener.portNumber: the workload's port (8080 here), as Istio
    matches the inbound listener's filter chain; another port compresses nothing."""
    async def body() -> None:
        yaml = SERVICES + envoy_filter(compressor_value(),
                                       match="      context: SIDECAR_INBOUND\n").replace(
            "      listener:\n", f"      listener:\n        portNumber: {port}\n", 1)
        proxy = ProxyHarness(yaml, app_port=8080)
        assert {key: chain.names for key, chain in proxy.env.active.port_chains.items()} \
            == {("inbound", port): WITH_COMPRESSOR}
        response = await exchange(proxy, [head(length=len(BODY)) + BODY], host="client:8080",
                                  headers=GZIP_CLIENT, direction="inbound")
        assert (response.headers.get("content-encoding") == "gzip") is compressed

    run(body)
