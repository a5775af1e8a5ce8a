"""RetryPolicy against Istio's retry translation and Envoy's retry_on semantics.

Istio: istio/istio pilot/pkg/networking/core/route/retry/retry.go (ConvertPolicy, parseRetryOn,
DefaultPolicy); https://istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPRetry
Envoy: https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/router_filter
(x-envoy-retry-on, x-envoy-retry-grpc-on) and source/common/router/retry_state_impl.cc
(wouldRetryFromHeaders, wouldRetryFromReset); back-off in source/common/common/backoff_strategy.cc.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remora.api.networking.http_route import RETRY_ON_POLICIES, HTTPRetry
from remora.policy.retry import (
    CONDITIONS,
    DEFAULT_RETRY_ON,
    AttemptResult,
    GiveUp,
    Retry,
    RetryPolicy,
    backoff_caps,
    parse_retry_on,
)


def grpc(code: int) -> AttemptResult:
    return AttemptResult(status=200, headers={"grpc-status": str(code)})


RESULTS = {
    "200": AttemptResult(status=200),
    "404": AttemptResult(status=404),
    "409": AttemptResult(status=409),
    "500": AttemptResult(status=500),
    "502": AttemptResult(status=502),
    "503": AttemptResult(status=503),
    "504": AttemptResult(status=504),
    "599": AttemptResult(status=599),
    "reset": AttemptResult(reset=True),
    "reset-unsent": AttemptResult(reset=True, request_sent=False),
    "timeout": AttemptResult(timeout=True),
    "connect": AttemptResult(connect_failure=True, request_sent=False),
    "refused": AttemptResult(refused_stream=True),
    "overflow": AttemptResult(overflow=True),
    "ratelimited-429": AttemptResult(status=429, headers={"x-envoy-ratelimited": "true"}),
    "ratelimited-503": AttemptResult(status=503, headers={"x-envoy-ratelimited": "true"}),
    "grpc-cancelled": grpc(1),
    "grpc-deadline": grpc(4),
    "grpc-exhausted": grpc(8),
    "grpc-internal": grpc(13),
    "grpc-unavailable": grpc(14),
    "grpc-unknown": grpc(2),
}
RESETS = {"reset", "reset-unsent", "timeout", "connect", "refused"}

# retry_on → the results Envoy retries; each row quotes router_filter.rst.
CONDITION_TABLE = [
    # "5xx: ... responds with any 5xx response code, or does not respond at all
    # (disconnect/reset/read timeout). (Includes connect-failure and refused-stream)"
    ("5xx", {"500", "502", "503", "504", "599"} | RESETS),
    # "gateway-error: similar to the 5xx policy but will only retry requests that result in a
    # 502, 503, or 504." Resets count as gateway errors too (wouldRetryFromReset).
    ("gateway-error", {"502", "503", "504"} | RESETS),
    # "reset: ... if the upstream server does not respond at all (disconnect/reset/read timeout.)"
    ("reset", RESETS),
    # reset-before-request: only when nothing was sent upstream (!upstream_request_started);
    # a connection failure never sent anything.
    ("reset-before-request", {"reset-unsent", "connect"}),
    # "connect-failure: ... failed because of a connection failure to the upstream server
    # (connect timeout, etc.)"
    ("connect-failure", {"connect"}),
    # "retriable-4xx: ... Currently, the only response code in this category is 409."
    ("retriable-4xx", {"409"}),
    # "refused-stream: ... resets the stream with a REFUSED_STREAM error code."
    ("refused-stream", {"refused"}),
    # "retriable-status-codes: ... any response code matching one defined in the retry policy";
    # Istio turns bare codes in retryOn into that list.
    ("retriable-status-codes,404,503", {"404", "503"}),
    # "retriable-headers": Istio's HTTPRetry has no retriable_headers, so nothing matches.
    ("retriable-headers", set()),
    # "envoy-ratelimited: Envoy will retry if the header x-envoy-ratelimited is present."
    ("envoy-ratelimited", {"ratelimited-429", "ratelimited-503"}),
    # "http3-post-connect-failure: ... sent over HTTP/3 ..." — no HTTP/3 upstreams here.
    ("http3-post-connect-failure", set()),
    # x-envoy-retry-grpc-on: "if the gRPC status code in the response headers is ..."
    ("cancelled", {"grpc-cancelled"}),
    ("deadline-exceeded", {"grpc-deadline"}),
    ("internal", {"grpc-internal"}),
    ("resource-exhausted", {"grpc-exhausted"}),
    ("unavailable", {"grpc-unavailable"}),
]


def policy(retry_on: str, attempts: int = 3, **fields: object) -> RetryPolicy:
    api = HTTPRetry.model_validate({"attempts": attempts, "retryOn": retry_on, **fields})
    return RetryPolicy.from_api(api, route_timeout=None, has_fault=False)


def retried(p: RetryPolicy) -> set[str]:
    return {name for name, result in RESULTS.items() if p.retriable(result)}


@pytest.mark.parametrize(
    ("retry_on", "expected"), CONDITION_TABLE, ids=[r for r, _ in CONDITION_TABLE]
)
def test_envoy_retry_on_condition(retry_on: str, expected: set[str]) -> None:
    assert retried(policy(retry_on)) == expected


def test_every_istio_retry_on_value_is_in_the_table() -> None:
    # RETRY_ON_POLICIES in the api model is agent.supportedRetryOnPolicies.
    tabled = {part for row, _ in CONDITION_TABLE for part in row.split(",") if not part.isdigit()}
    assert tabled == RETRY_ON_POLICIES == CONDITIONS


def test_conditions_combine_as_a_union() -> None:
    assert retried(policy("connect-failure,retriable-4xx,unavailable")) == {
        "connect",
        "409",
        "grpc-unavailable",
    }


def test_overflow_is_never_retried() -> None:
    # wouldRetryFromReset: "we never retry if the reset reason is overflow"
    everything = policy(",".join(sorted(CONDITIONS)) + ",503")
    assert not everything.retriable(RESULTS["overflow"])
    decision = everything.decide(retries_done=0, result=RESULTS["overflow"], rng=random.Random(1))
    assert decision == GiveUp(exhausted=False)


def test_x_envoy_ratelimited_response_is_retried_only_under_envoy_ratelimited() -> None:
    # wouldRetryFromHeaders: the header short-circuits every other condition, 5xx included.
    assert not policy("5xx,503").retriable(RESULTS["ratelimited-503"])
    assert policy("5xx,envoy-ratelimited").retriable(RESULTS["ratelimited-503"])


def test_grpc_status_must_be_a_number() -> None:
    bad = AttemptResult(status=200, headers={"grpc-status": "UNAVAILABLE"})
    assert not policy("unavailable").retriable(bad)
    assert not policy("unavailable").retriable(AttemptResult(status=200, headers={}))


def test_too_early_is_retried_immediately() -> None:
    # wouldRetryFromHeaders: a listed 425 returns RetryImmediately (no back-off timer) when the
    # downstream request was not early data, which it never is here.
    p = policy("425")
    result = AttemptResult(status=425)
    assert p.decide(retries_done=0, result=result, rng=random.Random(3)) == Retry(0.0)
    assert p.decide(retries_done=3, result=result, rng=random.Random(3)) == GiveUp(exhausted=True)


# --- Istio translation ---------------------------------------------------------------------


def test_istio_default_policy_when_the_route_sets_no_retries() -> None:
    # retry.go DefaultPolicy: NumRetries 2, defaultRetryOn, HostSelectionRetryMaxAttempts 5,
    # RetryHostPredicate previous_hosts; no RetriableStatusCodes (503 excluded: #52111, #56023).
    p = RetryPolicy.from_api(None, route_timeout=None, has_fault=False)
    assert p.attempts == 2
    assert p.retry_on == DEFAULT_RETRY_ON
    assert p.retriable_status_codes == ()
    assert p.host_selection_attempts == 5
    assert p.ignore_previous_hosts is True
    assert retried(p) == {"connect", "refused", "grpc-cancelled", "grpc-unavailable"}
    assert p.to_dict() == {
        "retry_on": DEFAULT_RETRY_ON,
        "num_retries": 2,
        "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts"}],
        "host_selection_retry_max_attempts": 5,
        "retry_back_off": {"base_interval": 0.025, "max_interval": 0.25},
    }


def test_istio_default_policy_with_consistent_hash_keeps_the_previous_host() -> None:
    # retry.go DefaultConsistentHashPolicy: "we don't want to use other hosts during retries"
    p = RetryPolicy.from_api(None, route_timeout=None, has_fault=False, consistent_hash=True)
    assert p.ignore_previous_hosts is False
    assert "retry_host_predicate" not in p.to_dict()


@pytest.mark.parametrize("retries", [{"attempts": 0}, {}])
def test_attempts_zero_disables_retries(retries: dict[str, int]) -> None:
    # ConvertPolicy: "if in.Attempts <= 0": "Configuration is explicitly disabling the retry
    # policy"
    api = HTTPRetry.model_validate(retries)
    p = RetryPolicy.from_api(api, route_timeout=2.0, has_fault=False)
    assert p is RetryPolicy.NONE
    assert p.to_dict() == {}
    decision = p.decide(retries_done=0, result=RESULTS["connect"], rng=random.Random(0))
    assert decision == GiveUp(exhausted=False)


def test_a_route_with_a_fault_gets_no_retries() -> None:
    # HTTPRoute.fault: "Note that timeouts or retries will not be enabled when faults are
    # enabled on the client side."
    api = HTTPRetry.model_validate({"attempts": 3, "retryOn": "5xx"})
    assert RetryPolicy.from_api(api, route_timeout=1.0, has_fault=True) is RetryPolicy.NONE
    assert RetryPolicy.from_api(None, route_timeout=1.0, has_fault=True) is RetryPolicy.NONE


@pytest.mark.parametrize(
    ("retry_on", "conditions", "codes"),
    [
        ("5xx,503", "5xx,retriable-status-codes", (503,)),
        ("503", "retriable-status-codes", (503,)),
        ("retriable-status-codes,503,504", "retriable-status-codes", (503, 504)),
        ("gateway-error, connect-failure", "gateway-error,connect-failure", ()),
        ("5xx", "5xx", ()),
    ],
)
def test_istio_parse_retry_on(retry_on: str, conditions: str, codes: tuple[int, ...]) -> None:
    # parseRetryOn: integers with a StatusText are status codes; "retriable-status-codes" is
    # added when codes were given without it.
    assert parse_retry_on(retry_on) == (conditions, codes)


def test_user_policy_fields() -> None:
    p = policy(
        "5xx",
        attempts=4,
        perTryTimeout="300ms",
        retryRemoteLocalities=True,
        retryIgnorePreviousHosts=False,
        backoff="100ms",
    )
    assert (p.attempts, p.per_try_timeout, p.remote_localities) == (4, 0.3, True)
    assert p.ignore_previous_hosts is False
    assert p.host_selection_attempts == 5  # newRetryPolicy sets it for user policies too
    dump = p.to_dict()
    assert dump["retry_priority"]["name"] == "envoy.retry_priorities.previous_priorities"
    # Istio sets only base_interval; Envoy's max_interval "default is 10 times the base_interval"
    assert dump["retry_back_off"] == {"base_interval": 0.1, "max_interval": 1.0}


def test_user_policy_defaults() -> None:
    api = HTTPRetry.model_validate({"attempts": 3})
    p = RetryPolicy.from_api(api, route_timeout=5.0, has_fault=False)
    assert p.retry_on == DEFAULT_RETRY_ON  # ConvertPolicy keeps defaultRetryOn
    assert p.per_try_timeout == 5.0  # per_try_timeout unset: the route timeout applies
    assert p.ignore_previous_hosts is True  # retryIgnorePreviousHosts defaults to true
    hashed = RetryPolicy.from_api(api, route_timeout=None, has_fault=False, consistent_hash=True)
    assert hashed.ignore_previous_hosts is False
    asked = HTTPRetry.model_validate({"attempts": 3, "retryIgnorePreviousHosts": True})
    kept = RetryPolicy.from_api(asked, route_timeout=None, has_fault=False, consistent_hash=True)
    assert kept.ignore_previous_hosts is True


def test_constructor_rejects_what_envoy_rejects() -> None:
    with pytest.raises(ValueError, match="unknown retryOn"):
        RetryPolicy(attempts=1, retry_on="5xx,bogus")
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(attempts=-1)
    with pytest.raises(ValueError, match="back-off"):
        RetryPolicy(attempts=1, backoff_base=0.1, backoff_max=0.05)


# --- decisions and back-off ----------------------------------------------------------------

outcomes = st.sampled_from(sorted(RESULTS))


@given(
    attempts=st.integers(0, 8),
    retry_on=st.sampled_from([row for row, _ in CONDITION_TABLE] + [DEFAULT_RETRY_ON]),
    names=st.lists(outcomes, min_size=12, max_size=12),
    seed=st.integers(0, 2**32),
)
def test_retries_never_exceed_attempts(
    attempts: int, retry_on: str, names: list[str], seed: int
) -> None:
    # VirtualService HTTPRetry.attempts: "Number of retries to be allowed for a given request."
    p = policy(retry_on, attempts=attempts) if attempts else RetryPolicy.NONE
    rng = random.Random(seed)
    tries = 0
    while True:
        result = RESULTS[names[tries]]
        tries += 1
        decision = p.decide(retries_done=tries - 1, result=result, rng=rng)
        if isinstance(decision, GiveUp):
            break
    assert tries <= 1 + p.attempts
    # URX exactly when the last result was retriable and every retry was used.
    assert decision.exhausted == (p.retriable(result) and tries == 1 + p.attempts)


def test_envoy_default_backoff_intervals() -> None:
    # JitteredExponentialBackOffStrategy: base 25 ms, doubling, capped at 10 x base = 250 ms.
    assert backoff_caps(25, 250) == (25, 50, 100, 200, 250)
    # The interval doubles only while below max/2 (integer division), else jumps to max.
    assert backoff_caps(125, 251) == (125, 251)
    assert backoff_caps(100, 100) == (100,)
    p = RetryPolicy(attempts=10, retry_on="5xx")
    assert [p.backoff_cap(n) for n in range(7)] == [25, 50, 100, 200, 250, 250, 250]


@given(
    base=st.integers(1, 500),
    factor=st.integers(1, 20),
    retries_done=st.integers(0, 30),
    seed=st.integers(0, 2**32),
)
def test_backoff_is_fully_jittered_below_a_growing_cap(
    base: int, factor: int, retries_done: int, seed: int
) -> None:
    # "fully jittered exponential back-off": nextBackOffMs returns random % interval.
    p = RetryPolicy(
        attempts=31, retry_on="reset", backoff_base=base / 1000, backoff_max=base * factor / 1000
    )
    cap = p.backoff_cap(retries_done)
    decision = p.decide(retries_done=retries_done, result=RESULTS["reset"], rng=random.Random(seed))
    assert isinstance(decision, Retry)
    millis = decision.backoff * 1000
    assert 0 <= millis < cap and abs(millis - round(millis)) < 1e-6  # whole ms, as Envoy
    assert min(base * 2 ** min(retries_done, 30), base * factor) <= cap <= base * factor
    assert p.backoff_cap(retries_done + 1) >= cap


def test_backoff_draws_cover_the_whole_interval() -> None:
    p = RetryPolicy(attempts=5, retry_on="reset")
    rng = random.Random(4)
    for retry, cap in enumerate((25, 50, 100, 200, 250)):
        seen = set()
        for _ in range(cap * 40):
            decision = p.decide(retries_done=retry, result=RESULTS["reset"], rng=rng)
            assert isinstance(decision, Retry)
            seen.add(round(decision.backoff * 1000))
        assert seen == set(range(cap))


def test_not_retriable_comes_before_exhausted() -> None:
    # shouldRetry: NoRetry is decided before the retries_remaining_ == 0 check (no URX flag).
    p = policy("connect-failure", attempts=1)
    rng = random.Random(0)
    assert p.decide(retries_done=5, result=RESULTS["503"], rng=rng) == GiveUp(exhausted=False)
    assert p.decide(retries_done=1, result=RESULTS["connect"], rng=rng) == GiveUp(exhausted=True)
