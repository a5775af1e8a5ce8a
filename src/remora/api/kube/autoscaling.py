"""Kubernetes autoscaling/v2 HorizontalPodAutoscaler.

Rules from Kubernetes' autoscaling validation (pkg/apis/autoscaling/validation) as the API
reference documents them: minReplicas >= 1, maxReplicas >= minReplicas, one metric source
matching `type`, target types and their fields, behavior policies.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from remora.api.base import Spec, fail
from remora.api.kube.meta import LabelSelector, Quantity, parse_quantity
from remora.api.resource import Resource, served

TargetType = Literal["Utilization", "Value", "AverageValue"]


class MetricTarget(Spec):
    """target: type Utilization (averageUtilization %), Value (value) or AverageValue."""

    type: TargetType
    value: Quantity | None = None
    average_value: Quantity | None = None
    average_utilization: int | None = None

    @model_validator(mode="after")
    def _rules(self) -> MetricTarget:
        if self.type == "Utilization" and self.average_utilization is None:
            fail("must be set when type is Utilization", "averageUtilization")
        if self.type == "Value" and self.value is None:
            fail("must be set when type is Value", "value")
        if self.type == "AverageValue" and self.average_value is None:
            fail("must be set when type is AverageValue", "averageValue")
        if self.average_utilization is not None and self.average_utilization < 1:
            fail("must be greater than 0", "averageUtilization")
        for key, quantity in (("value", self.value), ("averageValue", self.average_value)):
            if quantity is not None and parse_quantity(quantity) <= 0:
                fail("must be positive", key)
        return self


class MetricIdentifier(Spec):
    name: str
    selector: LabelSelector | None = None


class CrossVersionObjectReference(Spec):
    api_version: str | None = None
    kind: str
    name: str


class ResourceMetricSource(Spec):
    """Resource: cpu or memory of the pods, as utilization of requests or an average value."""

    name: str
    target: MetricTarget

    @model_validator(mode="after")
    def _rules(self) -> ResourceMetricSource:
        if self.target.type == "Value":
            fail("must be Utilization or AverageValue for a resource metric", "target", "type")
        return self


class ContainerResourceMetricSource(ResourceMetricSource):
    container: str


class PodsMetricSource(Spec):
    metric: MetricIdentifier
    target: MetricTarget

    @model_validator(mode="after")
    def _rules(self) -> PodsMetricSource:
        if self.target.type != "AverageValue":
            fail("must be AverageValue for a Pods metric", "target", "type")
        return self


class ObjectMetricSource(Spec):
    described_object: CrossVersionObjectReference
    metric: MetricIdentifier
    target: MetricTarget

    @model_validator(mode="after")
    def _rules(self) -> ObjectMetricSource:
        if self.target.type == "Utilization":
            fail("must be Value or AverageValue for an Object metric", "target", "type")
        return self


class ExternalMetricSource(Spec):
    metric: MetricIdentifier
    target: MetricTarget

    @model_validator(mode="after")
    def _rules(self) -> ExternalMetricSource:
        if self.target.type == "Utilization":
            fail("must be Value or AverageValue for an External metric", "target", "type")
        return self


MetricType = Literal["Resource", "Pods", "Object", "External", "ContainerResource"]
_SOURCE_FIELD = {"Resource": "resource", "Pods": "pods", "Object": "object",
                 "External": "external", "ContainerResource": "container_resource"}  # fmt: skip
_SOURCE_KEY = {"Resource": "resource", "Pods": "pods", "Object": "object",
               "External": "external", "ContainerResource": "containerResource"}  # fmt: skip


class MetricSpec(Spec):
    """metrics[]: `type` names the one source that is set."""

    type: MetricType
    resource: ResourceMetricSource | None = None
    container_resource: ContainerResourceMetricSource | None = None
    pods: PodsMetricSource | None = None
    object: ObjectMetricSource | None = None
    external: ExternalMetricSource | None = None

    @model_validator(mode="after")
    def _rules(self) -> MetricSpec:
        if getattr(self, _SOURCE_FIELD[self.type]) is None:
            fail(f"must populate information for the given metric source {self.type!r}",
                 _SOURCE_KEY[self.type])  # fmt: skip
        for kind, field in _SOURCE_FIELD.items():
            if kind != self.type and getattr(self, field) is not None:
                fail("must populate the given metric source only", _SOURCE_KEY[kind])
        return self


class HPAScalingPolicy(Spec):
    """behavior.*.policies[]: change by `value` Pods or Percent within `periodSeconds`."""

    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0)
    period_seconds: int = Field(gt=0, le=1800)


class HPAScalingRules(Spec):
    stabilization_window_seconds: int | None = Field(default=None, ge=0, le=3600)
    select_policy: Literal["Max", "Min", "Disabled"] | None = None
    policies: list[HPAScalingPolicy] = Field(default_factory=list)
    tolerance: Quantity | None = None


class HorizontalPodAutoscalerBehavior(Spec):
    """Defaults: scaleUp no stabilization, max(100 %, 4 pods) per 15 s; scaleDown 300 s
    stabilization, 100 % per 15 s (API reference, HorizontalPodAutoscalerBehavior)."""

    scale_up: HPAScalingRules | None = None
    scale_down: HPAScalingRules | None = None

    @property
    def scale_down_stabilization(self) -> int:
        rules = self.scale_down
        window = rules.stabilization_window_seconds if rules else None
        return 300 if window is None else window

    @property
    def scale_up_stabilization(self) -> int:
        rules = self.scale_up
        window = rules.stabilization_window_seconds if rules else None
        return 0 if window is None else window


class HorizontalPodAutoscalerSpec(Spec):
    scale_target_ref: CrossVersionObjectReference
    min_replicas: int | None = None
    max_replicas: int
    metrics: list[MetricSpec] = Field(default_factory=list)
    behavior: HorizontalPodAutoscalerBehavior | None = None

    @model_validator(mode="after")
    def _rules(self) -> HorizontalPodAutoscalerSpec:
        if self.min_replicas is not None and self.min_replicas < 1:
            fail("must be greater than or equal to 1", "minReplicas")
        if self.max_replicas < 1:
            fail("must be greater than or equal to 1", "maxReplicas")
        if self.max_replicas < self.effective_min_replicas:
            fail("must be greater than or equal to `minReplicas`", "maxReplicas")
        return self

    @property
    def effective_min_replicas(self) -> int:
        return 1 if self.min_replicas is None else self.min_replicas

    @property
    def effective_metrics(self) -> list[MetricSpec]:
        """metrics; Kubernetes uses 80 % average CPU utilization when none are given."""
        if self.metrics:
            return self.metrics
        target = MetricTarget(type="Utilization", average_utilization=80)
        return [MetricSpec(type="Resource",
                           resource=ResourceMetricSource(name="cpu", target=target))]  # fmt: skip


@served("autoscaling", "v2", "v2beta2")
class HorizontalPodAutoscaler(Resource):
    """Scales a Deployment or StatefulSet between minReplicas and maxReplicas on metrics."""

    KIND: ClassVar[str] = "HorizontalPodAutoscaler"

    spec: HorizontalPodAutoscalerSpec
