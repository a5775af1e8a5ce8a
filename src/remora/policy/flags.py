"""Envoy's response flags: the short codes an access log and `response_flags` label carry.

Names and order follow Envoy's `ResponseFlagUtils` (source/common/stream_info/utility.h) and the
%RESPONSE_FLAGS% operator of envoyproxy.io "Access logging" (configuration/observability/
access_log/usage). Several flags print joined by "," in Envoy's table order; none prints "-".
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class ResponseFlag(StrEnum):
    """One Envoy response flag; members are declared in the order Envoy prints them."""

    LH = "LH"  # failed local health check (503)
    UH = "UH"  # no healthy upstream host (503)
    UT = "UT"  # upstream request timeout (504)
    LR = "LR"  # connection local reset (503)
    UR = "UR"  # upstream remote reset (503)
    UF = "UF"  # upstream connection failure (503)
    UC = "UC"  # upstream connection termination (503)
    UO = "UO"  # upstream overflow, circuit breaking (503)
    NR = "NR"  # no route configured (404)
    DI = "DI"  # delay injected by fault injection
    FI = "FI"  # aborted by fault injection
    RL = "RL"  # rate limited locally (429)
    UAEX = "UAEX"  # denied by the external authorization service
    RLSE = "RLSE"  # rate limit service error
    DC = "DC"  # downstream connection termination
    URX = "URX"  # upstream retry limit (or max connect attempts) exceeded
    SI = "SI"  # stream idle timeout (408)
    IH = "IH"  # invalid x-envoy-* request headers
    DPE = "DPE"  # downstream request had an HTTP protocol error
    UMSDR = "UMSDR"  # upstream max stream duration reached
    RFCF = "RFCF"  # response served from the cache filter
    NFCF = "NFCF"  # no filter config found
    DT = "DT"  # request or connection exceeded its configured max duration
    UPE = "UPE"  # upstream response had an HTTP protocol error
    NC = "NC"  # upstream cluster not found
    OM = "OM"  # overload manager terminated the request
    DF = "DF"  # DNS resolution failed
    DO = "DO"  # dropped by drop_overload
    NONE = "-"  # no flag


_ORDER = {flag: index for index, flag in enumerate(ResponseFlag)}


def join_flags(flags: Iterable[ResponseFlag]) -> str:
    """Render flags as %RESPONSE_FLAGS% does: unique, Envoy's order, "," between, "-" if none."""
    unique = {flag for flag in flags if flag is not ResponseFlag.NONE}
    if not unique:
        return ResponseFlag.NONE.value
    return ",".join(flag.value for flag in sorted(unique, key=_ORDER.__getitem__))
