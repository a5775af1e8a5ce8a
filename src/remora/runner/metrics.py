"""What a pod does, measured from outside: app CPU from /proc, requests from its sidecar.

CPU is the utime + stime of every process in the app's process group (an app started through
a shell counts its children), as a rate over the interval between two samples, in millicores.
Requests are `istio_requests_total{reporter="destination"}` of the pod's sidecar (what reached
this pod), summed over every label set; errors are those with a 5xx `response_code`.
`answered` reads what any proxy (a gateway too) answered, its 5xx by code and response flags,
for `remora status` (runner/traffic.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


@dataclass(frozen=True, slots=True)
class Traffic:
    """What one proxy answered, cumulative since it started: requests, and its 5xx responses
    by `code flags` ("503 UH", "500" when no response flag was set)."""

    at: float
    requests: float
    errors: Mapping[str, float]

    @property
    def error_count(self) -> float:
        return sum(self.errors.values())


def answered(text: str, *, reporter: str, at: float) -> Traffic:
    """The requests a proxy reported as `reporter` (a sidecar's inbound side is `destination`,
    a gateway reports as `source`), from its Prometheus text."""
    total = 0.0
    errors: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != REQUESTS_TOTAL or sample.labels.get("reporter") != reporter:
                continue
            total += sample.value
            code = sample.labels.get("response_code", "")
            if code.startswith("5"):
                flags = sample.labels.get("response_flags", "-")
                key = code if flags in ("", "-") else f"{code} {flags}"
                errors[key] = errors.get(key, 0.0) + sample.value
    return Traffic(at=at, requests=total, errors=errors)


def requests_per_second(samples: Sequence[Traffic], *, window: float) -> float | None:
    """The request rate between the newest sample and the oldest one at most `window` older
    (None with fewer than two, or when the counter went back: the proxy restarted)."""
    if len(samples) < 2:
        return None
    newest = samples[-1]
    oldest = next(s for s in samples if s.at >= newest.at - window)
    elapsed = newest.at - oldest.at
    if elapsed <= 0 or newest.requests < oldest.requests:
        return None
    return (newest.requests - oldest.requests) / elapsed


def group_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of the process group `pid` leads (None when it is gone)."""
    seconds = [procfs.cpu_seconds(member) for member in procfs.group_members(pid)]
    found = [s for s in seconds if s is not None]
    return sum(found) if found else None


def group_rss_bytes(pid: int) -> int | None:
    """Resident memory of the process group `pid` leads (None when it is gone)."""
    sizes = [procfs.rss_bytes(member) for member in procfs.group_members(pid)]
    found = [s for s in sizes if s is not None]
    return sum(found) if found else None


async def sample(http: httpx.AsyncClient, *, pid: int | None, admin_port: int,
                 now: float, address: str = "127.0.0.1") -> Counters:
    """Read the counters of a pod now (its sidecar's admin port at `address`: the pod IP in
    a pod network)."""
    requests = errors = None
    try:
        response = await http.get(f"http://{address}:{admin_port}/stats/prometheus",
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
