"""Durations as Istio writes them: Go/protobuf style strings such as "500ms", "1.5s", "1h30m"."""

from __future__ import annotations

import re

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_WHOLE = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")


def parse_duration(text: str) -> float:
    """Return the duration in seconds, or raise ValueError with a message fit for a user.

    Accepts what Go's time.ParseDuration accepts (the format of Istio's CRD schemas)
    except negative values, which no Istio duration field allows.
    """
    if not isinstance(text, str):
        raise ValueError(f'duration must be a string such as "1s" or "500ms", got {text!r}')
    body = text.strip()
    if body.startswith("-"):
        raise ValueError(f"duration must not be negative: {text!r}")
    body = body.removeprefix("+")
    if body == "0":
        return 0.0
    if not _WHOLE.fullmatch(body):
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit (ns, us, ms, s, m, h)"
        )
    return sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _PART.findall(body))


def format_duration(seconds: float) -> str:
    """The shortest plain form: "1h", "90s", "1.5s", "250ms"."""
    if seconds == 0:
        return "0s"
    millis = round(seconds * 1000, 6)
    if millis < 1:
        return f"{round(seconds * 1e6, 3):g}us"
    if millis < 1000:
        return f"{millis:g}ms"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{int(seconds // 60)}m"
    return f"{round(seconds, 6):g}s"
