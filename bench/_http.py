"""A minimal keep-alive HTTP/1.1 client for the control plane benchmark's push streams and ACKs.

httpx's pool costs more CPU per request than the servers measured here spend answering; this
client sends a request and reads the response on one connection, nothing else.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

from remora.proxy.codec.events import Data, EndOfMessage, ResponseHead
from remora.proxy.codec.http1 import ResponseDecoder


class Connection:
    """One keep-alive connection; requests go one after another."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str, *, headers: str = "") -> None:
        self.reader = reader
        self.writer = writer
        self.host = host
        self.headers = headers  # extra header lines sent on every request ("Name: v\r\n")
        self.decoder = ResponseDecoder()

    @classmethod
    async def open(cls, host: str, port: int, *, headers: dict[str, str] | None = None
                   ) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        lines = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        return cls(reader, writer, f"{host}:{port}", headers=lines)

    async def request(self, method: str, path: str, *, params: dict[str, object] | None = None,
                      body: bytes = b"", content_type: str = "application/json"
                      ) -> tuple[int, bytes]:
        target = f"{path}?{urlencode(params)}" if params else path
        head = (f"{method} {target} HTTP/1.1\r\nHost: {self.host}\r\n{self.headers}"
                f"Content-Length: {len(body)}\r\n")
        if body:
            head += f"Content-Type: {content_type}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        self.decoder.start(method=method)
        status, chunks = 0, []
        while True:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            for event in self.decoder.feed(data):
                if isinstance(event, ResponseHead) and event.status >= 200:
                    status = event.status
                elif isinstance(event, Data):
                    chunks.append(event.data)
                elif isinstance(event, EndOfMessage) and status:
                    return status, b"".join(chunks)

    async def post_json(self, path: str, document: object) -> tuple[int, bytes]:
        return await self.request("POST", path, body=json.dumps(document).encode())

    async def stream_lines(self, path: str, document: object) -> AsyncIterator[bytes]:
        """POST `document` and yield the lines of a streamed (NDJSON) response."""
        body = json.dumps(document).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.headers}"
                          "Content-Type: "
                          f"application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                          + body)
        self.decoder.start(method="POST")
        pending: list[bytes] = []  # the unfinished line's pieces: a 3 MB line is not re-copied
        while True:
            data = await self.reader.read(65536)
            if not data:
                return
            for event in self.decoder.feed(data):
                if isinstance(event, Data):
                    *lines, rest = event.data.split(b"\n")
                    for line in lines:
                        pending.append(line)
                        yield b"".join(pending)
                        pending = []
                    pending.append(rest)
                elif isinstance(event, EndOfMessage):
                    return

    def close(self) -> None:
        self.writer.close()
