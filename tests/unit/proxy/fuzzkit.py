"""The fuzzed HTTP/1.1 codec (issue 21, item 5): what inputs are made of, how a stream is split,
and the invariants checked after each input. Shared by tests/unit/proxy/test_fuzz.py (the small
Hypothesis budget of `make test`) and bench/fuzz.py (the million inputs); the request path
through a whole proxy is in fuzzpath.py.

A case is decoded twice, split as the case says and in as few pieces as framing allows, and
both runs must read the same complete messages and end in the same error. While decoding, the
events must follow the grammar of HTTP/1.1 messages (a head, then data only where the framing
says a body follows and adding up to its Content-Length, then one EndOfMessage), every field
must be one a strict server would read, and the only exception is the codec's ProtocolError,
raised again on any later feed. Breaking one raises `InvariantError`.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from hypothesis import strategies as st

from remora.proxy.codec.events import (
    Data,
    EndOfMessage,
    Headers,
    ProtocolError,
    RequestEvent,
    RequestHead,
    ResponseEvent,
    ResponseHead,
)
from remora.proxy.codec.http1 import RequestDecoder, ResponseDecoder


class InvariantError(AssertionError):
    """An invariant of the codec or the proxy broke; the text before ':' names which."""


# the pieces requests and responses are built from: a fuzzer that only threw random bytes would
# rarely get past the request line
LINES = [b"GET /a HTTP/1.1\r\n", b"POST /b HTTP/1.1\r\n", b"GET /c HTTP/1.0\r\n",
         b"HEAD /d HTTP/1.1\r\n", b"PUT /e HTTP/1.1\r\n"]
HEADERS = [b"Content-Length: 3\r\n", b"Content-Length: 0\r\n", b"Transfer-Encoding: chunked\r\n",
           b"Connection: close\r\n", b"Connection: keep-alive\r\n", b"Expect: 100-continue\r\n",
           b"X-A: b\r\n", b"Transfer-Encoding: gzip, chunked\r\n", b"Host: other\r\n",
           b"Content-Length: 99\r\n", b"X-B: \x00\r\n", b"X-C: a\r\n b\r\n"]
BODIES = [b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"0\r\n\r\n", b"ff\r\nab", b"3\r\nabc\r\n"]
NOISE = [b"\n", b"\r", b"\x00", b" ", b":", b"\r\n", b"GET", b"0\r\n\r\n"]
HOST = b"Host: reviews:9080\r\n"  # the service of fuzzpath's proxy

STATUS_LINES = [b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 204 No Content\r\n", b"HTTP/1.0 200 OK\r\n",
                b"HTTP/1.1 304 Not Modified\r\n", b"HTTP/1.1 100 Continue\r\n",
                b"HTTP/1.1 503 Service Unavailable\r\n", b"HTTP/1.1 404 \r\n"]
RESPONSE_HEADERS = [b"Content-Length: 2\r\n", b"Content-Length: 0\r\n",
                    b"Transfer-Encoding: chunked\r\n", b"Connection: close\r\n",
                    b"Connection: keep-alive\r\n", b"X-A: b\r\n", b"Set-Cookie: a=b\r\n",
                    b"Content-Length: 99\r\n", b"Trailer: x-t\r\n", b"Upgrade: h2c\r\n"]
RESPONSE_BODIES = [b"", b"ok", b"2\r\nok\r\n0\r\n\r\n", b"2\r\nok\r\n0\r\nx-t: 1\r\n\r\n",
                   b"0\r\n\r\n", b"ff\r\nok"]
METHODS = ["GET", "HEAD", "POST"]


def split(data: bytes, cuts: tuple[int, ...] | list[int]) -> list[bytes]:
    """`data` cut at `cuts` (taken modulo its length + 1, so any integer is a cut)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


# -- Hypothesis strategies --------------------------------------------------------------------
requests = st.tuples(st.sampled_from(LINES), st.lists(st.sampled_from(HEADERS), max_size=3),
                     st.sampled_from(BODIES)).map(
    lambda r: r[0] + HOST + b"".join(r[1]) + b"\r\n" + r[2])
responses = st.tuples(st.sampled_from(STATUS_LINES),
                      st.lists(st.sampled_from(RESPONSE_HEADERS), max_size=3),
                      st.sampled_from(RESPONSE_BODIES)).map(
    lambda r: r[0] + b"".join(r[1]) + b"\r\n" + r[2])


@st.composite
def mutated(draw: st.DrawFn, messages: st.SearchStrategy[bytes]) -> bytes:
    """One to three messages, then a few bytes inserted, dropped or flipped."""
    data = b"".join(draw(st.lists(messages, min_size=1, max_size=3)))
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(data)))
        choice = draw(st.integers(0, 2))
        if choice == 0:  # insert a bit of noise
            data = data[:at] + draw(st.sampled_from(NOISE)) + data[at:]
        elif choice == 1:  # drop a few bytes
            data = data[:at] + data[at + draw(st.integers(1, 4)):]
        elif at < len(data):  # flip one byte
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    return data


request_streams = st.one_of(st.binary(max_size=600), requests, mutated(requests))
response_streams = st.one_of(st.binary(max_size=300), responses, mutated(responses))
cut_lists = st.lists(st.integers(0, 1 << 16), max_size=6).map(tuple)


# -- the fields a strict server reads ---------------------------------------------------------
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")  # lowercase: the codec lowers names
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(r"(?:[!-~\x80-\xff](?:[\t !-~\x80-\xff]*[!-~\x80-\xff])?)?")
_TARGET = re.compile(r"[!-~]+")
_REASON = re.compile(r"[\t !-~\x80-\xff]*")  # RFC 9112 §4 reason-phrase
# the errors of feed_eof in the middle of a message (RequestDecoder's, ResponseDecoder's)
CLOSED_MID_MESSAGE = frozenset({"connection closed in the middle of a request",
                                "upstream closed before the response head",
                                "upstream closed before the end of the body"})
REQUEST_STATUSES = frozenset({400, 426, 431, 501, 505})  # what the request decoder answers


def check_fields(fields: Headers, where: str) -> None:
    for name, value in fields:
        if not _TOKEN.fullmatch(name):
            raise InvariantError(f"{where} field name a server would not read: {name!r}")
        if not _VALUE.fullmatch(value):
            raise InvariantError(f"{where} field value a server would not read: {name}: {value!r}")


def values(fields: Headers, name: str) -> list[str]:
    return [v for k, v in fields if k == name]


def keep_alive(fields: Headers, version: str) -> bool:
    """RFC 9112 §9.3, computed apart from the codec."""
    tokens = {t.strip().lower() for v in values(fields, "connection") for t in v.split(",")}
    if "close" in tokens:
        return False
    return version == "1.1" or "keep-alive" in tokens


def check_framing(fields: Headers, chunked: bool, content_length: int | None,
                  where: str) -> None:
    """RFC 9112 §6: one framing, stated once, the one the event reports."""
    te, cl = values(fields, "transfer-encoding"), values(fields, "content-length")
    if te and cl:
        raise InvariantError(f"{where} with both Transfer-Encoding and Content-Length: {fields}")
    if chunked != bool(te) or (chunked and [t.strip().lower() for t in te] != ["chunked"]):
        raise InvariantError(f"{where} framing not its Transfer-Encoding: {te} chunked={chunked}")
    if len(cl) > 1 or (cl and not (cl[0].isascii() and cl[0].isdigit())):
        raise InvariantError(f"{where} Content-Length a server would not read: {cl}")
    if (int(cl[0]) if cl else None) != content_length:
        raise InvariantError(f"{where} length not its Content-Length: {cl} != {content_length}")


def check_request_head(head: RequestHead, *, accept_http_10: bool) -> None:
    where = "request head"
    if not _METHOD.fullmatch(head.method) or head.method == "CONNECT":
        raise InvariantError(f"{where} method a server would not read: {head.method!r}")
    if not _TARGET.fullmatch(head.target):
        raise InvariantError(f"{where} target a server would not read: {head.target!r}")
    if head.http_version not in ("1.1", "1.0") or (head.http_version == "1.0"
                                                     and not accept_http_10):
        raise InvariantError(f"{where} version not accepted: HTTP/{head.http_version}")
    check_fields(head.headers, where)
    hosts = len(values(head.headers, "host"))
    if hosts > 1 or (hosts == 0 and head.http_version == "1.1"):
        raise InvariantError(f"{where} with {hosts} Host fields (RFC 9112 §3.2)")
    if head.http_version == "1.0" and values(head.headers, "transfer-encoding"):
        raise InvariantError(f"{where} HTTP/1.0 with Transfer-Encoding (RFC 9112 §6.1)")
    check_framing(head.headers, head.chunked, head.content_length, where)
    if head.keep_alive != keep_alive(head.headers, head.http_version):
        raise InvariantError(f"{where} keep-alive not RFC 9112 §9.3's: {head.keep_alive}")
    expect = [v.lower() for v in values(head.headers, "expect")]
    if head.expect_continue != (head.http_version == "1.1" and expect[-1:] == ["100-continue"]):
        raise InvariantError(f"{where} expect-continue not its Expect field: {expect}")


# -- requests ---------------------------------------------------------------------------------
Message = tuple[RequestHead | ResponseHead, bytes, Headers]  # head (== ignores raw), body, trailers


@dataclass
class Read:
    """What one decoding run read: the complete messages and the error it ended in."""

    messages: list[Message] = field(default_factory=list)
    error: tuple[int, str] | None = None
    partial: Message | None = None  # the message it was in the middle of at the end
    unfinished: bool = False  # it ended inside a message (or before the head of one expected)

    def outcome(self, noun: str) -> str:
        text = f"{len(self.messages)} {noun}{'s' * (len(self.messages) != 1)}"
        return text if self.error is None else f"{text}, then {self.error[0]} {self.error[1]}"


def same_read(one: Read, other: Read) -> bool:
    """The same messages, and errors of the same status. A run that ended inside a message,
    or at a close there, may not have reached what broke the other: the codec holds the bytes
    of a head until a line end arrives, so a cut can leave a broken tail unread."""
    if one.messages != other.messages:
        return False
    if one.error is not None and other.error is not None and one.error[0] == other.error[0]:
        return True
    return one.error == other.error or any(
        (run.error is None and run.unfinished)
        or (run.error is not None and run.error[1] in CLOSED_MID_MESSAGE) for run in (one, other))


class RequestGrammar:
    """Follows a decoder's request events; raises InvariantError where they break HTTP/1.1."""

    def __init__(self, *, accept_http_10: bool, max_bytes: int, max_count: int) -> None:
        self.accept_http_10 = accept_http_10
        self.max_bytes = max_bytes
        self.max_count = max_count
        self.head: RequestHead | None = None
        self.body = bytearray()
        self.read = Read()
        self.closed = False  # a request without keep-alive ended: nothing may follow

    def event(self, event: RequestEvent) -> None:
        if self.closed:
            raise InvariantError(f"request event after a request that closes: {event!r}")
        head = self.head
        if isinstance(event, RequestHead):
            if head is not None:
                raise InvariantError(f"request head inside a request: {event.target!r}")
            check_request_head(event, accept_http_10=self.accept_http_10)
            size = len(event.target) + sum(len(k) + len(v) for k, v in event.headers)
            if size > self.max_bytes or len(event.headers) > self.max_count:
                raise InvariantError(f"request head over the limits: {size} bytes, "
                                     f"{len(event.headers)} fields")
            self.head = event
        elif head is None:
            raise InvariantError(f"request event outside a request: {event!r}")
        elif isinstance(event, Data):
            if not head.chunked and not head.content_length:
                raise InvariantError(f"request data where the framing has no body: {event.data!r}")
            self.body += event.data
            if head.content_length is not None and len(self.body) > head.content_length:
                raise InvariantError(f"request body past its Content-Length {head.content_length}")
        else:
            if head.content_length is not None and len(self.body) != head.content_length:
                raise InvariantError(f"request body of {len(self.body)} bytes ended, "
                                     f"Content-Length {head.content_length}")
            if event.trailers and not head.chunked:
                raise InvariantError(f"request trailers without chunked coding: {event.trailers}")
            check_fields(event.trailers, "request trailer")
            self.read.messages.append((head, bytes(self.body), event.trailers))
            self.closed = not head.keep_alive
            self.head = None
            self.body.clear()


E = TypeVar("E")
E_co = TypeVar("E_co", covariant=True)


class Decoder(Protocol[E_co]):
    def feed(self, data: bytes) -> Sequence[E_co]: ...
    def feed_eof(self) -> Sequence[E_co]: ...


def checked_feed(decoder: Decoder[E], data: bytes | None,
                 error: ProtocolError | None) -> Sequence[E]:
    """decoder.feed(data) (feed_eof when None); a decoder that raised must raise it again."""
    try:
        return decoder.feed(data) if data is not None else decoder.feed_eof()
    except ProtocolError as exc:
        if error is not None and exc is not error:
            raise InvariantError(f"a second error after {error}: {exc}") from None
        raise


def read_requests(pieces: list[bytes], *, accept_http_10: bool, max_bytes: int,
                  max_count: int) -> Read:
    """Decode `pieces`, then the end of the stream, following the grammar."""
    decoder = RequestDecoder(max_header_bytes=max_bytes, max_header_count=max_count,
                             accept_http_10=accept_http_10)
    grammar = RequestGrammar(accept_http_10=accept_http_10, max_bytes=max_bytes,
                             max_count=max_count)
    for piece in [*pieces, None]:
        try:
            events = checked_feed(decoder, piece, None)
        except ProtocolError as error:
            return _ended(grammar.read, decoder, error, REQUEST_STATUSES)
        for event in events:
            grammar.event(event)
        if decoder.error is not None:
            if events and not isinstance(events[-1], EndOfMessage):
                raise InvariantError("a feed that broke off returned a partial request")
            return _ended(grammar.read, decoder, decoder.error, REQUEST_STATUSES)
    return grammar.read


def _ended(read: Read, decoder: Decoder[object], error: ProtocolError,
           statuses: frozenset[int]) -> Read:
    if error.status not in statuses:
        raise InvariantError(f"error status outside {sorted(statuses)}: {error}")
    try:
        checked_feed(decoder, b"GET / HTTP/1.1\r\n\r\n", error)
    except ProtocolError:
        read.error = (error.status, error.reason)
        return read
    raise InvariantError(f"the decoder read on after {error}")


@dataclass(frozen=True)
class RequestCase:
    """Client bytes for a RequestDecoder, split at `cuts`; `limits`: small head limits."""

    data: bytes
    cuts: tuple[int, ...] = ()
    accept_http_10: bool = True
    limits: bool = False


def check_request_case(case: RequestCase) -> str:
    """Decode split and whole; returns the outcome (how many requests, which error)."""
    max_bytes, max_count = (200, 6) if case.limits else (60 * 1024, 100)
    read = functools.partial(read_requests, accept_http_10=case.accept_http_10,
                             max_bytes=max_bytes, max_count=max_count)
    split_read = read(split(case.data, case.cuts))
    # a head's size is counted from the feed it starts in: with small limits, where the
    # stream is cut may decide whether it fits
    if not case.limits:
        whole = read([case.data] if case.data else [])
        if not same_read(whole, split_read):
            raise InvariantError(f"requests read differ with the cuts: {whole.outcome('request')} "
                                 f"whole, {split_read.outcome('request')} split")
    return split_read.outcome("request")


# -- responses --------------------------------------------------------------------------------
class ResponseGrammar:
    """Follows a decoder's response events to the requests `start` announces."""

    def __init__(self) -> None:
        self.method: str | None = None
        self.head: ResponseHead | None = None
        self.body = bytearray()
        self.read = Read()

    def start(self, method: str) -> None:
        self.method = method

    @property
    def bodyless(self) -> bool:
        head = self.head
        return head is not None and (self.method == "HEAD" or head.status in (204, 304))

    def event(self, event: ResponseEvent, *, eof: bool) -> None:
        head = self.head
        if self.method is None:
            raise InvariantError(f"response event without a request: {event!r}")
        if isinstance(event, ResponseHead):
            if head is not None:
                raise InvariantError(f"response head inside a response: {event.status}")
            where = "response head"
            if not 100 <= event.status <= 599:
                raise InvariantError(f"{where} status outside 100-599: {event.status}")
            if event.http_version not in ("1.1", "1.0"):
                raise InvariantError(f"{where} version not accepted: HTTP/{event.http_version}")
            if not _REASON.fullmatch(event.reason):
                raise InvariantError(f"{where} reason a client would not read: {event.reason!r}")
            check_fields(event.headers, where)
            if event.status >= 200:
                check_framing(event.headers, event.chunked, event.content_length, where)
                self.head = event
        elif head is None:
            raise InvariantError(f"response event before a final head: {event!r}")
        elif isinstance(event, Data):
            if self.bodyless:
                raise InvariantError(f"response data to {self.method} {head.status}: "
                                     f"{event.data!r}")
            self.body += event.data
            if head.content_length is not None and len(self.body) > head.content_length:
                raise InvariantError(f"response body past its Content-Length {head.content_length}")
        else:
            delimited = self.bodyless or head.chunked or head.content_length is not None
            if not delimited and not eof:
                raise InvariantError("a close-delimited response ended before the close")
            if (not self.bodyless and head.content_length is not None
                    and len(self.body) != head.content_length):
                raise InvariantError(f"response body of {len(self.body)} bytes ended, "
                                     f"Content-Length {head.content_length}")
            if event.trailers and (self.bodyless or not head.chunked):
                raise InvariantError(f"response trailers without chunked coding: {event.trailers}")
            check_fields(event.trailers, "response trailer")
            self.read.messages.append((head, bytes(self.body), event.trailers))
            self.method = self.head = None
            self.body.clear()


@dataclass(frozen=True)
class ResponseCase:
    """Upstream responses to `methods`, one after the other on a connection, split at `cuts`
    (each response also starts a piece); `eof`: the upstream closes at the end."""

    methods: tuple[str, ...]
    data: tuple[bytes, ...]  # one for each method (mutated, so not always one response)
    cuts: tuple[int, ...] = ()
    eof: bool = False


def read_responses(case: ResponseCase, pieces: list[list[bytes]]) -> tuple[Read, bool]:
    """Decode `pieces` (a list per response) as a proxy does, starting the next request after
    each response that keeps the connection; (what was read, whether every response ended
    where its data did)."""
    decoder = ResponseDecoder()
    grammar = ResponseGrammar()
    methods = list(case.methods)
    aligned = True
    stream: list[tuple[bytes | None, bool]] = [
        (piece, last == len(parts) - 1) for parts in pieces for last, piece in enumerate(parts)]
    if case.eof:
        stream.append((None, True))
    read = grammar.read
    for piece, at_boundary in stream:
        if grammar.method is None and methods and piece is not None:
            method = methods.pop(0)
            decoder.start(method=method)
            grammar.start(method)
        try:
            events = checked_feed(decoder, piece, None)
        except ProtocolError as error:
            _ended_response(read, decoder, error)
            break
        for event in events:
            grammar.event(event, eof=piece is None)
            if isinstance(event, EndOfMessage) and not read.messages[-1][0].keep_alive:
                methods.clear()  # the connection closes: no request follows on it
        if events and isinstance(events[-1], EndOfMessage) and not at_boundary:
            aligned = False  # it ended inside its data: what follows starts another exchange
    if grammar.head is not None:
        read.partial = (grammar.head, bytes(grammar.body), [])
    read.unfinished = grammar.method is not None
    return read, aligned


def _ended_response(read: Read, decoder: Decoder[object], error: ProtocolError) -> None:
    if error.status != 502:
        raise InvariantError(f"response error status not 502: {error}")
    try:
        checked_feed(decoder, b"HTTP/1.1 200 OK\r\n\r\n", error)
    except ProtocolError:
        read.error = (error.status, error.reason)
        return
    raise InvariantError(f"the decoder read on after {error}")


def check_response_case(case: ResponseCase) -> str:
    """Decode split and in one piece per response; the same unless a response ended inside
    its data (then where a cut falls decides which exchange the rest belongs to)."""
    offsets = list(itertools.accumulate(len(d) for d in case.data))
    cuts = [c % (offsets[-1] + 1) for c in case.cuts] if offsets else []
    pieces = [split(data, [c - a for c in cuts if a < c < b])
              for data, a, b in zip(case.data, [0, *offsets[:-1]], offsets, strict=True) if data]
    split_read, aligned = read_responses(case, pieces)
    if aligned:
        whole, _ = read_responses(case, [[d] for d in case.data if d])
        if not same_read(whole, split_read):
            raise InvariantError(f"responses read differ with the cuts: "
                                 f"{whole.outcome('response')} whole, "
                                 f"{split_read.outcome('response')} split")
    return split_read.outcome("response")


request_cases = st.builds(RequestCase, request_streams, cut_lists, st.booleans(), st.booleans())
response_cases = st.builds(
    lambda exchanges, cuts, eof: ResponseCase(tuple(m for m, _ in exchanges),
                                              tuple(d for _, d in exchanges), cuts, eof),
    st.lists(st.tuples(st.sampled_from(METHODS), response_streams), min_size=1, max_size=3),
    cut_lists, st.booleans())
