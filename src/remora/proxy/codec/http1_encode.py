"""HTTP/1.1 encoders: heads, chunks and trailers to bytes, one buffer each, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Final

_REASONS: Final = {s.value: s.phrase for s in HTTPStatus}
LAST_CHUNK: Final = b"0\r\n\r\n"


def _field_lines(headers: Iterable[tuple[str, str]], first_line: str) -> bytes:
    lines = [first_line]
    lines += [f"{name}: {value}\r\n" for name, value in headers]
    lines.append("\r\n")
    text = "".join(lines)
    # Every line ends in exactly one CRLF: a CR or LF inside a name or value would split it.
    if text.count("\n") != len(lines) or text.count("\r") != len(lines):
        raise ValueError("CR or LF inside a header name or value")
    return text.encode("latin-1")


def encode_request_head(method: str, target: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """An HTTP/1.1 request line and headers, as one buffer."""
    return _field_lines(headers, f"{method} {target} HTTP/1.1\r\n")


def encode_response_head(status: int, reason: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """An HTTP/1.1 status line and headers; an empty reason becomes the standard phrase."""
    return _field_lines(headers, f"HTTP/1.1 {status} {reason or _REASONS.get(status, '')}\r\n")


def _checked(text: str, lines: int) -> bytes:
    # Every line ends in exactly one CRLF: a CR or LF inside a name or value would split it.
    if text.count("\n") != lines or text.count("\r") != lines:
        raise ValueError("CR or LF inside a header name or value")
    return text.encode("latin-1")


def encode_request_lines(method: str, target: str, authority: str, kept: bytes,
                         added: list[tuple[str, str]]) -> bytes:
    """A request head from field lines forwarded as received (`kept`, validated by the decoder:
    whole lines, no bare CR or LF) and the headers the proxy adds, after a Host line."""
    first = _checked(f"{method} {target} HTTP/1.1\r\nhost: {authority}\r\n", 2)
    last = _checked("".join([f"{name}: {value}\r\n" for name, value in added]) + "\r\n",
                    len(added) + 1)
    return first + kept + last


def encode_response_lines(status: int, reason: str, kept: bytes,
                          added: list[tuple[str, str]]) -> bytes:
    """A response head from field lines forwarded as received and the headers the proxy adds."""
    first = _checked(f"HTTP/1.1 {status} {reason or _REASONS.get(status, '')}\r\n", 1)
    last = _checked("".join([f"{name}: {value}\r\n" for name, value in added]) + "\r\n",
                    len(added) + 1)
    return first + kept + last


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 §7.1); empty data gives b"" (not the last chunk)."""
    if not data:
        return b""
    return b"%x\r\n%b\r\n" % (len(data), data)


def encode_trailers(trailers: Iterable[tuple[str, str]]) -> bytes:
    """The last chunk followed by trailer fields: ends a chunked body (RFC 9112 §7.1.2)."""
    if not trailers:
        return LAST_CHUNK
    return _field_lines(trailers, "0\r\n")
