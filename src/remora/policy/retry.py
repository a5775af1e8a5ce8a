"""Retry policy: Istio's HTTPRetry as Envoy's router applies it, one decision per failed try.

Sources (cite these when changing anything here):
- istio/istio pilot/pkg/networking/core/route/retry/retry.go (ConvertPolicy, parseRetryOn,
  the default policy);
- envoyproxy/envoy source/common/router/retry_state_impl.cc (wouldRetryFromHeaders,
  wouldRetryFromReset, shouldRetry) and docs router_filter.rst (x-envoy-retry-on);
- envoyproxy/envoy source/common/common/backoff_strategy.cc (JitteredExponentialBackOffStrategy).

Everything that does not depend on the request is folded into sets and flags in the
constructor, so `retriable()` is a handful of attribute reads on the proxy's hot path.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from remora.api.networking.http_route import HTTPRetry

# retry.go defaultRetryOn. The default sets no retriable status codes: istio/istio#52111 made
# EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY (default true) drop 503, and #56023 removed the flag
# with the 1.23 compatibility profile, so current Istio never retries 503 by default.
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
DEFAULT_ATTEMPTS = 2
HOST_SELECTION_ATTEMPTS = 5  # retry.go HostSelectionRetryMaxAttempts on every policy it builds
BASE_INTERVAL = 0.025  # Envoy runtime upstream.base_retry_backoff_ms default 25
PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts"
PREVIOUS_PRIORITIES = "envoy.retry_priorities.previous_priorities"

_HTTP_CONDITIONS = frozenset({
    "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "retriable-4xx",
    "refused-stream", "retriable-status-codes", "retriable-headers", "envoy-ratelimited",
    "http3-post-connect-failure",
})  # fmt: skip
# x-envoy-retry-grpc-on values and the grpc-status codes they match (router_filter.rst).
GRPC_CONDITIONS = {
    "cancelled": 1,
    "deadline-exceeded": 4,
    "resource-exhausted": 8,
    "internal": 13,
    "unavailable": 14,
}
CONDITIONS = _HTTP_CONDITIONS | GRPC_CONDITIONS.keys()
GATEWAY_ERRORS = frozenset({502, 503, 504})  # Http::CodeUtility::isGatewayError
SERVER_ERRORS = frozenset(range(500, 600))  # Http::CodeUtility::is5xx
TOO_EARLY = 425  # retried at once, without back-off, when listed (Envoy RetryImmediately)


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one try to an upstream host produced; header names are lowercase."""

    connect_failure: bool = False  # TCP connect refused / connect timeout (connect-failure)
    reset: bool = False  # connection closed/reset before a response head (reset)
    timeout: bool = False  # per-try timeout fired before a response head
    overflow: bool = False  # circuit breaker refused the attempt (UO): never retried
    status: int | None = None  # response status, when a head arrived
    headers: Mapping[str, str] | None = None  # response headers (ratelimited, grpc-status)
    refused_stream: bool = False  # HTTP/2 RST_STREAM REFUSED_STREAM (refused-stream)
    # Whether request bytes went upstream before the reset/timeout. Envoy's reset-before-request
    # retries only when they did not (wouldRetryFromReset: !upstream_request_started), which is
    # what makes it safe for non-idempotent requests; a connect failure never sent anything.
    request_sent: bool = True


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after `backoff` seconds."""

    backoff: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Answer with the last result; `exhausted` means retries ran out (flag URX)."""

    exhausted: bool


_EXHAUSTED = GiveUp(exhausted=True)
_NOT_RETRIABLE = GiveUp(exhausted=False)
_IMMEDIATE = Retry(backoff=0.0)


@dataclass(frozen=True, slots=True)
class RetrySpec:
    """An HTTPRetry as plain data, as the snapshot carries it: the proxy builds a RetryPolicy
    from it per route (`RetryPolicy.from_spec`), since the policy also depends on the route's
    timeout, fault and the cluster's consistent hashing. None fields are unset."""

    attempts: int | None = None
    per_try_timeout: float | None = None
    retry_on: str | None = None
    retry_remote_localities: bool | None = None
    retry_ignore_previous_hosts: bool | None = None
    backoff: float | None = None

    @classmethod
    def from_api(cls, retry: HTTPRetry) -> RetrySpec:
        return cls(
            attempts=retry.attempts, per_try_timeout=retry.per_try_timeout,
            retry_on=retry.retry_on, retry_remote_localities=retry.retry_remote_localities,
            retry_ignore_previous_hosts=retry.retry_ignore_previous_hosts,
            backoff=retry.backoff,
        )  # fmt: skip


def parse_retry_on(text: str) -> tuple[str, tuple[int, ...]]:
    """retry.go parseRetryOn: bare status codes become retriable status codes.

    "retriable-status-codes" is appended when codes were given without it, as Istio does.
    """
    conditions: list[str] = []
    codes: list[int] = []
    for raw in text.split(","):
        part = raw.strip()
        if part.isdigit():
            codes.append(int(part))
        elif part:
            conditions.append(part)
    retry_on = ",".join(conditions)
    if codes and "retriable-status-codes" not in retry_on:
        retry_on = f"{retry_on},retriable-status-codes" if retry_on else "retriable-status-codes"
    return retry_on, tuple(codes)


def backoff_caps(base_ms: int, max_ms: int) -> tuple[int, ...]:
    """Envoy JitteredExponentialBackOffStrategy intervals: B, 2B, 4B ... then max.

    The interval doubles while it is below max/2 (integer division) and is max afterwards;
    retry n waits `random % caps[n]` ms, uniform in [0, caps[n]). The router docs still give
    the older [0, (2^N - 1)B) range; the source is what runs.
    """
    if not 0 < base_ms <= max_ms:
        raise ValueError(f"back-off needs 0 < base ({base_ms} ms) <= max ({max_ms} ms)")
    caps = [base_ms]
    while caps[-1] < max_ms:
        caps.append(caps[-1] * 2 if caps[-1] < max_ms // 2 else max_ms)
    return tuple(caps)


class RetryPolicy:
    """When to try an upstream again, and how long to wait first (Envoy RetryPolicy)."""

    __slots__ = (
        "_caps",
        "_grpc",
        "_immediate",
        "_on_connect_failure",
        "_on_ratelimited",
        "_on_refused",
        "_on_reset",
        "_on_unsent",
        "_statuses",
        "attempts",
        "backoff_base",
        "backoff_max",
        "host_selection_attempts",
        "ignore_previous_hosts",
        "per_try_timeout",
        "remote_localities",
        "retriable_status_codes",
        "retry_on",
    )

    NONE: ClassVar[RetryPolicy]

    def __init__(
        self,
        *,
        attempts: int,
        retry_on: str = "",
        retriable_status_codes: Iterable[int] = (),
        per_try_timeout: float | None = None,
        ignore_previous_hosts: bool = True,
        host_selection_attempts: int = HOST_SELECTION_ATTEMPTS,
        remote_localities: bool = False,
        backoff_base: float = BASE_INTERVAL,
        backoff_max: float | None = None,
    ) -> None:
        conditions = frozenset(c for c in retry_on.split(",") if c)
        if unknown := conditions - CONDITIONS:
            raise ValueError(f"unknown retryOn conditions: {sorted(unknown)}")
        if attempts < 0:
            raise ValueError(f"attempts must not be negative: {attempts}")
        self.attempts = attempts
        self.retry_on = retry_on
        self.retriable_status_codes = tuple(retriable_status_codes)
        self.per_try_timeout = per_try_timeout
        self.ignore_previous_hosts = ignore_previous_hosts
        self.host_selection_attempts = host_selection_attempts
        self.remote_localities = remote_localities
        # RetryBackOff.max_interval: "The default is 10 times the base_interval".
        self.backoff_base = backoff_base
        self.backoff_max = backoff_base * 10 if backoff_max is None else backoff_max
        self._caps = backoff_caps(round(backoff_base * 1000), round(self.backoff_max * 1000))
        self._compile(conditions)

    def _compile(self, on: frozenset[str]) -> None:
        """Fold retry_on into the sets and flags `retriable()` reads (retry_state_impl.cc)."""
        statuses: set[int] = set()
        if "5xx" in on:
            statuses |= SERVER_ERRORS
        if "gateway-error" in on:
            statuses |= GATEWAY_ERRORS
        if "retriable-4xx" in on:
            statuses.add(409)  # "Currently, the only response code in this category is 409."
        codes = set(self.retriable_status_codes) if "retriable-status-codes" in on else set()
        self._statuses = frozenset(statuses | codes)
        self._immediate = TOO_EARLY in codes and TOO_EARLY not in statuses
        self._on_ratelimited = "envoy-ratelimited" in on
        self._grpc = frozenset(code for name, code in GRPC_CONDITIONS.items() if name in on)
        # wouldRetryFromReset: 5xx and gateway-error count every reset (but overflow) as a 5xx,
        # reset covers them all, reset-before-request those that sent nothing upstream.
        self._on_reset = bool(on & {"5xx", "gateway-error", "reset"})
        self._on_unsent = "reset-before-request" in on
        self._on_refused = "refused-stream" in on
        self._on_connect_failure = self._on_reset or self._on_unsent or "connect-failure" in on

    @classmethod
    def from_api(
        cls,
        retry: HTTPRetry | None,
        *,
        route_timeout: float | None,
        has_fault: bool,
        consistent_hash: bool = False,
    ) -> RetryPolicy:
        """`from_spec` of the HTTPRetry."""
        spec = RetrySpec.from_api(retry) if retry is not None else None
        return cls.from_spec(spec, route_timeout=route_timeout, has_fault=has_fault,
                             consistent_hash=consistent_hash)  # fmt: skip

    @classmethod
    def from_spec(
        cls,
        retry: RetrySpec | None,
        *,
        route_timeout: float | None,
        has_fault: bool,
        consistent_hash: bool = False,
    ) -> RetryPolicy:
        """retry.go ConvertPolicy; None → Istio's default policy; a fault route → no retries.

        istio/api HTTPRoute.fault: "Note that timeouts or retries will not be enabled when faults
        are enabled on the client side." With consistent hashing Istio adds no previous-hosts
        predicate unless retryIgnorePreviousHosts asks for it. perTryTimeout unset means the
        route timeout (Envoy RetryPolicy.per_try_timeout: "If left unspecified, Envoy will use
        the global route timeout for the request").
        """
        if has_fault:
            return cls.NONE
        if retry is None:
            return cls(
                attempts=DEFAULT_ATTEMPTS,
                retry_on=DEFAULT_RETRY_ON,
                per_try_timeout=route_timeout,
                ignore_previous_hosts=not consistent_hash,
            )
        if not retry.attempts:
            return cls.NONE  # "attempts: 0" explicitly disables the retry policy
        # ConvertPolicy keeps defaultRetryOn when the rule sets attempts but no retryOn.
        retry_on, codes = parse_retry_on(retry.retry_on or DEFAULT_RETRY_ON)
        ignore = retry.retry_ignore_previous_hosts
        return cls(
            attempts=retry.attempts,
            retry_on=retry_on,
            retriable_status_codes=codes,
            per_try_timeout=retry.per_try_timeout or route_timeout,
            ignore_previous_hosts=(not consistent_hash) if ignore is None else ignore,
            remote_localities=bool(retry.retry_remote_localities),
            backoff_base=retry.backoff or BASE_INTERVAL,
        )

    def retriable(self, result: AttemptResult) -> bool:
        """Whether Envoy's retry_on conditions cover this result (retries left aside)."""
        status = result.status
        if status is not None:
            headers = result.headers
            # x-envoy-ratelimited comes from an upstream Envoy: retried only on envoy-ratelimited.
            if headers and "x-envoy-ratelimited" in headers:
                return self._on_ratelimited
            if status in self._statuses:
                return True
            if self._grpc and headers:
                code = headers.get("grpc-status")
                return code is not None and code.isdigit() and int(code) in self._grpc
            return False
        if result.overflow:
            return False  # "we never retry if the reset reason is overflow"
        if result.connect_failure:
            return self._on_connect_failure
        if result.reset or result.timeout or result.refused_stream:
            return (
                self._on_reset
                or (self._on_unsent and not result.request_sent)
                or (self._on_refused and result.refused_stream)
            )
        return False

    def decide(
        self, *, retries_done: int, result: AttemptResult, rng: random.Random
    ) -> Retry | GiveUp:
        """Retry with a fully jittered back-off, or give up (exhausted → flag URX)."""
        if not self.retriable(result):
            return _NOT_RETRIABLE
        if retries_done >= self.attempts:
            return _EXHAUSTED
        if self._immediate and result.status == TOO_EARLY:
            return _IMMEDIATE
        return Retry(int(rng.random() * self.backoff_cap(retries_done)) / 1000)

    def backoff_cap(self, retries_done: int) -> int:
        """Upper bound (exclusive, ms) of the wait before retry number `retries_done + 1`."""
        caps = self._caps
        return caps[retries_done] if retries_done < len(caps) else caps[-1]

    def to_dict(self) -> dict[str, Any]:
        """Envoy's RouteAction.retry_policy for /config_dump; {} when retries are off."""
        if not self.attempts:
            return {}
        out: dict[str, Any] = {"retry_on": self.retry_on, "num_retries": self.attempts}
        if self.retriable_status_codes:
            out["retriable_status_codes"] = list(self.retriable_status_codes)
        if self.per_try_timeout is not None:
            out["per_try_timeout"] = self.per_try_timeout
        if self.ignore_previous_hosts:
            out["retry_host_predicate"] = [{"name": PREVIOUS_HOSTS}]
        out["host_selection_retry_max_attempts"] = self.host_selection_attempts
        if self.remote_localities:
            out["retry_priority"] = {"name": PREVIOUS_PRIORITIES, "update_frequency": 2}
        out["retry_back_off"] = {
            "base_interval": self.backoff_base,
            "max_interval": self.backoff_max,
        }
        return out

    def __repr__(self) -> str:
        return f"RetryPolicy({self.to_dict()})"


RetryPolicy.NONE = RetryPolicy(attempts=0, ignore_previous_hosts=False, host_selection_attempts=0)
