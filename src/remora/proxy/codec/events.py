"""Events the HTTP/1.1 codec produces: what a message says, never how its bytes looked.

The decoders turn bytes into these; the proxy shell acts on them and the encoders turn them back
into bytes. Header names are lowercase, values latin-1 decoded with surrounding whitespace removed
(RFC 9110 §5.5), in the order they arrived; repeated headers stay separate entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from remora.errors import RemoraError

Headers = list[tuple[str, str]]


@dataclass(slots=True)
class RequestHead:
    """A request line and its headers; the framing fields say how the body is delimited."""

    method: str
    target: str
    headers: Headers
    http_version: str  # "1.1" or "1.0"
    keep_alive: bool  # RFC 9112 §9.3: 1.1 unless "close", 1.0 only with "keep-alive"
    expect_continue: bool  # "Expect: 100-continue" (RFC 9110 §10.1.1)
    chunked: bool  # body in chunked coding (RFC 9112 §7.1)
    content_length: int | None  # None when chunked or no Content-Length (then no body)
    # The field lines as received, each ending in CRLF, when the fast path decoded the head:
    # they can be forwarded as they are (remora.proxy.codec.forwarding).
    raw: bytes | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class ResponseHead:
    """A status line and its headers; a status below 200 is informational: no body, no end."""

    status: int
    reason: str
    headers: Headers
    http_version: str
    keep_alive: bool  # False also when the body is delimited by the connection closing
    chunked: bool
    content_length: int | None  # as sent, also for HEAD/204/304 where no body follows
    raw: bytes | None = field(default=None, compare=False, repr=False)  # as RequestHead.raw


@dataclass(slots=True)
class Data:
    """A piece of a message body (chunk framing already removed)."""

    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    """The body is complete; trailers are those of a chunked body (RFC 9112 §7.1.2)."""

    trailers: Headers = field(default_factory=list)


RequestEvent = RequestHead | Data | EndOfMessage
ResponseEvent = ResponseHead | Data | EndOfMessage


class ProtocolError(RemoraError):
    """The peer broke HTTP/1.1; `status` is what a server answers before closing (400, 431, 501...).

    On the response side the status is 502: the upstream, not the client, broke the protocol.
    `body` is the answer's body when it is not the reason on a line (Envoy's exact text).
    """

    def __init__(self, status: int, reason: str, *, body: bytes | None = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.body = f"{reason}\n".encode() if body is None else body
