"""Kubernetes apps/v1 workloads: Deployment and StatefulSet.

Rules from Kubernetes' apps validation (pkg/apis/apps/validation), as the API reference states
them: a non-empty selector that matches the template labels, replicas >= 0, restartPolicy Always,
strategy fields.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from remora.api.base import Spec, fail
from remora.api.kube.meta import IntOrPercent, LabelSelector
from remora.api.kube.pod import PodTemplateSpec
from remora.api.resource import WORKLOAD_NAME_LABEL, ObjectMeta, Resource, served


def check_workload(
    selector: LabelSelector,
    template: PodTemplateSpec,
    replicas: int | None,
    *,
    claims: frozenset[str] = frozenset(),
) -> None:
    """Checks shared by Deployment and StatefulSet specs."""
    if replicas is not None and replicas < 0:
        fail("must be greater than or equal to 0", "replicas")
    if selector.is_empty:
        fail("empty selector is invalid for this workload", "selector")
    if not selector.matches(template.labels):
        fail("`selector` does not match template `labels`", "template", "metadata", "labels")
    policy = template.spec.restart_policy
    if policy not in (None, "Always"):
        fail("only 'Always' is supported", "template", "spec", "restartPolicy")
    template.spec.check_volume_mounts("template", "spec", claims=claims)


class RollingUpdateDeployment(Spec):
    """maxSurge / maxUnavailable: counts or percentages; both default to 25%."""

    max_surge: IntOrPercent | None = None
    max_unavailable: IntOrPercent | None = None


class DeploymentStrategy(Spec):
    type: Literal["Recreate", "RollingUpdate"] | None = None
    rolling_update: RollingUpdateDeployment | None = None

    @model_validator(mode="after")
    def _rules(self) -> DeploymentStrategy:
        if self.type == "Recreate" and self.rolling_update is not None:
            fail("may not be specified when strategy `type` is 'Recreate'", "rollingUpdate")
        ru = self.rolling_update
        if ru is not None and _is_zero(ru.max_surge) and _is_zero(ru.max_unavailable):
            fail("may not be 0 when `maxSurge` is 0", "rollingUpdate", "maxUnavailable")
        return self


def _is_zero(value: int | str | None) -> bool:
    return value in (0, "0%")


class DeploymentSpec(Spec):
    """apps/v1 DeploymentSpec."""

    replicas: int | None = None
    selector: LabelSelector
    template: PodTemplateSpec
    strategy: DeploymentStrategy | None = None
    min_ready_seconds: int | None = Field(default=None, ge=0)
    revision_history_limit: int | None = Field(default=None, ge=0)
    progress_deadline_seconds: int | None = Field(default=None, ge=1)
    paused: bool | None = None

    @model_validator(mode="after")
    def _rules(self) -> DeploymentSpec:
        check_workload(self.selector, self.template, self.replicas)
        if (self.progress_deadline_seconds is not None and self.min_ready_seconds is not None
                and self.progress_deadline_seconds <= self.min_ready_seconds):  # fmt: skip
            fail("must be greater than minReadySeconds", "progressDeadlineSeconds")
        return self


class RollingUpdateStatefulSetStrategy(Spec):
    max_unavailable: IntOrPercent | None = None
    partition: int | None = Field(default=None, ge=0)


class StatefulSetUpdateStrategy(Spec):
    type: Literal["RollingUpdate", "OnDelete"] | None = None
    rolling_update: RollingUpdateStatefulSetStrategy | None = None

    @model_validator(mode="after")
    def _rules(self) -> StatefulSetUpdateStrategy:
        if self.type == "OnDelete" and self.rolling_update is not None:
            fail("only allowed for updateStrategy 'RollingUpdate'", "rollingUpdate")
        return self


class PersistentVolumeClaimSpec(Spec):
    access_modes: list[str] = Field(default_factory=list)
    data_source: Any = None
    data_source_ref: Any = None
    resources: Any = None
    selector: LabelSelector | None = None
    storage_class_name: str | None = None
    volume_attributes_class_name: str | None = None
    volume_mode: Literal["Filesystem", "Block"] | None = None
    volume_name: str | None = None


class PersistentVolumeClaimTemplate(Spec):
    """volumeClaimTemplates[]: a PersistentVolumeClaim (apiVersion/kind optional)."""

    api_version: str | None = None
    kind: str | None = None
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PersistentVolumeClaimSpec = Field(default_factory=PersistentVolumeClaimSpec)
    status: Any = None


class StatefulSetOrdinals(Spec):
    start: int | None = Field(default=None, ge=0)


class PersistentVolumeClaimRetentionPolicy(Spec):
    when_deleted: Literal["Retain", "Delete"] | None = None
    when_scaled: Literal["Retain", "Delete"] | None = None


class StatefulSetSpec(Spec):
    """apps/v1 StatefulSetSpec."""

    replicas: int | None = None
    selector: LabelSelector
    template: PodTemplateSpec
    service_name: str | None = None
    volume_claim_templates: list[PersistentVolumeClaimTemplate] = Field(default_factory=list)
    pod_management_policy: Literal["OrderedReady", "Parallel"] | None = None
    update_strategy: StatefulSetUpdateStrategy | None = None
    min_ready_seconds: int | None = Field(default=None, ge=0)
    revision_history_limit: int | None = Field(default=None, ge=0)
    ordinals: StatefulSetOrdinals | None = None
    persistent_volume_claim_retention_policy: PersistentVolumeClaimRetentionPolicy | None = None

    @model_validator(mode="after")
    def _rules(self) -> StatefulSetSpec:
        claims = frozenset(t.metadata.name or "" for t in self.volume_claim_templates)
        check_workload(self.selector, self.template, self.replicas, claims=claims)
        return self


class Workload(Resource):
    """What Deployments and StatefulSets share: a pod template and a replica count."""

    spec: DeploymentSpec | StatefulSetSpec

    @property
    def pod_labels(self) -> dict[str, str]:
        return self.spec.template.labels

    @property
    def workload_name(self) -> str:
        """The name Istio gives this workload's pods in telemetry (istio/istio pkg/kube
        GetWorkloadMetaFromPod): the pod label `service.istio.io/workload-name`, else the
        owner's name, the Deployment (a ReplicaSet without its pod-template-hash) or the
        StatefulSet. Never the pod's own name."""
        return self.pod_labels.get(WORKLOAD_NAME_LABEL) or self.name

    @property
    def effective_replicas(self) -> int:
        """spec.replicas; Kubernetes defaults it to 1."""
        return 1 if self.spec.replicas is None else self.spec.replicas


@served("apps", "v1")
class Deployment(Workload):
    """A replicated, stateless workload."""

    KIND: ClassVar[str] = "Deployment"

    spec: DeploymentSpec


@served("apps", "v1")
class StatefulSet(Workload):
    """Pods with stable names (`name-0`, `name-1`, ...) behind a (usually headless) Service."""

    KIND: ClassVar[str] = "StatefulSet"

    spec: StatefulSetSpec

    @property
    def pod_names(self) -> list[str]:
        start = self.spec.ordinals.start if self.spec.ordinals and self.spec.ordinals.start else 0
        return [f"{self.name}-{i}" for i in range(start, start + self.effective_replicas)]
