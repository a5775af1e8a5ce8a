"""The HTTP filter protocol: the steps of a request's path, as Envoy's HTTP filters are.

A filter sees a request in phases (envoy/http/filter.h): request headers, request body,
response headers, response body, log. Header phases return CONTINUE (the next filter runs),
STOP (this filter resumes the request later through `StreamControl.continue_request`, as
Envoy's continueDecoding) or a `LocalReply` (the proxy answers itself; the filters before this
one see the reply's headers and body on its way out, the ones after never run). Body phases
return the bytes to pass on: the data unchanged, new data (a compressor), or b"" while the
filter holds what it got (StopIterationAndBuffer). Requests run the chain first to last, the
response last to first; the router is the last filter. Log filters run once, when it is over.

A filter object is built once per chain (per snapshot and listener kind) and holds only
configuration; what belongs to one request lives in its RequestContext. `HttpFilter` gives
every phase a default that does nothing, and the chain runs a phase only on the filters that
override it, so a filter costs nothing in the phases it does not take part in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from remora.policy.flags import ResponseFlag

if TYPE_CHECKING:
    from remora.proxy.clusters import ClusterState
    from remora.proxy.codec.events import ResponseEvent, ResponseHead
    from remora.proxy.context import RequestContext


class FilterStatus(enum.Enum):
    CONTINUE = "continue"
    STOP = "stop"  # the filter calls StreamControl.continue_request when it is done


CONTINUE = FilterStatus.CONTINUE
STOP = FilterStatus.STOP


@dataclass(slots=True)
class LocalReply:
    """A response the proxy writes itself: status, response flag, a short body."""

    status: int
    flag: ResponseFlag = ResponseFlag.NONE
    body: bytes = b""
    headers: list[tuple[str, str]] | None = None
    details: str = ""
    extra_flags: tuple[ResponseFlag, ...] = ()  # e.g. URX beside UF when retries ran out


HeadersResult = FilterStatus | LocalReply


class StreamControl(Protocol):
    """What a filter may ask of the stream carrying its request (Envoy's filter callbacks);
    the router's upstream call reports the response through the same stream (`CallSink`)."""

    def continue_request(self) -> None:
        """Resume the request after the filter that returned STOP."""
        ...

    def send_local_reply(self, reply: LocalReply) -> None:
        """Answer now, from the filter currently holding the request (a timer's callback)."""
        ...

    def send_continue(self) -> None:
        """Write `100 Continue` to the client (the proxy answers Expect itself)."""
        ...

    def reset(self, flag: ResponseFlag, details: str | None) -> None:
        """End the stream with `flag`: close the client's connection (a response already under
        way cannot be replaced by another)."""
        ...

    def pause_request_body(self) -> None: ...

    def resume_request_body(self) -> None: ...

    # what the router's upstream call reports (remora.proxy.call.CallSink)
    def on_host(self, state: ClusterState, host: int) -> None: ...

    def on_upstream_principal(self, principal: str) -> None: ...

    def on_response_events(self, events: list[ResponseEvent]) -> None: ...

    def upstream_service(self, seconds: float) -> None: ...

    def upstream_failed(self, reply: LocalReply) -> None: ...

    def upstream_cut(self, *, protocol_error: bool) -> None: ...

    def add_flag(self, flag: ResponseFlag) -> None: ...


class HttpFilter:
    """Base of every HTTP filter; a subclass overrides the phases it takes part in."""

    name: ClassVar[str]  # Envoy's name for the filter, as an EnvoyFilter patch spells it
    http_filter: ClassVar[bool] = True  # False: a step of Envoy's connection manager itself

    def request_headers(self, ctx: RequestContext) -> HeadersResult:
        return CONTINUE

    def request_body(self, ctx: RequestContext, data: bytes, end: bool) -> bytes:
        return data

    def response_headers(self, ctx: RequestContext, head: ResponseHead) -> HeadersResult:
        return CONTINUE

    def response_body(self, ctx: RequestContext, data: bytes, end: bool) -> bytes:
        return data

    def log(self, ctx: RequestContext) -> None:
        return None
