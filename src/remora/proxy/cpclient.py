"""The proxy's HTTP/1.1 client to its control plane: the discovery stream and the ACKs.

On the proxy's own codec (remora.proxy.codec) rather than a client library: the serving proxy
loads nothing it does not use (a general-purpose client and its dependencies were 7 MB of its
resident memory), and these two exchanges need little — a JSON POST whose answer is read whole,
and one whose answer is a stream of NDJSON lines. http:// and https:// URLs; each exchange
has a connection of its own.

Over https (`ControlPlaneTls`, shared by a proxy's clients) the control plane is verified
against the mesh's root (`--ca-cert`, Istio's CA_ROOT_CA; else the system's trust store) with
the URL's host as the name (an IP checks the certificate's IP SANs), and once the proxy has a
workload certificate from the CA it is presented as the client certificate (TLS client
authentication; the roots that came with it are trusted too): the CA renews it without the
bootstrap token. An expired certificate is not presented (the control plane would refuse
the handshake).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from remora.proxy.codec.events import Data, EndOfMessage, ProtocolError, ResponseHead
from remora.proxy.codec.http1 import ResponseDecoder
from remora.proxy.codec.http1_encode import encode_request_head
from remora.proxy.mtls import WorkloadTls, private_files

CONNECT_TIMEOUT = 10.0  # seconds to connect and to get a response head
READ_SIZE = 256 * 1024


class ControlPlaneHTTPError(OSError):
    """The control plane could not be reached, or broke the exchange (an OSError: the caller
    reconnects as for any network failure)."""


class Response:
    """A response head, and its body read whole or line by line."""

    def __init__(self, head: ResponseHead, reader: asyncio.StreamReader,
                 decoder: ResponseDecoder, pending: list[Any]) -> None:
        self.status = head.status
        self.headers = head.headers
        self._reader = reader
        self._decoder = decoder
        self._pending = pending  # events decoded with the head

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        while True:
            for event in self._pending:
                if isinstance(event, Data):
                    yield event.data
                elif isinstance(event, EndOfMessage):
                    return
            data = await self._reader.read(READ_SIZE)
            try:
                self._pending = self._decoder.feed(data) if data else self._decoder.feed_eof()
            except ProtocolError as exc:
                raise ControlPlaneHTTPError(f"control plane: {exc}") from None
            if not data and not self._pending:
                raise ControlPlaneHTTPError("control plane closed the stream")

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def lines(self) -> AsyncIterator[str]:
        """The body's lines (NDJSON), without their line ends."""
        held = b""
        async for chunk in self.chunks():
            held += chunk
            *complete, held = held.split(b"\n")
            for line in complete:
                yield line.decode()
        if held:
            yield held.decode()


class ControlPlaneTls:
    """How a proxy's https connections to its control plane are made: the server verified
    against `ca_file` (None: the system's trust store), the workload certificate presented
    once `present` was given one."""

    def __init__(self, ca_file: str | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.ca_file = ca_file
        self.clock = clock
        self._anonymous: ssl.SSLContext | None = None  # made on first use
        self._certificate: WorkloadTls | None = None
        self._presenting: ssl.SSLContext | None = None

    def _context(self, certificate: WorkloadTls | None) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ControlPlaneHTTPError(f"--ca-cert {self.ca_file}: "
                                        f"{getattr(exc, 'strerror', None) or exc}") from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if certificate is not None:
            context.load_verify_locations(cadata="".join(certificate.roots))
            with private_files(("".join(certificate.chain), certificate.key)) as files:
                context.load_cert_chain(*files)
        return context

    def present(self, certificate: WorkloadTls | None) -> None:
        """Present `certificate` on new connections from now on (None: none)."""
        self._certificate = certificate
        self._presenting = self._context(certificate) if certificate is not None else None

    @property
    def certificate(self) -> WorkloadTls | None:
        """The workload certificate new connections present (not an expired one)."""
        current = self._certificate
        return current if current is not None and self.clock() < current.not_after else None

    def context(self) -> ssl.SSLContext:
        if self.certificate is not None and self._presenting is not None:
            return self._presenting
        if self._anonymous is None:
            self._anonymous = self._context(None)
        return self._anonymous

    def describe(self) -> str:
        return f"--ca-cert {self.ca_file}" if self.ca_file else "the system's trust store"


class ControlPlaneClient:
    """POSTs of JSON to one control plane."""

    def __init__(self, url: str, tls: ControlPlaneTls | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.authority = parts.netloc.rpartition("@")[2]
        self.base = parts.path.rstrip("/")
        self.tls = (tls or ControlPlaneTls()) if parts.scheme == "https" else None

    async def post(self, path: str, body: Mapping[str, Any],
                   headers: Mapping[str, str]) -> tuple[Response, asyncio.StreamWriter]:
        """Send the request; the response once its head has arrived, and the connection
        (the caller closes it when done)."""
        payload = json.dumps(body).encode()
        tls = self.tls
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                self.host, self.port, ssl=tls.context() if tls else None,
                server_hostname=self.host if tls else None,
                limit=READ_SIZE), CONNECT_TIMEOUT)
        except TimeoutError:
            raise ControlPlaneHTTPError(f"no connection to {self.authority} in "
                                        f"{CONNECT_TIMEOUT:g} s") from None
        except ssl.SSLCertVerificationError as exc:
            assert tls is not None
            raise ControlPlaneHTTPError(
                f"the certificate of {self.authority} is not trusted (verified with "
                f"{tls.describe()}): {exc.verify_message or exc}") from None
        except ssl.SSLError as exc:
            raise ControlPlaneHTTPError(f"TLS with {self.authority} failed: "
                                        f"{exc.reason or exc}") from None
        try:
            fields = [("host", self.authority), ("content-type", "application/json"),
                      ("content-length", str(len(payload))), *headers.items()]
            writer.write(encode_request_head("POST", self.base + path, fields) + payload)
            decoder = ResponseDecoder()
            decoder.start(method="POST")
            response = await asyncio.wait_for(self._head(reader, decoder), CONNECT_TIMEOUT)
        except BaseException:
            writer.close()
            raise
        return response, writer

    @staticmethod
    async def _head(reader: asyncio.StreamReader, decoder: ResponseDecoder) -> Response:
        while True:
            data = await reader.read(READ_SIZE)
            try:
                events = decoder.feed(data) if data else decoder.feed_eof()
            except ProtocolError as exc:
                raise ControlPlaneHTTPError(f"control plane: {exc}") from None
            for index, event in enumerate(events):
                if isinstance(event, ResponseHead) and event.status >= 200:
                    return Response(event, reader, decoder, events[index + 1:])
            if not data:
                raise ControlPlaneHTTPError("control plane closed before answering")

    async def post_json(self, path: str, body: Mapping[str, Any],
                        headers: Mapping[str, str]) -> tuple[int, bytes]:
        """POST and read the whole answer: its status and body."""
        response, writer = await self.post(path, body, headers)
        try:
            return response.status, await asyncio.wait_for(response.read(), CONNECT_TIMEOUT)
        except TimeoutError:
            raise ControlPlaneHTTPError("control plane answered too slowly") from None
        finally:
            writer.close()
