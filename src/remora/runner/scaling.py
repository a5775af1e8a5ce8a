"""Autoscaling in `remora up`: measure the pods, ask each HPA for its replica count.

Every interval (Kubernetes' --horizontal-pod-autoscaler-sync-period, 15 s) each pod is sampled
(remora.runner.metrics) and every HorizontalPodAutoscaler whose scaleTargetRef names a running
Deployment or StatefulSet gets `desired_replicas` from the pure algorithm in
remora.runner.autoscaler, with the pod's app CPU (against the container's requests.cpu) and the
Pods metric `requests_per_second` (requests that reached the pod's sidecar per second).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from remora.api.kube.autoscaling import HorizontalPodAutoscaler
from remora.api.resource import Resource
from remora.runner.autoscaler import PodMetrics, ScaleHistory, desired_replicas
from remora.runner.metrics import rates, sample
from remora.runner.supervisor import Pod

REQUESTS_PER_SECOND = "requests_per_second"


@dataclass(slots=True)
class Autoscaler:
    """One HPA and what it remembers between runs."""

    hpa: HorizontalPodAutoscaler
    history: ScaleHistory = field(default_factory=ScaleHistory)

    @property
    def target(self) -> tuple[str, str, str]:
        """(namespace, kind, name) of the workload it scales."""
        ref = self.hpa.spec.scale_target_ref
        return self.hpa.namespace, ref.kind, ref.name

    def decide(self, pods: Sequence[Pod], now: float) -> int:
        """The replica count the HPA wants for these pods now."""
        return desired_replicas(self.hpa, current=len(pods),
                                metrics=[pod_metrics(pod) for pod in pods],
                                history=self.history, now=now)


def autoscalers(resources: Sequence[Resource]) -> list[Autoscaler]:
    return [Autoscaler(r) for r in resources if isinstance(r, HorizontalPodAutoscaler)]


def pod_metrics(pod: Pod) -> PodMetrics:
    measured = pod.rates
    values = {}
    if measured is not None and measured.requests_per_second is not None:
        values[REQUESTS_PER_SECOND] = measured.requests_per_second
    return PodMetrics(name=pod.name, ready=pod.ready,
                      cpu_millis=measured.cpu_millis if measured else None,
                      cpu_request_millis=pod.plan.spec.cpu_request_millis, values=values)


async def measure(pods: Sequence[Pod], http: httpx.AsyncClient, now: float) -> None:
    """Sample every pod and keep its rates since the previous sample."""
    counters = await asyncio.gather(*(
        sample(http, pid=pod.app.pid if pod.app.running else None,
               admin_port=pod.plan.sidecar.admin, now=now) for pod in pods))
    for pod, current in zip(pods, counters, strict=True):
        pod.rates = rates(pod.counters, current)
        pod.counters = current
