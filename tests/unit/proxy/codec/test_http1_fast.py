"""The fast path decodes exactly what llhttp decodes, or steps aside (returns None).

Fed whole, a simple message takes the fast path; fed in two pieces it takes the llhttp path.
For every generated message both must agree: same events, or the same ProtocolError.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from remora.proxy.codec import http1_fast
from remora.proxy.codec.events import ProtocolError
from remora.proxy.codec.http1 import RequestDecoder, ResponseDecoder

NAMES = [b"Host", b"host", b"Accept", b"X-A", b"Connection", b"Content-Length", b"Expect",
         b"Transfer-Encoding", b"Bad Name", b"X\x00", b"Upgrade", b""]
VALUES = [b"x", b"svc:80", b" padded ", b"close", b"keep-alive", b"0", b"5", b"100-continue",
          b"chunked", b"a\tb", b"caf\xe9", b"\x7f", b"", b"a\rb"]
LINES = [b"GET / HTTP/1.1", b"GET /a?b=1 HTTP/1.0", b"POST http://svc:80/x HTTP/1.1",
         b"get / HTTP/1.1", b"GET / HTTP/2.0", b"GET /a b HTTP/1.1", b"GET /#f HTTP/1.1"]
STATUS = [b"HTTP/1.1 200 OK", b"HTTP/1.0 404 Not Found", b"HTTP/1.1 204 No Content",
          b"HTTP/1.1 999 Odd", b"HTTP/1.1 200", b"HTTP/1.1 100 Continue"]

fields = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=5)


def head(first: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    return first + b"\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n"


def outcome(decoder: RequestDecoder | ResponseDecoder, pieces: list[bytes]) -> object:
    events: list[object] = []
    try:
        for piece in pieces:
            events.extend(decoder.feed(piece))
    except ProtocolError as error:
        return ("error", error.status)
    return events


@given(st.sampled_from(LINES), fields, st.booleans())
def test_request_fast_path_agrees_with_llhttp(line: bytes, headers: list[tuple[bytes, bytes]],
                                              http10: bool) -> None:
    data = head(line, headers)
    whole = outcome(RequestDecoder(accept_http_10=http10), [data])
    split = outcome(RequestDecoder(accept_http_10=http10), [data[:3], data[3:]])
    assert whole == split


@given(st.sampled_from(STATUS), fields, st.binary(max_size=8), st.booleans())
def test_response_fast_path_agrees_with_llhttp(line: bytes, headers: list[tuple[bytes, bytes]],
                                               body: bytes, head_request: bool) -> None:
    data = head(line, headers) + body
    results = []
    for pieces in ([data], [data[:3], data[3:]]):
        decoder = ResponseDecoder()
        decoder.start(method="HEAD" if head_request else "GET")
        results.append(outcome(decoder, pieces))
    assert results[0] == results[1]


def test_common_messages_take_the_fast_path() -> None:
    assert http1_fast.request_head(
        b"GET /x HTTP/1.1\r\nHost: svc\r\nAccept: */*\r\n\r\n", max_bytes=1000, max_count=10
    ) is not None
    assert http1_fast.response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", head_request=False, max_bytes=1000,
        max_count=10,
    ) is not None
