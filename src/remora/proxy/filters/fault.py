"""Fault injection (envoy.filters.http.fault) from a VirtualService route's `fault`: a delay
holds the request, then the abort if one was drawn too (Envoy's order); an abort is a local
reply with the fault's status and flag FI."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from remora.policy.flags import ResponseFlag
from remora.proxy.filter import CONTINUE, STOP, HeadersResult, HttpFilter, LocalReply

if TYPE_CHECKING:
    from remora.proxy.context import RequestContext
    from remora.proxy.env import ProxyEnv

FAULT_ABORT = b"fault filter abort"


def abort_reply(status: int) -> LocalReply:
    return LocalReply(status, ResponseFlag.FI, FAULT_ABORT, details="fault_filter_abort")


class FaultInjection(HttpFilter):
    name: ClassVar[str] = "envoy.filters.http.fault"

    def __init__(self, env: ProxyEnv) -> None:
        self.env = env

    def request_headers(self, ctx: RequestContext) -> HeadersResult:
        policies = ctx.policies
        fault = policies.fault if policies is not None else None
        if fault is None:
            return CONTINUE
        injected = fault.decide(self.env.rng)
        if injected.delay is not None:
            ctx.flags.append(ResponseFlag.DI)
            ctx.timer = self.env.loop.call_later(
                injected.delay, self.after_delay, ctx, injected.abort_status)
            return STOP
        if injected.abort_status is not None:
            return abort_reply(injected.abort_status)
        return CONTINUE

    def after_delay(self, ctx: RequestContext, abort_status: int | None) -> None:
        ctx.timer = None
        if ctx.finished:
            return
        if abort_status is not None:
            ctx.stream.send_local_reply(abort_reply(abort_status))
        else:
            ctx.stream.continue_request()
