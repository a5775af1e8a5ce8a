"""Envoy's text access log format: `%COMMAND%` operators over an access record.

MeshConfig accessLogEncoding TEXT uses accessLogFormat, or Istio's default format when that is
empty (EnvoyTextLogFormat in pilot). The operators are Envoy's (config/observability/access_log
usage "Command operators"); those naming what an AccessRecord carries are served, an operator
it does not carry prints `-`, as Envoy prints a value it does not have.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from remora.telemetry.accesslog import AccessRecord

ISTIO_TEXT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)
"""Istio's default TEXT access log format (pilot EnvoyTextLogFormat)."""

Field = Callable[["AccessRecord"], "str | int | float | None"]

_FIELDS: dict[str, Field] = {
    "REQ(:METHOD)": lambda r: r.method,
    "REQ(X-ENVOY-ORIGINAL-PATH?:PATH)": lambda r: r.path,
    "REQ(:PATH)": lambda r: r.path,
    "PROTOCOL": lambda r: r.protocol,
    "RESPONSE_CODE": lambda r: r.response_code,
    "RESPONSE_FLAGS": lambda r: r.response_flags,
    "RESPONSE_CODE_DETAILS": lambda r: r.response_code_details,
    "CONNECTION_TERMINATION_DETAILS": lambda r: r.connection_termination_details,
    "UPSTREAM_TRANSPORT_FAILURE_REASON": lambda r: r.upstream_transport_failure_reason,
    "BYTES_RECEIVED": lambda r: r.bytes_received,
    "BYTES_SENT": lambda r: r.bytes_sent,
    "DURATION": lambda r: int(r.duration_ms),
    "RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)": lambda r: None if r.upstream_service_time_ms is None
    else int(r.upstream_service_time_ms),
    "REQ(X-FORWARDED-FOR)": lambda r: r.x_forwarded_for,
    "REQ(USER-AGENT)": lambda r: r.user_agent,
    "REQ(X-REQUEST-ID)": lambda r: r.request_id,
    "REQ(:AUTHORITY)": lambda r: r.authority,
    "UPSTREAM_HOST": lambda r: r.upstream_host,
    "UPSTREAM_CLUSTER": lambda r: r.upstream_cluster,
    "UPSTREAM_LOCAL_ADDRESS": lambda r: r.upstream_local_address,
    "DOWNSTREAM_LOCAL_ADDRESS": lambda r: r.downstream_local_address,
    "DOWNSTREAM_REMOTE_ADDRESS": lambda r: r.downstream_remote_address,
    "REQUESTED_SERVER_NAME": lambda r: r.requested_server_name,
    "ROUTE_NAME": lambda r: r.route_name,
}
_OPERATOR = re.compile(r"%([A-Z_]+(?:\([^)%]*\))?)(?::\d+)?%")


def _start_time(record: AccessRecord) -> str:
    second = int(record.start_time)
    millis = int((record.start_time - second) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + f".{millis:03d}Z"


def _value(name: str) -> Callable[[AccessRecord], str]:
    if name == "START_TIME":
        return _start_time
    found = _FIELDS.get(name)
    if found is None:
        return lambda _record: "-"

    def text(record: AccessRecord) -> str:
        value = found(record)
        return "-" if value is None or value == "" else str(value)

    return text


class TextFormat:
    """A format string compiled once into literal pieces and operators."""

    __slots__ = ("_parts",)

    def __init__(self, template: str) -> None:
        parts: list[str | Callable[[AccessRecord], str]] = []
        position = 0
        for found in _OPERATOR.finditer(template):
            if found.start() > position:
                parts.append(template[position:found.start()])
            parts.append(_value(found.group(1)))
            position = found.end()
        parts.append(template[position:])
        if not template.endswith("\n"):
            parts.append("\n")
        self._parts = tuple(part for part in parts if part != "")

    def format(self, record: AccessRecord) -> str:
        return "".join(part if isinstance(part, str) else part(record) for part in self._parts)


def unknown_operators(template: str) -> list[str]:
    """The operators of `template` Remora has no value for (they print `-`)."""
    return [name for name in _OPERATOR.findall(template)
            if name != "START_TIME" and name not in _FIELDS]
