"""Istio standard metrics (istio.io "Istio Standard Metrics", reference/config/metrics)."""

from __future__ import annotations

import pytest
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families

from remora.telemetry.metrics import BUCKETS, LABELS, IstioMetrics


def _labels(**overrides: str) -> tuple[str, ...]:
    values = dict.fromkeys(LABELS, "unknown")
    values.update(overrides)
    return tuple(values[name] for name in LABELS)


def _families(metrics: IstioMetrics) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}


def test_label_names_in_istio_order() -> None:
    # istio.io "Istio Standard Metrics", Labels section, and istio/proxy's stats plugin order.
    assert LABELS == (
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


def test_buckets_are_envoys_defaults() -> None:
    # envoy source/common/stats/histogram_impl.cc HistogramSettingsImpl::defaultBuckets; Istio's
    # istiocustom histograms keep them unless sidecar.istio.io/statsHistogramBuckets is set.
    assert BUCKETS == (
        0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
        30000, 60000, 300000, 600000, 1800000, 3600000,
    )  # fmt: skip


def test_render_before_any_request_has_the_families_and_no_samples() -> None:
    families = _families(IstioMetrics())
    # the parser drops the counter's "_total" from the family name, the samples keep it
    assert families.keys() == {
        "istio_requests",
        "istio_request_duration_milliseconds",
        "istio_request_bytes",
        "istio_response_bytes",
    }
    assert all(not f.samples for f in families.values())  # type: ignore[attr-defined]


def test_recorded_requests_render_with_counts_buckets_and_sums() -> None:
    metrics = IstioMetrics()
    ok = _labels(reporter="source", response_code="200", destination_service_name="reviews")
    failed = _labels(reporter="source", response_code="503", response_flags="UF")
    metrics.record(ok, duration_ms=0.3, request_bytes=0, response_bytes=1024)
    metrics.record(ok, duration_ms=7.0, request_bytes=100, response_bytes=1024)
    metrics.record(failed, duration_ms=4000.0, request_bytes=0, response_bytes=19)
    text = metrics.render().decode()
    assert "# TYPE istio_requests_total counter" in text
    families = {f.name: f for f in text_string_to_metric_families(text)}

    counts = {s.labels["response_code"]: s.value for s in families["istio_requests"].samples}
    assert counts == {"200": 2, "503": 1}
    sample = next(
        s for s in families["istio_requests"].samples if s.labels["response_code"] == "200"
    )
    assert sample.name == "istio_requests_total"
    assert set(sample.labels) == set(LABELS)
    assert sample.labels["destination_service_name"] == "reviews"

    duration = [
        s
        for s in families["istio_request_duration_milliseconds"].samples
        if s.labels["response_code"] == "200"
    ]
    buckets = {s.labels["le"]: s.value for s in duration if s.name.endswith("_bucket")}
    assert list(buckets) == [
        "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000",
        "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf",
    ]  # fmt: skip
    assert buckets["0.5"] == 1  # 0.3 ms
    assert buckets["5"] == 1
    assert buckets["10"] == 2  # cumulative: 7 ms lands in le=10
    assert buckets["+Inf"] == 2
    by_name = {s.name: s.value for s in duration if not s.name.endswith("_bucket")}
    assert by_name["istio_request_duration_milliseconds_count"] == 2
    assert by_name["istio_request_duration_milliseconds_sum"] == pytest.approx(7.3)

    response = [
        s
        for s in families["istio_response_bytes"].samples
        if s.labels["response_flags"] == "UF" and s.name.endswith("_bucket")
    ]
    assert {s.labels["le"]: s.value for s in response}["10"] == 0
    assert {s.labels["le"]: s.value for s in response}["25"] == 1


def test_value_on_a_bound_counts_in_that_bucket() -> None:
    # Prometheus buckets are "less than or equal": 1000 bytes is in le="1000".
    metrics = IstioMetrics()
    metrics.record(_labels(), duration_ms=1.0, request_bytes=1000, response_bytes=0)
    families = _families(metrics)
    req = {
        s.labels["le"]: s.value
        for s in families["istio_request_bytes"].samples  # type: ignore[attr-defined]
        if s.name.endswith("_bucket")
    }
    assert req["500"] == 0
    assert req["1000"] == 1
    dur = {
        s.labels["le"]: s.value
        for s in families["istio_request_duration_milliseconds"].samples  # type: ignore[attr-defined]
        if s.name.endswith("_bucket")
    }
    assert dur["0.5"] == 0
    assert dur["1"] == 1


def test_values_beyond_the_last_bucket_only_reach_inf() -> None:
    metrics = IstioMetrics()
    metrics.record(_labels(), duration_ms=4_000_000.0, request_bytes=0, response_bytes=0)
    samples = _families(metrics)["istio_request_duration_milliseconds"].samples  # type: ignore[attr-defined]
    buckets = {s.labels["le"]: s.value for s in samples if s.name.endswith("_bucket")}
    assert buckets["3600000"] == 0
    assert buckets["+Inf"] == 1


def test_wrong_number_of_label_values_is_refused() -> None:
    with pytest.raises(ValueError, match="25 label values"):
        IstioMetrics().record(("source",), duration_ms=1, request_bytes=0, response_bytes=0)


def test_registry_takes_the_proxys_own_metrics() -> None:
    metrics = IstioMetrics()
    extra = Counter("remora_config_swaps", "Config swaps.", registry=metrics.registry)
    extra.inc()
    families = _families(metrics)
    assert families["remora_config_swaps"].samples[0].value == 1  # type: ignore[attr-defined]
    assert "istio_requests" in families
