"""Whether one HTTP match condition covers another: every request the later one matches, the
earlier one matches too (so the later one is never used)."""

from __future__ import annotations

from collections.abc import Mapping

from remora.analysis.models import HTTPMatchRequest
from remora.api.common import StringMatch

# Fields compared specially below; any other field must be unset in the earlier match or equal.
_SPECIAL = frozenset(
    {
        "name",
        "uri",
        "scheme",
        "method",
        "authority",
        "headers",
        "query_params",
        "without_headers",
        "port",
        "source_labels",
        "gateways",
        "source_namespace",
        "ignore_uri_case",
        "stat_prefix",
    }
)


def string_covers(a: StringMatch | None, b: StringMatch | None) -> bool:
    """Every value `b` accepts, `a` accepts (None accepts anything; regexes only if equal)."""
    if a is None:
        return True
    if b is None:
        return False
    if a.is_empty:
        return True
    if a.prefix is not None:
        value = b.prefix if b.prefix is not None else b.exact
        return value is not None and value.startswith(a.prefix)
    return a == b


def _map_covers(a: Mapping[str, StringMatch], b: Mapping[str, StringMatch]) -> bool:
    return all(key in b and string_covers(cond, b[key]) for key, cond in a.items())


def covers(a: HTTPMatchRequest, b: HTTPMatchRequest) -> bool:
    """True when match `a` (earlier) accepts every request match `b` (later) accepts."""
    if bool(a.ignore_uri_case) != bool(b.ignore_uri_case):
        return False
    simple = all(
        string_covers(getattr(a, f), getattr(b, f))
        for f in ("uri", "scheme", "method", "authority")
    )
    if not simple:
        return False
    if not (_map_covers(a.headers, b.headers) and _map_covers(a.query_params, b.query_params)):
        return False
    # b must exclude at least what a excludes.
    if any(b.without_headers.get(k) != v for k, v in a.without_headers.items()):
        return False
    if a.port is not None and a.port != b.port:
        return False
    if a.source_namespace is not None and a.source_namespace != b.source_namespace:
        return False
    if any(b.source_labels.get(k) != v for k, v in a.source_labels.items()):
        return False
    if a.gateways and not (b.gateways and set(b.gateways) <= set(a.gateways)):
        return False
    return all(
        getattr(a, f) in (None, [], {}) or getattr(a, f) == getattr(b, f)
        for f in type(a).model_fields
        if f not in _SPECIAL
    )
