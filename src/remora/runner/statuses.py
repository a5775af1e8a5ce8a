"""The `.status` a controller reports, pure: what runs in, Kubernetes' status documents out.

Deployment (kubernetes.io "Deployments", Deployment status; the deployment controller's
calculateStatus): `replicas` counts the pods that exist, `updatedReplicas` those started from
the current pod template, `readyReplicas` the ready ones, `availableReplicas` those ready for
minReadySeconds (ready, here). Conditions: Available is True (MinimumReplicasAvailable) while
available >= spec.replicas - maxUnavailable (RollingUpdate's, default 25 % rounded down;
0 for Recreate), and Progressing is True with NewReplicaSetAvailable once every wanted pod is
updated and available, else ReplicaSetUpdated.

StatefulSet: replicas, readyReplicas, currentReplicas, updatedReplicas, availableReplicas.

HorizontalPodAutoscaler (autoscaling/v2 HorizontalPodAutoscalerStatus): currentReplicas (the
target's pods), desiredReplicas, currentMetrics (one per metric of the spec, in its order: an
empty `{"type": ""}` for a metric that could not be measured, as the HPA controller leaves it),
lastScaleTime and the conditions AbleToScale, ScalingActive and ScalingLimited.

A condition keeps its lastTransitionTime while its status stays the same. Times are RFC 3339
strings passed in; nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from remora.api.kube.autoscaling import HorizontalPodAutoscaler, MetricSpec
from remora.runner.autoscaler import PodMetrics

_SUFFIXES = {-3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}


@dataclass(frozen=True, slots=True)
class PodCounts:
    """The pods of one workload as its controller sees them."""

    replicas: int  # pods that exist (not terminating)
    ready: int
    updated: int  # started from the current pod template


def quantity(value: float) -> str:
    """A value as Kubernetes prints a DecimalSI Quantity in milli precision: 7.5 -> "7500m",
    5 -> "5", 2000 -> "2k"."""
    mantissa = int(Decimal(str(value)) * 1000)
    exponent = -3
    while mantissa and mantissa % 1000 == 0 and exponent < 18:
        mantissa //= 1000
        exponent += 3
    return f"{mantissa}{_SUFFIXES[exponent]}" if mantissa else "0"


def condition(kind: str, status: bool, reason: str, message: str, *, now: str,
              previous: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """One condition; its lastTransitionTime stays when the previous one had the same status."""
    value = "True" if status else "False"
    before = next((c for c in previous if c.get("type") == kind), None)
    since = before.get("lastTransitionTime", now) if before and before.get("status") == value \
        else now
    return {"type": kind, "status": value, "lastTransitionTime": since, "reason": reason,
            "message": message}


def max_unavailable(deployment: Mapping[str, Any]) -> int:
    """spec.strategy's maxUnavailable as a pod count (percentages round down)."""
    spec = deployment.get("spec") or {}
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    replicas = desired(deployment)
    if isinstance(value, str) and value.endswith("%"):
        return math.floor(replicas * int(value[:-1]) / 100)
    return int(value)


def desired(workload: Mapping[str, Any]) -> int:
    """spec.replicas (Kubernetes defaults it to 1)."""
    replicas = (workload.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def deployment_status(deployment: Mapping[str, Any], pods: PodCounts, *, replica_set: str,
                      now: str) -> dict[str, Any]:
    """The Deployment's `.status` for the pods that run for it."""
    wanted = desired(deployment)
    previous = (deployment.get("status") or {}).get("conditions") or ()
    available = pods.ready
    minimum = available >= wanted - max_unavailable(deployment)
    complete = pods.updated == wanted == pods.replicas and available == wanted
    return {
        "observedGeneration": (deployment.get("metadata") or {}).get("generation", 1),
        "replicas": pods.replicas, "updatedReplicas": pods.updated,
        "readyReplicas": pods.ready, "availableReplicas": available,
        "unavailableReplicas": max(wanted - available, 0),
        "conditions": [
            condition("Available", minimum,
                      "MinimumReplicasAvailable" if minimum else "MinimumReplicasUnavailable",
                      "Deployment has minimum availability." if minimum
                      else "Deployment does not have minimum availability.",
                      now=now, previous=previous),
            condition("Progressing", True,
                      "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                      f'ReplicaSet "{replica_set}" has successfully progressed.' if complete
                      else f'ReplicaSet "{replica_set}" is progressing.',
                      now=now, previous=previous),
        ],
    }


def statefulset_status(statefulset: Mapping[str, Any], pods: PodCounts) -> dict[str, Any]:
    """The StatefulSet's `.status` for the pods that run for it."""
    return {
        "observedGeneration": (statefulset.get("metadata") or {}).get("generation", 1),
        "replicas": pods.replicas, "readyReplicas": pods.ready, "currentReplicas": pods.updated,
        "updatedReplicas": pods.updated, "availableReplicas": pods.ready,
    }


def workload_status(workload: Mapping[str, Any], pods: PodCounts, *, replica_set: str,
                    now: str) -> dict[str, Any]:
    if workload.get("kind") == "StatefulSet":
        return statefulset_status(workload, pods)
    return deployment_status(workload, pods, replica_set=replica_set, now=now)


# ---------------------------------------------------------------------------------------------
# HorizontalPodAutoscaler
# ---------------------------------------------------------------------------------------------


def current_metric(spec: MetricSpec, pods: Sequence[PodMetrics]) -> dict[str, Any]:
    """The MetricStatus of one metric over the pods (the values the HPA algorithm used: cpu
    without unready pods, Pods metrics over every pod with a sample)."""
    if spec.type == "Resource" and spec.resource and spec.resource.name == "cpu":
        sampled = [p for p in pods if p.cpu_millis is not None and p.ready]
        if not sampled:
            return {"type": ""}
        usage = sum(p.cpu_millis or 0.0 for p in sampled)
        current: dict[str, Any] = {"averageValue": quantity(round(usage / len(sampled)) / 1000)}
        requests = [p.cpu_request_millis for p in sampled]
        if spec.resource.target.type == "Utilization":
            if any(r is None for r in requests) or not sum(r or 0 for r in requests):
                return {"type": ""}
            current["averageUtilization"] = math.floor(usage * 100 / sum(r or 0 for r in requests))
        return {"type": "Resource", "resource": {"name": "cpu", "current": current}}
    if spec.type == "Pods" and spec.pods:
        name = spec.pods.metric.name
        values = [p.values[name] for p in pods if name in p.values]
        if not values:
            return {"type": ""}
        return {"type": "Pods", "pods": {"metric": {"name": name},
                                         "current": {"averageValue": quantity(
                                             sum(values) / len(values))}}}
    return {"type": ""}


@dataclass(frozen=True, slots=True)
class HPAOutcome:
    """One run of an HPA: what the algorithm proposed, what it decided, whether the scale
    write worked, and when it last changed the replicas."""

    current: int  # the target's pods
    spec_replicas: int  # the target's spec.replicas before this run
    proposal: int | None  # from the metrics, before stabilization and limits (None: none)
    desired: int
    scale_error: str = ""
    last_scale_time: str | None = None


def hpa_status(hpa: HorizontalPodAutoscaler, outcome: HPAOutcome, pods: Sequence[PodMetrics],
               *, now: str, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The HPA's `.status` after a run."""
    before = (previous or {}).get("conditions") or ()
    spec = hpa.spec
    low, high = spec.effective_min_replicas, spec.max_replicas
    metrics = [current_metric(m, pods) for m in spec.effective_metrics]
    if outcome.scale_error:
        able = condition("AbleToScale", False, "FailedUpdateScale",
                         f"the HPA controller was unable to update the target scale: "
                         f"{outcome.scale_error}", now=now, previous=before)
    elif outcome.desired != outcome.spec_replicas:
        able = condition("AbleToScale", True, "SucceededRescale",
                         f"the HPA controller was able to update the target scale to "
                         f"{outcome.desired}", now=now, previous=before)
    else:
        able = condition("AbleToScale", True, "ReadyForNewScale",
                         "recommended size matches current size", now=now, previous=before)
    if outcome.spec_replicas == 0:
        active = condition("ScalingActive", False, "ScalingDisabled",
                           "scaling is disabled since the replica count of the target is zero",
                           now=now, previous=before)
    elif outcome.proposal is None:
        active = condition("ScalingActive", False, "FailedGetPodsMetric",
                           "the HPA was unable to compute the replica count: no metrics "
                           "returned from the pods", now=now, previous=before)
    else:
        active = condition("ScalingActive", True, "ValidMetricFound",
                           "the HPA was able to successfully calculate a replica count",
                           now=now, previous=before)
    proposal = outcome.proposal if outcome.proposal is not None else outcome.desired
    if proposal > high:
        limited = condition("ScalingLimited", True, "TooManyReplicas",
                            "the desired replica count is more than the maximum replica count",
                            now=now, previous=before)
    elif proposal < low:
        limited = condition("ScalingLimited", True, "TooFewReplicas",
                            "the desired replica count is less than the minimum replica count",
                            now=now, previous=before)
    else:
        limited = condition("ScalingLimited", False, "DesiredWithinRange",
                            "the desired count is within the acceptable range",
                            now=now, previous=before)
    status: dict[str, Any] = {
        "currentReplicas": outcome.current, "desiredReplicas": outcome.desired,
        "currentMetrics": metrics, "conditions": [able, active, limited],
    }
    if outcome.last_scale_time:
        status["lastScaleTime"] = outcome.last_scale_time
    return status

