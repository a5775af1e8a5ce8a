"""Istio's standard HTTP metrics, kept per label set and rendered in Prometheus text format.

Names, labels and their order follow istio.io "Istio Standard Metrics"
(https://istio.io/latest/docs/reference/config/metrics/). The histograms use Envoy's default
buckets (`HistogramSettingsImpl::defaultBuckets`, envoyproxy/envoy source/common/stats/
histogram_impl.cc), which Istio keeps for `istiocustom.*` unless the pod annotation
`sidecar.istio.io/statsHistogramBuckets` overrides them (istio.io "Resource Annotations").

Recording is on every request's path, so a series is a few plain lists updated in place; a
prometheus_client collector turns them into metric families only when /stats/prometheus is read.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LABELS: tuple[str, ...] = (
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
)

# Envoy's default histogram bucket upper bounds; Istio uses them for durations (ms) and sizes.
BUCKETS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
    30000, 60000, 300000, 600000, 1800000, 3600000,
)  # fmt: skip

REQUESTS_TOTAL = "istio_requests_total"
REQUEST_DURATION = "istio_request_duration_milliseconds"
REQUEST_BYTES = "istio_request_bytes"
RESPONSE_BYTES = "istio_response_bytes"


def _le(bound: float) -> str:
    """Bucket bound as Envoy prints it: "1", "0.5", "3600000" (no "1.0" or "3.6e+06")."""
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


_LE = (*(_le(b) for b in BUCKETS), "+Inf")


class _Distribution:
    """One histogram series: per-bucket (not cumulative) counts, the last one for +Inf."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(BUCKETS, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for le, count in zip(_LE, self.counts, strict=True):
            running += count
            out.append((le, running))
        return out


class _Series:
    """Everything recorded under one label tuple."""

    __slots__ = ("duration", "request_bytes", "requests", "response_bytes")

    def __init__(self) -> None:
        self.requests = 0
        self.duration = _Distribution()
        self.request_bytes = _Distribution()
        self.response_bytes = _Distribution()


class _IstioCollector(Collector):
    """Turns the recorded series into the four Istio metric families at scrape time."""

    def __init__(self, series: dict[tuple[str, ...], _Series]) -> None:
        self._series = series

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            REQUESTS_TOTAL, "Requests handled by this proxy.", labels=LABELS
        )
        families = [
            (REQUEST_DURATION, "Request duration in milliseconds.", "duration"),
            (REQUEST_BYTES, "Request size in bytes.", "request_bytes"),
            (RESPONSE_BYTES, "Response size in bytes.", "response_bytes"),
        ]
        histograms = [
            (HistogramMetricFamily(name, doc, labels=LABELS), attr) for name, doc, attr in families
        ]
        for labels, series in list(self._series.items()):
            requests.add_metric(labels, series.requests)
            for family, attr in histograms:
                dist: _Distribution = getattr(series, attr)
                family.add_metric(labels, dist.cumulative(), dist.total)
        yield requests
        for family, _ in histograms:
            yield family


class IstioMetrics:
    """The four standard HTTP metrics of one proxy, in a registry the proxy may add to."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, ...], _Series] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_IstioCollector(self._series))

    def record(
        self,
        labels: tuple[str, ...],
        *,
        duration_ms: float,
        request_bytes: int,
        response_bytes: int,
    ) -> None:
        """Count one finished request under `labels` (values in LABELS order)."""
        series = self._series.get(labels)
        if series is None:
            series = self._new_series(labels)
        series.requests += 1
        series.duration.observe(duration_ms)
        series.request_bytes.observe(request_bytes)
        series.response_bytes.observe(response_bytes)

    def _new_series(self, labels: Sequence[str]) -> _Series:
        if len(labels) != len(LABELS):
            raise ValueError(f"expected {len(LABELS)} label values, got {len(labels)}")
        series = self._series[tuple(labels)] = _Series()
        return series

    def render(self) -> bytes:
        """Prometheus text exposition format, as Envoy serves it on /stats/prometheus."""
        return bytes(generate_latest(self.registry))
