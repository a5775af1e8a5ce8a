"""Size limits: a head over max_header_bytes is a 431 however its bytes arrive.

The limit counts the raw head (request line through the empty line), 60 KiB by default as Envoy's
max_request_headers_kb (envoyproxy.io, HttpConnectionManager.max_request_headers_kb); more than
100 fields is also a 431 (Envoy common_http_protocol_options.max_headers_count).
"""

from __future__ import annotations

import pytest

from remora.proxy.codec.events import Data, EndOfMessage, ProtocolError, RequestHead, ResponseHead
from remora.proxy.codec.http1 import DEFAULT_MAX_HEADER_BYTES, RequestDecoder, ResponseDecoder

LIMIT = DEFAULT_MAX_HEADER_BYTES
assert LIMIT == 60 * 1024


def request_of_size(size: int, *, body: bytes = b"") -> bytes:
    """A request whose head (request line + fields + empty line) is exactly `size` bytes."""
    start = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\nX-Pad: " % len(body)
    pad = size - len(start) - len(b"\r\n\r\n")
    data = start + b"p" * pad + b"\r\n\r\n"
    assert len(data) == size
    return data + body


def feed_in(decoder: RequestDecoder, data: bytes, step: int) -> list[object]:
    events: list[object] = []
    for i in range(0, len(data), step):
        events += decoder.feed(data[i:i + step])
    return events


@pytest.mark.parametrize("step", [LIMIT * 2, 4096, 1000, 7])
def test_head_of_exactly_the_limit_passes(step: int) -> None:
    events = feed_in(RequestDecoder(), request_of_size(LIMIT, body=b"xyz"), step)
    assert isinstance(events[0], RequestHead)
    assert b"".join(e.data for e in events if isinstance(e, Data)) == b"xyz"
    assert isinstance(events[-1], EndOfMessage)


@pytest.mark.parametrize("step", [LIMIT * 2, 4096, 1000, 7])
def test_head_one_byte_over_the_limit_is_431(step: int) -> None:
    with pytest.raises(ProtocolError) as info:
        feed_in(RequestDecoder(), request_of_size(LIMIT + 1), step)
    assert info.value.status == 431


def test_431_before_the_head_ends() -> None:
    """A slow sender of an endless field is refused once the limit is passed, without waiting
    for a line end (and without the decoder holding more than the limit)."""
    decoder = RequestDecoder()
    decoder.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX-Endless: ")
    with pytest.raises(ProtocolError) as info:
        for _ in range(LIMIT):
            decoder.feed(b"a")
    assert info.value.status == 431


def test_431_for_endless_lines_before_the_head_ends() -> None:
    decoder = RequestDecoder()
    decoder.feed(b"GET / HTTP/1.1\r\nHost: a\r\n")
    with pytest.raises(ProtocolError) as info:
        for i in range(LIMIT):
            decoder.feed(b"X-%d: v\r\n" % i)
    assert info.value.status == 431


def test_long_request_line_is_431() -> None:
    with pytest.raises(ProtocolError) as info:
        RequestDecoder().feed(b"GET /" + b"a" * LIMIT + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert info.value.status == 431


def test_large_body_in_the_same_feed_as_the_head_is_not_counted() -> None:
    body = b"b" * (3 * LIMIT)
    events = RequestDecoder().feed(request_of_size(100, body=body))
    assert b"".join(e.data for e in events if isinstance(e, Data)) == body


def test_many_pipelined_small_requests_in_one_large_feed() -> None:
    one = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    count = 3 * LIMIT // len(one)
    events = RequestDecoder().feed(one * count)
    assert sum(isinstance(e, RequestHead) for e in events) == count


def test_head_after_a_large_body_on_a_kept_alive_connection() -> None:
    decoder = RequestDecoder()
    body = b"b" * (LIMIT - 10)
    first = request_of_size(200, body=body)
    # the feed carries the tail of one body and the start of the next head
    events = decoder.feed(first + request_of_size(LIMIT)[:LIMIT - 5])
    events += decoder.feed(request_of_size(LIMIT)[LIMIT - 5:])
    assert sum(isinstance(e, RequestHead) for e in events) == 2


@pytest.mark.parametrize(("count", "ok"), [(100, True), (101, False)])
def test_header_count_limit(count: int, ok: bool) -> None:
    fields = b"Host: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(count - 1))
    data = b"GET / HTTP/1.1\r\n" + fields + b"\r\n"
    if ok:
        head = RequestDecoder().feed(data)[0]
        assert isinstance(head, RequestHead)
        assert len(head.headers) == count
    else:
        with pytest.raises(ProtocolError) as info:
            RequestDecoder().feed(data)
        assert info.value.status == 431


def test_endless_trailers_are_refused() -> None:
    decoder = RequestDecoder()
    decoder.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n")
    with pytest.raises(ProtocolError) as info:
        for _ in range(LIMIT // 1000 + 2):
            decoder.feed(b"T: " + b"t" * 1000)
    assert info.value.status == 431


def test_large_chunks_are_not_trailers() -> None:
    decoder = RequestDecoder()
    size = 250_000  # > 4 * LIMIT
    events = decoder.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"%x\r\n" % size)
    for _ in range(size // 1000):
        events += decoder.feed(b"d" * 1000)
    events += decoder.feed(b"\r\n0\r\n\r\n")
    assert sum(len(e.data) for e in events if isinstance(e, Data)) == size
    assert isinstance(events[-1], EndOfMessage)


def test_response_head_limit_is_502() -> None:
    decoder = ResponseDecoder()
    decoder.start(method="GET")
    with pytest.raises(ProtocolError) as info:
        decoder.feed(b"HTTP/1.1 200 OK\r\nX: " + b"a" * LIMIT + b"\r\n\r\n")
    assert info.value.status == 502
    decoder = ResponseDecoder()
    decoder.start(method="GET")
    events = decoder.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: " + b"a" * 1000
                          + b"\r\n\r\n")
    assert isinstance(events[0], ResponseHead)
