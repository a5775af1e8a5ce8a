"""The common case of HTTP/1.1, decoded without a parser callback per header.

Most messages a proxy sees are a whole request head without a body in one read, and a whole
`Content-Length` response in one read. For exactly those, and only when every line is plainly
well-formed (one strict regular expression over the head, RFC 9112 §2-§5 grammar), these
functions build the events directly. Anything else — bodies to frame, chunked coding, odd
bytes, limits, pipelining, partial reads — returns None and the llhttp-based decoder in
http1.py gives its verdict, so the fast path can only ever accept less than llhttp does.
"""

from __future__ import annotations

import re
from typing import Final

from remora.proxy.codec.events import ResponseHead

_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_FIELD_LINE = rb"%s+:[ \t]*(?:[!-~\x80-\xff](?:[ \t!-~\x80-\xff]*[!-~\x80-\xff])?)?[ \t]*\r\n" % (
    _TCHAR
)
# Methods llhttp knows and the proxy forwards; the target in origin or absolute form, from the
# characters RFC 3986 allows (no fragment, no spaces or controls).
_TARGET_CHAR = rb"[A-Za-z0-9\-._~:/?\[\]@!$&'()*+,;=%]"
_REQUEST: Final = re.compile(
    rb"(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH) "
    rb"(/" + _TARGET_CHAR + rb"*|[A-Za-z][A-Za-z0-9+.\-]*://" + _TARGET_CHAR + rb"+) "
    rb"HTTP/1\.([01])\r\n((?:" + _FIELD_LINE + rb")*)\r\n"
)
_RESPONSE: Final = re.compile(
    rb"HTTP/1\.([01]) ([2-5][0-9][0-9]) ([\t !-~\x80-\xff]*)\r\n((?:" + _FIELD_LINE + rb")*)\r\n"
)
_REQUEST_FALLBACK: Final = frozenset({"content-length", "transfer-encoding", "upgrade"})
_NO_BODY_STATUS: Final = frozenset({204, 304})


def field_lines(block: bytes) -> list[tuple[str, str]]:
    """Field lines (already validated) to (lowercase name, value without surrounding OWS)."""
    fields = []
    for line in block.decode("latin-1").split("\r\n")[:-1]:
        name, _, value = line.partition(":")
        fields.append((name.lower(), value.strip(" \t")))
    return fields


def _keep_alive(connection: str | None, version: str) -> bool:
    """RFC 9112 §9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive"."""
    if connection is None:
        return version == "1.1"
    tokens = {t.strip().lower() for t in connection.split(",")}
    if "close" in tokens:
        return False
    return version == "1.1" or "keep-alive" in tokens


def request_head(data: bytes, *, max_bytes: int, max_count: int) -> tuple[
        str, str, str, list[tuple[str, str]], bool, bool, bytes] | None:
    """(method, target, version, headers, keep_alive, expect_continue, field lines) when `data`
    is exactly one well-formed request head without a body; None for everything else."""
    if len(data) > max_bytes:
        return None
    match = _REQUEST.fullmatch(data)
    if match is None:
        return None
    method, target, minor, block = match.groups()
    headers = field_lines(block)
    if len(headers) > max_count:
        return None
    version = "1.1" if minor == b"1" else "1.0"
    hosts = 0
    connection = expect = None
    for name, value in headers:
        if name == "host":
            hosts += 1
        elif name in _REQUEST_FALLBACK:
            return None
        elif name == "connection":
            connection = value if connection is None else f"{connection}, {value}"
        elif name == "expect":
            expect = value
    if hosts > 1 or (hosts == 0 and version == "1.1"):
        return None  # the full decoder answers 400
    expect_continue = expect is not None and version == "1.1" and expect.lower() == "100-continue"
    return (method.decode(), target.decode("latin-1"), version, headers,
            _keep_alive(connection, version), expect_continue, block)


def response(data: bytes, *, head_request: bool, max_bytes: int,
             max_count: int) -> tuple[ResponseHead, bytes] | None:
    """The head and body when `data` is exactly one well-formed response framed by a single
    Content-Length (or the bodiless answer to HEAD); None for everything else."""
    end = data.find(b"\r\n\r\n") + 4
    if end < 4 or end > max_bytes:
        return None
    match = _RESPONSE.fullmatch(data, 0, end)
    if match is None:
        return None
    minor, code, reason, block = match.groups()
    status = int(code)
    if status in _NO_BODY_STATUS:
        return None
    headers = field_lines(block)
    if len(headers) > max_count:
        return None
    length: int | None = None
    connection = None
    for name, value in headers:
        if name == "content-length":
            if length is not None or not value.isdigit() or not value.isascii() \
                    or len(value) > 18:  # llhttp refuses what overflows 64 bits: its call
                return None
            length = int(value)
        elif name == "transfer-encoding":
            return None
        elif name == "connection":
            connection = value if connection is None else f"{connection}, {value}"
    if length is None:
        return None  # close-delimited: the full decoder ends it at EOF
    body_size = 0 if head_request else length
    if len(data) - end != body_size:
        return None
    version = "1.1" if minor == b"1" else "1.0"
    head = ResponseHead(
        status=status,
        reason=reason.decode("latin-1"),
        headers=headers,
        http_version=version,
        keep_alive=_keep_alive(connection, version),
        chunked=False,
        content_length=length,
        raw=block,
    )
    return head, data[end:]
