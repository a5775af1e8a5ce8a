"""HTTP/1.1 codec without I/O: httptools (llhttp) parses, `feed(bytes) -> list[event]` reports.

Theory of operation. Each decoder owns one httptools parser for the life of a connection and is
that parser's callback object: callbacks build the header list directly (names lowercased once,
values latin-1 decoded once) and append events to the list that `feed` returns. llhttp already
refuses most malformed and smuggling-shaped input (the tables in tests/unit/proxy say which); the
checks here cover what it lets through: HTTP versions other than 1.0/1.1, transfer codings other
than a lone "chunked", a missing or repeated Host, CONNECT, more than 100 fields, and sizes.
HTTP/1.0 is refused with 426 unless asked for, as Envoy's `accept_http_10: false` default does.
After a ProtocolError a decoder refuses all further input; the requests the same feed completed
before it are still returned (a valid request pipelined before a broken one gets its answer),
and `error` says that decoding ended.

Sizes. A head is counted on raw bytes from the feed boundary where it starts, and the parser is
given only what the limit allows, so a slow or endless head is refused before it is buffered;
feeds without a line end are held here (httptools would re-concatenate a half field on each).
The parsed pieces are counted too, which covers a head that starts inside a feed after a
pipelined message. Trailers get the same budget, counted on the bytes that follow the last chunk.

llhttp facts worked around: httptools has no `finish()`, so a body delimited by the connection
closing ends in `feed_eof`; llhttp skips the body of a request carrying `Connection: upgrade` +
`Upgrade` and stops, so that request continues on a fresh parser primed with a synthetic head of
the same framing (the proxy strips Upgrade as hop-by-hop and forwards plain HTTP: no WebSocket);
a response parser cannot be told the request was HEAD, so a HEAD response ends at its head and
the next `start` replaces the parser.
"""

from __future__ import annotations

import re
from typing import Final

import httptools

from remora.proxy.codec import http1_fast
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
from remora.proxy.codec.forwarding import forwarded_headers, strip_hop_by_hop
from remora.proxy.codec.http1_encode import (
    LAST_CHUNK,
    encode_chunk,
    encode_request_head,
    encode_response_head,
    encode_trailers,
)

DEFAULT_MAX_HEADER_BYTES: Final = 60 * 1024  # Envoy max_request_headers_kb default (60)
DEFAULT_MAX_HEADER_COUNT: Final = 100  # Envoy common_http_protocol_options.max_headers_count

_COMMON_NAMES = (
    "host", "user-agent", "accept", "accept-encoding", "accept-language", "connection",
    "content-length", "content-type", "transfer-encoding", "expect", "upgrade", "te", "trailer",
    "keep-alive", "proxy-connection", "cookie", "set-cookie", "authorization", "cache-control",
    "date", "server", "etag", "last-modified", "location", "vary", "referer", "origin",
    "x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-b3-traceid", "x-b3-spanid",
    "x-b3-parentspanid", "x-b3-sampled", "traceparent", "tracestate", "content-encoding",
)
# Raw name bytes as clients usually spell them -> lowercase str: no decode/lower per header.
_NAMES: Final = {
    spelling.encode(): name
    for name in _COMMON_NAMES
    for spelling in (name, name.title(), name.upper())
}
_METHODS: Final = {
    m.encode(): m
    for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT")
}
_VERSIONS: Final = frozenset({"1.1", "1.0"})
# Envoy's answer to HTTP/1.0 without accept_http_10 (http1 codec_impl.cc checkProtocolVersion:
# sendProtocolError, the status phrase as body, response code details `low_version`).
UPGRADE_REQUIRED: Final = b"Upgrade Required"
_FRAMING: Final = frozenset({
    "content-length", "transfer-encoding", "connection", "expect", "host", "upgrade",
})


class _Decoder:
    """State and callbacks shared by the request and response decoders (one per connection)."""

    _error_status = 400  # status of a ProtocolError for a malformed message
    _limit_status = 431  # status when a head is too large

    def __init__(self, *, max_header_bytes: int, max_header_count: int) -> None:
        self._max = max_header_bytes
        self._error: ProtocolError | None = None
        self._max_count = max_header_count
        self._in_head = True  # reading a head: its raw bytes count against the limit
        self._raw = 0  # raw bytes fed while reading this head
        self._held = bytearray()  # head bytes without a line end yet, not given to the parser
        self._heads = 0  # heads completed: tells whether a head ended inside a feed
        self._chunks = 0  # chunk-size lines seen
        self._in_chunk = False
        self._chunk_data = False  # the open chunk has delivered data (else: last chunk, trailers)
        self._trailer_raw = 0
        self._size = 0  # bytes of the parsed pieces (target/names/values) of this head
        self._in_message = False
        self._headers: Headers = []
        self._trailers: Headers = []
        self._content_length: str | None = None
        self._transfer_encoding: str | None = None
        self._connection: str | None = None
        self._expect: str | None = None
        self._hosts = 0
        self._upgrade = False  # an Upgrade header arrived: llhttp may stop after this head
        self._line = b""  # request target or response reason, as llhttp hands it over

    # -- driving -------------------------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        if not self._in_head:
            self._feed_body(data)
            return
        budget = self._max - self._raw - len(self._held)
        if b"\n" not in data:
            # No line can end in `data`: hold it, so httptools does not re-concatenate a
            # half-received field on every tiny feed (quadratic for a slow sender).
            if len(data) > budget:
                raise self._fail(self._limit_status, "headers too large")
            self._held += data
            return
        if self._held:
            budget += len(self._held)
            data = bytes(self._held) + data
            self._held.clear()
        if len(data) <= budget:
            self._raw += len(data)
            self._execute(data)
            return
        # The head may end inside `data`: give the parser only what the limit still allows.
        heads = self._heads
        self._raw += budget
        self._execute(data[:budget])
        if self._heads == heads:
            raise self._fail(self._limit_status, "headers too large")
        self._feed(data[budget:])

    def _feed_body(self, data: bytes) -> None:
        """Feed body bytes; bytes that fed no chunk but the last one are trailers: bound them."""
        chunks = self._chunks
        self._execute(data)
        if self._in_chunk and not self._chunk_data and self._chunks == chunks:
            self._trailer_raw += len(data)
            if self._trailer_raw > self._max:
                raise self._fail(self._limit_status, "trailers too large")

    def _execute(self, data: bytes) -> None:
        raise NotImplementedError

    def _fail(self, status: int, reason: str, *, body: bytes | None = None) -> ProtocolError:
        """Record the error (the decoder refuses input from now on) and return it to raise."""
        error = ProtocolError(status, reason, body=body)
        if self._error is None:
            self._error = error
        return self._error

    def _parser_error(self, exc: Exception) -> ProtocolError:
        return self._error or self._fail(self._error_status, str(exc) or type(exc).__name__)

    # -- httptools callbacks (shared) ----------------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_message = True
        self._in_head = True
        self._line = b""
        self._headers = []
        self._size = 0
        self._content_length = self._transfer_encoding = self._connection = self._expect = None
        self._hosts = 0
        self._upgrade = False

    def on_header(self, name: bytes, value: bytes) -> None:
        size = self._size = self._size + len(name) + len(value)
        if size > self._max:
            raise self._fail(self._limit_status, "headers too large")
        key = _NAMES.get(name) or name.decode("latin-1").lower()
        # llhttp drops the leading OWS of a value, not the trailing one (RFC 9110 §5.5)
        text = value.decode("latin-1").rstrip(" \t")
        if self._in_head:
            self._headers.append((key, text))
            if key in _FRAMING:
                self._note(key, text)
        else:
            self._trailers.append((key, text))

    def _check_count(self, fields: Headers) -> None:
        """Envoy's max_headers_count (the byte limit has already bounded the memory)."""
        if len(fields) > self._max_count:
            raise self._fail(self._limit_status, "too many headers")

    def _note(self, key: str, text: str) -> None:
        if key == "content-length":
            self._content_length = text  # llhttp refuses a second one and non-digits
        elif key == "transfer-encoding":
            te = self._transfer_encoding
            self._transfer_encoding = text if te is None else f"{te}, {text}"
        elif key == "connection":
            conn = self._connection
            self._connection = text if conn is None else f"{conn}, {text}"
        elif key == "expect":
            self._expect = text
        elif key == "host":
            self._hosts += 1
        else:
            self._upgrade = True

    def on_chunk_header(self) -> None:
        self._chunks += 1
        self._in_chunk = True
        self._chunk_data = False
        self._trailer_raw = 0

    def on_chunk_complete(self) -> None:
        self._in_chunk = False
        if self._trailers:  # the last chunk's trailer section just ended
            self._check_count(self._trailers)

    def _end_head(self) -> None:
        self._check_count(self._headers)
        self._heads += 1
        self._in_head = False
        self._raw = 0
        self._size = 0  # trailers get their own budget
        self._trailers = []

    def _framing(self) -> tuple[bool, int | None]:
        """(chunked, content_length) after RFC 9112 §6.1/§6.3; llhttp has refused CL + TE."""
        te = self._transfer_encoding
        if te is not None:
            if te.strip().lower() != "chunked":
                # Envoy refuses any transfer coding but a lone "chunked" with 501 (http1
                # codec, onHeadersCompleteBase: it does not implement the others, RFC 9112
                # §6.1). Where the RFC asks 400 instead (a request whose last coding is not
                # chunked, §6.3), Remora answers as Envoy does; a response gets 502 either way.
                status = 501 if self._error_status == 400 else self._error_status
                raise self._fail(status, f"unsupported transfer-encoding: {te}")
            return True, None
        cl = self._content_length
        return False, (int(cl) if cl is not None else None)

    def _keep_alive(self, version: str) -> bool:
        """RFC 9112 §9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive"."""
        conn = self._connection
        if conn is None:
            return version == "1.1"
        tokens = {t.strip().lower() for t in conn.split(",")}
        if "close" in tokens:
            return False
        return version == "1.1" or "keep-alive" in tokens


class _AfterClose(Exception):  # noqa: N818 - a signal, not an error
    """Raised from a parser callback to stop reading after a request that closes."""


class RequestDecoder(_Decoder):
    """Decodes the requests of one downstream connection, pipelined ones included."""

    def __init__(self, *, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
                 max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
                 accept_http_10: bool = False) -> None:
        super().__init__(max_header_bytes=max_header_bytes, max_header_count=max_header_count)
        self._accept_http_10 = accept_http_10
        self._parser = httptools.HttpRequestParser(self)
        self._events: list[RequestEvent] = []
        self._keep = True  # the current request's keep-alive
        self._closed = False  # a request without keep-alive ended: ignore what follows
        self._body_after_upgrade: bytes | None = None

    @property
    def error(self) -> ProtocolError | None:
        """The error that ended decoding (then `feed` raises it), if any."""
        return self._error

    @property
    def started(self) -> bool:
        """Bytes of a request whose head has not been decoded yet have arrived."""
        return self._in_message or bool(self._held)

    def feed(self, data: bytes) -> list[RequestEvent]:
        """Decode `data`; raises ProtocolError (and keeps raising it) on a broken request, unless
        this feed completed requests before the break: then those come back, `error` is set."""
        if self._error is not None:
            raise self._error
        events: list[RequestEvent] = []
        if self._closed:
            return events
        if (not self._in_message and not self._held and self._body_after_upgrade is None
                and data.endswith(b"\r\n\r\n")):
            fast = http1_fast.request_head(data, max_bytes=self._max, max_count=self._max_count)
            if fast is not None:
                method, target, version, headers, keep_alive, expect_continue, raw = fast
                if version == "1.0" and not self._accept_http_10:
                    raise self._fail(426, "low_version", body=UPGRADE_REQUIRED)
                self._keep = keep_alive
                self._closed = not keep_alive
                return [
                    RequestHead(method, target, headers, version, keep_alive, expect_continue,
                                False, None, raw),
                    EndOfMessage([]),
                ]
        self._events = events
        try:
            self._feed(data)
        except ProtocolError:
            # Requests completed before the break are answered; one broken off is not forwarded.
            ends = [i for i, event in enumerate(events) if isinstance(event, EndOfMessage)]
            if not ends:
                raise
            del events[ends[-1] + 1:]
        return events

    def feed_eof(self) -> list[RequestEvent]:
        """The client closed: fine between requests, a ProtocolError in the middle of one."""
        if self._error is not None:
            raise self._error
        if self._in_message or self._held:
            raise self._fail(400, "connection closed in the middle of a request")
        return []

    def _execute(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._continue_after_upgrade(bytes(data[int(upgrade.args[0]):]))
        except _AfterClose:
            return  # a request after one that closes the connection: dropped
        except httptools.HttpParserError as exc:
            if self._error is None and self._closed:
                return  # bytes after "Connection: close" (llhttp refuses them): dropped
            raise self._parser_error(exc) from None

    def _continue_after_upgrade(self, rest: bytes) -> None:
        """llhttp stops at an Upgrade request's head: go on with a fresh parser."""
        self._parser = httptools.HttpRequestParser(self)
        prime, self._body_after_upgrade = self._body_after_upgrade, None
        if prime is not None:
            events, self._events = self._events, []
            self._parser.feed_data(prime)  # a synthetic head with the same framing: no events
            self._events = events
        if len(rest):
            self._execute(rest)

    # -- httptools callbacks -------------------------------------------------------------------
    def on_url(self, url: bytes) -> None:
        self._line += url
        self._size += len(url)
        if self._size > self._max:
            raise self._fail(431, "request line too large")

    def on_headers_complete(self) -> None:
        self._end_head()
        parser = self._parser
        version = parser.get_http_version()
        if version not in _VERSIONS:
            raise self._fail(505, f"HTTP/{version} not supported")
        if version == "1.0" and not self._accept_http_10:
            raise self._fail(426, "low_version", body=UPGRADE_REQUIRED)
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        if method == "CONNECT":
            raise self._fail(501, "CONNECT not supported")
        if self._hosts > 1 or (self._hosts == 0 and version == "1.1"):
            raise self._fail(400, "exactly one Host header required")  # RFC 9112 §3.2
        if version == "1.0" and self._transfer_encoding is not None:
            # RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing, and
            # the connection must close; de-chunking it would let what follows its last chunk
            # through as a smuggled request (nginx answers 400 too)
            raise self._fail(400, "transfer-encoding in an HTTP/1.0 request")
        chunked, content_length = self._framing()
        self._keep = keep_alive = self._keep_alive(version)
        expect = self._expect
        self._events.append(RequestHead(
            method=method,
            target=self._line.decode("latin-1"),
            headers=self._headers,
            http_version=version,
            keep_alive=keep_alive,
            # RFC 9110 §10.1.1: ignored in HTTP/1.0
            expect_continue=(expect is not None and version == "1.1"
                             and expect.lower() == "100-continue"),
            chunked=chunked,
            content_length=content_length,
        ))
        if self._upgrade and (chunked or content_length) and parser.should_upgrade():
            framing = ("transfer-encoding: chunked" if chunked
                       else f"content-length: {content_length}")
            close = "" if keep_alive else "connection: close\r\n"
            self._body_after_upgrade = (
                f"PUT / HTTP/1.1\r\nhost: x\r\n{framing}\r\n{close}\r\n".encode()
            )

    def on_body(self, body: bytes) -> None:
        self._chunk_data = True
        self._events.append(Data(body))

    def on_message_begin(self) -> None:
        if self._closed:  # llhttp may keep an HTTP/1.0 "keep-alive, close" request alive
            raise _AfterClose
        super().on_message_begin()

    def on_message_complete(self) -> None:
        if self._body_after_upgrade is not None:
            return  # the body follows on the fresh parser
        self._in_message = False
        self._in_head = True
        self._events.append(EndOfMessage(self._trailers))
        if not self._keep:
            self._closed = True


_IDLE, _HEAD, _BODY, _DONE = range(4)
_REASON_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class ResponseDecoder(_Decoder):
    """Decodes the responses of one upstream connection; `start` before each request's response."""

    _error_status = 502
    _limit_status = 502

    def __init__(self, *, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
                 max_header_count: int = DEFAULT_MAX_HEADER_COUNT) -> None:
        super().__init__(max_header_bytes=max_header_bytes, max_header_count=max_header_count)
        self._parser = httptools.HttpResponseParser(self)
        self._events: list[ResponseEvent] = []
        self._state = _IDLE
        self._head_request = False
        self._stale = False  # the parser still expects a HEAD response's body: replace it
        self._status = 0
        self._close_delimited = False

    def start(self, *, method: str) -> None:
        """Expect the response to a `method` request (HEAD responses have no body)."""
        if self._state not in (_IDLE, _DONE):
            raise RuntimeError("start() while a response is still being decoded")
        if self._stale:
            self._parser = httptools.HttpResponseParser(self)
            self._stale = False
        self._state = _HEAD
        self._head_request = method == "HEAD"
        self._in_head = True
        self._raw = 0

    def feed(self, data: bytes) -> list[ResponseEvent]:
        """Decode `data`; raises ProtocolError (status 502) on a broken or unsolicited response."""
        if self._error is not None:
            raise self._error
        state = self._state
        if state == _HEAD and not self._in_message and not self._held:
            fast = http1_fast.response(data, head_request=self._head_request, max_bytes=self._max,
                                       max_count=self._max_count)
            if fast is not None:
                head, body = fast
                self._state = _DONE
                self._status = head.status
                if self._head_request:
                    return [head, EndOfMessage([])]
                return [head, Data(body), EndOfMessage([])] if body else [head, EndOfMessage([])]
        if state in (_IDLE, _DONE):
            raise self._fail(502, "data from upstream without a request")
        events: list[ResponseEvent] = []
        self._events = events
        self._feed(data)
        return events

    def feed_eof(self) -> list[ResponseEvent]:
        """The upstream closed: ends a close-delimited body; otherwise the response is truncated."""
        if self._error is not None:
            raise self._error
        state = self._state
        if state == _BODY and self._close_delimited:
            self._state = _DONE
            return [EndOfMessage()]
        if state == _HEAD:
            raise self._fail(502, "upstream closed before the response head")
        if state == _BODY:
            raise self._fail(502, "upstream closed before the end of the body")
        return []

    def _execute(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise self._fail(502, "upstream switched protocols") from None
        except httptools.HttpParserError as exc:
            raise self._parser_error(exc) from None

    # -- httptools callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._state != _HEAD:
            raise self._fail(502, "data from upstream after the response")
        super().on_message_begin()

    def on_status(self, reason: bytes) -> None:
        self._line += reason
        self._size += len(reason)

    def on_headers_complete(self) -> None:
        self._end_head()
        parser = self._parser
        version = parser.get_http_version()
        if version not in _VERSIONS:
            raise self._fail(502, f"HTTP/{version} response")
        status = parser.get_status_code()
        if not 100 <= status <= 599:  # llhttp reads any three digits (RFC 9110 §15)
            raise self._fail(502, f"invalid status code {status:03d}")
        if _REASON_CONTROL.search(self._line):  # RFC 9112 §4: HTAB, SP, VCHAR, obs-text
            raise self._fail(502, "control character in the reason phrase")
        self._status = status
        chunked, content_length = self._framing()
        informational = status < 200
        bodyless = informational or self._head_request or status in (204, 304)
        self._close_delimited = not bodyless and not chunked and content_length is None
        keep_alive = self._keep_alive(version) and not self._close_delimited
        self._events.append(ResponseHead(
            status=status,
            reason=self._line.decode("latin-1"),
            headers=self._headers,
            http_version=version,
            keep_alive=keep_alive,
            chunked=chunked,
            content_length=content_length,
        ))
        if informational:
            return
        self._state = _BODY
        if self._head_request:
            self._finish()
            self._stale = True  # llhttp would read a body here: start() brings a new parser

    def on_body(self, body: bytes) -> None:
        if self._state != _BODY:
            raise self._fail(502, "data from upstream after the response")
        self._chunk_data = True
        self._events.append(Data(body))

    def on_message_complete(self) -> None:
        if self._status < 200:  # 1xx: the final response follows (RFC 9110 §15.2)
            self._in_message = False
            self._in_head = True
            self._status = 0
            return
        if self._state == _BODY:
            self._finish()

    def _finish(self) -> None:
        self._state = _DONE
        self._in_message = False
        self._events.append(EndOfMessage(self._trailers))


__all__ = [
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_MAX_HEADER_COUNT",
    "LAST_CHUNK",
    "RequestDecoder",
    "ResponseDecoder",
    "encode_chunk",
    "encode_request_head",
    "encode_response_head",
    "encode_trailers",
    "forwarded_headers",  # re-exported: one import for the proxy shell
    "strip_hop_by_hop",
]
