"""Encoders, and properties: encoded messages decode back; how bytes are split never matters."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remora.proxy.codec.events import Data, EndOfMessage, RequestHead, ResponseHead
from remora.proxy.codec.http1 import (
    LAST_CHUNK,
    RequestDecoder,
    ResponseDecoder,
    encode_chunk,
    encode_request_head,
    encode_response_head,
    encode_trailers,
)

from .test_http1_requests import CASES as REQUEST_CASES
from .test_http1_requests import merge_data

Fields = list[tuple[str, str]]


def test_encode_request_head() -> None:
    assert encode_request_head("GET", "/a?b", [("host", "h"), ("x", "1")]) == (
        b"GET /a?b HTTP/1.1\r\nhost: h\r\nx: 1\r\n\r\n")


@pytest.mark.parametrize(("status", "reason", "line"), [
    (200, "", b"HTTP/1.1 200 OK\r\n"),
    (431, "", b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
    (503, "Busy", b"HTTP/1.1 503 Busy\r\n"),
    (599, "", b"HTTP/1.1 599 \r\n"),  # RFC 9112 §4: the reason may be empty, the space stays
])
def test_encode_response_head_reason(status: int, reason: str, line: bytes) -> None:
    assert encode_response_head(status, reason, []) == line + b"\r\n"


def test_latin1_values_round_trip_as_bytes() -> None:
    assert encode_response_head(200, "", [("x", "café")]).endswith(b"x: caf\xe9\r\n\r\n")


@pytest.mark.parametrize("bad", [("x", "a\r\nInjected: 1"), ("x", "a\nb"), ("x\r", "a"),
                                 ("x", "a\rb")])
def test_crlf_in_fields_is_refused(bad: tuple[str, str]) -> None:
    """Header injection: a CR or LF would start a new field line (RFC 9110 §5.5)."""
    with pytest.raises(ValueError, match="CR or LF"):
        encode_request_head("GET", "/", [("host", "h"), bad])
    with pytest.raises(ValueError, match="CR or LF"):
        encode_trailers([bad])


def test_chunks() -> None:
    """RFC 9112 §7.1: size in hex, CRLF, data, CRLF; a zero-size chunk ends the body."""
    assert encode_chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    assert encode_chunk(b"") == b""  # never a premature last chunk
    assert LAST_CHUNK == b"0\r\n\r\n"
    assert encode_trailers([]) == LAST_CHUNK
    assert encode_trailers([("grpc-status", "0")]) == b"0\r\ngrpc-status: 0\r\n\r\n"


# -- properties ----------------------------------------------------------------------------------
TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.!#$%&'*+^`|~", min_size=1,
                max_size=12).filter(lambda n: n not in {
                    "host", "content-length", "transfer-encoding", "connection", "expect",
                    "upgrade", "te", "trailer", "keep-alive"})
VALUE = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0xFF,
                                       blacklist_characters="\x7f"), max_size=20).map(
    lambda v: v.strip())  # interior spaces allowed, no leading/trailing OWS
FIELDS = st.lists(st.tuples(TOKEN, st.one_of(VALUE, st.just("a b\tc"))), max_size=6)
BODY = st.lists(st.binary(min_size=1, max_size=40), max_size=4)
METHOD = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
TARGET = st.from_regex(r"/[a-zA-Z0-9/._~%!$&'()*+,;=:@?-]{0,30}", fullmatch=True)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, list[Data | EndOfMessage | RequestHead]]:
    """An encoded request (Content-Length or chunked with trailers) and the events it means."""
    method, target, fields = draw(METHOD), draw(TARGET), draw(FIELDS)
    chunks, trailers, chunked = draw(BODY), draw(FIELDS), draw(st.booleans())
    headers = [("host", "example"), *fields]
    body = b"".join(chunks)
    if chunked:
        headers.append(("transfer-encoding", "chunked"))
        wire = b"".join(encode_chunk(c) for c in chunks) + encode_trailers(trailers)
    else:
        headers.append(("content-length", str(len(body))))
        wire, trailers = body, []
    head = RequestHead(method=method, target=target, headers=headers, http_version="1.1",
                       keep_alive=True, expect_continue=False, chunked=chunked,
                       content_length=None if chunked else len(body))
    events = [head, *([Data(body)] if body else []), EndOfMessage(trailers)]
    return encode_request_head(method, target, headers) + wire, events


def feed_split(raw: bytes, cuts: list[int]) -> list[RequestHead | Data | EndOfMessage]:
    decoder = RequestDecoder(accept_http_10=True)  # the pipeline holds HTTP/1.0 requests
    events = []
    for start, end in itertools.pairwise([0, *sorted(cuts), len(raw)]):
        events += decoder.feed(raw[start:end])
    return merge_data(events)


@given(requests())
def test_request_round_trip(request: tuple[bytes, list[RequestHead | Data | EndOfMessage]]) -> None:
    raw, expected = request
    assert merge_data(RequestDecoder().feed(raw)) == expected


@given(st.integers(200, 599).filter(lambda s: s not in (204, 304)), FIELDS, BODY, FIELDS,
       st.booleans())
def test_response_round_trip(status: int, fields: Fields, chunks: list[bytes], trailers: Fields,
                             chunked: bool) -> None:
    headers = list(fields)
    if chunked:
        headers.append(("transfer-encoding", "chunked"))
        body = b"".join(encode_chunk(c) for c in chunks) + encode_trailers(trailers)
    else:
        headers.append(("content-length", str(sum(map(len, chunks)))))
        body = b"".join(chunks)
    decoder = ResponseDecoder()
    decoder.start(method="GET")
    events = merge_data(decoder.feed(encode_response_head(status, "", headers) + body))
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert (head.status, head.headers, head.chunked) == (status, headers, chunked)
    joined = b"".join(chunks)
    assert events[1:] == [*([Data(joined)] if joined else []),
                          EndOfMessage(trailers if chunked else [])]


KEPT_ALIVE = [case for case in REQUEST_CASES
              if all(e.keep_alive for e in case[2] if isinstance(e, RequestHead))]
PIPELINE = b"".join(case[1] for case in KEPT_ALIVE)


@given(st.lists(st.integers(0, len(PIPELINE)), max_size=12))
def test_split_points_do_not_change_events(cuts: list[int]) -> None:
    """RFC 9112 §9.3 pipelining, fed as TCP might deliver it: any split gives the same events."""
    assert feed_split(PIPELINE, cuts) == [event for case in KEPT_ALIVE for event in case[2]]


@given(st.lists(requests(), min_size=1, max_size=3), st.data())
def test_generated_pipelines_any_split(
    batch: list[tuple[bytes, list[RequestHead | Data | EndOfMessage]]], data: st.DataObject
) -> None:
    raw = b"".join(r for r, _ in batch)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=8))
    assert feed_split(raw, cuts) == [event for _, events in batch for event in events]
