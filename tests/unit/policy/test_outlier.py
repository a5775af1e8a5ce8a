"""Outlier detection: Istio's defaults and Envoy's consecutive-error ejection.

Istio: pilot/pkg/networking/core/cluster_traffic_policy.go (applyOutlierDetection).
Envoy: docs "Outlier detection" and source/common/upstream/outlier_detection_impl.cc.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from remora.api.networking.traffic_policy import OutlierDetection
from remora.policy.outlier import OutlierConfig, OutlierDetector


def config(spec: dict[str, object]) -> OutlierConfig:
    made = OutlierConfig.from_api(OutlierDetection.model_validate(spec))
    assert made is not None
    return made


def fail(detector: OutlierDetector, host: int, times: int, *, now: float = 0.0,
         status: int | None = 500) -> bool:  # fmt: skip
    ejected = False
    for _ in range(times):
        ejected = detector.record(host, status=status, local_failure=status is None, now=now)
    return ejected


def test_istio_defaults() -> None:
    assert OutlierConfig.from_api(None) is None
    made = config({})
    assert (made.consecutive_5xx, made.consecutive_gateway, made.consecutive_local_origin) == (
        5, 0, 0)  # fmt: skip
    assert (made.interval, made.base_ejection_time, made.max_ejection_time) == (10.0, 30.0, 300.0)
    assert (made.max_ejection_percent, made.min_health_percent) == (10, 0)
    assert not made.split_local_origin


def test_zero_5xx_disables_and_gateway_errors_enable() -> None:
    made = config({"consecutive5xxErrors": 0, "consecutiveGatewayErrors": 3})
    assert (made.consecutive_5xx, made.consecutive_gateway) == (0, 3)
    detector = OutlierDetector(made, 10)
    assert not fail(detector, 0, 10, status=500)  # 5xx counting is off
    assert fail(detector, 1, 3, status=503)  # 502/503/504 are gateway errors


def test_local_origin_needs_split_and_defaults_to_5() -> None:
    assert config({"splitExternalLocalOriginErrors": True}).consecutive_local_origin == 5
    made = config({"splitExternalLocalOriginErrors": True, "consecutiveLocalOriginFailures": 2})
    detector = OutlierDetector(made, 10)
    assert not fail(detector, 0, 1, status=None)
    assert fail(detector, 0, 1, status=None)


def test_max_ejection_time_is_never_below_base() -> None:
    assert config({"baseEjectionTime": "400s"}).max_ejection_time == 400.0


def test_ejects_at_the_fifth_consecutive_5xx() -> None:
    detector = OutlierDetector(config({}), 10)
    assert not fail(detector, 3, 4)
    assert fail(detector, 3, 1)
    assert detector.is_ejected(3) and detector.times_ejected(3) == 1
    assert 3 not in detector.usable()


def test_a_success_resets_the_counters() -> None:
    detector = OutlierDetector(config({}), 10)
    for _ in range(3):
        assert not fail(detector, 0, 4)
        detector.record(0, status=200, local_failure=False, now=0.0)
    assert not detector.is_ejected(0)


def test_another_5xx_resets_the_gateway_counter() -> None:
    detector = OutlierDetector(config({"consecutive5xxErrors": 0,
                                       "consecutiveGatewayErrors": 2}), 10)  # fmt: skip
    fail(detector, 0, 1, status=502)
    fail(detector, 0, 1, status=500)
    assert not fail(detector, 0, 1, status=504)
    assert fail(detector, 0, 1, status=503)


def test_local_failures_count_as_5xx_without_split() -> None:
    # Envoy putResultNoLocalExternalSplit: connect failure -> 503
    detector = OutlierDetector(config({}), 10)
    assert fail(detector, 0, 5, status=None)


def test_with_split_local_failures_do_not_count_as_5xx() -> None:
    detector = OutlierDetector(config({"splitExternalLocalOriginErrors": True,
                                       "consecutiveLocalOriginFailures": 50}), 10)  # fmt: skip
    for _ in range(4):
        fail(detector, 0, 1, status=500)
        fail(detector, 0, 1, status=None)
    assert not detector.is_ejected(0)
    assert fail(detector, 0, 1, status=500)


def test_always_one_host_ejectable_even_under_the_percentage() -> None:
    # 3 hosts at 10 %: one ejection is over 10 % but the first one is always allowed
    detector = OutlierDetector(config({}), 3)
    assert fail(detector, 0, 5)
    assert not fail(detector, 1, 5)
    assert detector.usable() == [1, 2]


def test_unejection_after_the_ejection_time_in_a_sweep() -> None:
    detector = OutlierDetector(config({}), 10)
    fail(detector, 0, 5, now=100.0)
    assert not detector.sweep(110.0) and not detector.sweep(129.9)
    assert detector.sweep(130.0)
    assert not detector.is_ejected(0)
    # the counters restart: four more errors do not eject again
    assert not fail(detector, 0, 4, now=131.0)


def test_second_ejection_lasts_twice_as_long() -> None:
    detector = OutlierDetector(config({}), 10)
    fail(detector, 0, 5, now=0.0)
    detector.sweep(30.0)
    fail(detector, 0, 5, now=31.0)
    assert detector.times_ejected(0) == 2 and detector.ejection_time(0) == 60.0
    assert not detector.sweep(90.0) and detector.sweep(91.0)


def test_backoff_decays_while_the_host_stays_healthy() -> None:
    # Envoy onIntervalTimer: "Decrement time backoff for all hosts which have not been ejected"
    detector = OutlierDetector(config({}), 10)
    fail(detector, 0, 5, now=0.0)
    detector.sweep(30.0)
    fail(detector, 0, 5, now=30.0)
    detector.sweep(90.0)
    assert detector.backoff(0) == 2
    detector.sweep(100.0)
    assert detector.backoff(0) == 1
    detector.sweep(110.0)
    assert detector.backoff(0) == 0
    fail(detector, 0, 5, now=111.0)
    assert detector.ejection_time(0) == 30.0


def test_panic_below_min_health_percent_uses_all_hosts() -> None:
    # 2 hosts, 50 % ejectable; 1 of 2 healthy = 50 % < 60 % and 1.4 × 50 % < 100 %
    detector = OutlierDetector(config({"maxEjectionPercent": 50, "minHealthPercent": 60}), 2)
    fail(detector, 0, 5)
    assert detector.usable() == [0, 1]


def test_no_panic_while_overprovisioned_health_reaches_100() -> None:
    # Envoy "Panic threshold": disregarded while normalized total availability is 100 %
    detector = OutlierDetector(config({"maxEjectionPercent": 50, "minHealthPercent": 90}), 10)
    fail(detector, 0, 5)
    fail(detector, 1, 5)
    assert detector.usable() == list(range(2, 10))  # 80 % × 1.4 ≥ 100


def test_all_ejected_without_panic_leaves_nothing() -> None:
    detector = OutlierDetector(config({}), 1)
    fail(detector, 0, 5)
    assert detector.usable() == []  # Envoy: no healthy upstream (503 UH)


@given(
    hosts=st.integers(1, 40),
    percent=st.integers(1, 100),
    events=st.lists(st.tuples(st.integers(0, 39), st.sampled_from([200, 500, 503, None])),
                    max_size=300),
)
def test_never_more_ejected_than_max_ejection_percent_allows(
    hosts: int, percent: int, events: list[tuple[int, int | None]]
) -> None:
    detector = OutlierDetector(config({"maxEjectionPercent": percent,
                                       "consecutive5xxErrors": 2}), hosts)  # fmt: skip
    bound = max(1, math.floor(hosts * percent / 100))
    for step, (host, status) in enumerate(events):
        detector.record(host % hosts, status=status, local_failure=status is None, now=step)
        detector.sweep(float(step))
        assert sum(detector.is_ejected(h) for h in range(hosts)) <= bound
        assert detector.ejected == sum(detector.is_ejected(h) for h in range(hosts))


@given(cycles=st.integers(1, 20))
def test_ejection_time_grows_with_ejections_up_to_the_cap(cycles: int) -> None:
    detector = OutlierDetector(config({}), 10)
    now = 0.0
    previous = 0.0
    for count in range(1, cycles + 1):
        fail(detector, 0, 5, now=now)
        duration = detector.ejection_time(0)
        assert duration == min(30.0 * count, 300.0)
        assert previous <= duration
        previous = duration
        now += duration
        assert detector.sweep(now)  # back exactly when the time has passed
