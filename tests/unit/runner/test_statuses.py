"""The status documents the controllers of `remora up` write; what `remora status` reads.

Deployment status and conditions as the deployment controller writes them (kubernetes.io,
"Deployments": Deployment status; MinimumReplicasAvailable, NewReplicaSetAvailable); HPA
status (autoscaling/v2 HorizontalPodAutoscalerStatus: currentMetrics in the spec's order,
AbleToScale / ScalingActive / ScalingLimited); Istio's istio_requests_total as a proxy's
answers; a process's end as `remora status` says it.
"""

from __future__ import annotations

from typing import Any

import pytest

from remora.api.kube.autoscaling import HorizontalPodAutoscaler
from remora.api.loader import parse_resource
from remora.runner.autoscaler import PodMetrics
from remora.runner.metrics import Traffic, answered, requests_per_second
from remora.runner.process import exit_reason
from remora.runner.statuses import (
    HPAOutcome,
    PodCounts,
    deployment_status,
    hpa_status,
    max_unavailable,
    quantity,
)

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"


def deployment(replicas: int | None = 3, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"selector": {"matchLabels": {"app": "web"}}, **spec}
    if replicas is not None:
        body["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "generation": 4}, "spec": body}


def hpa(metrics: list[dict[str, Any]], *, low: int = 1, high: int = 3) -> HorizontalPodAutoscaler:
    resource = parse_resource({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": low, "maxReplicas": high, "metrics": metrics}})
    assert isinstance(resource, HorizontalPodAutoscaler)
    return resource


CPU50 = {"type": "Resource", "resource": {"name": "cpu", "target": {
    "type": "Utilization", "averageUtilization": 50}}}
RPS5 = {"type": "Pods", "pods": {"metric": {"name": "requests_per_second"},
                                 "target": {"type": "AverageValue", "averageValue": "5"}}}


@pytest.mark.parametrize(("value", "shown"), [(7.5, "7500m"), (5, "5"), (0, "0"), (2000, "2k"),
                                              (0.25, "250m"), (1500, "1500")])
def test_quantities_print_as_kubernetes_does(value: float, shown: str) -> None:
    assert quantity(value) == shown


def test_max_unavailable_is_a_quarter_rounded_down_by_default() -> None:
    assert max_unavailable(deployment(3)) == 0
    assert max_unavailable(deployment(4)) == 1
    assert max_unavailable(deployment(4, strategy={"rollingUpdate": {"maxUnavailable": 2}})) == 2
    assert max_unavailable(deployment(4, strategy={"type": "Recreate"})) == 0


def test_deployment_status_counts_and_conditions() -> None:
    short = deployment_status(deployment(3), PodCounts(replicas=3, ready=1, updated=3),
                              replica_set="web-abc", now=T0)
    assert (short["replicas"], short["readyReplicas"], short["availableReplicas"],
            short["updatedReplicas"], short["unavailableReplicas"]) == (3, 1, 1, 3, 2)
    available, progressing = short["conditions"]
    assert (available["status"], available["reason"]) == ("False", "MinimumReplicasUnavailable")
    assert progressing["reason"] == "ReplicaSetUpdated"
    assert short["observedGeneration"] == 4

    done = deployment_status({**deployment(3), "status": short},
                             PodCounts(replicas=3, ready=3, updated=3), replica_set="web-abc",
                             now=T1)
    available, progressing = done["conditions"]
    assert (available["status"], available["lastTransitionTime"]) == ("True", T1)
    assert (progressing["reason"], progressing["lastTransitionTime"]) == \
        ("NewReplicaSetAvailable", T0)  # still True: the transition time stays
    assert progressing["message"] == 'ReplicaSet "web-abc" has successfully progressed.'


def test_hpa_status_reports_metrics_in_the_specs_order() -> None:
    autoscaler = hpa([CPU50, RPS5])
    pods = [PodMetrics("a", cpu_millis=300, cpu_request_millis=500,
                       values={"requests_per_second": 9}),
            PodMetrics("b", cpu_millis=100, cpu_request_millis=500,
                       values={"requests_per_second": 6})]
    status = hpa_status(autoscaler, HPAOutcome(current=2, spec_replicas=2, proposal=4, desired=3,
                                               last_scale_time=T0), pods, now=T0)
    assert status["currentReplicas"] == 2 and status["desiredReplicas"] == 3
    assert status["lastScaleTime"] == T0
    assert status["currentMetrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "current": {
            "averageValue": "200m", "averageUtilization": 40}}},
        {"type": "Pods", "pods": {"metric": {"name": "requests_per_second"},
                                  "current": {"averageValue": "7500m"}}}]
    reasons = {c["type"]: c["reason"] for c in status["conditions"]}
    assert reasons == {"AbleToScale": "SucceededRescale", "ScalingActive": "ValidMetricFound",
                       "ScalingLimited": "TooManyReplicas"}


def test_hpa_status_without_samples() -> None:
    status = hpa_status(hpa([RPS5]), HPAOutcome(current=1, spec_replicas=1, proposal=None,
                                                desired=1), [PodMetrics("a")], now=T0)
    assert status["currentMetrics"] == [{"type": ""}]
    reasons = {c["type"]: c["reason"] for c in status["conditions"]}
    assert reasons["ScalingActive"] == "FailedGetPodsMetric"
    assert reasons["AbleToScale"] == "ReadyForNewScale"


PROM = '''# TYPE istio_requests_total counter
istio_requests_total{reporter="source",response_code="503",response_flags="UH"} 4.0
istio_requests_total{reporter="source",response_code="200",response_flags="-"} 6.0
istio_requests_total{reporter="destination",response_code="500",response_flags="-"} 2.0
'''


def test_what_a_proxy_answered() -> None:
    gateway = answered(PROM, reporter="source", at=1.0)
    assert (gateway.requests, dict(gateway.errors)) == (10.0, {"503 UH": 4.0})
    sidecar = answered(PROM, reporter="destination", at=1.0)
    assert (sidecar.requests, dict(sidecar.errors)) == (2.0, {"500": 2.0})


def test_requests_per_second_over_the_window() -> None:
    samples = [Traffic(at=t, requests=r, errors={}) for t, r in
               ((0, 0), (5, 50), (10, 60), (15, 60))]
    assert requests_per_second(samples, window=10) == 1.0  # (60 - 50) / (15 - 5)
    assert requests_per_second(samples[:1], window=10) is None
    restarted = [*samples, Traffic(at=16, requests=1, errors={})]
    assert requests_per_second(restarted, window=10) is None


@pytest.mark.parametrize(("code", "reason"), [(0, "completed"), (1, "exited 1"),
                                              (-9, "killed by SIGKILL"),
                                              (-15, "killed by SIGTERM")])
def test_exit_reasons(code: int, reason: str) -> None:
    assert exit_reason(code) == reason
