"""Istio telemetry.istio.io kinds: Telemetry (tracing, metrics, access logging).

Fields follow istio/api telemetry/v1alpha1/telemetry.proto; rules are those of istio/istio
pkg/config/validation/validation.go (ValidateTelemetry) and the CRD's CEL rules.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from remora.api.base import Duration, Spec, fail
from remora.api.common import PolicyTargetReference, WorkloadSelector
from remora.api.resource import Resource, served
from remora.api.security import check_targeting

WorkloadMode = Literal["CLIENT_AND_SERVER", "CLIENT", "SERVER"]


class ProviderRef(Spec):
    """providers[]: an extension provider named in meshConfig."""

    name: str

    @model_validator(mode="after")
    def _rules(self) -> ProviderRef:
        if not self.name:
            fail("providers.name may not be empty", "name")
        return self


# --- tracing ---------------------------------------------------------------------------------


class Literal_(Spec):  # noqa: N801  (Istio's name is Literal, which typing already uses)
    """customTags.*.literal: a fixed value."""

    value: str

    @model_validator(mode="after")
    def _rules(self) -> Literal_:
        if not self.value:
            fail("literal tag value may not be empty", "value")
        return self


class Environment(Spec):
    """customTags.*.environment: the value of a proxy environment variable."""

    name: str
    default_value: str | None = None

    @model_validator(mode="after")
    def _rules(self) -> Environment:
        if not self.name:
            fail("environment tag name may not be empty", "name")
        return self


class RequestHeader(Spec):
    """customTags.*.header: the value of a request header."""

    name: str
    default_value: str | None = None

    @model_validator(mode="after")
    def _rules(self) -> RequestHeader:
        if not self.name:
            fail("header tag name may not be empty", "name")
        return self


class Formatter(Spec):
    """customTags.*.formatter: an Envoy command-operator expression."""

    value: str

    @model_validator(mode="after")
    def _rules(self) -> Formatter:
        if not self.value:
            fail("must not be empty", "value")
        return self


class CustomTag(Spec):
    """A span tag: exactly one of literal, environment, header or formatter (a proto oneof)."""

    literal: Literal_ | None = None
    environment: Environment | None = None
    header: RequestHeader | None = None
    formatter: Formatter | None = None

    @model_validator(mode="after")
    def _rules(self) -> CustomTag:
        count = sum(v is not None for v in (self.literal, self.environment, self.header,
                                             self.formatter))  # fmt: skip
        if count != 1:
            fail("must set exactly one of literal, environment, header or formatter")
        return self


class TracingSelector(Spec):
    mode: WorkloadMode | None = None


class Tracing(Spec):
    """tracing[]: providers, sampling percentage (0-100), custom tags."""

    match: TracingSelector | None = None
    providers: list[ProviderRef] = Field(default_factory=list)
    random_sampling_percentage: float | int | None = None
    disable_span_reporting: bool | None = None
    custom_tags: dict[str, CustomTag] = Field(default_factory=dict)
    use_request_id_for_trace_sampling: bool | None = None
    enable_istio_tags: bool | None = None
    disable_context_propagation: bool | None = None

    @model_validator(mode="after")
    def _rules(self) -> Tracing:
        pct = self.random_sampling_percentage
        if pct is not None and not 0 <= pct <= 100:
            fail("randomSamplingPercentage must be in range [0.0, 100.0]",
                 "randomSamplingPercentage")  # fmt: skip
        if "" in self.custom_tags:
            fail("tag name may not be empty", "customTags")
        return self


# --- metrics ---------------------------------------------------------------------------------

IstioMetric = Literal[
    "ALL_METRICS", "REQUEST_COUNT", "REQUEST_DURATION", "REQUEST_SIZE", "RESPONSE_SIZE",
    "TCP_OPENED_CONNECTIONS", "TCP_CLOSED_CONNECTIONS", "TCP_SENT_BYTES", "TCP_RECEIVED_BYTES",
    "GRPC_REQUEST_MESSAGES", "GRPC_RESPONSE_MESSAGES",
]  # fmt: skip

# Prometheus names of Istio's standard metrics (Istio docs, "Istio Standard Metrics").
METRIC_NAMES: dict[str, str] = {
    "REQUEST_COUNT": "istio_requests_total",
    "REQUEST_DURATION": "istio_request_duration_milliseconds",
    "REQUEST_SIZE": "istio_request_bytes",
    "RESPONSE_SIZE": "istio_response_bytes",
    "TCP_OPENED_CONNECTIONS": "istio_tcp_connections_opened_total",
    "TCP_CLOSED_CONNECTIONS": "istio_tcp_connections_closed_total",
    "TCP_SENT_BYTES": "istio_tcp_sent_bytes_total",
    "TCP_RECEIVED_BYTES": "istio_tcp_received_bytes_total",
    "GRPC_REQUEST_MESSAGES": "istio_request_messages_total",
    "GRPC_RESPONSE_MESSAGES": "istio_response_messages_total",
}


class MetricSelector(Spec):
    """overrides[].match: one standard metric (default ALL_METRICS) or a custom one, and mode."""

    metric: IstioMetric | None = None
    custom_metric: str | None = None
    mode: WorkloadMode | None = None

    @model_validator(mode="after")
    def _rules(self) -> MetricSelector:
        if self.metric is not None and self.custom_metric is not None:
            fail("only one of metric or customMetric may be set")
        if self.custom_metric is not None and not self.custom_metric:
            fail("customMetric may not be empty", "customMetric")
        return self


class TagOverride(Spec):
    """tagOverrides.<tag>: UPSERT (default) with a CEL `value`, or REMOVE without one."""

    operation: Literal["UPSERT", "REMOVE"] | None = None
    value: str | None = None

    @model_validator(mode="after")
    def _rules(self) -> TagOverride:
        if (self.operation or "UPSERT") == "UPSERT" and not self.value:
            fail("value must be set when operation is UPSERT", "value")
        if self.operation == "REMOVE" and self.value is not None:
            fail("value must not be set when operation is REMOVE", "value")
        return self


class MetricsOverrides(Spec):
    """metrics[].overrides[]: disable or re-tag the selected metrics."""

    match: MetricSelector | None = None
    disabled: bool | None = None
    tag_overrides: dict[str, TagOverride] = Field(default_factory=dict)


class Metrics(Spec):
    """metrics[]: providers, overrides and reporting interval."""

    providers: list[ProviderRef] = Field(default_factory=list)
    overrides: list[MetricsOverrides] = Field(default_factory=list)
    reporting_interval: Duration | None = None


# --- access logging --------------------------------------------------------------------------


class Filter(Spec):
    """accessLogging[].filter: a CEL expression; only matching requests are logged."""

    expression: str | None = None


class LogSelector(Spec):
    mode: WorkloadMode | None = None


class AccessLogging(Spec):
    match: LogSelector | None = None
    providers: list[ProviderRef] = Field(default_factory=list)
    disabled: bool | None = None
    filter: Filter | None = None


class TelemetrySpec(Spec):
    """telemetry.istio.io Telemetry spec."""

    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: list[PolicyTargetReference] = Field(default_factory=list)
    tracing: list[Tracing] = Field(default_factory=list)
    metrics: list[Metrics] = Field(default_factory=list)
    access_logging: list[AccessLogging] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> TelemetrySpec:
        check_targeting(self.selector, self.target_ref, self.target_refs)
        return self


@served("telemetry.istio.io", "v1alpha1", "v1")
class Telemetry(Resource):
    """Tracing, metrics and access-log settings: workload > namespace > root namespace."""

    KIND: ClassVar[str] = "Telemetry"

    spec: TelemetrySpec = Field(default_factory=TelemetrySpec)
