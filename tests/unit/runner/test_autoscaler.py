"""The HPA algorithm (kubernetes.io, "Horizontal Pod Autoscaling": Algorithm details, Support
for multiple metrics, Configurable scaling behavior, Default Behavior; the controller's
replica_calculator.go and horizontal.go for missing/unready pods and rate limits)."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remora.api.kube.autoscaling import HorizontalPodAutoscaler
from remora.api.loader import load_text
from remora.runner.autoscaler import PodMetrics, ScaleHistory, desired_replicas

CPU50 = (
    "[{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}]"
)
RPS10 = ("[{type: Pods, pods: {metric: {name: requests_per_second}, "
         "target: {type: AverageValue, averageValue: '10'}}}]")  # fmt: skip


def hpa(
    metrics: str = CPU50, *, lo: int = 1, hi: int = 10, behavior: str = ""
) -> HorizontalPodAutoscaler:
    text = f"""
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    metadata: {{name: order}}
    spec:
      scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: order}}
      minReplicas: {lo}
      maxReplicas: {hi}
      metrics: {metrics}
    """
    text = text.rstrip() + "\n"
    if behavior:
        text += f"      behavior: {behavior}\n"
    result = load_text(textwrap.dedent(text), "hpa.yaml")
    assert not result.issues, [str(i) for i in result.issues]
    resource = result.resources[0]
    assert isinstance(resource, HorizontalPodAutoscaler)
    return resource


def cpu(*usage: float | None, request: int = 100, ready: bool = True) -> list[PodMetrics]:
    return [PodMetrics(f"p{i}", ready=ready, cpu_millis=u, cpu_request_millis=request)
            for i, u in enumerate(usage)]  # fmt: skip


def rps(*values: float | None) -> list[PodMetrics]:
    return [PodMetrics(f"p{i}", values={} if v is None else {"requests_per_second": v})
            for i, v in enumerate(values)]  # fmt: skip


NO_WINDOW = "{scaleDown: {stabilizationWindowSeconds: 0}}"


def decide(h: HorizontalPodAutoscaler, pods: list[PodMetrics], *, current: int | None = None,
           history: ScaleHistory | None = None, now: float = 0) -> int:  # fmt: skip
    return desired_replicas(h, current=len(pods) if current is None else current, metrics=pods,
                            history=history or ScaleHistory(), now=now)  # fmt: skip


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        # desiredReplicas = ceil[currentReplicas * (currentMetricValue / desiredMetricValue)]
        ((100, 100), 4),  # 100 % against 50 %: doubled
        ((25, 25), 1),  # 25 % against 50 %: halved
        ((50, 50), 2),
        ((54, 54), 2),  # ratio 1.08: within the 0.1 tolerance
        ((55, 55), 2),  # ratio 1.1: still within (|1 - ratio| <= tolerance)
        ((56, 56), 3),  # ratio 1.12: ceil(2.24)
        ((46, 44), 2),  # 45 %: ratio 0.9, within
        ((40, 40), 2),  # ratio 0.8: ceil(1.6) = 2
        ((75, 76, 77), 5),  # 76 % (floored percent) / 50 = 1.52 -> ceil(4.56)
    ],
)
def test_algorithm(usage: tuple[float, ...], expected: int) -> None:
    assert decide(hpa(behavior=NO_WINDOW), cpu(*usage)) == expected


def test_utilization_is_usage_over_summed_requests() -> None:
    pods = [PodMetrics("a", cpu_millis=150, cpu_request_millis=100),
            PodMetrics("b", cpu_millis=150, cpu_request_millis=500)]  # fmt: skip
    # 300m of 600m requested = 50 %: on target, no change.
    assert decide(hpa(behavior=NO_WINDOW), pods) == 2


def test_pods_metric_average_value() -> None:
    assert decide(hpa(RPS10), rps(30, 30)) == 6
    assert decide(hpa(RPS10), rps(10.5, 10)) == 2  # within tolerance
    assert decide(hpa(RPS10, behavior=NO_WINDOW), rps(2, 3, 4, 3)) == 2  # mean 3 -> ceil(1.2)


def test_largest_of_several_metrics_wins() -> None:
    """ "the HorizontalPodAutoscaler will evaluate each metric, and propose a new scale based on
    that metric. The largest of the proposed scales will be used as the new scale"."""
    both = CPU50[:-1] + ", " + RPS10[1:]
    pods = [PodMetrics(f"p{i}", cpu_millis=100, cpu_request_millis=100,
                       values={"requests_per_second": 10}) for i in range(2)]  # fmt: skip
    assert decide(hpa(both), pods) == 4  # cpu says 4, rps says 2


def test_uncomputable_metric_blocks_scale_down_only() -> None:
    both = CPU50[:-1] + ", " + RPS10[1:]
    low_rps = rps(1, 1)  # no cpu samples: the cpu metric cannot be computed
    assert decide(hpa(both, behavior=NO_WINDOW), low_rps) == 2
    assert decide(hpa(both), rps(40, 40)) == 6  # wants 8; default scaleUp allows 2 + 4
    no_request = [PodMetrics("a", cpu_millis=100), PodMetrics("b", cpu_millis=100)]
    assert decide(hpa(), no_request) == 2  # "missing request for cpu": no change


def test_missing_pods_are_conservative() -> None:
    """Pods without a sample: 100 % of the target on scale-down, 0 on scale-up."""
    # Scale-down: 20 % on two pods, a third missing counts at 100 % -> (20+20+100)/3 = 46 % ->
    # ratio 0.92: within tolerance, no change.
    assert decide(hpa(behavior=NO_WINDOW), cpu(20, 20, None)) == 3
    # Scale-up: 100 % on two pods, the third at 0 -> 66 % -> ratio 1.32 -> ceil(3.96) = 4.
    assert decide(hpa(), cpu(100, 100, None)) == 4


def test_unready_pods_count_zero_on_cpu_scale_up() -> None:
    pods = [*cpu(100, 100), PodMetrics("u", ready=False, cpu_millis=100, cpu_request_millis=100)]
    assert decide(hpa(), pods) == 4  # as if the unready pod used 0: 66 % -> 4


def test_scale_up_default_policies() -> None:
    """Default scaleUp: max(100 %, 4 pods) per 15 s, no stabilization window."""
    assert decide(hpa(hi=100), cpu(500)) == 5  # 1 + 4 pods beats +100 %
    assert decide(hpa(hi=100), cpu(*[500] * 10)) == 20  # +100 % beats +4
    history = ScaleHistory()
    assert decide(hpa(hi=100), cpu(500), history=history, now=0) == 5
    # Five seconds later the 15 s period still holds the +4: the period started at 1 pod.
    assert decide(hpa(hi=100), cpu(*[500] * 5), history=history, now=5) == 5
    assert decide(hpa(hi=100), cpu(*[500] * 5), history=history, now=16) == 10


def test_scale_down_stabilization_window() -> None:
    """Default scaleDown stabilizationWindowSeconds 300: the highest recommendation of the
    last 5 minutes is used."""
    h, history = hpa(), ScaleHistory()
    assert decide(h, cpu(50, 50, 50, 50), history=history, now=0) == 4
    assert decide(h, cpu(10, 10, 10, 10), history=history, now=60) == 4
    assert decide(h, cpu(10, 10, 10, 10), history=history, now=299) == 4
    assert decide(h, cpu(10, 10, 10, 10), history=history, now=301) == 1


def test_new_hpa_does_not_scale_down_at_once() -> None:
    assert decide(hpa(), cpu(10, 10, 10, 10)) == 4


def test_scale_up_stabilization_window_takes_the_minimum() -> None:
    behavior = "{scaleUp: {stabilizationWindowSeconds: 60}}"
    h, history = hpa(behavior=behavior), ScaleHistory()
    assert decide(h, cpu(50, 50), history=history, now=0) == 2
    assert decide(h, cpu(100, 100), history=history, now=30) == 2  # min over window is 2
    assert decide(h, cpu(100, 100), history=history, now=61) == 4


@pytest.mark.parametrize(
    ("behavior", "current", "usage", "expected"),
    [
        # Pods 1 per 60 s and Percent 10 %: Max picks the larger change, Min the smaller.
        ("{scaleDown: {stabilizationWindowSeconds: 0, policies: [{type: Pods, value: 1, "
         "periodSeconds: 60}, {type: Percent, value: 50, periodSeconds: 60}]}}", 10, 5, 5),
        ("{scaleDown: {stabilizationWindowSeconds: 0, selectPolicy: Min, policies: [{type: Pods, "
         "value: 1, periodSeconds: 60}, {type: Percent, value: 50, periodSeconds: 60}]}}",
         10, 5, 9),
        ("{scaleDown: {selectPolicy: Disabled}}", 10, 5, 10),
        ("{scaleUp: {selectPolicy: Disabled}}", 2, 100, 2),
        ("{scaleUp: {policies: [{type: Percent, value: 50, periodSeconds: 60}]}}", 3, 100, 5),
    ],
)  # fmt: skip
def test_policies(behavior: str, current: int, usage: float, expected: int) -> None:
    assert decide(hpa(behavior=behavior, hi=20), cpu(*[usage] * current)) == expected


def test_min_and_max_replicas() -> None:
    assert decide(hpa(hi=3), cpu(500, 500)) == 3
    assert decide(hpa(lo=2, behavior=NO_WINDOW), cpu(1, 1, 1)) == 2
    assert decide(hpa(lo=2, hi=3), cpu(50), current=1) == 2  # below min: to min at once
    assert decide(hpa(lo=2, hi=3), cpu(50, 50, 50, 50, 50), current=5) == 3
    assert decide(hpa(), [], current=0) == 0  # scaled to 0: autoscaling disabled


def test_tolerance_per_direction() -> None:
    behavior = "{scaleUp: {tolerance: '0.5'}, scaleDown: {stabilizationWindowSeconds: 0}}"
    assert decide(hpa(behavior=behavior), cpu(70, 70)) == 2  # ratio 1.4 within 0.5
    assert decide(hpa(behavior=behavior), cpu(30, 30)) == 2  # ratio 0.6: ceil(1.2)


@given(
    usage=st.lists(st.floats(0, 1000), min_size=1, max_size=12),
    lo=st.integers(1, 5),
    span=st.integers(0, 10),
    windows=st.booleans(),
)
def test_always_within_min_and_max(usage: list[float], lo: int, span: int, windows: bool) -> None:
    h = hpa(lo=lo, hi=lo + span, behavior="" if windows else NO_WINDOW)
    history = ScaleHistory()
    current = len(usage)
    for step in range(3):
        current = decide(h, cpu(*usage[:current] or [0.0]), current=current, history=history,
                         now=step * 20.0)  # fmt: skip
        assert lo <= current <= lo + span


@given(replicas=st.integers(1, 20), ratio=st.floats(0.9, 1.1))
def test_no_change_within_tolerance(replicas: int, ratio: float) -> None:
    assert decide(hpa(RPS10, hi=50, behavior=NO_WINDOW), rps(*[10 * ratio] * replicas)) == replicas
