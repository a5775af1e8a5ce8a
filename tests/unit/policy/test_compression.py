"""Compressor tables: Envoy's compressor filter with gzip (envoyproxy.io docs/envoy/latest/
configuration/http/http_filters/compressor_filter, "How it works"; api-v3 compressor.proto,
compression/gzip/compressor/v3/gzip.proto; the deprecated gzip_filter and gzip/v2/gzip.proto)
as source/extensions/filters/http/common/compressor/compressor.cc applies it."""

from __future__ import annotations

import gzip
import itertools
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remora.policy.compression import (
    COMPRESSOR_V3,
    DEFAULT_CONTENT_TYPES,
    GZIP_LIBRARY_V3,
    CompressorConfig,
    CompressorConfigError,
    GzipSettings,
    accepts_gzip,
    decide_response,
    forward_request_headers,
    should_compress,
)

LIBRARY = {
    "name": "text_optimized",
    "typed_config": {"@type": f"type.googleapis.com/{GZIP_LIBRARY_V3}"},
}


def compressor(**fields: Any) -> dict[str, Any]:
    return {
        "@type": f"type.googleapis.com/{COMPRESSOR_V3}",
        "compressor_library": LIBRARY,
        **fields,
    }


def library(**gzip_fields: Any) -> dict[str, Any]:
    return compressor(
        compressor_library={
            "name": "gz",
            "typed_config": {"@type": f"type.googleapis.com/{GZIP_LIBRARY_V3}", **gzip_fields},
        }
    )


DEFAULT = CompressorConfig.from_api(compressor())
HTML = [("content-type", "text/html"), ("content-length", "100")]
GZIP_CLIENT = [("accept-encoding", "gzip")]


def decide(
    config: CompressorConfig = DEFAULT,
    *,
    accept: str | None = "gzip",
    status: int = 200,
    headers: list[tuple[str, str]] | None = None,
    head: bool = False,
) -> Any:
    request = [] if accept is None else [("accept-encoding", accept)]
    return decide_response(
        config,
        request_headers=request,
        response_status=status,
        response_headers=HTML if headers is None else headers,
        head_request=head,
    )


# --- config forms ----------------------------------------------------------------------------


def test_defaults_are_envoys() -> None:
    """compressor.proto: min length 30, the default mime types; gzip.proto: level DEFAULT,
    memory_level 5, window_bits 12, chunk_size 4096."""
    assert DEFAULT.min_content_length == 30
    assert DEFAULT.content_types == DEFAULT_CONTENT_TYPES
    documented = {"application/javascript", "application/json", "application/xhtml+xml",
                  "image/svg+xml", "text/css", "text/html", "text/plain", "text/xml"}  # fmt: skip
    assert documented <= DEFAULT.content_types
    assert DEFAULT.gzip == GzipSettings(zlib.Z_DEFAULT_COMPRESSION, 5, 12, zlib.Z_DEFAULT_STRATEGY)
    assert DEFAULT.enabled and not DEFAULT.remove_accept_encoding_header


def test_the_documented_example_config() -> None:
    """compressor_filter docs: the example with response_direction_config and text_optimized."""
    config = CompressorConfig.from_api(
        {
            "@type": f"type.googleapis.com/{COMPRESSOR_V3}",
            "response_direction_config": {
                "common_config": {
                    "min_content_length": 100,
                    "content_type": ["text/html", "application/json"],
                },
                "disable_on_etag_header": True,
            },
            "request_direction_config": {
                "common_config": {
                    "enabled": {"default_value": False, "runtime_key": "request_compressor_enabled"}
                }
            },
            "compressor_library": {
                "name": "text_optimized",
                "typed_config": {
                    "@type": f"type.googleapis.com/{GZIP_LIBRARY_V3}",
                    "memory_level": 3,
                    "window_bits": 10,
                    "compression_level": "BEST_COMPRESSION",
                    "compression_strategy": "DEFAULT_STRATEGY",
                },
            },
        }
    )
    assert config.min_content_length == 100
    assert config.content_types == {"text/html", "application/json"}
    assert config.disable_on_etag_header
    assert config.gzip == GzipSettings(level=9, memory_level=3, window_bits=10)


def test_deprecated_top_level_fields_of_compressor_v3() -> None:
    """compressor.proto: content_length/content_type/disable_on_etag_header/
    remove_accept_encoding_header/runtime_enabled, deprecated at 3.0, still read."""
    config = CompressorConfig.from_api(
        compressor(
            content_length=100,
            content_type=["text/html"],
            disable_on_etag_header=True,
            remove_accept_encoding_header=True,
            runtime_enabled={"default_value": False, "runtime_key": "k"},
        )
    )
    assert (config.min_content_length, config.content_types) == (100, {"text/html"})
    assert config.disable_on_etag_header and config.remove_accept_encoding_header
    assert not config.enabled


def test_response_direction_config_wins_over_deprecated_fields() -> None:
    """compressor.proto attention: with response_direction_config the duplicates are ignored."""
    config = CompressorConfig.from_api(
        compressor(content_length=500, response_direction_config={"common_config": {}})
    )
    assert config.min_content_length == 30


@pytest.mark.parametrize(
    ("level", "zlib_level"),
    [
        ("BEST_SPEED", 1),
        ("BEST_COMPRESSION", 9),
        ("DEFAULT_COMPRESSION", zlib.Z_DEFAULT_COMPRESSION),
        ("COMPRESSION_LEVEL_1", 1),
        ("COMPRESSION_LEVEL_4", 4),
        ("COMPRESSION_LEVEL_9", 9),
        ("best_compression", 9),  # the v1.15 docs example writes it lowercase
        (3, 3),
        (0, zlib.Z_DEFAULT_COMPRESSION),
    ],
)
def test_gzip_v3_compression_levels(level: Any, zlib_level: int) -> None:
    """gzip.proto CompressionLevel: BEST_SPEED = LEVEL_1, BEST_COMPRESSION = LEVEL_9."""
    assert CompressorConfig.from_api(library(compression_level=level)).gzip.level == zlib_level


@pytest.mark.parametrize(
    ("filter_name", "typed_config"),
    [
        ("envoy.filters.http.gzip", {}),  # the old `config:` form has no @type
        ("", {"@type": "type.googleapis.com/envoy.config.filter.http.gzip.v2.Gzip"}),
        ("", {"@type": "type.googleapis.com/envoy.extensions.filters.http.gzip.v3.Gzip"}),
    ],
)
def test_deprecated_gzip_filter_forms(filter_name: str, typed_config: dict[str, Any]) -> None:
    """gzip_filter docs (deprecated for the compressor) and gzip/v2/gzip.proto fields."""
    config = CompressorConfig.from_api(
        {
            **typed_config,
            "memory_level": 9,
            "compression_level": "SPEED",
            "content_length": 40,
            "content_type": ["application/json"],
            "window_bits": 15,
            "disable_on_etag_header": True,
            "remove_accept_encoding_header": True,
        },
        filter_name=filter_name,
    )
    assert config.gzip == GzipSettings(level=1, memory_level=9, window_bits=15)
    assert (config.min_content_length, config.content_types) == (40, {"application/json"})
    assert config.disable_on_etag_header and config.remove_accept_encoding_header


@pytest.mark.parametrize(("name", "level"), [("BEST", 9), ("SPEED", 1), ("DEFAULT", -1)])
def test_gzip_v2_compression_level_names(name: str, level: int) -> None:
    """gzip/v2/gzip.proto CompressionLevel.Enum: DEFAULT, BEST, SPEED."""
    config = CompressorConfig.from_api(
        {"compression_level": name}, filter_name="envoy.filters.http.gzip"
    )
    assert config.gzip.level == level


def test_gzip_v2_common_fields_under_compressor() -> None:
    """gzip/v2 `compressor` (compressor/v2 Compressor) holds the common fields."""
    config = CompressorConfig.from_api(
        {"compressor": {"content_length": 10, "remove_accept_encoding_header": True}},
        filter_name="envoy.filters.http.gzip",
    )
    assert config.min_content_length == 10 and config.remove_accept_encoding_header


def test_camel_case_and_wrapper_objects_are_protobuf_json() -> None:
    config = CompressorConfig.from_api(
        compressor(responseDirectionConfig={"commonConfig": {"minContentLength": {"value": 64}}})
    )
    assert config.min_content_length == 64


@pytest.mark.parametrize(
    ("typed_config", "path"),
    [
        (compressor(bogus=1), "typed_config.bogus"),
        ({"@type": f"type.googleapis.com/{COMPRESSOR_V3}"}, "typed_config.compressor_library"),
        (
            compressor(response_direction_config={"x": 1}),
            "typed_config.response_direction_config.x",
        ),
        (
            compressor(response_direction_config={"common_config": {"min_content_length": -1}}),
            "typed_config.response_direction_config.common_config.min_content_length",
        ),
        (
            compressor(response_direction_config={"common_config": {"content_type": "text/html"}}),
            "typed_config.response_direction_config.common_config.content_type",
        ),
        (
            compressor(response_direction_config={"uncompressible_response_codes": [100]}),
            "typed_config.response_direction_config.uncompressible_response_codes",
        ),
        (
            compressor(response_direction_config={"disable_on_etag_header": "yes"}),
            "typed_config.response_direction_config.disable_on_etag_header",
        ),
        (
            compressor(runtime_enabled={"runtime_key": "k"}),
            "typed_config.runtime_enabled.default_value",
        ),
        (library(memory_level=0), "typed_config.compressor_library.typed_config.memory_level"),
        (library(memory_level=10), "typed_config.compressor_library.typed_config.memory_level"),
        (library(window_bits=8), "typed_config.compressor_library.typed_config.window_bits"),
        (library(window_bits=16), "typed_config.compressor_library.typed_config.window_bits"),
        (library(chunk_size=100), "typed_config.compressor_library.typed_config.chunk_size"),
        (
            library(compression_level="BEST"),
            "typed_config.compressor_library.typed_config.compression_level",
        ),
        (library(level=1), "typed_config.compressor_library.typed_config.level"),
        (
            compressor(
                compressor_library={
                    "name": "br",
                    "typed_config": {
                        "@type": "type.googleapis.com/"
                        "envoy.extensions.compression.brotli.compressor.v3.Brotli"
                    },
                }
            ),
            "typed_config.compressor_library.typed_config.@type",
        ),
        ({"@type": "type.googleapis.com/envoy.Other"}, "typed_config.@type"),
        ({"content_length": 29}, "typed_config.content_length"),  # gzip v2: gte 30
        ({"compression_level": "BEST_COMPRESSION"}, "typed_config.compression_level"),
        ({"memory_level": True}, "typed_config.memory_level"),
    ],
)
def test_invalid_fields_name_their_path(typed_config: dict[str, Any], path: str) -> None:
    with pytest.raises(CompressorConfigError) as info:
        CompressorConfig.from_api(typed_config, filter_name="envoy.filters.http.gzip")
    assert info.value.path == path
    assert path in str(info.value)
    assert isinstance(info.value, ValueError)


# --- Accept-Encoding negotiation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "compressed"),
    [
        ("gzip", True),
        ("deflate, gzip", True),
        ("*", True),
        ("gzip;q=0.5", True),
        ("GZIP", True),
        ("br;q=1.0, gzip;q=0.8", True),  # br has no filter in this chain: it does not count
        ("identity", False),
        ("deflate", False),  # no gzip nor *
        ("gzip;q=0", False),  # q=0: not acceptable
        ("*;q=0", False),
        ("gzip;q=0,*;q=1", False),  # docs: gzip weighs more than *
        ("*;q=0,gzip;q=1", True),  # docs: ... so this one compresses
        ("identity;q=1, gzip;q=0.5", False),  # identity has the higher weight
        ("identity, gzip", False),  # a tie: the first wins (compressor.cc chooseEncoding)
        ("gzip, identity", True),
        ("gzip;q=0.5, identity;q=0.8", False),
        ("gzip;q=abc", False),  # an unparseable q-value is skipped
        ("gzip;q=abc, *", True),
        ("", False),
        (" , ", False),
    ],
)
def test_accept_encoding_negotiation(accept: str, compressed: bool) -> None:
    """compressor_filter docs "skipped when", compressor.cc chooseEncoding."""
    assert accepts_gzip(accept) is compressed
    assert decide(accept=accept).compress is compressed


def test_no_accept_encoding_is_not_compressed() -> None:
    assert decide(accept=None).reason == "no_accept_header"


# --- response rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "compressed", "reason"),
    [
        (HTML, True, ""),
        ([("content-type", "text/html; charset=utf-8"), ("content-length", "100")], True, ""),
        ([("content-type", "TEXT/HTML"), ("content-length", "100")], True, ""),
        (
            [("content-type", "image/png"), ("content-length", "100")],
            False,
            "content_type_not_allowed",
        ),
        ([("content-type", "application/x-javascript")], True, ""),  # a synonym of the defaults
        ([("content-length", "100")], True, ""),  # no content-type: allowed (isContentTypeAllowed)
        (
            [("content-type", "text/html"), ("content-length", "29")],
            False,
            "content_length_too_small",
        ),
        ([("content-type", "text/html"), ("content-length", "30")], True, ""),
        (
            [("content-type", "text/html"), ("content-length", "x")],
            False,
            "content_length_too_small",
        ),
        ([("content-type", "text/html")], True, ""),  # unknown length: allowed since Envoy 1.20
        ([*HTML, ("content-encoding", "br")], False, "already_encoded"),
        ([*HTML, ("content-encoding", "identity")], False, "already_encoded"),
        ([*HTML, ("cache-control", "public, no-transform")], False, "no_transform"),
        ([*HTML, ("cache-control", "No-Transform")], False, "no_transform"),
        ([*HTML, ("cache-control", "max-age=60")], True, ""),
        (
            [("content-type", "text/html"), ("transfer-encoding", "gzip, chunked")],
            False,
            "transfer_encoding",
        ),
        ([("content-type", "text/html"), ("transfer-encoding", "chunked")], True, ""),
    ],
)
def test_response_rules(headers: list[tuple[str, str]], compressed: bool, reason: str) -> None:
    """compressor_filter docs: response compression is skipped when ..."""
    decision = decide(headers=headers)
    assert (decision.compress, decision.reason) == (compressed, reason)


@pytest.mark.parametrize(
    ("status", "head", "compressed"),
    [(200, False, True), (404, False, True), (200, True, False), (204, False, False),
     (304, False, False), (101, False, False)],
)  # fmt: skip
def test_bodiless_responses_are_not_compressed(status: int, head: bool, compressed: bool) -> None:
    """Envoy compresses only when headers are not end_stream: HEAD, 1xx, 204, 304 have no body."""
    assert decide(status=status, head=head).compress is compressed


def test_uncompressible_response_codes() -> None:
    """compressor.proto ResponseDirectionConfig.uncompressible_response_codes (e.g. 206)."""
    config = CompressorConfig.from_api(
        compressor(response_direction_config={"uncompressible_response_codes": [206, 500]})
    )
    assert not decide(config, status=206).compress
    assert decide(config, status=200).compress


def test_disabled_by_runtime_flag_default() -> None:
    config = CompressorConfig.from_api(
        compressor(
            response_direction_config={
                "common_config": {"enabled": {"default_value": False, "runtime_key": "k"}}
            }
        )
    )
    decision = decide(config)
    assert (decision.compress, decision.reason) == (False, "disabled")
    assert ("vary", "Accept-Encoding") not in decision.headers


# --- header changes ------------------------------------------------------------------------


def test_compressed_response_headers() -> None:
    """docs "When response compression is applied": content-length removed, content-encoding
    set, vary: accept-encoding inserted (transfer-encoding is the HTTP/1.1 codec's)."""
    decision = decide(headers=[("content-type", "text/html"), ("content-length", "100")])
    assert decision.headers == [
        ("content-type", "text/html"),
        ("vary", "Accept-Encoding"),
        ("content-encoding", "gzip"),
    ]


@pytest.mark.parametrize(
    ("vary", "merged"),
    [
        ("Origin", "Origin, Accept-Encoding"),
        ("origin, accept-encoding", "origin, accept-encoding"),
        ("Accept-Encoding", "Accept-Encoding"),
        ("*", "*"),
    ],
)
def test_vary_is_merged(vary: str, merged: str) -> None:
    """compressor.cc insertVaryHeader: append Accept-Encoding unless it is there."""
    decision = decide(headers=[*HTML, ("vary", vary)])
    assert [v for n, v in decision.headers if n == "vary"] == [merged]


def test_two_vary_fields_become_one() -> None:
    decision = decide(headers=[*HTML, ("vary", "Origin"), ("vary", "Cookie")])
    assert [v for n, v in decision.headers if n == "vary"] == ["Origin, Cookie, Accept-Encoding"]


@pytest.mark.parametrize(
    "accept", ["identity", "deflate", None, "gzip;q=0"], ids=["identity", "deflate", "none", "q0"]
)
def test_vary_is_added_even_when_this_client_gets_identity(accept: str | None) -> None:
    """docs: vary is inserted if the resource could be compressed for another client."""
    decision = decide(accept=accept)
    assert not decision.compress
    assert ("vary", "Accept-Encoding") in decision.headers
    assert ("content-length", "100") in decision.headers


def test_no_vary_when_the_response_is_not_compressible() -> None:
    decision = decide(headers=[("content-type", "image/png")])
    assert decision.headers == [("content-type", "image/png")]


@pytest.mark.parametrize(
    ("etag", "kept"),
    [('"abc"', None), ('W/"abc"', 'W/"abc"'), ('w/"abc"', 'w/"abc"'), ('""', None)],
)
def test_strong_etags_are_removed_weak_ones_kept(etag: str, kept: str | None) -> None:
    """compressor.proto disable_on_etag_header false: weak etags preserved, strong removed
    (sanitizeEtagHeader; since 1.38 also two-character values)."""
    decision = decide(headers=[*HTML, ("etag", etag)])
    assert decision.compress
    assert [v for n, v in decision.headers if n == "etag"] == ([kept] if kept else [])


def test_disable_on_etag_header_skips_any_etag() -> None:
    config = CompressorConfig.from_api(
        compressor(response_direction_config={"disable_on_etag_header": True})
    )
    decision = decide(config, headers=[*HTML, ("etag", 'W/"abc"')])
    assert (decision.compress, decision.reason) == (False, "not_compressed_etag")
    assert decide(config).compress  # no etag: compressed


def test_weaken_etag_on_compress_wins_over_disable() -> None:
    """compressor.proto (1.38) weaken_etag_on_compress: W/ prepended; takes precedence."""
    config = CompressorConfig.from_api(
        compressor(
            response_direction_config={
                "disable_on_etag_header": True,
                "weaken_etag_on_compress": True,
            }
        )
    )
    decision = decide(config, headers=[*HTML, ("etag", '"abc"')])
    assert decision.compress
    assert ("etag", 'W/"abc"') in decision.headers


def test_remove_accept_encoding_header_upstream() -> None:
    """compressor.proto remove_accept_encoding_header: so the upstream answers uncompressed;
    the decision still uses the client's header."""
    config = CompressorConfig.from_api(
        compressor(response_direction_config={"remove_accept_encoding_header": True})
    )
    request = [("host", "a"), ("accept-encoding", "gzip"), ("x", "y")]
    assert forward_request_headers(config, request) == [("host", "a"), ("x", "y")]
    assert forward_request_headers(DEFAULT, request) == request
    assert should_compress(
        config, request_headers=request, response_status=200, response_headers=HTML
    )


# --- the gzip stream -----------------------------------------------------------------------


def test_stream_is_a_gzip_member_with_the_configured_window() -> None:
    stream = GzipSettings(level=9, memory_level=9, window_bits=9).stream()
    out = stream.compress(b"a" * 1000) + stream.finish()
    assert out[:3] == b"\x1f\x8b\x08"  # RFC 1952 magic, deflate
    assert gzip.decompress(out) == b"a" * 1000
    assert stream.finish() == b""
    with pytest.raises(RuntimeError):
        stream.compress(b"more")


def test_each_chunk_is_decodable_as_it_leaves() -> None:
    """Envoy flushes per data frame (Compressor::State::Flush): a client sees each event."""
    stream = DEFAULT.gzip.stream()
    reader = zlib.decompressobj(16 + 15)
    assert reader.decompress(stream.compress(b"event: one\n\n")) == b"event: one\n\n"
    assert reader.decompress(stream.compress(b"event: two\n\n")) == b"event: two\n\n"
    reader.decompress(stream.finish())
    assert reader.eof


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=3000), max_size=12),
    level=st.sampled_from([-1, 1, 5, 9]),
    memory_level=st.integers(1, 9),
    window_bits=st.integers(9, 15),
    strategy=st.sampled_from(
        [zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED, zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE, zlib.Z_FIXED]
    ),
)
def test_round_trip_over_any_chunking(
    chunks: list[bytes], level: int, memory_level: int, window_bits: int, strategy: int
) -> None:
    settings_ = GzipSettings(level, memory_level, window_bits, strategy)
    stream = settings_.stream()
    out = b"".join(stream.compress(chunk) for chunk in chunks) + stream.finish()
    assert gzip.decompress(out) == b"".join(chunks)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=20000), cuts=st.lists(st.integers(0, 20000), max_size=10))
def test_round_trip_of_one_body_cut_anywhere(data: bytes, cuts: list[int]) -> None:
    bounds = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    stream = DEFAULT.gzip.stream()
    out = b"".join(stream.compress(data[a:b]) for a, b in itertools.pairwise(bounds))
    assert gzip.decompress(out + stream.finish()) == data
