"""The HTTP connection manager's timeouts and limits, as an EnvoyFilter MERGE patch sets them.

Istio exposes none of Envoy's downstream HTTP timeouts (stream idle, request, max connection
duration, ...) in its own resources; its documented way to set them is an EnvoyFilter that
MERGEs into `envoy.filters.network.http_connection_manager` (applyTo NETWORK_FILTER). Remora
applies such a patch for the fields below, and reports every other field of the patch (it is
not applied). Values are protobuf JSON, as Envoy reads them: durations as "30s" / "0.5s" (0s
turns a timeout off), field names in snake_case or lowerCamelCase.

Defaults are Envoy's (api/envoy/extensions/filters/network/http_connection_manager/v3 and
config/core/v3/protocol.proto), except request_headers_timeout: see remora.proxy.env.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from pydantic.alias_generators import to_snake

from remora.api.networking import httpfilters

HCM_TYPE: Final = ("type.googleapis.com/envoy.extensions.filters.network."
                   "http_connection_manager.v3.HttpConnectionManager")

DURATION, KILOBYTES, COUNT, FLAG = "duration", "kilobytes", "count", "flag"
FIELDS: Final[Mapping[str, str]] = {
    "request_headers_timeout": DURATION,
    "stream_idle_timeout": DURATION,
    "request_timeout": DURATION,
    "delayed_close_timeout": DURATION,
    "max_request_headers_kb": KILOBYTES,
    "common_http_protocol_options.idle_timeout": DURATION,
    "common_http_protocol_options.max_connection_duration": DURATION,
    "common_http_protocol_options.max_headers_count": COUNT,
    "http_protocol_options.accept_http_10": FLAG,
}
"""The fields Remora applies (dotted, snake_case) and what each holds."""

MAX_REQUEST_HEADERS_KB: Final = 8192  # Envoy's bound on max_request_headers_kb
_DURATION = re.compile(r"(\d+)(\.\d{1,9})?s")


class ConnectionManagerError(ValueError):
    """A field the patch sets has a value Envoy would refuse: where (under patch.value) and
    why; str() is `path: reason`."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def is_connection_manager_merge(apply_to: str | None, operation: str | None,
                                value: Mapping[str, Any] | None,
                                filter_name: str | None) -> bool:
    """Whether a patch MERGEs into the HTTP connection manager: applyTo NETWORK_FILTER, and
    the filter named by the match or the value's @type is the connection manager."""
    if apply_to != "NETWORK_FILTER" or operation != "MERGE" or not value:
        return False
    if filter_name in httpfilters.HTTP_CONNECTION_MANAGER_NAMES:
        return True
    typed = httpfilters.typed_config_of(value)
    return typed is not None and typed.get("@type") == HCM_TYPE


def connection_manager_settings(value: Mapping[str, Any]
                                ) -> tuple[dict[str, float | int | bool], list[str]]:
    """(settings, unsupported) of a MERGE patch's value: the applied fields (FIELDS' names,
    durations in seconds) and the paths (under `typed_config`) of the fields that are not.
    Raises ConnectionManagerError for a value Envoy would refuse."""
    settings: dict[str, float | int | bool] = {}
    unsupported: list[str] = []
    key = "typed_config" if "typed_config" in value else "typedConfig"
    for path, raw, written in _leaves(httpfilters.typed_config_of(value) or {}, "", ""):
        kind = FIELDS.get(path)
        if kind is None:
            if path != "@type":
                unsupported.append(f"{key}.{written}")
            continue
        settings[path.rpartition(".")[2]] = _value(kind, raw, f"{key}.{written}")
    return settings, unsupported


def _leaves(node: Mapping[str, Any], prefix: str, written: str
            ) -> Iterator[tuple[str, Any, str]]:
    """(snake_case dotted path, value, path as written) of each field; the nested messages
    Remora reads fields of are walked into, any other message is one field."""
    for name, child in node.items():
        snake = name if name == "@type" else to_snake(name)
        path = f"{prefix}{snake}"
        shown = f"{written}{name}"
        if isinstance(child, Mapping) and any(f.startswith(f"{path}.") for f in FIELDS):
            yield from _leaves(child, f"{path}.", f"{shown}.")
        else:
            yield path, child, shown


def _value(kind: str, raw: Any, where: str) -> float | int | bool:
    if kind == DURATION:
        return duration_seconds(raw, where)
    if kind == FLAG:
        if not isinstance(raw, bool):
            raise ConnectionManagerError(where, "must be true or false")
        return raw
    number = _integer(raw, where)
    if kind == KILOBYTES and not 1 <= number <= MAX_REQUEST_HEADERS_KB:
        raise ConnectionManagerError(where, f"must be between 1 and {MAX_REQUEST_HEADERS_KB}")
    if kind == COUNT and number < 1:
        raise ConnectionManagerError(where, "must be at least 1")
    return number


def _integer(raw: Any, where: str) -> int:
    # protobuf JSON writes 64-bit integers as strings, and accepts both forms
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ConnectionManagerError(where, "must be an integer")
    try:
        return int(raw)
    except ValueError:
        raise ConnectionManagerError(where, "must be an integer") from None


def duration_seconds(raw: Any, where: str) -> float:
    """A protobuf JSON Duration ("30s", "0.250s") in seconds."""
    match = _DURATION.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        raise ConnectionManagerError(
            where, f"{raw!r} is not a duration (protobuf JSON: seconds with an s, e.g. 30s, "
            f"0.5s; 0s turns it off)")
    return float(raw[:-1])
