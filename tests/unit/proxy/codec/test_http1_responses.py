"""Response decoding: framing per RFC 9112 §6.3 given the request method, and truncation."""

from __future__ import annotations

import pytest

from remora.proxy.codec.events import Data, EndOfMessage, ProtocolError, ResponseHead
from remora.proxy.codec.http1 import ResponseDecoder

Event = ResponseHead | Data | EndOfMessage


def rhead(status: int = 200, reason: str = "OK", headers: list[tuple[str, str]] | None = None,
          *, version: str = "1.1", keep_alive: bool = True, chunked: bool = False,
          content_length: int | None = None) -> ResponseHead:
    return ResponseHead(status=status, reason=reason, headers=headers or [],
                        http_version=version, keep_alive=keep_alive, chunked=chunked,
                        content_length=content_length)


def decode(data: bytes, *, method: str = "GET", step: int = 0, eof: bool = False) -> list[Event]:
    decoder = ResponseDecoder()
    decoder.start(method=method)
    events: list[Event] = []
    size = step or len(data) or 1
    for i in range(0, len(data), size):
        events += decoder.feed(data[i:i + size])
    if eof:
        events += decoder.feed_eof()
    merged: list[Event] = []
    for event in events:
        if isinstance(event, Data) and merged and isinstance(merged[-1], Data):
            merged[-1] = Data(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


CL2 = [("content-length", "2")]
CASES: list[tuple[str, str, bytes, bool, list[Event]]] = [
    ("rfc9112-6.3-content-length", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False,
     [rhead(headers=CL2, content_length=2), Data(b"ok"), EndOfMessage()]),
    ("rfc9112-6.3-chunked-trailers", "GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
     b"\r\n2;x=y\r\nok\r\n0\r\nGrpc-Status: 0\r\n\r\n", False,
     [rhead(headers=[("transfer-encoding", "chunked")], chunked=True), Data(b"ok"),
      EndOfMessage([("grpc-status", "0")])]),
    ("rfc9112-6.3-close-delimited", "GET", b"HTTP/1.1 200 OK\r\n\r\nuntil close", True,
     [rhead(keep_alive=False), Data(b"until close"), EndOfMessage()]),
    ("rfc9112-6.3-head-has-no-body", "HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
     False, [rhead(headers=CL2, content_length=2), EndOfMessage()]),
    ("rfc9112-6.3-head-chunked", "HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
     False, [rhead(headers=[("transfer-encoding", "chunked")], chunked=True), EndOfMessage()]),
    ("rfc9112-6.3-204", "GET", b"HTTP/1.1 204 No Content\r\n\r\n", False,
     [rhead(204, "No Content"), EndOfMessage()]),
    ("rfc9112-6.3-304-with-length", "GET",
     b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
     False, [rhead(304, "Not Modified", [("content-length", "9")], content_length=9),
             EndOfMessage()]),
    ("rfc9110-15.2.1-100-continue-then-final", "POST",
     b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", False,
     [rhead(100, "Continue"), rhead(201, "Created", [("content-length", "0")], content_length=0),
      EndOfMessage()]),
    ("rfc9110-15.2-103-early-hints", "GET",
     b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
     b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
     False, [rhead(103, "Early Hints", [("link", "</s.css>")]),
             rhead(headers=[("content-length", "0")], content_length=0), EndOfMessage()]),
    ("rfc9112-9.3-http10-response", "GET",
     b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False,
     [rhead(headers=CL2, version="1.0", keep_alive=False, content_length=2), Data(b"ok"),
      EndOfMessage()]),
    ("rfc9112-9.3-http10-keep-alive", "GET",
     b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", False,
     [rhead(headers=[("connection", "keep-alive"), ("content-length", "0")], version="1.0",
            content_length=0), EndOfMessage()]),
    ("rfc9112-9.6-close", "GET",
     b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
     False, [rhead(headers=[("connection", "close"), ("content-length", "0")], keep_alive=False,
                   content_length=0), EndOfMessage()]),
    ("rfc9112-4-empty-reason", "GET", b"HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", False,
     [rhead(404, "", [("content-length", "0")], content_length=0), EndOfMessage()]),
]


@pytest.mark.parametrize(("method", "data", "eof", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
@pytest.mark.parametrize("step", [0, 1, 5])
def test_response_table(method: str, data: bytes, eof: bool, expected: list[Event],
                        step: int) -> None:
    assert decode(data, method=method, step=step, eof=eof) == expected


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",  # Envoy: chunked only
    # RFC 9112 §6.3 would read these to the close; Envoy's codec accepts only "chunked"
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nabc",
    b"HTTP/1.1 20 OK\r\n\r\n",
    b"HTTP/2.0 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
    b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n",
    b"<html>not http</html>\r\n",
])
def test_broken_responses_are_502(data: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(data)
    assert info.value.status == 502


@pytest.mark.parametrize("data", [
    b"",
    b"HTTP/1.1 200 OK\r\nContent-",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
])
def test_truncated_at_eof_is_an_error(data: bytes) -> None:
    """The proxy turns this into UC (upstream connection termination) or UPE."""
    with pytest.raises(ProtocolError) as info:
        decode(data, eof=True)
    assert info.value.status == 502


def test_keep_alive_sequence_with_head_in_the_middle() -> None:
    """One upstream connection: GET, HEAD (Content-Length but no body), GET."""
    decoder = ResponseDecoder()
    decoder.start(method="GET")
    assert decoder.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")[-1] == EndOfMessage()
    decoder.start(method="HEAD")
    assert decoder.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")[-1] == EndOfMessage()
    decoder.start(method="GET")
    events = decoder.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
    assert events[1:] == [Data(b"b"), EndOfMessage()]
    assert decoder.feed_eof() == []


def test_bytes_after_the_response_are_an_error() -> None:
    decoder = ResponseDecoder()
    decoder.start(method="GET")
    with pytest.raises(ProtocolError):
        decoder.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\n\r\n")


def test_body_on_a_head_response_is_an_error() -> None:
    decoder = ResponseDecoder()
    decoder.start(method="HEAD")
    with pytest.raises(ProtocolError):
        decoder.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")


def test_unsolicited_bytes_are_an_error() -> None:
    decoder = ResponseDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(b"HTTP/1.1 200 OK\r\n\r\n")


def test_start_during_a_response_is_a_bug() -> None:
    decoder = ResponseDecoder()
    decoder.start(method="GET")
    decoder.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    with pytest.raises(RuntimeError):
        decoder.start(method="GET")
