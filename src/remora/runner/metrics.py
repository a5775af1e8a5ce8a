"""What a pod does, measured from outside: app CPU from /proc, requests from its sidecar.

CPU is the utime + stime of every process in the app's process group (an app started through
a shell counts its children), as a rate over the interval between two samples, in millicores.
Requests are `istio_requests_total{reporter="destination"}` of the pod's sidecar (what reached
this pod), summed over every label set; errors are those with a 5xx `response_code`.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from remora.runner import procfs
from remora.telemetry.metrics import REQUESTS_TOTAL


@dataclass(frozen=True, slots=True)
class Counters:
    """Cumulative counters of one pod at one moment."""

    at: float
    cpu_seconds: float | None
    requests: float | None
    errors: float | None


@dataclass(frozen=True, slots=True)
class Rates:
    """Rates between two samples (None where a counter was missing or reset)."""

    cpu_millis: float | None
    requests_per_second: float | None
    errors: float | None  # the cumulative 5xx count


def inbound_requests(text: str) -> tuple[float, float]:
    """(requests, 5xx responses) reported by the destination side, from Prometheus text."""
    total = errors = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != REQUESTS_TOTAL or sample.labels.get("reporter") != "destination":
                continue
            total += sample.value
            if sample.labels.get("response_code", "").startswith("5"):
                errors += sample.value
    return total, errors


def group_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of the process group `pid` leads (None when it is gone)."""
    seconds = [procfs.cpu_seconds(member) for member in procfs.group_members(pid)]
    found = [s for s in seconds if s is not None]
    return sum(found) if found else None


async def sample(http: httpx.AsyncClient, *, pid: int | None, admin_port: int,
                 now: float) -> Counters:
    """Read the counters of a pod now."""
    requests = errors = None
    try:
        response = await http.get(f"http://127.0.0.1:{admin_port}/stats/prometheus",
                                  timeout=2.0)
        if response.status_code == 200:
            requests, errors = inbound_requests(response.text)
    except httpx.HTTPError:
        pass
    cpu = group_cpu_seconds(pid) if pid is not None else None
    return Counters(at=now, cpu_seconds=cpu, requests=requests, errors=errors)


def rates(before: Counters | None, after: Counters) -> Rates:
    """Rates over the interval between two samples of the same pod."""
    elapsed = after.at - before.at if before else 0.0
    if before is None or elapsed <= 0:
        return Rates(cpu_millis=None, requests_per_second=None, errors=after.errors)

    def rate(old: float | None, new: float | None, scale: float) -> float | None:
        if old is None or new is None or new < old:
            return None
        return (new - old) * scale / elapsed

    return Rates(cpu_millis=rate(before.cpu_seconds, after.cpu_seconds, 1000.0),
                 requests_per_second=rate(before.requests, after.requests, 1.0),
                 errors=after.errors)
