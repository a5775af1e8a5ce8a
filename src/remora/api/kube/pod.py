"""Kubernetes core/v1 PodTemplateSpec, PodSpec, Container, probes, env and volumes.

Every field the Kubernetes API reference lists for these objects is declared, so a misspelt key is
an error; the fields the mesh and the local runner use are typed, the others are `Any`.
Defaults quoted on fields are Kubernetes' (API reference, "Probe" / "Container").
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from remora.api.base import Spec, fail
from remora.api.kube.meta import (
    IntOrString,
    LocalObjectReference,
    Quantity,
    check_int_or_port_name,
    check_port_number,
    cpu_millicores,
    is_dns1123_label,
    is_port_name,
    memory_bytes,
    parse_quantity,
)
from remora.api.resource import ObjectMeta

# ---------------------------------------------------------------------------------------------
# Probes and lifecycle handlers
# ---------------------------------------------------------------------------------------------


class HTTPHeader(Spec):
    name: str
    value: str


class HTTPGetAction(Spec):
    """httpGet: GET scheme://host:port/path; 200-399 is success."""

    host: str | None = None
    http_headers: list[HTTPHeader] = Field(default_factory=list)
    path: str | None = None
    port: IntOrString
    scheme: Literal["HTTP", "HTTPS"] | None = None

    @model_validator(mode="after")
    def _rules(self) -> HTTPGetAction:
        check_int_or_port_name(self.port, "port")
        return self


class TCPSocketAction(Spec):
    """tcpSocket: success when a TCP connection opens."""

    host: str | None = None
    port: IntOrString

    @model_validator(mode="after")
    def _rules(self) -> TCPSocketAction:
        check_int_or_port_name(self.port, "port")
        return self


class ExecAction(Spec):
    """exec: run a command in the container; exit status 0 is success."""

    command: list[str] = Field(default_factory=list)


class GRPCAction(Spec):
    """grpc: the gRPC health checking protocol on a port number."""

    port: int
    service: str | None = None

    @model_validator(mode="after")
    def _rules(self) -> GRPCAction:
        check_port_number(self.port, "port")
        return self


class SleepAction(Spec):
    seconds: int


def _check_one_handler(handler: Spec, names: tuple[str, ...]) -> None:
    """Kubernetes: "must specify a handler type" / "may not specify more than 1 handler type"."""
    set_ = [n for n in names if getattr(handler, n) is not None]
    if not set_:
        fail("must specify a handler type")
    if len(set_) > 1:
        fail("may not specify more than 1 handler type")


_PROBE_HANDLERS = ("exec", "http_get", "tcp_socket", "grpc")


class Probe(Spec):
    """A health check. Defaults: initialDelaySeconds 0, periodSeconds 10, timeoutSeconds 1,
    successThreshold 1, failureThreshold 3 (Kubernetes API reference, Probe v1 core)."""

    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    grpc: GRPCAction | None = None
    initial_delay_seconds: int | None = Field(default=None, ge=0)
    period_seconds: int | None = Field(default=None, ge=1)
    timeout_seconds: int | None = Field(default=None, ge=1)
    success_threshold: int | None = Field(default=None, ge=1)
    failure_threshold: int | None = Field(default=None, ge=1)
    termination_grace_period_seconds: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _rules(self) -> Probe:
        _check_one_handler(self, _PROBE_HANDLERS)
        return self

    @property
    def initial_delay(self) -> int:
        return self.initial_delay_seconds or 0

    @property
    def period(self) -> int:
        return self.period_seconds or 10

    @property
    def timeout(self) -> int:
        return self.timeout_seconds or 1

    @property
    def successes_needed(self) -> int:
        return self.success_threshold or 1

    @property
    def failures_allowed(self) -> int:
        return self.failure_threshold or 3


class LifecycleHandler(Spec):
    """postStart / preStop: exactly one of exec, httpGet, tcpSocket (deprecated) or sleep."""

    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    sleep: SleepAction | None = None

    @model_validator(mode="after")
    def _rules(self) -> LifecycleHandler:
        _check_one_handler(self, ("exec", "http_get", "tcp_socket", "sleep"))
        return self


class Lifecycle(Spec):
    post_start: LifecycleHandler | None = None
    pre_stop: LifecycleHandler | None = None
    stop_signal: str | None = None


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------


class KeySelector(Spec):
    """configMapKeyRef / secretKeyRef: a key of a ConfigMap or Secret."""

    key: str
    name: str | None = None
    optional: bool | None = None


class ObjectFieldSelector(Spec):
    """fieldRef: metadata.name, metadata.namespace, status.podIP, spec.nodeName, ..."""

    api_version: str | None = None
    field_path: str


class ResourceFieldSelector(Spec):
    """resourceFieldRef: limits.cpu, requests.memory, ... of a container."""

    container_name: str | None = None
    divisor: Quantity | None = None
    resource: str


class EnvVarSource(Spec):
    config_map_key_ref: KeySelector | None = None
    secret_key_ref: KeySelector | None = None
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    file_key_ref: Any = None

    @model_validator(mode="after")
    def _rules(self) -> EnvVarSource:
        names = ("config_map_key_ref", "secret_key_ref", "field_ref", "resource_field_ref",
                 "file_key_ref")  # fmt: skip
        if sum(getattr(self, n) is not None for n in names) != 1:
            fail("must specify exactly one of configMapKeyRef, secretKeyRef, fieldRef, "
                 "resourceFieldRef or fileKeyRef")  # fmt: skip
        return self


class EnvVar(Spec):
    """env[]: a literal value or one taken from a ConfigMap, Secret, field or resource."""

    name: str
    value: str | None = None
    value_from: EnvVarSource | None = None

    @model_validator(mode="after")
    def _rules(self) -> EnvVar:
        if not self.name:
            fail("must not be empty", "name")
        if self.value and self.value_from is not None:
            fail("may not have both value and valueFrom", "valueFrom")
        return self


class EnvFromRef(Spec):
    name: str | None = None
    optional: bool | None = None


class EnvFromSource(Spec):
    """envFrom[]: every key of a ConfigMap or Secret, optionally prefixed."""

    config_map_ref: EnvFromRef | None = None
    secret_ref: EnvFromRef | None = None
    prefix: str | None = None

    @model_validator(mode="after")
    def _rules(self) -> EnvFromSource:
        if (self.config_map_ref is None) == (self.secret_ref is None):
            fail("must specify exactly one of configMapRef or secretRef")
        return self


# ---------------------------------------------------------------------------------------------
# Container
# ---------------------------------------------------------------------------------------------


class ContainerPort(Spec):
    container_port: int
    host_ip: str | None = Field(default=None, alias="hostIP")
    host_port: int | None = None
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] | None = None

    @model_validator(mode="after")
    def _rules(self) -> ContainerPort:
        check_port_number(self.container_port, "containerPort")
        if self.host_port is not None and self.host_port != 0:
            check_port_number(self.host_port, "hostPort")
        if self.name is not None and not is_port_name(self.name):
            fail(f"must be an IANA_SVC_NAME (at most 15 lower-case alphanumerics or '-'), "
                 f"got {self.name!r}", "name")  # fmt: skip
        return self


class ResourceRequirements(Spec):
    """requests / limits: cpu ("500m", 1), memory ("128Mi"), ephemeral-storage, ..."""

    claims: list[Any] = Field(default_factory=list)
    limits: dict[str, Quantity] = Field(default_factory=dict)
    requests: dict[str, Quantity] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _rules(self) -> ResourceRequirements:
        # Kubernetes ValidateResourceRequirements: a request must not exceed its limit.
        for name, request in self.requests.items():
            limit = self.limits.get(name)
            if limit is not None and parse_quantity(request) > parse_quantity(limit):
                fail(f"must be less than or equal to {name} limit of {limit}", "requests", name)
        return self

    def cpu_request_millis(self) -> int | None:
        """requests.cpu in millicores; Kubernetes defaults an unset request to the limit."""
        value = self.requests.get("cpu", self.limits.get("cpu"))
        return None if value is None else cpu_millicores(value)

    def cpu_limit_millis(self) -> int | None:
        value = self.limits.get("cpu")
        return None if value is None else cpu_millicores(value)

    def memory_request_bytes(self) -> int | None:
        value = self.requests.get("memory", self.limits.get("memory"))
        return None if value is None else memory_bytes(value)

    def memory_limit_bytes(self) -> int | None:
        value = self.limits.get("memory")
        return None if value is None else memory_bytes(value)


class VolumeMount(Spec):
    mount_path: str
    mount_propagation: str | None = None
    name: str
    read_only: bool | None = None
    recursive_read_only: str | None = None
    sub_path: str | None = None
    sub_path_expr: str | None = None


class Container(Spec):
    """A container of a pod (also initContainers[]; a restartPolicy: Always init is a sidecar)."""

    name: str
    image: str | None = None
    image_pull_policy: Literal["Always", "Never", "IfNotPresent"] | None = None
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    working_dir: str | None = None
    env: list[EnvVar] = Field(default_factory=list)
    env_from: list[EnvFromSource] = Field(default_factory=list)
    ports: list[ContainerPort] = Field(default_factory=list)
    resources: ResourceRequirements | None = None
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    lifecycle: Lifecycle | None = None
    volume_mounts: list[VolumeMount] = Field(default_factory=list)
    restart_policy: Literal["Always"] | None = None
    # Accepted, not used by Remora:
    resize_policy: list[Any] = Field(default_factory=list)
    restart_policy_rules: list[Any] = Field(default_factory=list)
    security_context: Any = None
    stdin: bool | None = None
    stdin_once: bool | None = None
    termination_message_path: str | None = None
    termination_message_policy: str | None = None
    tty: bool | None = None
    volume_devices: list[Any] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> Container:
        if not is_dns1123_label(self.name):
            fail(f"must be a DNS-1123 label (lower-case alphanumerics and '-'), "
                 f"got {self.name!r}", "name")  # fmt: skip
        seen: set[str] = set()
        for i, port in enumerate(self.ports):
            if port.name and port.name in seen:
                fail(f"duplicate port name {port.name!r}", "ports", i, "name")
            seen.add(port.name or "")
        # Kubernetes validateProbe: liveness and startup probes need successThreshold 1.
        for key, probe in (("livenessProbe", self.liveness_probe),
                           ("startupProbe", self.startup_probe)):  # fmt: skip
            if probe is not None and probe.success_threshold not in (None, 1):
                fail("must be 1", key, "successThreshold")
        return self

    def port_named(self, name: str) -> ContainerPort | None:
        return next((p for p in self.ports if p.name == name), None)


# ---------------------------------------------------------------------------------------------
# Volumes
# ---------------------------------------------------------------------------------------------


class KeyToPath(Spec):
    key: str
    mode: int | None = None
    path: str


class ConfigMapVolumeSource(Spec):
    default_mode: int | None = None
    items: list[KeyToPath] = Field(default_factory=list)
    name: str | None = None
    optional: bool | None = None


class SecretVolumeSource(Spec):
    default_mode: int | None = None
    items: list[KeyToPath] = Field(default_factory=list)
    optional: bool | None = None
    secret_name: str | None = None


class EmptyDirVolumeSource(Spec):
    medium: str | None = None
    size_limit: Quantity | None = None


class PersistentVolumeClaimVolumeSource(Spec):
    claim_name: str
    read_only: bool | None = None


class HostPathVolumeSource(Spec):
    path: str
    type: str | None = None


_VOLUME_SOURCES = (
    "config_map", "secret", "empty_dir", "persistent_volume_claim", "host_path", "projected",
    "downward_api", "aws_elastic_block_store", "azure_disk", "azure_file", "cephfs", "cinder",
    "csi", "ephemeral", "fc", "flex_volume", "flocker", "gce_persistent_disk", "git_repo",
    "glusterfs", "image", "iscsi", "nfs", "photon_persistent_disk", "portworx_volume", "quobyte",
    "rbd", "scale_io", "storageos", "vsphere_volume",
)  # fmt: skip


class Volume(Spec):
    """volumes[]: a name and exactly one source."""

    name: str
    config_map: ConfigMapVolumeSource | None = None
    secret: SecretVolumeSource | None = None
    empty_dir: EmptyDirVolumeSource | None = None
    persistent_volume_claim: PersistentVolumeClaimVolumeSource | None = None
    host_path: HostPathVolumeSource | None = None
    projected: Any = None
    downward_api: Any = Field(default=None, alias="downwardAPI")
    aws_elastic_block_store: Any = None
    azure_disk: Any = None
    azure_file: Any = None
    cephfs: Any = None
    cinder: Any = None
    csi: Any = None
    ephemeral: Any = None
    fc: Any = None
    flex_volume: Any = None
    flocker: Any = None
    gce_persistent_disk: Any = None
    git_repo: Any = None
    glusterfs: Any = None
    image: Any = None
    iscsi: Any = None
    nfs: Any = None
    photon_persistent_disk: Any = None
    portworx_volume: Any = None
    quobyte: Any = None
    rbd: Any = None
    scale_io: Any = Field(default=None, alias="scaleIO")
    storageos: Any = None
    vsphere_volume: Any = None

    @model_validator(mode="after")
    def _rules(self) -> Volume:
        if not is_dns1123_label(self.name):
            fail(f"must be a DNS-1123 label, got {self.name!r}", "name")
        if sum(getattr(self, n) is not None for n in _VOLUME_SOURCES) > 1:
            fail("may not specify more than 1 volume type")
        return self


# ---------------------------------------------------------------------------------------------
# PodSpec and PodTemplateSpec
# ---------------------------------------------------------------------------------------------


class PodSpec(Spec):
    """core/v1 PodSpec. Typed: what a local runner and the mesh read; `Any`: accepted only."""

    containers: list[Container] = Field(min_length=1)
    init_containers: list[Container] = Field(default_factory=list)
    volumes: list[Volume] = Field(default_factory=list)
    restart_policy: Literal["Always", "OnFailure", "Never"] | None = None
    termination_grace_period_seconds: int | None = Field(default=None, ge=0)
    active_deadline_seconds: int | None = Field(default=None, ge=1)
    service_account_name: str | None = None
    service_account: str | None = None  # deprecated alias of serviceAccountName
    automount_service_account_token: bool | None = None
    hostname: str | None = None
    subdomain: str | None = None
    host_network: bool | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    # Accepted, not used by Remora:
    affinity: Any = None
    dns_config: Any = None
    dns_policy: str | None = None
    enable_service_links: bool | None = None
    ephemeral_containers: list[Any] = Field(default_factory=list)
    eviction_responders: list[Any] = Field(default_factory=list)
    host_aliases: list[Any] = Field(default_factory=list)
    host_ipc: bool | None = Field(default=None, alias="hostIPC")
    host_pid: bool | None = Field(default=None, alias="hostPID")
    host_users: bool | None = None
    hostname_override: str | None = None
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list)
    node_name: str | None = None
    os: Any = None
    overhead: dict[str, Quantity] = Field(default_factory=dict)
    preemption_policy: str | None = None
    priority: int | None = None
    priority_class_name: str | None = None
    readiness_gates: list[Any] = Field(default_factory=list)
    resource_claims: list[Any] = Field(default_factory=list)
    resources: ResourceRequirements | None = None
    runtime_class_name: str | None = None
    scheduler_name: str | None = None
    scheduling_gates: list[Any] = Field(default_factory=list)
    scheduling_group: Any = None
    security_context: Any = None
    set_hostname_as_fqdn: bool | None = Field(default=None, alias="setHostnameAsFQDN")
    share_process_namespace: bool | None = None
    tolerations: list[Any] = Field(default_factory=list)
    topology_spread_constraints: list[Any] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> PodSpec:
        # Kubernetes validateContainers: names unique across containers and initContainers.
        seen: set[str] = set()
        for key, containers in (("initContainers", self.init_containers),
                                ("containers", self.containers)):  # fmt: skip
            for i, container in enumerate(containers):
                if container.name in seen:
                    fail(f"duplicate container name {container.name!r}", key, i, "name")
                seen.add(container.name)
        volumes: set[str] = set()
        for i, volume in enumerate(self.volumes):
            if volume.name in volumes:
                fail(f"duplicate volume name {volume.name!r}", "volumes", i, "name")
            volumes.add(volume.name)
        return self

    def check_volume_mounts(self, *path: str, claims: frozenset[str] = frozenset()) -> None:
        """Every volumeMounts[].name names a volume (or a StatefulSet volumeClaimTemplate)."""
        volumes = {v.name for v in self.volumes} | claims
        for key, containers in (("initContainers", self.init_containers),
                                ("containers", self.containers)):  # fmt: skip
            for i, container in enumerate(containers):
                for m, mount in enumerate(container.volume_mounts):
                    if mount.name not in volumes:
                        fail(f"volume {mount.name!r} not found", *path, key, i, "volumeMounts",
                             m, "name")  # fmt: skip

    @property
    def effective_service_account(self) -> str:
        """serviceAccountName, else the deprecated serviceAccount, else "default"."""
        return self.service_account_name or self.service_account or "default"

    @property
    def termination_grace_period(self) -> int:
        """terminationGracePeriodSeconds; Kubernetes defaults it to 30."""
        return 30 if self.termination_grace_period_seconds is None else (
            self.termination_grace_period_seconds)

    def container_named(self, name: str) -> Container | None:
        return next((c for c in self.containers if c.name == name), None)


class PodTemplateSpec(Spec):
    """A pod template: metadata (labels) and spec."""

    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodSpec

    @property
    def labels(self) -> dict[str, str]:
        return self.metadata.labels
