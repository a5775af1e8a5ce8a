"""The HorizontalPodAutoscaler (autoscaling/v2) algorithm, pure: measurements and `now` in.

kubernetes.io, "Horizontal Pod Autoscaling" (Algorithm details; Configurable scaling
behavior) and the controller (pkg/controller/podautoscaler/horizontal.go,
replica_calculator.go):

1. Per metric, `usageRatio = current / target`. Resource cpu Utilization: the usage of the pods
   with a sample over their summed requests.cpu, as a whole percent; Resource cpu AverageValue
   and Pods AverageValue (e.g. `requests_per_second`): the mean over the pods with a sample.
2. Within the tolerance (0.1 each way, or behavior.*.tolerance) nothing changes; otherwise the
   proposal is `ceil(usageRatio × pods with a sample)`. Pods without a sample count as 100 % of
   the target on a scale-down and 0 on a scale-up; on a cpu scale-up, unready pods count as 0; a
   proposal that would flip direction after that is dropped (current replicas).
3. The largest proposal over all metrics wins; a metric that cannot be computed blocks a
   scale-down, and none computable means no change.
4. Stabilization: every raw recommendation is remembered; the result is kept between the
   minimum over the scale-up window (default 0 s) and the maximum over the scale-down window
   (default 300 s).
5. Rate limits (policies, selectPolicy Max/Min/Disabled) against the scale events of each
   policy's period; defaults: up max(100 %, 4 pods) per 15 s, down 100 % per 15 s; then
   min/max replicas. Current replicas outside [min, max] are brought inside directly; 0
   replicas means autoscaling is off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from remora.api.kube.autoscaling import (
    HorizontalPodAutoscaler,
    HPAScalingPolicy,
    HPAScalingRules,
    MetricSpec,
)
from remora.api.kube.meta import cpu_millicores, parse_quantity

DEFAULT_TOLERANCE = 0.1
_UP_POLICIES = (HPAScalingPolicy(type="Pods", value=4, period_seconds=15),
                HPAScalingPolicy(type="Percent", value=100, period_seconds=15))  # fmt: skip
_DOWN_POLICIES = (HPAScalingPolicy(type="Percent", value=100, period_seconds=15),)


@dataclass(frozen=True, slots=True)
class PodMetrics:
    """What was measured for one pod (None or absent: no sample)."""

    name: str
    ready: bool = True
    cpu_millis: float | None = None  # CPU usage in millicores
    cpu_request_millis: int | None = None
    values: Mapping[str, float] = field(default_factory=dict)  # Pods metrics, e.g. req/s


@dataclass(slots=True)
class ScaleHistory:
    """What one HPA remembers between runs: raw recommendations and applied scale events."""

    recommendations: list[tuple[float, int]] = field(default_factory=list)  # (time, replicas)
    events: list[tuple[float, int]] = field(default_factory=list)  # (time, +added / -removed)
    started: bool = False


@dataclass(frozen=True, slots=True)
class _Rules:
    window: float
    select: Literal["Max", "Min", "Disabled"]
    policies: tuple[HPAScalingPolicy, ...]
    tolerance: float


@dataclass(frozen=True, slots=True)
class _Behavior:
    up: _Rules
    down: _Rules


def _rules(rules: HPAScalingRules | None, *, up: bool) -> _Rules:
    """behavior.scaleUp / scaleDown with Kubernetes' defaults for what is not set."""
    window = rules.stabilization_window_seconds if rules else None
    policies = tuple(rules.policies) if rules and rules.policies else None
    tolerance = rules.tolerance if rules and rules.tolerance is not None else None
    return _Rules(
        window=float(window if window is not None else (0 if up else 300)),
        select=(rules.select_policy if rules and rules.select_policy else "Max"),
        policies=policies or (_UP_POLICIES if up else _DOWN_POLICIES),
        tolerance=float(parse_quantity(tolerance)) if tolerance is not None else DEFAULT_TOLERANCE,
    )


def desired_replicas(
    hpa: HorizontalPodAutoscaler,
    *,
    current: int,
    metrics: Sequence[PodMetrics],
    history: ScaleHistory,
    now: float,
) -> int:
    """The replica count the HPA asks for now; `history` is updated (the caller is expected
    to apply the answer: a change is recorded as a scale event at `now`)."""
    spec = hpa.spec
    low, high = spec.effective_min_replicas, spec.max_replicas
    if current == 0:
        return 0  # scaled to zero by hand: autoscaling is disabled
    if current > high or current < low:
        return _applied(history, current, min(max(current, low), high), now)
    behavior = spec.behavior
    up = _rules(behavior.scale_up if behavior else None, up=True)
    down = _rules(behavior.scale_down if behavior else None, up=False)
    proposal = _metric_proposal(spec.effective_metrics, current, metrics, up, down)
    if proposal is None:
        return current
    rules = _Behavior(up, down)
    if not history.started:
        # maybeInitScaleDownStabilizationWindow: a new HPA does not scale down at once.
        history.started = True
        if down.window > 0:
            history.recommendations.append((now, current))
    stabilized = _stabilize(history, current, proposal, rules=rules, now=now)
    limited = _rate_limit(history, current, stabilized, rules=rules, now=now, low=low, high=high)
    return _applied(history, current, limited, now)


def metric_proposal(hpa: HorizontalPodAutoscaler, *, current: int,
                    metrics: Sequence[PodMetrics]) -> int | None:
    """What the metrics alone ask for (step 3, before stabilization, rate limits and
    min/max), None when no metric can be computed: what the HPA's conditions report."""
    behavior = hpa.spec.behavior
    up = _rules(behavior.scale_up if behavior else None, up=True)
    down = _rules(behavior.scale_down if behavior else None, up=False)
    return _metric_proposal(hpa.spec.effective_metrics, current, metrics, up, down)


def _applied(history: ScaleHistory, current: int, desired: int, now: float) -> int:
    if desired != current:
        history.events.append((now, desired - current))
    return desired


# ---------------------------------------------------------------------------------------------
# Metrics → a proposal
# ---------------------------------------------------------------------------------------------


def _metric_proposal(
    specs: Sequence[MetricSpec],
    current: int,
    pods: Sequence[PodMetrics],
    up: _Rules,
    down: _Rules,
) -> int | None:
    proposals = [_proposal(m, current, pods, up, down) for m in specs]
    valid = [p for p in proposals if p is not None]
    if not valid:
        return None
    best = max(valid)
    if len(valid) < len(proposals) and best < current:
        return None  # an invalid metric blocks a scale-down
    return best


def _proposal(
    spec: MetricSpec, current: int, pods: Sequence[PodMetrics], up: _Rules, down: _Rules
) -> int | None:
    """One metric's replica proposal (replica_calculator), or None when it cannot be computed."""
    if spec.type == "Resource" and spec.resource and spec.resource.name == "cpu":
        target = spec.resource.target
        samples = {p.name: p.cpu_millis for p in pods}
        if target.type == "Utilization" and target.average_utilization is not None:
            requests = {p.name: p.cpu_request_millis for p in pods}
            if any(requests[n] is None for n, v in samples.items() if v is not None):
                return None  # "missing request for cpu"
            return _replicas(current, pods, samples, up, down, cpu=True,
                             utilization=(requests, target.average_utilization))  # fmt: skip
        if target.average_value is not None:
            millis = float(cpu_millicores(target.average_value))
            return _replicas(current, pods, samples, up, down, cpu=True, average=millis)
        return None
    if spec.type == "Pods" and spec.pods and spec.pods.target.average_value is not None:
        name = spec.pods.metric.name
        goal = float(parse_quantity(spec.pods.target.average_value))
        samples = {p.name: p.values.get(name) for p in pods}
        return _replicas(current, pods, samples, up, down, cpu=False, average=goal)
    return None  # memory, Object, External, ContainerResource: not measured locally


def _replicas(
    current: int,
    pods: Sequence[PodMetrics],
    samples: Mapping[str, float | None],
    up: _Rules,
    down: _Rules,
    *,
    cpu: bool,
    average: float | None = None,
    utilization: tuple[Mapping[str, int | None], int] | None = None,
) -> int | None:
    """GetResourceReplicas / calcPlainMetricReplicas: missing and unready pods handled."""
    unready = {p.name for p in pods if cpu and not p.ready and samples.get(p.name) is not None}
    missing = {p.name for p in pods if samples.get(p.name) is None}
    values = {n: v for n, v in samples.items() if v is not None and n not in unready}
    if not values:
        return None

    def ratio(vals: Mapping[str, float]) -> float:
        if utilization is not None:
            requests, target = utilization
            total = sum(requests[n] or 0 for n in vals)
            percent = math.floor(sum(vals.values()) * 100 / total) if total else 0
            return percent / target
        assert average is not None
        return sum(vals.values()) / (average * len(vals))

    def within(r: float) -> bool:
        return 1 - down.tolerance <= r <= 1 + up.tolerance

    usage = ratio(values)
    if not (unready and usage > 1) and not missing:
        return current if within(usage) else math.ceil(usage * len(values))
    fallback = _Fallback(average, utilization)
    filled = dict(values)
    for name in missing:
        if usage < 1:  # scale-down: missing pods at 100 % of the target (or of the request)
            filled[name] = fallback(name)
        elif usage > 1:
            filled[name] = 0.0
    if usage > 1:
        filled.update(dict.fromkeys(unready, 0.0))
    new = ratio(filled)
    if within(new) or (usage < 1 < new) or (new < 1 < usage):
        return current
    replicas = math.ceil(new * len(filled))
    if (new < 1 and replicas > current) or (new > 1 and replicas < current):
        return current
    return replicas


@dataclass(frozen=True, slots=True)
class _Fallback:
    """The value a pod without a sample is assumed to have on a scale-down."""

    average: float | None
    utilization: tuple[Mapping[str, int | None], int] | None

    def __call__(self, name: str) -> float:
        if self.utilization is not None:
            requests, target = self.utilization
            return (requests.get(name) or 0) * max(100, target) / 100
        return self.average or 0.0


# ---------------------------------------------------------------------------------------------
# Stabilization and rate limits
# ---------------------------------------------------------------------------------------------


def _stabilize(
    history: ScaleHistory, current: int, proposal: int, *, rules: _Behavior, now: float
) -> int:
    """stabilizeRecommendationWithBehaviors: keep between min over the up window and max over
    the down window of the recommendations (this one included)."""
    up_cut, down_cut = now - rules.up.window, now - rules.down.window
    up_rec = min([proposal, *(r for t, r in history.recommendations if t > up_cut)])
    down_rec = max([proposal, *(r for t, r in history.recommendations if t > down_cut)])
    history.recommendations = [(t, r) for t, r in history.recommendations
                               if t > min(up_cut, down_cut)]  # fmt: skip
    history.recommendations.append((now, proposal))
    return min(max(current, up_rec), down_rec)


def _rate_limit(
    history: ScaleHistory,
    current: int,
    desired: int,
    *,
    rules: _Behavior,
    now: float,
    low: int,
    high: int,
) -> int:
    """convertDesiredReplicasWithBehaviorRate: policies against recent scale events, then
    min/max replicas."""
    longest = max(p.period_seconds for p in (*rules.up.policies, *rules.down.policies))
    history.events = [(t, c) for t, c in history.events if t > now - longest]
    if desired > current:
        limit = max(_limit(history, current, rules.up, now, grow=True), current)
        return min(desired, limit, high)
    if desired < current:
        limit = min(_limit(history, current, rules.down, now, grow=False), current)
        return max(desired, limit, low)
    return desired


def _limit(history: ScaleHistory, current: int, rules: _Rules, now: float, *, grow: bool) -> int:
    """calculateScaleUpLimitWithScalingRules / calculateScaleDownLimitWithBehaviors."""
    if rules.select == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        recent = [c for t, c in history.events if t > now - policy.period_seconds]
        added = sum(c for c in recent if c > 0)
        removed = -sum(c for c in recent if c < 0)
        start = current - added + removed
        if policy.type == "Pods":
            proposals.append(start + policy.value if grow else start - policy.value)
        elif grow:
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
        else:
            proposals.append(int(start * (1 - policy.value / 100)))
    # "Max" picks the policy allowing the biggest change, "Min" the smallest.
    biggest = max if grow == (rules.select == "Max") else min
    return biggest(proposals)
