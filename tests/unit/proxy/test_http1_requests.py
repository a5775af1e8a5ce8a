"""Request decoding: raw bytes in, events out (RFC 9112 message syntax and framing)."""

from __future__ import annotations

import pytest

from remora.proxy.events import Data, EndOfMessage, ProtocolError, RequestHead
from remora.proxy.http1 import RequestDecoder

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
    """Feed `data` whole, or cut into `pieces`-byte feeds; merge adjacent Data for comparison."""
    decoder = RequestDecoder()
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
