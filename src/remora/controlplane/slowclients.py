"""Deadlines for slow clients: uvicorn's httptools protocol with a request-head timeout and size.

uvicorn closes a keep-alive connection idle for `timeout_keep_alive` after a response, but a
new connection that sends nothing, or a client that trickles its request head a byte at a time
(slowloris), is held for ever, and a head may grow without bound. Here, as Go's http.Server
does for the Kubernetes API server (ReadHeaderTimeout, IdleTimeout, MaxHeaderBytes):

- a connection that has not begun a request is idle and closed after the idle timeout, on
  arrival as between requests;
- from a request's first byte, its whole head (request line and headers) must arrive within
  the header timeout, and be at most `max_head_bytes`, else 408 / 431 and the connection closes.

Only the head is timed: a request being answered (a 30 s Nacos long poll, a watch or push
stream) is never cut, and its body is bounded by `bodylimit`.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from remora.controlplane import HEADER_TIMEOUT

MAX_HEAD_BYTES = 1 << 20
"""The Kubernetes API server's MaxHeaderBytes."""


class GuardedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol whose request heads have a deadline and a size limit."""

    header_timeout: ClassVar[float] = HEADER_TIMEOUT
    max_head_bytes: ClassVar[int] = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = -1  # bytes of the request head so far; -1 between heads

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # idle until the first byte: uvicorn arms this only after a response
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        if self._head_bytes >= 0:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(b"431 Request Header Fields Too Large")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def on_headers_complete(self) -> None:
        self._head_done()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        super().connection_lost(exc)

    def _head_done(self) -> None:
        self._head_bytes = -1
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self._refuse(b"408 Request Timeout")

    def _refuse(self, status: bytes) -> None:
        """Answer a request whose head never completed, and close (as nginx does for
        client_header_timeout and large_client_header_buffers)."""
        self._head_done()
        if not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 " + status + b"\r\nconnection: close\r\n"
                                 b"content-length: 0\r\n\r\n")
            self.transport.close()


def guarded_protocol(header_timeout: float) -> type[GuardedProtocol]:
    """The protocol class for uvicorn's `http` setting (the idle timeout is uvicorn's own
    `timeout_keep_alive`)."""
    return type("GuardedProtocol", (GuardedProtocol,), {"header_timeout": header_timeout})
