"""Access log: one JSON object per request, with the fields of Istio's JSON access log format.

The keys are those of `EnvoyJSONLogFormatIstio` (istio/istio pilot/pkg/model/telemetry_logging.go,
used when meshConfig.accessLogEncoding is JSON), each filled as the Envoy command operator named
there would fill it (envoyproxy.io "Access logging", command operators): %RESPONSE_CODE%,
%BYTES_RECEIVED%, %BYTES_SENT% and %DURATION% are integers, %START_TIME% is UTC ISO-8601 with
milliseconds, %RESPONSE_FLAGS% is "-" when there is none, and unset values are null. Keys are
written sorted, as Envoy serialises the format's Struct.

Lines are buffered and written in batches: the proxy calls flush() on a timer and close() at exit.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import IO

from remora.telemetry.accessformat import ISTIO_TEXT_FORMAT, TextFormat

log = logging.getLogger(__name__)

MAX_BUFFERED_LINES = 512
FLUSH_INTERVAL_S = 1.0  # how often the proxy is expected to call flush()


@dataclass(slots=True)
class AccessRecord:
    """What one request leaves in the access log; None means Envoy would print null."""

    start_time: float  # epoch seconds, time.time() when the request head arrived
    method: str
    path: str  # %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%: the path before any rewrite
    protocol: str = "HTTP/1.1"
    response_code: int = 0  # 0: no response was sent (the client went away first)
    response_flags: str = "-"  # policy.flags.join_flags(...)
    response_code_details: str | None = None  # "via_upstream", "route_not_found", ...
    connection_termination_details: str | None = None
    upstream_transport_failure_reason: str | None = None
    bytes_received: int = 0  # request body bytes
    bytes_sent: int = 0  # response body bytes
    duration_ms: float = 0.0  # start to last byte sent
    upstream_service_time_ms: float | None = None  # x-envoy-upstream-service-time
    x_forwarded_for: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    authority: str | None = None
    upstream_host: str | None = None  # "10.0.0.1:8080"
    upstream_cluster: str | None = None  # "outbound|9080|v1|reviews.default.svc.cluster.local"
    upstream_local_address: str | None = None
    downstream_local_address: str | None = None
    downstream_remote_address: str | None = None
    requested_server_name: str | None = None
    route_name: str | None = None


def _text(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def _header_ms(value: float | None) -> str:
    """A millisecond count as the response header carries it: a JSON string, or null."""
    return "null" if value is None else f'"{int(value)}"'


class _StartTimes:
    """Formats %START_TIME% ("2024-05-01T12:00:00.123Z"), reusing the text of the last second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, epoch: float) -> str:
        second = int(epoch)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        millis = int((epoch - second) * 1000)
        return f'"{self._prefix}.{millis:03d}Z"'


class AccessLog:
    """Buffered access log: a file path, "-" for stdout, or None for off; JSON lines with
    Envoy's field names, or TEXT (MeshConfig accessLogEncoding) in `template`'s format."""

    def __init__(self, path: str | None, *, encoding: str = "JSON", template: str = "") -> None:
        self.path = path
        self.settings = (path, encoding, template)
        self.enabled = path is not None
        self._text = TextFormat(template or ISTIO_TEXT_FORMAT) if encoding == "TEXT" else None
        self._buffer: list[str] = []
        self._times = _StartTimes()
        self._file: IO[bytes] | None = None
        if path is not None and path != "-":
            self._file = open(path, "ab")  # noqa: SIM115 - closed in close()

    def write(self, record: AccessRecord) -> None:
        """Queue one line; a full batch is written at once, the rest by the next flush()."""
        if not self.enabled:
            return
        text = self._text
        self._buffer.append(self._format(record) if text is None else text.format(record))
        if len(self._buffer) >= MAX_BUFFERED_LINES:
            self.flush()

    def _format(self, r: AccessRecord) -> str:
        return (
            f'{{"authority":{_text(r.authority)},'
            f'"bytes_received":{r.bytes_received},'
            f'"bytes_sent":{r.bytes_sent},'
            f'"connection_termination_details":{_text(r.connection_termination_details)},'
            f'"downstream_local_address":{_text(r.downstream_local_address)},'
            f'"downstream_remote_address":{_text(r.downstream_remote_address)},'
            f'"duration":{int(r.duration_ms)},'
            f'"method":{_text(r.method)},'
            f'"path":{_text(r.path)},'
            f'"protocol":{_text(r.protocol)},'
            f'"request_id":{_text(r.request_id)},'
            f'"requested_server_name":{_text(r.requested_server_name)},'
            f'"response_code":{r.response_code},'
            f'"response_code_details":{_text(r.response_code_details)},'
            f'"response_flags":{_text(r.response_flags)},'
            f'"route_name":{_text(r.route_name)},'
            f'"start_time":{self._times.format(r.start_time)},'
            f'"upstream_cluster":{_text(r.upstream_cluster)},'
            f'"upstream_host":{_text(r.upstream_host)},'
            f'"upstream_local_address":{_text(r.upstream_local_address)},'
            f'"upstream_service_time":{_header_ms(r.upstream_service_time_ms)},'
            f'"upstream_transport_failure_reason":{_text(r.upstream_transport_failure_reason)},'
            f'"user_agent":{_text(r.user_agent)},'
            f'"x_forwarded_for":{_text(r.x_forwarded_for)}}}\n'
        )

    def flush(self) -> None:
        """Write out what is buffered. A failing disk loses lines, never the request."""
        if not self._buffer:
            return
        text = "".join(self._buffer)
        self._buffer.clear()
        try:
            if self._file is not None:
                self._file.write(text.encode("ascii"))
                self._file.flush()
            else:
                sys.stdout.write(text)
                sys.stdout.flush()
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed under us
            log.warning("access log %s: %s; dropped %d lines", self.path, exc, text.count("\n"))

    def close(self) -> None:
        """Flush and stop logging; later writes are ignored."""
        self.flush()
        self.enabled = False
        if self._file is not None:
            self._file.close()
            self._file = None
