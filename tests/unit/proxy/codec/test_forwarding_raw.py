"""Forwarding the field lines as received gives the upstream the same request as the list path
(forwarding.upstream_request_headers), header names aside (kept as the client spelled them,
which HTTP allows: RFC 9110 §5.1, names are case-insensitive); and a response's kept lines are
the list path's minus the hop-by-hop ones."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from remora.proxy.codec import http1_fast
from remora.proxy.codec.forwarding import (
    UPSTREAM_RESPONSE_DROP,
    added_request_headers,
    kept_request_lines,
    kept_response_lines,
    strip_hop_by_hop,
    upstream_request_headers,
)
from remora.proxy.codec.http1_encode import (
    encode_request_head,
    encode_request_lines,
    encode_response_head,
    encode_response_lines,
)

NAMES = ["User-Agent", "accept", "X-Request-Id", "x-forwarded-proto", "X-Forwarded-For",
         "connection", "Connection", "te", "x-envoy-retry-on", "cookie", "expect",
         "x-envoy-peer-metadata", "keep-alive", "content-type", "X-Custom"]
VALUES = ["1", "keep-alive", "close", "abc-42", "trailers", "x, y", ""]
fields = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=6)


def block(headers: list[tuple[str, str]]) -> bytes:
    return "".join(f"{n}: {v}\r\n" for n, v in headers).encode()


def folded(head: bytes) -> list[tuple[str, str]]:
    lines = head.decode().split("\r\n")
    first, rest = lines[0], "\r\n".join(lines[1:])
    return [("", first), *http1_fast.field_lines(rest.removesuffix("\r\n").encode())]


@given(fields, st.booleans(), st.booleans())
def test_kept_request_lines_forward_what_the_list_path_forwards(
        headers: list[tuple[str, str]], host_first: bool, edge: bool) -> None:
    sent = [("Host", "reviews:9080"), *headers] if host_first else [*headers, ("Host", "r:1")]
    raw = block(sent)
    parsed = http1_fast.field_lines(raw)
    ids = iter(["id-1", "id-2"])
    listed, list_id = upstream_request_headers(
        parsed, authority="reviews:9080", client_ip="10.0.0.9", scheme="http",
        request_id_factory=lambda: next(ids), edge=edge)
    plain = kept_request_lines(raw, parsed)
    if plain is None:
        return  # the list path's business
    assert parsed[0][0] == "host"  # the raw path needs Host first, to cut it
    kept, proto, request_id = plain
    added, raw_id = added_request_headers(
        proto=proto, request_id=request_id, client_ip="10.0.0.9", scheme="http",
        request_id_factory=lambda: "id-1", edge=edge)
    assert raw_id == list_id
    assert folded(encode_request_lines("GET", "/p", "reviews:9080", kept, added)) == \
        folded(encode_request_head("GET", "/p", listed))


@given(fields)
def test_kept_response_lines_are_the_list_paths(headers: list[tuple[str, str]]) -> None:
    raw = block([("Server", "app"), *headers])
    parsed = http1_fast.field_lines(raw)
    kept = kept_response_lines(raw, parsed)
    if kept is None:
        return
    added = [("x-envoy-upstream-service-time", "3")]
    listed = [*strip_hop_by_hop(parsed, drop=UPSTREAM_RESPONSE_DROP), *added]
    assert folded(encode_response_lines(200, "OK", kept, added)) == \
        folded(encode_response_head(200, "OK", listed))


def test_a_plain_request_and_response_take_the_raw_path() -> None:
    """What wrk, curl and nginx send: Host first and nothing to drop but a plain Connection."""
    raw = b"Host: backend:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
    plain = kept_request_lines(raw, http1_fast.field_lines(raw))
    assert plain is not None and plain[0] == b"User-Agent: wrk\r\nAccept: */*\r\n"
    response = b"Server: nginx\r\nContent-Length: 2\r\nConnection: keep-alive\r\nETag: x\r\n"
    assert kept_response_lines(response, http1_fast.field_lines(response)) == \
        b"Server: nginx\r\nContent-Length: 2\r\nETag: x\r\n"
    closing = b"Server: nginx\r\nConnection: upgrade\r\n"
    assert kept_response_lines(closing, http1_fast.field_lines(closing)) is None
