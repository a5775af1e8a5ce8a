"""Envoy's compressor filter with the gzip library: config, response decisions, a gzip stream.

Theory of operation. A streaming filter drives this module in three phases:

1. request headers: `forward_request_headers(config, headers)` gives the headers to send
   upstream (Accept-Encoding removed when `remove_accept_encoding_header`); keep the
   client's original headers for phase 2.
2. response headers: `decide_response(config, request_headers=..., response_status=...,
   response_headers=..., head_request=...)` returns a `ResponseDecision`: whether to
   compress and the response headers to send either way (Vary may be added even when
   the body is not compressed, as Envoy does).
3. body: when compressing, `config.gzip.stream()` gives a `GzipStream`; each body chunk
   goes through `compress(chunk)` (sync-flushed, as Envoy's State::Flush, so streamed
   responses are not held back) and `finish()` ends the gzip member at end of stream.

The rules are Envoy's (envoyproxy.io docs/envoy/latest/configuration/http/http_filters/
compressor_filter, "How it works"; source/extensions/filters/http/common/compressor/
compressor.cc). The config is the typed_config of an EnvoyFilter patch, in the three forms
users write: `envoy.extensions.filters.http.compressor.v3.Compressor` (response_direction_config
or the deprecated top-level fields), and the deprecated `envoy.filters.http.gzip`
(`envoy.config.filter.http.gzip.v2.Gzip` / `envoy.extensions.filters.http.gzip.v3.Gzip`).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from remora.api.errors import ConfigError, ConfigIssue

Header = tuple[str, str]

COMPRESSOR_V3 = "envoy.extensions.filters.http.compressor.v3.Compressor"
GZIP_LIBRARY_V3 = "envoy.extensions.compression.gzip.compressor.v3.Gzip"
GZIP_FILTER_TYPES = (
    "envoy.config.filter.http.gzip.v2.Gzip",
    "envoy.extensions.filters.http.gzip.v3.Gzip",
)
GZIP_FILTER_NAMES = ("envoy.filters.http.gzip", "envoy.gzip", "gzip")

# compressor.cc defaultContentEncoding(): the documented eight "and their synonyms".
DEFAULT_CONTENT_TYPES = frozenset({
    "text/html", "text/plain", "text/css", "application/javascript", "application/x-javascript",
    "text/javascript", "text/x-javascript", "text/ecmascript", "text/js", "text/jscript",
    "text/x-js", "application/ecmascript", "application/x-json", "application/xml",
    "application/json", "image/svg+xml", "text/xml", "application/xhtml+xml",
})  # fmt: skip
DEFAULT_MIN_CONTENT_LENGTH = 30  # compressor.cc DefaultMinimumContentLength

# gzip.proto (compression/gzip/compressor/v3) CompressionLevel: BEST_SPEED=1, BEST_COMPRESSION=9.
_LEVELS_V3 = {"DEFAULT_COMPRESSION": zlib.Z_DEFAULT_COMPRESSION, "BEST_SPEED": 1}
_LEVELS_V3["BEST_COMPRESSION"] = 9
_LEVELS_V3 |= {f"COMPRESSION_LEVEL_{n}": n for n in range(1, 10)}
_LEVEL_NUMBERS_V3 = {0: zlib.Z_DEFAULT_COMPRESSION} | {n: n for n in range(1, 10)}
_LEVELS_V2 = {"DEFAULT": zlib.Z_DEFAULT_COMPRESSION, "BEST": 9, "SPEED": 1}  # gzip v2 Enum
_LEVEL_NUMBERS_V2 = {0: zlib.Z_DEFAULT_COMPRESSION, 1: 9, 2: 1}
_STRATEGIES_V3 = {
    "DEFAULT_STRATEGY": zlib.Z_DEFAULT_STRATEGY, "FILTERED": zlib.Z_FILTERED,
    "HUFFMAN_ONLY": zlib.Z_HUFFMAN_ONLY, "RLE": zlib.Z_RLE, "FIXED": zlib.Z_FIXED,
}  # fmt: skip
_STRATEGY_NUMBERS_V3 = dict(enumerate(_STRATEGIES_V3.values()))
_STRATEGIES_V2 = {"DEFAULT": zlib.Z_DEFAULT_STRATEGY, "FILTERED": zlib.Z_FILTERED,
                  "HUFFMAN": zlib.Z_HUFFMAN_ONLY, "RLE": zlib.Z_RLE}  # fmt: skip
_STRATEGY_NUMBERS_V2 = dict(enumerate(_STRATEGIES_V2.values()))


class CompressorConfigError(ConfigError, ValueError):
    """A typed_config the compressor cannot take; `path` names the field (an `apply` error)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__([ConfigIssue(message, path=path)])


@dataclass(frozen=True, slots=True)
class GzipSettings:
    """zlib deflateInit2 parameters, with Envoy's defaults (gzip.proto)."""

    level: int = zlib.Z_DEFAULT_COMPRESSION
    memory_level: int = 5
    window_bits: int = 12
    strategy: int = zlib.Z_DEFAULT_STRATEGY
    chunk_size: int = 4096  # Envoy's zlib output buffer; kept for the stats, no effect here

    def stream(self) -> GzipStream:
        return GzipStream(self)


@dataclass(frozen=True, slots=True)
class CompressorConfig:
    """One compressor filter, compiled; `enabled` is the runtime flag's default_value."""

    gzip: GzipSettings = GzipSettings()
    enabled: bool = True
    min_content_length: int = DEFAULT_MIN_CONTENT_LENGTH
    content_types: frozenset[str] = DEFAULT_CONTENT_TYPES  # lowercase
    disable_on_etag_header: bool = False
    weaken_etag_on_compress: bool = False
    remove_accept_encoding_header: bool = False
    uncompressible_response_codes: frozenset[int] = frozenset()

    @classmethod
    def from_api(
        cls, typed_config: Mapping[str, Any], *, filter_name: str = ""
    ) -> CompressorConfig:
        """Read the form named by "@type" (or, without it, by the filter's name)."""
        cfg = _snake(typed_config, "typed_config")
        type_url = str(cfg.pop("@type", "")).rpartition("/")[2]
        if type_url == COMPRESSOR_V3 or (not type_url and filter_name not in GZIP_FILTER_NAMES):
            return _from_compressor(cfg)
        if type_url in GZIP_FILTER_TYPES or not type_url:
            return _from_gzip_filter(cfg)
        raise CompressorConfigError("typed_config.@type", f"unsupported type {type_url!r}")


@dataclass(frozen=True, slots=True)
class ResponseDecision:
    """What the filter does with one response; `reason` says why not (Envoy's stat names)."""

    compress: bool
    headers: list[Header]
    reason: str = ""


def forward_request_headers(config: CompressorConfig, headers: list[Header]) -> list[Header]:
    """decodeHeaders: drop Accept-Encoding upstream when configured, so it answers uncompressed."""
    if config.enabled and config.remove_accept_encoding_header:
        return [(n, v) for n, v in headers if n != "accept-encoding"]
    return headers


def decide_response(
    config: CompressorConfig,
    *,
    request_headers: list[Header],
    response_status: int,
    response_headers: list[Header],
    head_request: bool = False,
) -> ResponseDecision:
    """encodeHeaders. `request_headers` are the client's, before `forward_request_headers`.

    A HEAD answer, 1xx, 204 and 304 have no body (Envoy sees end_stream and skips), but
    still get Vary like any compressible response.
    """
    reason = _not_compressible(config, response_status, response_headers)
    headers = list(response_headers)
    if reason:
        return ResponseDecision(False, headers, reason)
    headers = _with_vary(headers)  # even if this client cannot take gzip (compressor.cc)
    if head_request or response_status < 200 or response_status in (204, 304):
        return ResponseDecision(False, headers, "no_body")
    accept = _joined(request_headers, "accept-encoding")
    if accept is None:
        return ResponseDecision(False, headers, "no_accept_header")
    if not accepts_gzip(accept):
        return ResponseDecision(False, headers, "header_not_valid")
    if _transfer_encoded(headers):
        return ResponseDecision(False, headers, "transfer_encoding")
    out: list[Header] = []
    for name, value in headers:
        if name == "content-length":
            continue
        if name == "etag" and not _is_weak(value):
            if config.weaken_etag_on_compress:
                out.append((name, "W/" + value))
            continue  # by default Envoy removes strong validators; it does not rewrite them
        out.append((name, value))
    out.append(("content-encoding", "gzip"))
    return ResponseDecision(True, out)


def should_compress(
    config: CompressorConfig,
    *,
    request_headers: list[Header],
    response_status: int,
    response_headers: list[Header],
    head_request: bool = False,
) -> bool:
    """Just the yes/no of `decide_response`."""
    return decide_response(
        config,
        request_headers=request_headers,
        response_status=response_status,
        response_headers=response_headers,
        head_request=head_request,
    ).compress


def accepts_gzip(accept_encoding: str) -> bool:
    """compressor.cc chooseEncoding with gzip the only compressor in the chain.

    The highest q wins, the first on ties; `identity` and `*` take part, `gzip;q=0`
    excludes gzip even under `*`, other codings are not in the chain so they do not count.
    Names are compared case-insensitively (RFC 9110 §8.4.1; Envoy compares exactly).
    """
    allowed = True
    pairs: list[tuple[str, float]] = []
    for token in accept_encoding.split(","):
        name, *params = (part.strip() for part in token.split(";"))
        if not name:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = -1.0
        if q < 0:
            continue  # Envoy skips an unparseable q-value
        name = name.lower()
        pairs.append((name, q))
        if name == "gzip" and q == 0:
            allowed = False
    if not pairs or not allowed:
        return False
    choice, best = "identity", 0.0
    for name, q in pairs:
        if q > best and name in ("gzip", "identity", "*"):
            choice, best = name, q
    return best > 0 and choice in ("gzip", "*")


class GzipStream:
    """One response body: gzip members out for body chunks in, as Envoy's ZlibCompressorImpl."""

    __slots__ = ("_finished", "_zlib")

    def __init__(self, settings: GzipSettings) -> None:
        self._zlib = zlib.compressobj(
            settings.level,
            zlib.DEFLATED,
            16 + settings.window_bits,  # 16+: a gzip header and trailer, not zlib's
            settings.memory_level,
            settings.strategy,
        )
        self._finished = False

    def compress(self, chunk: bytes) -> bytes:
        """Compress and sync-flush, so what came in can be decoded by the client now."""
        if self._finished:
            raise RuntimeError("compress() after finish()")
        return self._zlib.compress(chunk) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        """The end of the stream: the last block, CRC32 and length."""
        if self._finished:
            return b""
        self._finished = True
        return self._zlib.flush(zlib.Z_FINISH)


# --- response rules -------------------------------------------------------------------------


def _not_compressible(config: CompressorConfig, status: int, headers: list[Header]) -> str:
    """compressor.cc isCompressible (with the content length check): "" or a stat name."""
    if not config.enabled:
        return "disabled"
    if status in config.uncompressible_response_codes:
        return "uncompressible_response_code"
    length = _joined(headers, "content-length")
    # No Content-Length is allowed (Envoy 1.2x enable_compression_without_content_length_header).
    if length is not None and (not length.isdigit() or int(length) < config.min_content_length):
        return "content_length_too_small"
    content_type = _joined(headers, "content-type")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if content_type is not None and config.content_types and media_type not in config.content_types:
        return "content_type_not_allowed"
    cache_control = _joined(headers, "cache-control") or ""
    if any(d.strip().lower() == "no-transform" for d in cache_control.split(",")):
        return "no_transform"
    has_etag = _joined(headers, "etag") is not None
    if has_etag and config.disable_on_etag_header and not config.weaken_etag_on_compress:
        return "not_compressed_etag"
    if _joined(headers, "content-encoding") is not None:
        return "already_encoded"
    return ""


def _transfer_encoded(headers: list[Header]) -> bool:
    """isTransferEncodingAllowed: a compressing transfer-coding is already applied."""
    codings = (_joined(headers, "transfer-encoding") or "").split(",")
    return any(c.strip().lower() in ("gzip", "deflate", "x-gzip") for c in codings)


def _with_vary(headers: list[Header]) -> list[Header]:
    """insertVaryHeader: one Vary that lists Accept-Encoding (a `Vary: *` already covers it)."""
    vary = _joined(headers, "vary")
    if vary is None:
        return [*headers, ("vary", "Accept-Encoding")]
    tokens = [t.strip().lower() for t in vary.split(",")]
    if "accept-encoding" in tokens or "*" in tokens:
        return headers
    rest = [(n, v) for n, v in headers if n != "vary"]
    return [*rest, ("vary", f"{vary}, Accept-Encoding")]


def _is_weak(etag: str) -> bool:
    return etag[:2] in ("W/", "w/")


def _joined(headers: Iterable[Header], name: str) -> str | None:
    values = [v for n, v in headers if n == name]
    return ", ".join(values) if values else None


# --- config forms ---------------------------------------------------------------------------

_COMPRESSOR_FIELDS = {
    "content_length", "content_type", "disable_on_etag_header", "remove_accept_encoding_header",
    "runtime_enabled", "compressor_library", "request_direction_config",
    "response_direction_config", "choose_first",
}  # fmt: skip
_RESPONSE_FIELDS = {
    "common_config", "disable_on_etag_header", "remove_accept_encoding_header",
    "uncompressible_response_codes", "weaken_etag_on_compress", "status_header_enabled",
}  # fmt: skip
_COMMON_FIELDS = {"enabled", "min_content_length", "content_type"}
_GZIP_LIBRARY_FIELDS = {"memory_level", "compression_level", "compression_strategy",
                        "window_bits", "chunk_size"}  # fmt: skip
_GZIP_FILTER_FIELDS = {
    "memory_level", "content_length", "compression_level", "compression_strategy", "content_type",
    "disable_on_etag_header", "remove_accept_encoding_header", "window_bits", "compressor",
    "chunk_size",
}  # fmt: skip
_COMPRESSOR_V2_FIELDS = {"content_length", "content_type", "disable_on_etag_header",
                         "remove_accept_encoding_header", "runtime_enabled"}  # fmt: skip


def _from_compressor(cfg: dict[str, Any]) -> CompressorConfig:
    """compressor.proto v3; response_direction_config, when set, wins over the old fields."""
    _known(cfg, _COMPRESSOR_FIELDS, "typed_config")
    if "compressor_library" not in cfg:
        raise CompressorConfigError("typed_config.compressor_library", "is required")
    gzip = _library(_snake(cfg["compressor_library"], "typed_config.compressor_library"))
    if "request_direction_config" in cfg:  # parsed for errors; Remora compresses responses only
        path = "typed_config.request_direction_config"
        request = _snake(cfg["request_direction_config"], path)
        _known(request, {"common_config"}, path)
        _common(request.get("common_config"), f"{path}.common_config")
    _boolean(cfg, "choose_first", "typed_config")
    if "response_direction_config" not in cfg:
        return _legacy(cfg, gzip, "typed_config", min_length_floor=0)
    path = "typed_config.response_direction_config"
    response = _snake(cfg["response_direction_config"], path)
    _known(response, _RESPONSE_FIELDS, path)
    enabled, min_length, types = _common(response.get("common_config"), f"{path}.common_config")
    _boolean(response, "status_header_enabled", path)
    codes = response.get("uncompressible_response_codes", [])
    valid = isinstance(codes, list) and len(set(codes)) == len(codes)
    if not valid or not all(type(c) is int and 200 <= c < 600 for c in codes):
        raise CompressorConfigError(
            f"{path}.uncompressible_response_codes", "must be unique status codes in [200, 600)"
        )
    return CompressorConfig(
        gzip=gzip,
        enabled=enabled,
        min_content_length=min_length,
        content_types=types,
        disable_on_etag_header=_boolean(response, "disable_on_etag_header", path),
        weaken_etag_on_compress=_boolean(response, "weaken_etag_on_compress", path),
        remove_accept_encoding_header=_boolean(response, "remove_accept_encoding_header", path),
        uncompressible_response_codes=frozenset(codes),
    )


def _from_gzip_filter(cfg: dict[str, Any]) -> CompressorConfig:
    """gzip.proto v2/v3 filter: zlib settings at the top, the common ones top or `compressor`."""
    _known(cfg, _GZIP_FILTER_FIELDS, "typed_config")
    gzip = _gzip_settings(cfg, "typed_config", names=_LEVELS_V2, numbers=_LEVEL_NUMBERS_V2, v2=True)
    if "compressor" in cfg:
        common = _snake(cfg["compressor"], "typed_config.compressor")
        _known(common, _COMPRESSOR_V2_FIELDS, "typed_config.compressor")
        return _legacy(common, gzip, "typed_config.compressor", min_length_floor=0)
    return _legacy(cfg, gzip, "typed_config", min_length_floor=DEFAULT_MIN_CONTENT_LENGTH)


def _legacy(
    cfg: dict[str, Any], gzip: GzipSettings, path: str, *, min_length_floor: int
) -> CompressorConfig:
    """The deprecated top-level content_length/content_type/... (Compressor v3 and gzip v2)."""
    length = _uint(cfg, "content_length", path, default=0)
    if length and length < min_length_floor:  # gzip v2: content_length gte 30
        raise CompressorConfigError(f"{path}.content_length", f"must be >= {min_length_floor}")
    return CompressorConfig(
        gzip=gzip,
        enabled=_feature_flag(cfg.get("runtime_enabled"), f"{path}.runtime_enabled"),
        min_content_length=length or DEFAULT_MIN_CONTENT_LENGTH,  # contentLengthUint: 0 -> 30
        content_types=_content_types(cfg.get("content_type"), f"{path}.content_type"),
        disable_on_etag_header=_boolean(cfg, "disable_on_etag_header", path),
        remove_accept_encoding_header=_boolean(cfg, "remove_accept_encoding_header", path),
    )


def _common(raw: Any, path: str) -> tuple[bool, int, frozenset[str]]:
    cfg = _snake(raw if raw is not None else {}, path)
    _known(cfg, _COMMON_FIELDS, path)
    length = _uint(cfg, "min_content_length", path, default=0) or DEFAULT_MIN_CONTENT_LENGTH
    enabled = _feature_flag(cfg.get("enabled"), f"{path}.enabled")
    return enabled, length, _content_types(cfg.get("content_type"), f"{path}.content_type")


def _library(lib: dict[str, Any]) -> GzipSettings:
    path = "typed_config.compressor_library"
    _known(lib, {"name", "typed_config"}, path)
    if "typed_config" not in lib:
        raise CompressorConfigError(f"{path}.typed_config", "is required")
    inner = _snake(lib["typed_config"], f"{path}.typed_config")
    type_url = str(inner.pop("@type", "")).rpartition("/")[2]
    if type_url != GZIP_LIBRARY_V3:
        raise CompressorConfigError(
            f"{path}.typed_config.@type", f"only {GZIP_LIBRARY_V3} is supported, not {type_url!r}"
        )
    _known(inner, _GZIP_LIBRARY_FIELDS, f"{path}.typed_config")
    return _gzip_settings(
        inner, f"{path}.typed_config", names=_LEVELS_V3, numbers=_LEVEL_NUMBERS_V3, v2=False
    )


def _gzip_settings(
    cfg: dict[str, Any], path: str, *, names: dict[str, int], numbers: dict[int, int], v2: bool
) -> GzipSettings:
    strategies = _STRATEGIES_V2 if v2 else _STRATEGIES_V3
    strategy_numbers = _STRATEGY_NUMBERS_V2 if v2 else _STRATEGY_NUMBERS_V3
    chunk = _uint(cfg, "chunk_size", path, default=4096)
    if not 4096 <= chunk <= 65536:
        raise CompressorConfigError(f"{path}.chunk_size", "must be in [4096, 65536]")
    return GzipSettings(
        level=_enum(cfg, "compression_level", path, names=names, numbers=numbers, default=-1),
        memory_level=_ranged(cfg, "memory_level", path, bounds=(1, 9), default=5),
        window_bits=_ranged(cfg, "window_bits", path, bounds=(9, 15), default=12),
        strategy=_enum(
            cfg, "compression_strategy", path, names=strategies, numbers=strategy_numbers, default=0
        ),
        chunk_size=chunk,
    )


# --- protobuf JSON helpers ------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _snake(raw: Any, path: str) -> dict[str, Any]:
    """A message as a dict with proto field names (protobuf JSON also accepts lowerCamelCase)."""
    if not isinstance(raw, Mapping):
        raise CompressorConfigError(path, f"must be an object, not {type(raw).__name__}")
    return {(k if k.startswith("@") else _CAMEL.sub(r"_\1", k).lower()): v for k, v in raw.items()}


def _known(cfg: Mapping[str, Any], fields: set[str], path: str) -> None:
    for key in cfg:
        if key not in fields:
            raise CompressorConfigError(f"{path}.{key}", "unknown field")


def _wrapped(cfg: Mapping[str, Any], key: str, path: str) -> Any:
    """A google.protobuf wrapper as a plain value or {"value": ...}."""
    value = cfg.get(key)
    if isinstance(value, Mapping):
        if set(value) - {"value"}:
            raise CompressorConfigError(f"{path}.{key}", "a wrapper takes only 'value'")
        value = value.get("value")
    return value


def _uint(cfg: Mapping[str, Any], key: str, path: str, *, default: int) -> int:
    value = _wrapped(cfg, key, path)
    if value is None:
        return default
    if isinstance(value, str) and value.isdigit():
        value = int(value)  # protobuf JSON writes 64-bit ints as strings; accept digits
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise CompressorConfigError(f"{path}.{key}", f"must be an unsigned integer, not {value!r}")
    return value


def _ranged(
    cfg: Mapping[str, Any], key: str, path: str, *, bounds: tuple[int, int], default: int
) -> int:
    value = _uint(cfg, key, path, default=default)
    low, high = bounds
    if not low <= value <= high:
        raise CompressorConfigError(f"{path}.{key}", f"must be in [{low}, {high}], not {value}")
    return value


def _boolean(cfg: Mapping[str, Any], key: str, path: str) -> bool:
    value = _wrapped(cfg, key, path)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise CompressorConfigError(f"{path}.{key}", f"must be true or false, not {value!r}")
    return value


def _enum(
    cfg: Mapping[str, Any],
    key: str,
    path: str,
    *,
    names: dict[str, int],
    numbers: dict[int, int],
    default: int,
) -> int:
    """An enum by name (any case, as the docs' `best_compression`) or by number."""
    value = cfg.get(key)
    if value is None:
        return default
    if isinstance(value, str) and value.upper() in names:
        return names[value.upper()]
    if isinstance(value, int) and not isinstance(value, bool) and value in numbers:
        return numbers[value]
    raise CompressorConfigError(f"{path}.{key}", f"must be one of {sorted(names)}, not {value!r}")


def _feature_flag(raw: Any, path: str) -> bool:
    """config.core.v3.RuntimeFeatureFlag: Remora has no runtime, so default_value decides."""
    if raw is None:
        return True
    cfg = _snake(raw, path)
    _known(cfg, {"default_value", "runtime_key"}, path)
    if "default_value" not in cfg:
        raise CompressorConfigError(f"{path}.default_value", "is required")
    if not isinstance(cfg.get("runtime_key", ""), str):
        raise CompressorConfigError(f"{path}.runtime_key", "must be a string")
    return _boolean(cfg, "default_value", path)


def _content_types(raw: Any, path: str) -> frozenset[str]:
    """An empty or missing list means Envoy's defaults; entries compare case-insensitively."""
    if raw is None or raw == []:
        return DEFAULT_CONTENT_TYPES
    if not isinstance(raw, list) or not all(isinstance(t, str) and t.strip() for t in raw):
        raise CompressorConfigError(path, "must be a list of mime types")
    if len(raw) > 50:
        raise CompressorConfigError(path, "at most 50 entries")
    return frozenset(t.strip().lower() for t in raw)
