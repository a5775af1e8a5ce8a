"""Fault injection: Istio's HTTPFaultInjection as Envoy's fault filter applies it, per request.

Translation follows istio/istio pilot/pkg/networking/core/route/route.go TranslateFault:
- `percentage.value` becomes a FractionalPercent of `uint32(value * 10000)` per million;
- a delay without `percentage` uses the deprecated integer `percent` (per hundred), which is 0
  when unset, and an abort without `percentage` leaves Envoy's FaultAbort.percentage unset,
  whose default is 0 too: no percentage means no fault (istio.io: "If left unspecified, no
  request will be delayed/aborted");
- exponentialDelay and aborts without httpStatus/grpcStatus are dropped (Istio logs a warning).
Envoy draws the delay and the abort independently (fault_filter.cc: maybeSetupDelay, then
maybeDoAbort), each with `random % denominator < numerator`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from remora.api.networking.http_route import HTTPFaultInjection

PER_MILLION = 1_000_000

# The canonical gRPC codes in order (grpc.SupportedGRPCStatus in istio/istio pkg/util/grpc).
GRPC_CODES = {
    name: code
    for code, name in enumerate((
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED",
    ))
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What to inject into one request: a delay (seconds) and/or an abort (flags DI, FI).

    `grpc_status` is the numeric code as the grpc-status header carries it ("14").
    """

    delay: float | None = None
    abort_status: int | None = None
    grpc_status: str | None = None


NO_FAULT = FaultDecision()


def per_million(percentage: float | None, percent: int | None = None) -> int:
    """route.go translatePercentToFractionalPercent / translateIntegerToFractionalPercent."""
    if percentage is not None:
        return int(percentage * 10000)
    return (percent or 0) * (PER_MILLION // 100)


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultPolicy:
    """A route's compiled fault: draws, per request, whether to delay and whether to abort.

    The odds are per million; an odds without its delay or abort is 0. The four possible
    decisions are built once, from the fields, in `__post_init__`.
    """

    delay: float | None = None
    delay_per_million: int = 0
    abort_status: int | None = None
    grpc_status: str | None = None
    abort_per_million: int = 0
    _decisions: tuple[FaultDecision, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        delay, abort_status, grpc_status = self.delay, self.abort_status, self.grpc_status
        if abort_status is not None and grpc_status is not None:
            raise ValueError("an abort has httpStatus or grpcStatus, not both")
        if delay is None:
            object.__setattr__(self, "delay_per_million", 0)
        if abort_status is None and grpc_status is None:
            object.__setattr__(self, "abort_per_million", 0)
        # The four possible outcomes, built once: index 2 * delayed + aborted.
        object.__setattr__(self, "_decisions", tuple(
            FaultDecision(
                delay=delay if delayed else None,
                abort_status=abort_status if aborted else None,
                grpc_status=grpc_status if aborted else None,
            )
            for delayed in (False, True)
            for aborted in (False, True)
        ))  # fmt: skip

    @classmethod
    def from_api(cls, f: HTTPFaultInjection) -> FaultPolicy:
        """route.go TranslateFault (see the module docstring for the percentage rules)."""
        delay, abort = f.delay, f.abort
        delay_odds = abort_odds = 0
        if delay is not None:
            value = delay.percentage.value if delay.percentage is not None else None
            delay_odds = per_million(value, delay.percent)
        if abort is not None and abort.percentage is not None:
            abort_odds = per_million(abort.percentage.value)
        grpc = abort.grpc_status if abort is not None else None
        return cls(
            delay=delay.fixed_delay if delay is not None else None,
            delay_per_million=delay_odds,
            abort_status=abort.http_status if abort is not None else None,
            grpc_status=None if grpc is None else str(GRPC_CODES[grpc]),
            abort_per_million=abort_odds,
        )

    @property
    def active(self) -> bool:
        """False when no request can be faulted (no delay or abort, or 0 % for both)."""
        return self.delay_per_million > 0 or self.abort_per_million > 0

    def decide(self, rng: random.Random) -> FaultDecision:
        """Independent draws: delay first, then abort, as Envoy's fault filter orders them."""
        delayed = rng.random() * PER_MILLION < self.delay_per_million
        aborted = rng.random() * PER_MILLION < self.abort_per_million
        return self._decisions[2 * delayed + aborted]
