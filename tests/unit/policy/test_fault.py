"""FaultPolicy against Istio's TranslateFault and Envoy's fault filter.

Istio: istio/istio pilot/pkg/networking/core/route/route.go (TranslateFault,
translatePercentToFractionalPercent, translateIntegerToFractionalPercent);
https://istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPFaultInjection
Envoy: https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/fault_filter
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remora.api.networking.http_route import HTTPFaultInjection
from remora.policy.fault import FaultDecision, FaultPolicy

DRAWS = 20_000


def fault(spec: dict[str, Any]) -> FaultPolicy:
    return FaultPolicy.from_api(HTTPFaultInjection.model_validate(spec))


def within_binomial(count: int, n: int, p: float) -> bool:
    """count is within 5 standard deviations (+1 for rounding) of n * p."""
    return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1


@pytest.mark.parametrize(
    ("spec", "delay_odds"),
    [
        ({"fixedDelay": "5s", "percentage": {"value": 50}}, 500_000),
        ({"fixedDelay": "5s", "percentage": {"value": 0.1}}, 1_000),
        ({"fixedDelay": "5s", "percentage": {"value": 0.0001}}, 1),  # Istio's smallest step
        ({"fixedDelay": "5s", "percentage": {"value": 100}}, 1_000_000),
        ({"fixedDelay": "5s", "percent": 30}, 300_000),  # deprecated int percent, per hundred
        (
            {"fixedDelay": "5s", "percent": 30, "percentage": {"value": 5}},
            50_000,
        ),  # percentage wins
        ({"fixedDelay": "5s"}, 0),  # "If left unspecified, no request will be delayed"
        ({"fixedDelay": "5s", "percentage": {"value": 0}}, 0),
    ],
)
def test_istio_delay_percentage_translation(spec: dict[str, Any], delay_odds: int) -> None:
    policy = fault({"delay": spec})
    assert policy.delay == 5.0
    assert policy.delay_per_million == delay_odds
    assert policy.abort_per_million == 0


@pytest.mark.parametrize(
    ("spec", "abort_odds"),
    [
        ({"httpStatus": 503, "percentage": {"value": 12.5}}, 125_000),
        ({"httpStatus": 503}, 0),  # FaultAbort.percentage unset: Envoy's default is 0
    ],
)
def test_istio_abort_percentage_translation(spec: dict[str, Any], abort_odds: int) -> None:
    assert fault({"abort": spec}).abort_per_million == abort_odds


def test_no_percentage_means_no_fault() -> None:
    # The rule, and what Istio's translation yields (numerator 0).
    policy = fault({"delay": {"fixedDelay": "1s"}, "abort": {"httpStatus": 500}})
    assert not policy.active
    rng = random.Random(7)
    assert all(policy.decide(rng) == FaultDecision() for _ in range(2_000))


def test_grpc_abort_carries_the_numeric_grpc_status() -> None:
    # TranslateFault: FaultAbort_GrpcStatus{GrpcStatus: SupportedGRPCStatus[name]}
    policy = fault({"abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 100}}})
    assert policy.decide(random.Random(0)) == FaultDecision(grpc_status="14")


def test_full_percentages_always_fault() -> None:
    policy = fault(
        {
            "delay": {"fixedDelay": "250ms", "percentage": {"value": 100}},
            "abort": {"httpStatus": 418, "percentage": {"value": 100}},
        }
    )
    rng = random.Random(1)
    assert all(
        policy.decide(rng) == FaultDecision(delay=0.25, abort_status=418) for _ in range(1_000)
    )


@settings(max_examples=25, deadline=None)
@given(percent=st.floats(0, 100).map(lambda v: round(v, 4)), seed=st.integers(0, 2**32))
def test_fault_frequencies_converge_to_the_percentage(percent: float, seed: int) -> None:
    # FractionalPercent per million: P = uint32(value * 10000) / 1e6 for each of delay and abort.
    policy = fault(
        {
            "delay": {"fixedDelay": "1s", "percentage": {"value": percent}},
            "abort": {"httpStatus": 503, "percentage": {"value": round(100 - percent, 4)}},
        }
    )
    rng = random.Random(seed)
    decisions = [policy.decide(rng) for _ in range(DRAWS)]
    delayed = sum(d.delay is not None for d in decisions)
    aborted = sum(d.abort_status is not None for d in decisions)
    assert within_binomial(delayed, DRAWS, policy.delay_per_million / 1e6)
    assert within_binomial(aborted, DRAWS, policy.abort_per_million / 1e6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delay_and_abort_are_independent(seed: int) -> None:
    # HTTPFaultInjection: "Delay and abort faults are independent of one another, even if both
    # are specified simultaneously."
    policy = fault(
        {
            "delay": {"fixedDelay": "1s", "percentage": {"value": 50}},
            "abort": {"httpStatus": 503, "percentage": {"value": 30}},
        }
    )
    rng = random.Random(seed)
    decisions = [policy.decide(rng) for _ in range(DRAWS)]
    delayed = [d for d in decisions if d.delay is not None]
    undelayed = [d for d in decisions if d.delay is None]
    both = sum(d.abort_status is not None for d in delayed)
    assert within_binomial(both, DRAWS, 0.5 * 0.3)
    # The abort rate is the same whether or not the request was delayed.
    assert within_binomial(both, len(delayed), 0.3)
    assert within_binomial(sum(d.abort_status is not None for d in undelayed), len(undelayed), 0.3)
