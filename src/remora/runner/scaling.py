"""Measuring pods for the autoscaler of `remora up`: each pod's rates since the last run.

Every interval (Kubernetes' --horizontal-pod-autoscaler-sync-period, 15 s) each pod is sampled
(remora.runner.metrics) into the metrics the pure HPA algorithm (remora.runner.autoscaler)
takes: the pod's app CPU (against the container's requests.cpu) and the Pods metric
`requests_per_second` (requests that reached the pod's sidecar per second). The HPAs are run
by remora.runner.controllers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx

from remora.runner.autoscaler import PodMetrics
from remora.runner.metrics import rates, sample
from remora.runner.supervisor import Pod

REQUESTS_PER_SECOND = "requests_per_second"


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
               admin_port=pod.plan.sidecar.admin, now=now,
               address=pod.plan.address) for pod in pods))
    for pod, current in zip(pods, counters, strict=True):
        pod.rates = rates(pod.counters, current)
        pod.counters = current
