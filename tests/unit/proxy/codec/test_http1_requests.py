"""Request decoding: raw bytes in, events out (RFC 9112 message syntax and framing)."""

from __future__ import annotations

import pytest

from remora.proxy.codec.events import Data, EndOfMessage, ProtocolError, RequestHead
from remora.proxy.codec.http1 import RequestDecoder

Event = RequestHead | Data | EndOfMessage


def head(method: str = "GET", target: str = "/", headers: list[tuple[str, str]] | None = None,
         *, version: str = "1.1", keep_alive: bool = True, expect_continue: bool = False,
         chunked: bool = False, content_length: int | None = None) -> RequestHead:
    return RequestHead(method=method, target=target,
                       headers=[("host", "a")] if headers is None else headers,
                       http_version=version, keep_alive=keep_alive,
                       expect_continue=expect_continue, chunked=chunked,
                       content_length=content_length)


def decode(data: bytes, *, pieces: int = 0) -> list[Event]:
    """Feed `data` whole, or cut into `pieces`-byte feeds; merge adjacent Data for comparison.
    HTTP/1.0 is accepted (ISTIO_META_HTTP10): the tables check its framing too."""
    decoder = RequestDecoder(accept_http_10=True)
    events: list[Event] = []
    step = pieces or len(data) or 1
    for i in range(0, len(data), step):
        events += decoder.feed(data[i:i + step])
    return merge_data(events)


def merge_data(events: list[Event]) -> list[Event]:
    merged: list[Event] = []
    for event in events:
        if isinstance(event, Data) and merged and isinstance(merged[-1], Data):
            merged[-1] = Data(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


CASES: list[tuple[str, bytes, list[Event]]] = [
    ("rfc9112-3-simple-get", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
     [head(), EndOfMessage()]),
    ("rfc9112-6.2-content-length-body",
     b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
     [head("POST", "/up", [("host", "a"), ("content-length", "5")], content_length=5),
      Data(b"hello"), EndOfMessage()]),
    ("rfc9112-7.1-chunked-extensions-trailers",
     b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"3;name=value;flag\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 9 \r\nX-Other:\tz\r\n\r\n",
     [head("POST", "/", [("host", "a"), ("transfer-encoding", "chunked")], chunked=True),
      Data(b"abcde"), EndOfMessage([("x-sum", "9"), ("x-other", "z")])]),
    ("rfc9112-9.3-pipelined",
     b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
     [head(target="/1"), EndOfMessage(), head(target="/2"), EndOfMessage()]),
    ("rfc9112-9.3-http10-closes", b"GET / HTTP/1.0\r\n\r\n",
     [head(headers=[], version="1.0", keep_alive=False), EndOfMessage()]),
    ("rfc9112-9.3-http10-keep-alive", b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
     [head(headers=[("connection", "Keep-Alive")], version="1.0"), EndOfMessage()]),
    ("rfc9112-9.6-connection-close", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
     [head(headers=[("host", "a"), ("connection", "close")], keep_alive=False), EndOfMessage()]),
    ("rfc9110-10.1.1-expect-100-continue",
     b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx",
     [head("PUT", "/", [("host", "a"), ("expect", "100-Continue"), ("content-length", "1")],
           expect_continue=True, content_length=1), Data(b"x"), EndOfMessage()]),
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_request_table(data: bytes, expected: list[Event]) -> None:
    assert decode(data) == expected


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_request_table_one_byte_at_a_time(data: bytes, expected: list[Event]) -> None:
    assert decode(data, pieces=1) == expected


@pytest.mark.parametrize(("data", "status"), [
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 501),
])
def test_request_errors(data: bytes, status: int) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(data)
    assert info.value.status == status


# What llhttp refuses by itself and what the decoder adds (marked "ours"): every shape that lets
# two parsers disagree on where a message ends is a 400 and the connection closes.
SMUGGLING: list[tuple[str, bytes, int]] = [
    ("rfc9112-6.1-cl-and-te", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("rfc9112-6.1-te-and-cl", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
     b"Content-Length: 3\r\n\r\n0\r\n\r\n", 400),
    ("rfc9112-6.3-repeated-cl-same", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
     b"Content-Length: 3\r\n\r\nabc", 400),
    ("rfc9112-6.3-repeated-cl-different", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
     b"Content-Length: 4\r\n\r\nabcd", 400),
    ("rfc9112-6.3-cl-list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabc", 400),
    ("rfc9112-6.3-cl-negative", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    ("rfc9112-6.3-cl-plus", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 400),
    ("rfc9112-6.3-cl-hex", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x1\r\n\r\nx", 400),
    ("rfc9112-6.3-cl-empty", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400),
    # RFC 9112 §6.3 asks 400 here; Envoy's codec answers 501 to any coding but "chunked"
    ("envoy-te-not-chunked", b"POST / HTTP/1.1\r\nHost: a\r\n"
     b"Transfer-Encoding: gzip\r\n\r\nabc", 501),
    ("rfc9112-6.3-te-chunked-not-final", b"POST / HTTP/1.1\r\nHost: a\r\n"
     b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    ("rfc9112-6.1-te-chunked-twice", b"POST / HTTP/1.1\r\nHost: a\r\n"
     b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    ("rfc9112-6.1-te-two-lines", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("envoy-te-xchunked", b"POST / HTTP/1.1\r\nHost: a\r\n"
     b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501),
    # ours: RFC 9112 §6.1 lets a server 501 codings it does not implement; Envoy only has chunked
    ("rfc9112-6.1-te-gzip-chunked-501", b"POST / HTTP/1.1\r\nHost: a\r\n"
     b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("rfc9112-7.1-chunk-size-not-hex", b"POST / HTTP/1.1\r\nHost: a\r\n"
     b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ("rfc9112-7.1-chunk-size-0x", b"POST / HTTP/1.1\r\nHost: a\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400),
    ("rfc9112-7.1-chunk-size-negative", b"POST / HTTP/1.1\r\nHost: a\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n", 400),
    ("rfc9112-7.1-chunk-size-space", b"POST / HTTP/1.1\r\nHost: a\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", 400),
    ("rfc9112-7.1-chunk-size-overflow", b"POST / HTTP/1.1\r\nHost: a\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", 400),
    ("rfc9112-7.1-chunk-data-too-long", b"POST / HTTP/1.1\r\nHost: a\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", 400),
    ("rfc9112-7.1-chunk-size-bare-lf", b"POST / HTTP/1.1\r\nHost: a\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400),
    ("rfc9112-5.2-obs-fold-space", b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 400),
    ("rfc9112-5.2-obs-fold-tab", b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\t2\r\n\r\n", 400),
    ("rfc9112-5.1-space-before-colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    ("rfc9112-5.1-tab-before-colon", b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400),
    ("rfc9112-5.1-empty-name", b"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 400),
    ("rfc9112-2.2-bare-lf-request-line", b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    ("rfc9112-2.2-bare-lf-header", b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400),
    ("rfc9112-2.2-bare-lf-end", b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
    ("rfc9112-2.2-bare-cr-in-value", b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400),
    ("rfc9110-5.5-nul-in-value", b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", 400),
    ("rfc9110-5.5-ctl-in-value", b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n", 400),
    ("rfc9110-5.1-nul-in-name", b"GET / HTTP/1.1\r\nHo\x00st: a\r\n\r\n", 400),
    ("rfc9112-3-lowercase-method", b"get / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("rfc9112-3-unknown-method", b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("rfc9112-3-space-in-target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("rfc9112-2.2-leading-space", b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("rfc9112-2.3-bad-version", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 400),
    ("rfc9112-2.3-not-http", b"GET / FTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("not-http-at-all", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n", 400),
    # ours: llhttp parses these, this proxy speaks HTTP/1.0 and 1.1 only (RFC 9110 §15.6.6)
    ("rfc9110-15.6.6-http2-version", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("rfc9110-15.6.6-http09-version", b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
    ("rfc9110-15.6.6-http09-no-version", b"GET /\r\n\r\n", 505),
    # ours: RFC 9112 §3.2 — a 1.1 request without Host, or any with two, is a 400
    ("rfc9112-3.2-no-host", b"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400),
    ("rfc9112-3.2-two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("rfc9112-3.2-two-hosts-http10", b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    # ours: CONNECT tunnels are not supported (Envoy needs an explicit upgrade config for them)
    ("rfc9110-9.3.6-connect", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
]


@pytest.mark.parametrize(("data", "status"), [c[1:] for c in SMUGGLING],
                         ids=[c[0] for c in SMUGGLING])
def test_refused_requests(data: bytes, status: int) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(data)
    assert info.value.status == status


@pytest.mark.parametrize(("data", "status"), [c[1:] for c in SMUGGLING],
                         ids=[c[0] for c in SMUGGLING])
def test_refused_requests_one_byte_at_a_time(data: bytes, status: int) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(data, pieces=1)
    assert info.value.status == status


def test_refused_after_a_valid_request_in_the_same_feed() -> None:
    """A broken request after a complete one: the complete one's events come back (its framing
    does not depend on what follows, so it gets its answer, as Envoy gives it), `error` is set,
    and the next feed raises it."""
    decoder = RequestDecoder()
    events = decoder.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
                          b"POST / HTTP/1.1\r\nHost: a\r\n"
                          b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n")
    assert events == [head(), EndOfMessage()]
    assert decoder.error is not None and decoder.error.status == 400
    with pytest.raises(ProtocolError) as again:
        decoder.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert again.value is decoder.error


def test_a_request_broken_off_by_the_error_is_not_returned() -> None:
    """Only complete requests come back: a head whose body breaks is never forwarded."""
    decoder = RequestDecoder()
    events = decoder.feed(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                          b"POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"2\r\nab\r\nzz\r\n")
    assert events == [head(target="/1"), EndOfMessage()]
    assert decoder.error is not None and decoder.error.status == 400


@pytest.mark.parametrize("pieces", [0, 7])
def test_http10_gets_426_unless_accepted_envoy_accept_http_10(pieces: int) -> None:
    """Envoy's Http1ProtocolOptions.accept_http_10 defaults to false: an HTTP/1.0 request is
    answered 426 with the body "Upgrade Required" (codec_impl.cc checkProtocolVersion)."""
    data = b"GET / HTTP/1.0\r\nHost: a\r\n\r\n"
    decoder = RequestDecoder()
    with pytest.raises(ProtocolError) as info:
        for i in range(0, len(data), pieces or len(data)):
            decoder.feed(data[i:i + (pieces or len(data))])
    assert (info.value.status, info.value.body, info.value.reason) == (
        426, b"Upgrade Required", "low_version")
    assert decode(data, pieces=pieces)[0] == head(version="1.0", keep_alive=False)


def test_decoder_refuses_input_after_an_error() -> None:
    decoder = RequestDecoder()
    with pytest.raises(ProtocolError) as first:
        decoder.feed(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n")
    with pytest.raises(ProtocolError) as again:
        decoder.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert again.value is first.value
    with pytest.raises(ProtocolError):
        decoder.feed_eof()


def test_value_whitespace_and_obs_text() -> None:
    """RFC 9110 §5.5: leading/trailing OWS is not part of the value; obs-text bytes are latin-1."""
    events = decode(b"GET / HTTP/1.1\r\nHost:   a \t\r\nX-Y: caf\xe9\r\nX-Empty:\r\n\r\n")
    assert isinstance(events[0], RequestHead)
    assert events[0].headers == [("host", "a"), ("x-y", "café"), ("x-empty", "")]


def test_names_lowercased_values_kept_in_order() -> None:
    events = decode(b"GET / HTTP/1.1\r\nHOST: a\r\nX-Custom-Thing: B\r\nx-custom-thing: c\r\n\r\n")
    assert isinstance(events[0], RequestHead)
    assert events[0].headers == [("host", "a"), ("x-custom-thing", "B"), ("x-custom-thing", "c")]


@pytest.mark.parametrize(("target"), [
    "http://reviews:9080/x?y=1",  # absolute-form, what http_proxy clients send (RFC 9112 §3.2.2)
    "*",  # asterisk-form (RFC 9112 §3.2.4)
    "/a/b%20c?q=%00",
])
def test_request_target_forms(target: str) -> None:
    method = "OPTIONS" if target == "*" else "GET"
    events = decode(f"{method} {target} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    assert isinstance(events[0], RequestHead)
    assert events[0].target == target


def test_keep_alive_tokens() -> None:
    """RFC 9112 §9.6: "close" among several Connection options; options in several lines."""
    events = decode(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-foo\r\nConnection: Close\r\n\r\n")
    assert isinstance(events[0], RequestHead)
    assert events[0].keep_alive is False


def test_expect_ignored_in_http10() -> None:
    """RFC 9110 §10.1.1: a server MUST ignore a 100-continue expectation in an HTTP/1.0 request."""
    events = decode(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(events[0], RequestHead)
    assert events[0].expect_continue is False


def test_empty_lines_before_a_request_are_ignored() -> None:
    """RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request-line."""
    assert decode(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n") == [head(), EndOfMessage()]


def test_data_after_connection_close_is_dropped() -> None:
    """RFC 9112 §9.6: after a request with "close" the server reads no further requests."""
    decoder = RequestDecoder()
    events = decoder.feed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                          b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [type(e) for e in events] == [RequestHead, EndOfMessage]
    assert decoder.feed(b"GET /more HTTP/1.1\r\nHost: a\r\n\r\n") == []


def test_upgrade_is_an_ordinary_request() -> None:
    """The proxy strips Upgrade as hop-by-hop (RFC 9110 §7.8): the request and its body go on as
    plain HTTP, and the next pipelined request still parses."""
    events = decode(b"POST /u HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
                    b"Content-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [type(e) for e in events] == [RequestHead, Data, EndOfMessage, RequestHead, EndOfMessage]
    assert events[1] == Data(b"abc")
    assert isinstance(events[3], RequestHead)
    assert events[3].target == "/next"


def test_upgrade_with_chunked_body_split_everywhere() -> None:
    data = (b"POST /u HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nT: 1\r\n\r\n"
            b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    whole = decode(data)
    assert whole[1:3] == [Data(b"hi"), EndOfMessage([("t", "1")])]
    for cut in range(1, len(data)):
        decoder = RequestDecoder()
        assert merge_data(decoder.feed(data[:cut]) + decoder.feed(data[cut:])) == whole, cut


def test_upgrade_without_body() -> None:
    events = decode(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
                    b"\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [type(e) for e in events] == [RequestHead, EndOfMessage, RequestHead, EndOfMessage]


def test_feed_eof() -> None:
    decoder = RequestDecoder()
    decoder.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert decoder.feed_eof() == []
    for partial in (b"GET / HT", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab"):
        decoder = RequestDecoder()
        decoder.feed(partial)
        with pytest.raises(ProtocolError) as info:
            decoder.feed_eof()
        assert info.value.status == 400
