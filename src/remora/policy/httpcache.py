"""Envoy's HTTP cache filter with SimpleHttpCache: RFC 9111 decisions over a bounded LRU store.

Theory of operation. A streaming filter asks `cache.lookup(...)` at request headers and gets:

- MISS: forward the request. If `store_allowed`, buffer the response (up to
  `cache.body_limit` bytes) and hand it to `cache.store(lookup, ...)` at end of stream;
  `store` decides whether it is storable (RFC 9111 §3) and returns whether it kept it.
- HIT: answer from the cache (`status`, `headers` with a computed Age, `body`); nothing
  goes upstream. A client's own If-None-Match / If-Modified-Since that the entry satisfies
  gets a 304 (RFC 9111 §4.3.2).
- VALIDATE: forward with `conditional_headers` set (If-None-Match / If-Modified-Since from
  the stored validators, §4.3.1). A 304 goes to `cache.update_after_304(lookup, ...)`,
  which refreshes the entry (§4.3.4) and returns the HIT to send; any other response is
  a new response for `store`.

Clocks are parameters: `now`, `request_time` and `response_time` are Unix seconds from the
proxy's wall clock (they are compared with Date). Envoy's rules (envoyproxy.io docs/envoy/
latest/configuration/http/http_filters/cache_filter; source/extensions/filters/http/cache/
cacheability_utils.cc, cache_headers_utils.cc): only GET is stored (HEAD is served, never
stored), a response is stored only with enough data to compute its freshness (max-age,
s-maxage, no-cache, or Expires with Date: no heuristic freshness), only the status codes
below, and a Vary only on headers `allowed_vary_headers` allows.
"""

from __future__ import annotations

import email.utils
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import re2

from remora.api.errors import ConfigError, ConfigIssue

Header = tuple[str, str]
CacheKey = tuple[str, str, str]  # (scheme, authority, path with the kept query)
LookupKind = Literal["miss", "hit", "validate"]

CACHE_CONFIG_V3 = "envoy.extensions.filters.http.cache.v3.CacheConfig"
SIMPLE_CACHE_TYPES = (
    "envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig",
    "envoy.extensions.cache.simple_http_cache.v3.SimpleHttpCacheConfig",
    "envoy.extensions.cache.simple_http_cache.v3alpha.SimpleHttpCacheConfig",
)
# cacheability_utils.cc cacheableStatusCodes, less 206: Remora does not serve ranges from cache.
CACHEABLE_STATUS = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 451, 501})
# RFC 9110 §7.6.1: hop-by-hop fields are not stored (RFC 9111 §3.1). Age is: it is the
# age_value of §4.2.3, replaced by the current age when served.
_NOT_STORED = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                         "transfer-encoding", "upgrade"})  # fmt: skip
# RFC 9111 §3.2: a 304 does not replace these when it updates a stored response.
_NOT_UPDATED = frozenset({"content-length", "content-encoding", "content-range"})
# RFC 9110 §15.4.5: what a 304 carries of the response it stands for.
_NOT_MODIFIED_FIELDS = frozenset({"cache-control", "content-location", "date", "etag",
                                  "expires", "vary", "last-modified"})  # fmt: skip
# Ranges bypass the cache (Remora serves none from it). If-Match and If-Unmodified-Since are
# ignored, as Envoy does (RFC 9110 §13.1.1, §13.1.4: a cache MAY ignore them).
_UNHANDLED_CONDITIONS = ("if-range", "range")


class CacheConfigError(ConfigError, ValueError):
    """A typed_config the cache cannot take; `path` names the field (an `apply` error)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__([ConfigIssue(message, path=path)])


@dataclass(frozen=True, slots=True)
class HeaderMatcher:
    """envoy.type.matcher.v3.StringMatcher over a header name."""

    kind: Literal["exact", "prefix", "suffix", "contains", "safe_regex"]
    pattern: str
    ignore_case: bool = False
    matches: Callable[[str], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "matches", _string_predicate(self))


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """CacheConfig v3 with a SimpleHttpCacheConfig store, compiled."""

    allowed_vary_headers: tuple[HeaderMatcher, ...] = ()
    exclude_scheme: bool = False
    exclude_host: bool = False
    query_included: tuple[str, ...] = ()  # query parameter names kept in the key (empty: all)
    query_excluded: tuple[str, ...] = ()
    max_body_bytes: int = 0  # 0: no limit but the store's
    ignore_request_cache_control_header: bool = False
    disabled: bool = False

    @classmethod
    def from_api(cls, typed_config: Mapping[str, Any]) -> CacheConfig:
        """Read a CacheConfig v3 typed_config as written in an EnvoyFilter."""
        cfg = _message(typed_config, "typed_config")
        type_url = str(cfg.pop("@type", "")).rpartition("/")[2]
        if type_url and type_url != CACHE_CONFIG_V3:
            raise CacheConfigError("typed_config.@type", f"unsupported type {type_url!r}")
        _known(cfg, _CONFIG_FIELDS, "typed_config")
        disabled = _flag(cfg, "disabled", "typed_config", wrapped=True)
        if "typed_config" in cfg:
            store = _message(cfg["typed_config"], "typed_config.typed_config")
            store_type = str(store.pop("@type", "")).rpartition("/")[2]
            if store_type not in SIMPLE_CACHE_TYPES:
                raise CacheConfigError(
                    "typed_config.typed_config.@type",
                    f"only SimpleHttpCacheConfig is supported, not {store_type!r}",
                )
            _known(store, set(), "typed_config.typed_config")
        elif not disabled:
            raise CacheConfigError("typed_config.typed_config", "is required unless disabled")
        vary = cfg.get("allowed_vary_headers", [])
        if not isinstance(vary, list):
            raise CacheConfigError("typed_config.allowed_vary_headers", "must be a list")
        matchers = tuple(
            _matcher(m, f"typed_config.allowed_vary_headers[{i}]") for i, m in enumerate(vary)
        )
        params = _message(cfg.get("key_creator_params", {}), "typed_config.key_creator_params")
        path = "typed_config.key_creator_params"
        _known(params, _KEY_FIELDS, path)
        body = cfg.get("max_body_bytes", 0)
        if type(body) is not int or not 0 <= body < 2**32:
            raise CacheConfigError("typed_config.max_body_bytes", "must be an unsigned integer")
        return cls(
            allowed_vary_headers=matchers,
            exclude_scheme=_flag(params, "exclude_scheme", path),
            exclude_host=_flag(params, "exclude_host", path),
            query_included=_query_names(params, "query_parameters_included", path),
            query_excluded=_query_names(params, "query_parameters_excluded", path),
            max_body_bytes=body,
            ignore_request_cache_control_header=_flag(
                cfg, "ignore_request_cache_control_header", "typed_config"
            ),
            disabled=disabled,
        )

    def vary_allowed(self, name: str) -> bool:
        """VaryAllowList::allowsValue: some matcher accepts the (lowercase) header name."""
        return any(m.matches(name) for m in self.allowed_vary_headers)


@dataclass(frozen=True, slots=True)
class CacheRequest:
    """What `store` and `update_after_304` need to know about the request that looked up."""

    key: CacheKey
    method: str
    headers: tuple[Header, ...]
    store_allowed: bool


@dataclass(slots=True)
class _Entry:
    status: int
    headers: list[Header]
    body: bytes
    vary: tuple[Header, ...]  # the request's values of the headers the response varies on
    request_time: float
    response_time: float
    size: int = 0

    def age(self, now: float) -> float:
        return current_age(
            self.headers, request_time=self.request_time, response_time=self.response_time, now=now
        )


@dataclass(frozen=True, slots=True)
class Lookup:
    """The cache's answer at request headers; see the module docstring."""

    kind: LookupKind
    request: CacheRequest | None = None  # None: not cacheable at all, forward and forget
    status: int = 0
    headers: list[Header] = field(default_factory=list)
    body: bytes = b""
    conditional_headers: list[Header] = field(default_factory=list)
    entry: _Entry | None = field(default=None, repr=False)

    @property
    def store_allowed(self) -> bool:
        return self.request is not None and self.request.store_allowed


class HttpCache:
    """The SimpleHttpCache: an in-memory LRU bounded by total and per-entry bytes."""

    def __init__(
        self, config: CacheConfig, *, max_bytes: int = 32 << 20, max_entry_bytes: int = 1 << 20
    ) -> None:
        self.config = config
        self.max_bytes = max_bytes
        self.max_entry_bytes = min(max_entry_bytes, max_bytes)
        self.size = 0
        self._entries: OrderedDict[tuple[CacheKey, tuple[Header, ...]], _Entry] = OrderedDict()
        self._variants: dict[CacheKey, dict[tuple[Header, ...], None]] = {}

    @property
    def body_limit(self) -> int:
        """How much body a filter should buffer for `store`; past it, stop and forget."""
        limit = self.config.max_body_bytes or self.max_entry_bytes
        return min(limit, self.max_entry_bytes)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(
        self,
        *,
        method: str,
        scheme: str,
        authority: str,
        path: str,
        request_headers: list[Header],
        now: float,
    ) -> Lookup:
        """CacheFilter::decodeHeaders + LookupRequest::makeLookupResult."""
        if self.config.disabled or method not in ("GET", "HEAD") or scheme not in ("http", "https"):
            return Lookup("miss")
        if any(_get(request_headers, name) is not None for name in _UNHANDLED_CONDITIONS):
            return Lookup("miss")
        directives = self._request_directives(request_headers)
        request = CacheRequest(
            key=self.key(scheme=scheme, authority=authority, path=path),
            method=method,
            headers=tuple(request_headers),
            store_allowed=method == "GET" and "no-store" not in directives,  # RFC 9111 §5.2.1.5
        )
        entry = self._find(request)
        authorized = _get(request_headers, "authorization") is not None
        if entry and authorized and not _shared_auth_ok(_cache_control(entry.headers)):
            entry = None  # RFC 9111 §3.5
        if entry is not None:
            self._entries.move_to_end((request.key, entry.vary))
            if self._usable(entry, directives, now):
                return self._answer(entry, request, now)
        if "only-if-cached" in directives:  # RFC 9111 §5.2.1.7: nothing usable, no upstream
            return Lookup("hit", request, status=504)
        if entry is None:
            return Lookup("miss", request)
        conditions = _validators(entry)
        if not conditions:
            return Lookup("miss", request)
        return Lookup("validate", request, conditional_headers=conditions, entry=entry)

    def store(
        self,
        lookup: Lookup,
        *,
        status: int,
        headers: list[Header],
        body: bytes,
        request_time: float,
        response_time: float,
    ) -> bool:
        """Insert a response if it is storable (RFC 9111 §3, Envoy isCacheableResponse)."""
        request = lookup.request
        if request is None or not request.store_allowed or status not in CACHEABLE_STATUS:
            return False
        cc = _cache_control(headers)
        if "no-store" in cc or "private" in cc:  # §5.2.2.5, §5.2.2.7: Envoy is a shared cache
            return False
        if not ({"max-age", "s-maxage", "no-cache"} & cc.keys()) and not (
            _get(headers, "expires") is not None and _get(headers, "date") is not None
        ):
            return False  # no explicit freshness: Envoy does no heuristics (§4.2.2 is a MAY)
        if _get(request.headers, "authorization") is not None and not _shared_auth_ok(cc):
            return False
        names = _vary_names(headers)
        if names is None or not all(self.config.vary_allowed(n) for n in names):
            return False
        if self.config.max_body_bytes and len(body) > self.config.max_body_bytes:
            return False
        vary = tuple((n, _get(request.headers, n) or "") for n in names)
        stored = [(n, v) for n, v in headers if n not in _NOT_STORED]
        entry = _Entry(status, stored, body, vary, request_time, response_time)
        return self._insert(request.key, entry)

    def update_after_304(
        self,
        lookup: Lookup,
        *,
        headers: list[Header],
        request_time: float,
        response_time: float,
    ) -> Lookup | None:
        """Freshen the validated entry with a 304 (RFC 9111 §4.3.4) and answer the client.

        None: the 304 names another representation (a different strong ETag); the entry is
        dropped and the filter must forward the request again without conditions.
        """
        entry, request = lookup.entry, lookup.request
        if entry is None or request is None:
            return None
        etag = _get(headers, "etag")
        stored_etag = _get(entry.headers, "etag")
        if etag is not None and not _is_weak(etag) and etag != stored_etag:
            self._remove((request.key, entry.vary))
            return None
        self._remove((request.key, entry.vary))
        updated = {n for n, _ in headers if n not in _NOT_UPDATED and n not in _NOT_STORED}
        kept = [(n, v) for n, v in entry.headers if n not in updated and n != "age"]
        entry.headers = [*kept, *((n, v) for n, v in headers if n in updated)]
        entry.request_time, entry.response_time = request_time, response_time
        if request.store_allowed:
            self._insert(request.key, entry)
        return self._answer(entry, request, response_time)

    def invalidate(
        self, *, method: str, scheme: str, authority: str, path: str, status: int
    ) -> None:
        """RFC 9111 §4.4: a non-error answer to an unsafe method drops the target's entries."""
        if method in ("GET", "HEAD", "OPTIONS", "TRACE") or not 200 <= status < 400:
            return
        key = self.key(scheme=scheme, authority=authority, path=path)
        for vary in list(self._variants.get(key, ())):
            self._remove((key, vary))

    def key(self, *, scheme: str, authority: str, path: str) -> CacheKey:
        """Envoy's Key: host, path and query, scheme, less what key_creator_params exclude."""
        path, _, query = path.partition("?")
        if query and (self.config.query_included or self.config.query_excluded):
            query = "&".join(p for p in query.split("&") if self._keep_param(p.partition("=")[0]))
        return (
            "" if self.config.exclude_scheme else scheme,
            "" if self.config.exclude_host else authority.lower(),
            f"{path}?{query}" if query else path,
        )

    # --- internals --------------------------------------------------------------------------

    def _keep_param(self, name: str) -> bool:
        if self.config.query_included and name not in self.config.query_included:
            return False
        return name not in self.config.query_excluded

    def _request_directives(self, headers: list[Header]) -> dict[str, str | None]:
        if self.config.ignore_request_cache_control_header:
            return {}
        cc = _get(headers, "cache-control")
        if cc is None and "no-cache" in _directives(_get(headers, "pragma")):
            return {"no-cache": None}  # RFC 9111 §5.4: Pragma only without Cache-Control
        return _directives(cc)

    def _find(self, request: CacheRequest) -> _Entry | None:
        """RFC 9111 §4.1: the newest variant whose Vary'd request headers match."""
        for vary in reversed(list(self._variants.get(request.key, ()))):
            if all((_get(request.headers, n) or "") == v for n, v in vary):
                return self._entries[(request.key, vary)]
        return None

    def _usable(self, entry: _Entry, directives: Mapping[str, str | None], now: float) -> bool:
        """Fresh enough for this request without validation (RFC 9111 §4.2, §5.2.1)."""
        cc = _cache_control(entry.headers)
        if "no-cache" in cc or "no-cache" in directives:  # §5.2.2.4, §5.2.1.4
            return False
        lifetime, age = freshness_lifetime(entry.headers), entry.age(now)
        max_age = _seconds(directives.get("max-age", ""), default=None)
        if max_age is not None and age > max_age:
            return False  # §5.2.1.1
        min_fresh = _seconds(directives.get("min-fresh", ""), default=0) or 0
        if lifetime - age >= min_fresh and age < lifetime:  # §5.2.1.3
            return True
        if "max-stale" not in directives or {"must-revalidate", "proxy-revalidate"} & cc.keys():
            return False  # §5.2.2.2: never serve stale past must-revalidate
        stale_ok = _seconds(directives["max-stale"] or "", default=None)
        return stale_ok is None or age - lifetime <= stale_ok  # §5.2.1.2

    def _answer(self, entry: _Entry, request: CacheRequest, now: float) -> Lookup:
        """The stored response with Age, or 304 for a client condition it meets (§4.3.2)."""
        headers = [(n, v) for n, v in entry.headers if n != "age"]
        headers.append(("age", str(int(entry.age(now)))))
        if _not_modified(entry.headers, request.headers):
            return Lookup(
                "hit", request, 304, [h for h in headers if _in_304(h[0])], b"", [], entry
            )
        body = b"" if request.method == "HEAD" else entry.body
        return Lookup("hit", request, entry.status, headers, body, [], entry)

    def _insert(self, key: CacheKey, entry: _Entry) -> bool:
        entry.size = len(entry.body) + sum(len(n) + len(v) for n, v in entry.headers) + len(key[2])
        ident = (key, entry.vary)
        self._remove(ident)
        if entry.size > self.max_entry_bytes:
            return False
        while self.size + entry.size > self.max_bytes and self._entries:
            self._remove(next(iter(self._entries)))  # least recently used first
        self._entries[ident] = entry
        self._variants.setdefault(key, {})[entry.vary] = None
        self.size += entry.size
        return True

    def _remove(self, ident: tuple[CacheKey, tuple[Header, ...]]) -> None:
        entry = self._entries.pop(ident, None)
        if entry is None:
            return
        self.size -= entry.size
        variants = self._variants[ident[0]]
        del variants[ident[1]]
        if not variants:
            del self._variants[ident[0]]


# --- RFC 9111 freshness ---------------------------------------------------------------------


def freshness_lifetime(headers: list[Header]) -> float:
    """RFC 9111 §4.2.1 for a shared cache: s-maxage, max-age, then Expires - Date."""
    cc = _cache_control(headers)
    for name in ("s-maxage", "max-age"):
        if name in cc:
            return float(_seconds(cc[name] or "", default=0) or 0)  # invalid: stale (§4.2.1)
    expires, date = _http_date(_get(headers, "expires")), _http_date(_get(headers, "date"))
    if expires is None or date is None:
        return 0.0  # an invalid Expires means already expired (§5.3)
    return max(0.0, expires - date)


def current_age(
    headers: list[Header], *, request_time: float, response_time: float, now: float
) -> float:
    """RFC 9111 §4.2.3 over the response's headers as received (its Age is age_value)."""
    age_value = _seconds((_get(headers, "age") or "").split(",")[0].strip(), default=0) or 0
    date_value = _http_date(_get(headers, "date"))
    apparent_age = max(0.0, response_time - (response_time if date_value is None else date_value))
    response_delay = response_time - request_time
    corrected_initial_age = max(apparent_age, age_value + response_delay)
    return corrected_initial_age + max(0.0, now - response_time)


# --- header helpers -------------------------------------------------------------------------


def _get(headers: Iterable[Header], name: str) -> str | None:
    values = [v for n, v in headers if n == name]
    return ", ".join(values) if values else None


def _cache_control(headers: list[Header]) -> dict[str, str | None]:
    return _directives(_get(headers, "cache-control"))


def _directives(value: str | None) -> dict[str, str | None]:
    """Cache-Control (RFC 9111 §5.2) as {directive: argument or None}; names lowercase."""
    out: dict[str, str | None] = {}
    for part in (value or "").split(","):
        name, eq, arg = part.strip().partition("=")
        if name:
            out.setdefault(name.strip().lower(), arg.strip().strip('"') if eq else None)
    return out


def _seconds(value: str | None, *, default: int | None) -> int | None:
    """delta-seconds (RFC 9111 §1.2.2): digits only, else `default`."""
    return int(value) if value and value.isdigit() else default


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _shared_auth_ok(cc: Mapping[str, str | None]) -> bool:
    """RFC 9111 §3.5: what lets a shared cache reuse a response to an authorized request."""
    return bool({"public", "s-maxage", "must-revalidate"} & cc.keys())


def _vary_names(headers: list[Header]) -> list[str] | None:
    """The header names a response varies on; None for `Vary: *` (never matches, §4.1)."""
    names = sorted({n.strip().lower() for n in (_get(headers, "vary") or "").split(",")} - {""})
    return None if "*" in names else names


def _validators(entry: _Entry) -> list[Header]:
    """RFC 9111 §4.3.1: ask upstream with the stored response's validators."""
    out = []
    if (etag := _get(entry.headers, "etag")) is not None:
        out.append(("if-none-match", etag))
    if (modified := _get(entry.headers, "last-modified")) is not None:
        out.append(("if-modified-since", modified))
    return out


def _not_modified(stored: list[Header], request: Iterable[Header]) -> bool:
    """RFC 9110 §13.1.2 (weak comparison) then §13.1.3 (only without If-None-Match)."""
    request = list(request)
    if (inm := _get(request, "if-none-match")) is not None:
        etag = _get(stored, "etag")
        tags = [t.strip() for t in inm.split(",")]
        return etag is not None and ("*" in tags or _weak(etag) in {_weak(t) for t in tags})
    ims = _http_date(_get(request, "if-modified-since"))
    modified = _http_date(_get(stored, "last-modified") or _get(stored, "date"))
    return ims is not None and modified is not None and modified <= ims


def _in_304(name: str) -> bool:
    return name in _NOT_MODIFIED_FIELDS or name == "age"


def _is_weak(etag: str) -> bool:
    return etag.startswith("W/")


def _weak(etag: str) -> str:
    return etag[2:] if _is_weak(etag) else etag


# --- config helpers -------------------------------------------------------------------------

_CONFIG_FIELDS = {"typed_config", "disabled", "allowed_vary_headers", "key_creator_params",
                  "max_body_bytes", "ignore_request_cache_control_header"}  # fmt: skip
_KEY_FIELDS = {"exclude_scheme", "exclude_host", "query_parameters_included",
               "query_parameters_excluded"}  # fmt: skip
_MATCHER_KINDS = ("exact", "prefix", "suffix", "contains", "safe_regex")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _message(raw: Any, path: str) -> dict[str, Any]:
    """A message with proto field names (protobuf JSON also accepts lowerCamelCase)."""
    if not isinstance(raw, Mapping):
        raise CacheConfigError(path, f"must be an object, not {type(raw).__name__}")
    return {(k if k.startswith("@") else _CAMEL.sub(r"_\1", k).lower()): v for k, v in raw.items()}


def _known(cfg: Mapping[str, Any], fields: set[str], path: str) -> None:
    for name in cfg:
        if name not in fields:
            raise CacheConfigError(f"{path}.{name}", "unknown field")


def _flag(cfg: Mapping[str, Any], name: str, path: str, *, wrapped: bool = False) -> bool:
    value = cfg.get(name, False)
    if wrapped and isinstance(value, Mapping) and set(value) <= {"value"}:
        value = value.get("value", False)  # google.protobuf.BoolValue as {"value": ...}
    if not isinstance(value, bool):
        raise CacheConfigError(f"{path}.{name}", f"must be true or false, not {value!r}")
    return value


def _matcher(raw: Any, path: str) -> HeaderMatcher:
    cfg = _message(raw, path)
    _known(cfg, {*_MATCHER_KINDS, "ignore_case"}, path)
    kinds = [k for k in _MATCHER_KINDS if k in cfg]
    if len(kinds) != 1:
        raise CacheConfigError(path, f"needs exactly one of {', '.join(_MATCHER_KINDS)}")
    kind = kinds[0]
    pattern = cfg[kind]
    if kind == "safe_regex":
        regex = _message(pattern, f"{path}.safe_regex")
        _known(regex, {"regex", "google_re2"}, f"{path}.safe_regex")
        pattern = regex.get("regex")
    if not isinstance(pattern, str) or (kind != "exact" and not pattern):
        raise CacheConfigError(f"{path}.{kind}", "must be a non-empty string")
    if kind == "safe_regex":
        try:
            re2.compile(pattern)
        except re2.error as exc:
            raise CacheConfigError(f"{path}.safe_regex.regex", f"invalid regex: {exc}") from exc
    return HeaderMatcher(kind, pattern, _flag(cfg, "ignore_case", path))  # type: ignore[arg-type]


_STRING_TESTS: dict[str, Callable[[str, str], bool]] = {
    "exact": lambda value, pattern: value == pattern,
    "prefix": lambda value, pattern: value.startswith(pattern),
    "suffix": lambda value, pattern: value.endswith(pattern),
    "contains": lambda value, pattern: pattern in value,
}


def _string_predicate(m: HeaderMatcher) -> Callable[[str], bool]:
    if m.kind == "safe_regex":
        regex = re2.compile(m.pattern)
        return lambda value: regex.fullmatch(value) is not None
    pattern = m.pattern.lower() if m.ignore_case else m.pattern
    test = _STRING_TESTS[m.kind]
    if m.ignore_case:
        return lambda value: test(value.lower(), pattern)
    return lambda value: test(value, pattern)


def _query_names(cfg: Mapping[str, Any], name: str, path: str) -> tuple[str, ...]:
    """config.route.v3.QueryParameterMatcher entries by name (a match on the value: refused)."""
    raw = cfg.get(name, [])
    if not isinstance(raw, list):
        raise CacheConfigError(f"{path}.{name}", "must be a list")
    names = []
    for i, item in enumerate(raw):
        where = f"{path}.{name}[{i}]"
        entry = _message(item, where)
        _known(entry, {"name", "present_match"}, where)
        if not isinstance(entry.get("name"), str) or not entry["name"]:
            raise CacheConfigError(f"{where}.name", "must be a non-empty string")
        names.append(entry["name"])
    return tuple(names)
