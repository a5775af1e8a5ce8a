"""HTTP cache tables: Envoy's cache filter with SimpleHttpCache (envoyproxy.io docs/envoy/latest/
configuration/http/http_filters/cache_filter; api-v3 filters/http/cache/v3/cache.proto;
cacheability_utils.cc, cache_headers_utils.cc) over RFC 9111 (HTTP Caching) and the
conditional requests of RFC 9110 §13."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remora.policy.httpcache import (
    CACHE_CONFIG_V3,
    SIMPLE_CACHE_TYPES,
    CacheConfig,
    CacheConfigError,
    HttpCache,
    Lookup,
    current_age,
    freshness_lifetime,
)

T0 = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
DATE = "Tue, 14 Nov 2023 22:13:20 GMT"
LAST_WEEK = "Tue, 07 Nov 2023 22:13:20 GMT"
STORE = {"@type": f"type.googleapis.com/{SIMPLE_CACHE_TYPES[0]}"}

Headers = list[tuple[str, str]]


def config(**fields: Any) -> CacheConfig:
    return CacheConfig.from_api(
        {"@type": f"type.googleapis.com/{CACHE_CONFIG_V3}", "typed_config": STORE, **fields}
    )


def lookup(
    cache: HttpCache,
    headers: Headers | None = None,
    *,
    now: float = T0,
    method: str = "GET",
    path: str = "/a",
    authority: str = "svc",
) -> Lookup:
    return cache.lookup(
        method=method,
        scheme="http",
        authority=authority,
        path=path,
        request_headers=headers or [],
        now=now,
    )


def fill(
    cache: HttpCache,
    response: Headers,
    *,
    request: Headers | None = None,
    status: int = 200,
    body: bytes = b"hello",
    now: float = T0,
    path: str = "/a",
) -> bool:
    first = lookup(cache, request, now=now, path=path)
    return cache.store(
        first, status=status, headers=response, body=body, request_time=now, response_time=now
    )


FRESH = [("date", DATE), ("cache-control", "max-age=60"), ("etag", '"v1"')]


# --- config ------------------------------------------------------------------------------


def test_documented_example_config() -> None:
    """cache_filter docs: SimpleHttpCache with allowed_vary_headers matchers."""
    cfg = config(
        allowed_vary_headers=[
            {"exact": "accept-encoding"},
            {"prefix": "x-", "ignore_case": True},
            {"safe_regex": {"regex": "user-.*"}},
            {"suffix": "-lang"},
            {"contains": "locale"},
        ],
        key_creator_params={"exclude_host": True, "query_parameters_excluded": [{"name": "utm"}]},
        max_body_bytes=1024,
        ignore_request_cache_control_header=True,
    )
    assert [cfg.vary_allowed(n) for n in ("accept-encoding", "x-foo", "user-agent", "accept-lang")]
    assert cfg.vary_allowed("my-locale-id")
    assert not cfg.vary_allowed("cookie")
    assert cfg.exclude_host and cfg.query_excluded == ("utm",)
    assert cfg.max_body_bytes == 1024 and cfg.ignore_request_cache_control_header


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"bogus": 1}, "typed_config.bogus"),
        ({"typed_config": {"@type": "type.googleapis.com/x.FileSystemHttpCacheConfig"}},
         "typed_config.typed_config.@type"),
        ({"typed_config": {**STORE, "size": 1}}, "typed_config.typed_config.size"),
        ({"allowed_vary_headers": [{"exact": "a", "prefix": "b"}]},
         "typed_config.allowed_vary_headers[0]"),
        ({"allowed_vary_headers": [{"regex": "a"}]}, "typed_config.allowed_vary_headers[0].regex"),
        ({"allowed_vary_headers": [{"safe_regex": {"regex": "("}}]},
         "typed_config.allowed_vary_headers[0].safe_regex.regex"),
        ({"allowed_vary_headers": "accept"}, "typed_config.allowed_vary_headers"),
        ({"key_creator_params": {"exclude_path": True}},
         "typed_config.key_creator_params.exclude_path"),
        ({"key_creator_params": {"exclude_host": "yes"}},
         "typed_config.key_creator_params.exclude_host"),
        ({"key_creator_params": {"query_parameters_included": [{"name": "a", "string_match": {}}]}},
         "typed_config.key_creator_params.query_parameters_included[0].string_match"),
        ({"max_body_bytes": -1}, "typed_config.max_body_bytes"),
        ({"disabled": "no"}, "typed_config.disabled"),
    ],
)  # fmt: skip
def test_invalid_fields_name_their_path(fields: dict[str, Any], path: str) -> None:
    with pytest.raises(CacheConfigError) as info:
        config(**fields)
    assert info.value.path == path and path in str(info.value)
    assert isinstance(info.value, ValueError)


def test_storage_is_required_unless_disabled() -> None:
    """cache.proto typed_config: "Required unless `disabled` is true"."""
    with pytest.raises(CacheConfigError, match=r"typed_config\.typed_config"):
        CacheConfig.from_api({"@type": f"type.googleapis.com/{CACHE_CONFIG_V3}"})
    assert CacheConfig.from_api({"disabled": {"value": True}}).disabled
    with pytest.raises(CacheConfigError, match=r"typed_config\.@type"):
        CacheConfig.from_api({"@type": "type.googleapis.com/envoy.Other", "typed_config": STORE})


def test_disabled_cache_is_a_no_op() -> None:
    cache = HttpCache(config(disabled=True))
    assert not fill(cache, FRESH)
    assert lookup(cache).kind == "miss"


# --- which requests use the cache -----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "store_allowed"),
    [
        ("GET", [], True),
        ("HEAD", [], False),  # docs: "HTTP Cache wont store HTTP HEAD Requests"
        ("POST", [], False),
        ("PUT", [], False),
        ("GET", [("cache-control", "no-store")], False),  # RFC 9111 §5.2.1.5
        ("GET", [("cache-control", "no-cache")], True),  # §5.2.1.4: validate, may store
        ("GET", [("range", "bytes=0-1")], False),  # ranges bypass the cache here
        ("GET", [("if-range", '"v1"')], False),
        ("GET", [("if-match", '"v1"')], True),  # ignored, as Envoy (RFC 9110 §13.1.1)
    ],
)
def test_which_requests_may_store(method: str, headers: Headers, store_allowed: bool) -> None:
    cache = HttpCache(config())
    assert lookup(cache, headers, method=method).store_allowed is store_allowed


def test_only_http_and_https_are_cached() -> None:
    cache = HttpCache(config())
    assert (
        cache.lookup(
            method="GET", scheme="ftp", authority="a", path="/", request_headers=[], now=T0
        ).request
        is None
    )


def test_ignore_request_cache_control_header() -> None:
    """cache.proto ignore_request_cache_control_header: no-store/no-cache in requests ignored."""
    cache = HttpCache(config(ignore_request_cache_control_header=True))
    assert lookup(cache, [("cache-control", "no-store")]).store_allowed
    fill(cache, FRESH)
    assert lookup(cache, [("cache-control", "no-cache")]).kind == "hit"


# --- which responses are stored --------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "stored"),
    [
        (200, [("cache-control", "max-age=60")], True),
        (200, [("cache-control", "s-maxage=60")], True),
        (200, [("cache-control", "no-cache")], True),  # stored, always validated (§5.2.2.4)
        (200, [("date", DATE), ("expires", "Tue, 14 Nov 2023 23:13:20 GMT")], True),
        (200, [("expires", "Tue, 14 Nov 2023 23:13:20 GMT")], False),  # Envoy wants Date too
        (200, [("date", DATE), ("last-modified", LAST_WEEK)], False),  # no heuristic freshness
        (200, [], False),
        (200, [("cache-control", "max-age=60, no-store")], False),  # §5.2.2.5
        (200, [("cache-control", "max-age=60, private")], False),  # §5.2.2.7: shared cache
        (200, [("cache-control", "max-age=60"), ("vary", "*")], False),  # §4.1
        (200, [("cache-control", "max-age=60"), ("vary", "cookie")], False),  # not allowed
        (200, [("cache-control", "max-age=60"), ("vary", "Accept-Encoding")], True),
        *((code, [("cache-control", "max-age=60")], True)
          for code in (203, 204, 300, 301, 308, 404, 405, 410, 414, 451, 501)),
        *((code, [("cache-control", "max-age=60")], False)
          for code in (201, 206, 302, 307, 400, 403, 500, 502, 503)),
    ],
)  # fmt: skip
def test_which_responses_are_stored(status: int, headers: Headers, stored: bool) -> None:
    """cacheability_utils.cc isCacheableResponse; RFC 9111 §3."""
    cache = HttpCache(config(allowed_vary_headers=[{"exact": "accept-encoding"}]))
    assert fill(cache, headers, status=status) is stored
    assert (lookup(cache).kind == "hit") is (stored and "no-cache" not in str(headers))


@pytest.mark.parametrize(
    ("directive", "stored"),
    [("max-age=60", False), ("public, max-age=60", True), ("s-maxage=60", True),
     ("max-age=60, must-revalidate", True)],
)  # fmt: skip
def test_authorized_requests(directive: str, stored: bool) -> None:
    """RFC 9111 §3.5: a shared cache reuses answers to Authorization only if public,
    s-maxage or must-revalidate say so (Envoy itself bypasses them all)."""
    cache = HttpCache(config())
    auth = [("authorization", "Bearer x")]
    assert fill(cache, [("cache-control", directive)], request=auth) is stored
    cache2 = HttpCache(config())
    fill(cache2, [("cache-control", directive)])
    assert (lookup(cache2, auth).kind == "hit") is stored
    assert lookup(cache2).kind == "hit"


def test_max_body_bytes() -> None:
    """cache.proto max_body_bytes: larger bodies are not inserted."""
    cache = HttpCache(config(max_body_bytes=4))
    assert cache.body_limit == 4
    assert not fill(cache, FRESH, body=b"12345")
    assert fill(cache, FRESH, body=b"1234")


# --- freshness and age (RFC 9111 §4.2) -------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "lifetime"),
    [
        ([("cache-control", "max-age=60")], 60),
        ([("cache-control", "max-age=60, s-maxage=10")], 10),  # §4.2.1: s-maxage first
        ([("cache-control", "max-age=abc")], 0),  # invalid: stale
        ([("date", DATE), ("expires", "Tue, 14 Nov 2023 22:14:20 GMT")], 60),
        ([("date", DATE), ("expires", "0")], 0),  # §5.3: invalid Expires is in the past
        ([("date", DATE), ("expires", LAST_WEEK)], 0),
        ([("cache-control", "max-age=5"), ("date", DATE),
          ("expires", "Tue, 14 Nov 2023 22:14:20 GMT")], 5),  # max-age over Expires
    ],
)  # fmt: skip
def test_freshness_lifetime(headers: Headers, lifetime: float) -> None:
    """RFC 9111 §4.2.1."""
    assert freshness_lifetime(headers) == lifetime


@pytest.mark.parametrize(
    ("headers", "request_time", "response_time", "now", "age"),
    [
        ([("date", DATE)], T0, T0, T0, 0),
        ([("date", DATE)], T0, T0, T0 + 30, 30),  # resident_time
        ([("date", DATE), ("age", "10")], T0, T0, T0, 10),  # age_value
        ([("date", DATE), ("age", "10")], T0 - 2, T0, T0, 12),  # + response_delay
        ([("date", "Tue, 14 Nov 2023 22:12:20 GMT")], T0, T0, T0, 60),  # apparent_age
        ([("date", "Tue, 14 Nov 2023 22:14:20 GMT")], T0, T0, T0, 0),  # clock skew: max(0, ..)
        ([], T0 - 1, T0, T0 + 5, 6),  # no Date: the time it arrived
        ([("age", "x")], T0, T0, T0, 0),
    ],
)  # fmt: skip
def test_current_age(
    headers: Headers, request_time: float, response_time: float, now: float, age: float
) -> None:
    """RFC 9111 §4.2.3 apparent_age, corrected_initial_age, resident_time."""
    got = current_age(headers, request_time=request_time, response_time=response_time, now=now)
    assert got == age


def test_hit_carries_age_and_the_stored_response() -> None:
    """RFC 9111 §5.1: a response from cache carries Age."""
    cache = HttpCache(config())
    fill(cache, [*FRESH, ("age", "5"), ("connection", "close")], status=404)
    hit = lookup(cache, now=T0 + 20)
    assert (hit.kind, hit.status, hit.body) == ("hit", 404, b"hello")
    assert hit.headers == [*FRESH, ("age", "25")]  # hop-by-hop not stored (§3.1)


def test_head_is_served_without_body() -> None:
    cache = HttpCache(config())
    fill(cache, FRESH)
    hit = lookup(cache, method="HEAD")
    assert (hit.kind, hit.status, hit.body) == ("hit", 200, b"")


@pytest.mark.parametrize(
    ("request_cc", "elapsed", "kind"),
    [
        ("", 59, "hit"),
        ("", 60, "validate"),  # age == lifetime: stale
        ("max-age=10", 11, "validate"),  # §5.2.1.1
        ("max-age=10", 10, "hit"),
        ("max-age=0", 1, "validate"),
        ("max-age=0", 0, "hit"),  # age 0 <= 0 (§5.2.1.1; Envoy: max_age < age validates)
        ("min-fresh=20", 45, "validate"),  # §5.2.1.3
        ("min-fresh=20", 30, "hit"),
        ("max-stale", 500, "hit"),  # §5.2.1.2: any staleness
        ("max-stale=10", 65, "hit"),
        ("max-stale=10", 75, "validate"),
        ("no-cache", 0, "validate"),  # §5.2.1.4
    ],
)
def test_request_directives(request_cc: str, elapsed: float, kind: str) -> None:
    cache = HttpCache(config())
    fill(cache, FRESH)
    headers = [("cache-control", request_cc)] if request_cc else []
    assert lookup(cache, headers, now=T0 + elapsed).kind == kind


def test_pragma_no_cache_without_cache_control() -> None:
    """RFC 9111 §5.4: Pragma: no-cache only when there is no Cache-Control."""
    cache = HttpCache(config())
    fill(cache, FRESH)
    assert lookup(cache, [("pragma", "no-cache")]).kind == "validate"
    assert lookup(cache, [("pragma", "no-cache"), ("cache-control", "max-age=9")]).kind == "hit"


def test_must_revalidate_refuses_max_stale() -> None:
    """RFC 9111 §5.2.2.2."""
    cache = HttpCache(config())
    fill(cache, [("cache-control", "max-age=1, must-revalidate"), ("etag", '"v1"')])
    assert lookup(cache, [("cache-control", "max-stale")], now=T0 + 5).kind == "validate"


def test_only_if_cached_without_entry_is_504() -> None:
    """RFC 9111 §5.2.1.7."""
    cache = HttpCache(config())
    answer = lookup(cache, [("cache-control", "only-if-cached")])
    assert (answer.kind, answer.status) == ("hit", 504)
    fill(cache, FRESH)
    assert lookup(cache, [("cache-control", "only-if-cached")]).status == 200
    stale = lookup(cache, [("cache-control", "only-if-cached")], now=T0 + 61)
    assert (stale.kind, stale.status) == ("hit", 504)


# --- validation (RFC 9111 §4.3) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("validators", "conditions"),
    [
        ([("etag", '"v1"')], [("if-none-match", '"v1"')]),
        ([("last-modified", LAST_WEEK)], [("if-modified-since", LAST_WEEK)]),
        ([("etag", 'W/"v1"'), ("last-modified", LAST_WEEK)],
         [("if-none-match", 'W/"v1"'), ("if-modified-since", LAST_WEEK)]),
        ([], []),
    ],
)  # fmt: skip
def test_stale_entry_asks_with_its_validators(validators: Headers, conditions: Headers) -> None:
    """RFC 9111 §4.3.1; without validators a stale entry is simply a miss."""
    cache = HttpCache(config())
    fill(cache, [("date", DATE), ("cache-control", "max-age=60"), *validators])
    answer = lookup(cache, now=T0 + 61)
    assert answer.kind == ("validate" if conditions else "miss")
    assert answer.conditional_headers == conditions


def test_304_freshens_the_entry() -> None:
    """RFC 9111 §4.3.4: the 304's fields replace the stored ones; freshness restarts."""
    cache = HttpCache(config())
    fill(cache, [*FRESH, ("content-type", "text/plain"), ("x-old", "1")])
    later = T0 + 100
    validate = lookup(cache, now=later)
    assert validate.kind == "validate"
    answer = cache.update_after_304(
        validate,
        headers=[
            ("date", "Tue, 14 Nov 2023 22:15:00 GMT"),  # T0 + 100
            ("cache-control", "max-age=300"),
            ("x-old", "2"),
            ("content-length", "0"),
        ],
        request_time=later,
        response_time=later,
    )
    assert answer is not None and (answer.kind, answer.status, answer.body) == (
        "hit",
        200,
        b"hello",
    )
    assert ("x-old", "2") in answer.headers and ("cache-control", "max-age=300") in answer.headers
    assert ("content-type", "text/plain") in answer.headers
    assert ("content-length", "0") not in answer.headers  # §3.2: not updated from a 304
    hit = lookup(cache, now=later + 200)
    assert hit.kind == "hit" and ("age", "200") in hit.headers


def test_304_for_another_strong_etag_drops_the_entry() -> None:
    cache = HttpCache(config())
    fill(cache, FRESH)
    validate = lookup(cache, now=T0 + 100)
    answer = cache.update_after_304(
        validate, headers=[("etag", '"v2"')], request_time=T0 + 100, response_time=T0 + 100
    )
    assert answer is None and len(cache) == 0 and cache.size == 0


def test_a_new_200_after_validation_replaces_the_entry() -> None:
    cache = HttpCache(config())
    fill(cache, FRESH)
    validate = lookup(cache, now=T0 + 100)
    assert cache.store(
        validate,
        status=200,
        headers=[("cache-control", "max-age=60"), ("etag", '"v2"')],
        body=b"new",
        request_time=T0 + 100,
        response_time=T0 + 100,
    )
    assert lookup(cache, now=T0 + 101).body == b"new" and len(cache) == 1


@pytest.mark.parametrize(
    ("conditions", "status"),
    [
        ([("if-none-match", '"v1"')], 304),
        ([("if-none-match", 'W/"v1"')], 304),  # weak comparison (RFC 9110 §13.1.2)
        ([("if-none-match", '"v0", "v1"')], 304),
        ([("if-none-match", "*")], 304),
        ([("if-none-match", '"v2"')], 200),
        ([("if-modified-since", DATE)], 304),  # §13.1.3: not modified since
        ([("if-modified-since", LAST_WEEK)], 304),  # Last-Modified is LAST_WEEK
        ([("if-modified-since", "Mon, 06 Nov 2023 22:13:20 GMT")], 200),
        ([("if-none-match", '"v2"'), ("if-modified-since", DATE)], 200),  # INM wins
    ],
)
def test_client_conditional_answered_from_a_fresh_entry(conditions: Headers, status: int) -> None:
    """RFC 9111 §4.3.2: a cache answers a client's conditional request from a fresh entry."""
    cache = HttpCache(config())
    fill(cache, [*FRESH, ("last-modified", LAST_WEEK), ("content-type", "text/plain")])
    answer = lookup(cache, conditions, now=T0 + 1)
    assert (answer.kind, answer.status) == ("hit", status)
    if status == 304:
        assert answer.body == b"" and ("etag", '"v1"') in answer.headers
        assert ("content-type", "text/plain") not in answer.headers  # RFC 9110 §15.4.5
        assert ("age", "1") in answer.headers


@pytest.mark.parametrize(
    ("method", "status", "dropped"),
    [("POST", 200, True), ("DELETE", 204, True), ("PUT", 302, True), ("POST", 500, False),
     ("GET", 200, False), ("OPTIONS", 200, False)],
)  # fmt: skip
def test_unsafe_methods_invalidate(method: str, status: int, dropped: bool) -> None:
    """RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI."""
    cache = HttpCache(config(allowed_vary_headers=[{"exact": "accept-encoding"}]))
    fill(cache, [*FRESH, ("vary", "accept-encoding")], request=[("accept-encoding", "gzip")])
    fill(cache, [*FRESH, ("vary", "accept-encoding")])
    cache.invalidate(method=method, scheme="http", authority="svc", path="/a", status=status)
    assert (len(cache) == 0) is dropped
    assert (cache.size == 0) is dropped


# --- keys and Vary ----------------------------------------------------------------------------


def test_vary_selects_a_stored_variant() -> None:
    """RFC 9111 §4.1: a stored response is used only if the Vary'd request headers match."""
    cache = HttpCache(config(allowed_vary_headers=[{"exact": "accept-encoding"}]))
    vary = [*FRESH, ("vary", "Accept-Encoding")]
    fill(cache, vary, request=[("accept-encoding", "gzip")], body=b"gz")
    fill(cache, vary, request=[("accept-encoding", "br")], body=b"br")
    fill(cache, vary, body=b"plain")
    assert lookup(cache, [("accept-encoding", "gzip")]).body == b"gz"
    assert lookup(cache, [("accept-encoding", "br")]).body == b"br"
    assert lookup(cache).body == b"plain"
    assert lookup(cache, [("accept-encoding", "zstd")]).kind == "miss"
    assert len(cache) == 3


@pytest.mark.parametrize(
    ("params", "path_a", "path_b", "same"),
    [
        ({}, "/a?x=1", "/a?x=2", False),
        ({}, "/a", "/a", True),
        ({"query_parameters_excluded": [{"name": "utm"}]}, "/a?x=1&utm=2", "/a?x=1", True),
        ({"query_parameters_included": [{"name": "x"}]}, "/a?x=1&y=2", "/a?y=3&x=1", True),
        ({"query_parameters_included": [{"name": "x"}]}, "/a?x=1", "/a?x=2", False),
    ],
)
def test_key_creator_params(params: dict[str, Any], path_a: str, path_b: str, same: bool) -> None:
    """cache.proto KeyCreatorParams."""
    cache = HttpCache(config(key_creator_params=params))
    fill(cache, FRESH, path=path_a)
    assert (lookup(cache, path=path_b).kind == "hit") is same


@pytest.mark.parametrize(("exclude_host", "same"), [(False, False), (True, True)])
def test_key_includes_the_host_unless_excluded(exclude_host: bool, same: bool) -> None:
    cache = HttpCache(config(key_creator_params={"exclude_host": exclude_host}))
    fill(cache, FRESH)
    assert (lookup(cache, authority="other").kind == "hit") is same
    assert lookup(cache, authority="SVC").kind == "hit"  # hosts compare case-insensitively


# --- bounded memory ------------------------------------------------------------------------


def test_lru_eviction() -> None:
    cache = HttpCache(config(), max_bytes=600)  # room for three entries of ~166 bytes
    for name in ("a", "b", "c"):
        assert fill(cache, FRESH, body=b"x" * 100, path=f"/{name}")
    assert lookup(cache, path="/a").kind == "hit"  # a is now the most recently used
    assert fill(cache, FRESH, body=b"x" * 100, path="/d")
    assert lookup(cache, path="/b").kind == "miss"  # b was the least recently used
    assert all(lookup(cache, path=p).kind == "hit" for p in ("/a", "/c", "/d"))


def test_entry_larger_than_max_entry_bytes_is_refused() -> None:
    cache = HttpCache(config(), max_bytes=10_000, max_entry_bytes=100)
    assert not fill(cache, FRESH, body=b"x" * 200)
    assert cache.size == 0 and cache.body_limit == 100


_paths = st.sampled_from([f"/{i}" for i in range(12)])


@settings(max_examples=80, deadline=None)
@given(
    max_bytes=st.integers(50, 3000),
    operations=st.lists(
        st.tuples(_paths, st.integers(0, 1500), st.integers(0, 200), st.booleans()), max_size=40
    ),
)
def test_memory_bound_is_never_exceeded(
    max_bytes: int, operations: list[tuple[str, int, int, bool]]
) -> None:
    cache = HttpCache(config(), max_bytes=max_bytes, max_entry_bytes=max_bytes // 2 + 1)
    now = T0
    for path, size, elapsed, revalidate in operations:
        now += elapsed
        answer = lookup(cache, path=path, now=now)
        if answer.kind == "validate" and revalidate:
            cache.update_after_304(
                answer, headers=[("x-pad", "p" * (size // 4))], request_time=now, response_time=now
            )
        elif answer.kind != "hit":
            cache.store(
                answer,
                status=200,
                headers=FRESH,
                body=b"b" * size,
                request_time=now,
                response_time=now,
            )
        assert cache.size <= max_bytes
        assert cache.size == sum(e.size for e in cache._entries.values())
