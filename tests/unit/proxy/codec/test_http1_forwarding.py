"""Forwarding header rules: hop-by-hop removal (RFC 9110 §7.6.1) and x-forwarded-* / x-request-id
(envoyproxy.io, HTTP header manipulation: config_http_conn_man_headers_x-forwarded-for,
x-forwarded-proto, x-request-id)."""

from __future__ import annotations

import pytest

from remora.proxy.codec.http1 import forwarded_headers, strip_hop_by_hop


@pytest.mark.parametrize(("headers", "expected"), [
    ([("host", "a"), ("connection", "keep-alive"), ("keep-alive", "timeout=5"), ("x", "1")],
     [("host", "a"), ("x", "1")]),
    # RFC 9110 §7.6.1: every field the Connection header names goes too
    ([("connection", "close, X-Secret"), ("x-secret", "s"), ("x-public", "p")],
     [("x-public", "p")]),
    ([("connection", "x-a"), ("connection", "x-b"), ("x-a", "1"), ("x-b", "2"), ("x-c", "3")],
     [("x-c", "3")]),
    ([("transfer-encoding", "chunked"), ("upgrade", "websocket"), ("trailer", "x-sum"),
      ("proxy-connection", "keep-alive"), ("content-length", "3")],
     [("content-length", "3")]),
    # Envoy keeps "te: trailers" (gRPC needs it) and drops any other TE value (envoy#32255)
    ([("te", "gzip")], []),
    ([("te", "trailers")], [("te", "trailers")]),
    ([("te", "gzip;q=0.5, Trailers")], [("te", "trailers")]),
    ([], []),
])
def test_strip_hop_by_hop(headers: list[tuple[str, str]], expected: list[tuple[str, str]]) -> None:
    original = list(headers)
    assert strip_hop_by_hop(headers) == expected
    assert headers == original  # a new list: the decoded head stays as received


def test_strip_keeps_order_and_repeats() -> None:
    headers = [("set-cookie", "a=1"), ("connection", "close"), ("set-cookie", "b=2")]
    assert strip_hop_by_hop(headers) == [("set-cookie", "a=1"), ("set-cookie", "b=2")]


def ids() -> str:
    return "generated-id"


def test_forwarded_headers_added_when_absent() -> None:
    headers = [("host", "a")]
    out, request_id = forwarded_headers(headers, client_ip="10.0.0.7", scheme="http",
                                        request_id_factory=ids)
    assert out == [("host", "a"), ("x-forwarded-for", "10.0.0.7"),
                   ("x-forwarded-proto", "http"), ("x-request-id", "generated-id")]
    assert request_id == "generated-id"
    assert headers == [("host", "a")]


def test_forwarded_headers_append_and_keep() -> None:
    """Envoy appends the downstream address to an existing x-forwarded-for; a client's
    x-forwarded-proto and x-request-id are kept (the request id is propagated)."""
    headers = [("x-forwarded-for", "203.0.113.9"), ("x-forwarded-proto", "https"),
               ("x-request-id", "abc-123")]

    def never() -> str:
        raise AssertionError("a request id was generated although the client sent one")

    out, request_id = forwarded_headers(headers, client_ip="10.0.0.7", scheme="http",
                                        request_id_factory=never)
    assert out == [("x-forwarded-for", "203.0.113.9,10.0.0.7"), ("x-forwarded-proto", "https"),
                   ("x-request-id", "abc-123")]
    assert request_id == "abc-123"


def test_forwarded_for_appends_to_the_last_of_several_lines() -> None:
    headers = [("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2")]
    out, _ = forwarded_headers(headers, client_ip="3.3.3.3", scheme="http",
                               request_id_factory=ids)
    assert out[:2] == [("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2,3.3.3.3")]
