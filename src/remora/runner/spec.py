"""What to run: workloads and their instances (pods), resolved from loaded resources.

Pure: resources in, frozen specs out; the pod-name suffix comes from the `rng` passed in.
Kubernetes semantics followed here (kubernetes.io, "Pods", "Deployments", "StatefulSets",
"Define Environment Variables", "Expose Pod Information to Containers Through Environment
Variables", "Configure Liveness, Readiness and Startup Probes"):

- a Deployment's pods are `<name>-<pod-template-hash>-<5 random>`; a StatefulSet's are
  `<name>-<ordinal>` from `spec.ordinals.start`;
- the command is the container's `command` + `args` with `$(VAR)` expanded from its env, or the
  `remora.dev/command` annotation (pod template first, then the workload) when the image cannot
  run here; only the first container runs (sidecars and initContainers are ignored);
- env: `envFrom` first, then `env` in order (`value` with `$(VAR)`, configMapKeyRef,
  secretKeyRef, fieldRef, resourceFieldRef); a missing optional reference skips the variable;
- probes take Kubernetes' defaults; a probe port given by name is resolved to the container
  port number;
- Services of the same namespace whose non-empty selector is a subset of the pod labels select
  the pod; a `targetPort` name that the container does not declare is skipped, as Endpoints do.
"""

from __future__ import annotations

import base64
import json
import random
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING
from pathlib import Path
from typing import Literal

from remora.api.kube.core import ConfigMap, Secret, Service
from remora.api.kube.meta import parse_quantity
from remora.api.kube.pod import Container, EnvVar, Probe
from remora.api.kube.workloads import Deployment, StatefulSet, Workload
from remora.api.meshconfig import mesh_config_of
from remora.api.resource import Resource
from remora.errors import RemoraError

COMMAND_ANNOTATION = "remora.dev/command"
PROXY_CONFIG_ANNOTATION = "proxy.istio.io/config"  # a ProxyConfig (YAML) over defaultConfig
POD_IP = "127.0.0.1"
NODE_NAME = "localhost"
# k8s.io/apimachinery/pkg/util/rand: the alphabet of generated names (no vowels, no 0/1/3).
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
_VAR_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z0-9]+)\)")


class SpecError(RemoraError):
    """A workload cannot be run as written (missing ConfigMap key, no command, ...)."""


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """A liveness, readiness or startup probe with Kubernetes' defaults applied."""

    kind: Literal["http", "tcp", "exec"]
    path: str = "/"
    port: int | str | None = None  # the container port (a name is resolved to its number)
    command: tuple[str, ...] = ()
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    scheme: Literal["HTTP", "HTTPS"] = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ContainerPort:
    """A declared containerPort; the runner maps it to a free local port."""

    name: str
    container_port: int


@dataclass(frozen=True, slots=True)
class ServicePortMapping:
    """A Service port of a Service selecting the pod, and the container port it targets."""

    service: str
    port: int
    port_name: str
    target_port: int


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """One pod: name, labels, resolved command and env, ports, probes, Services selecting it."""

    name: str
    workload: str  # the Deployment or StatefulSet it belongs to
    workload_name: str  # Istio's workload name in telemetry (Workload.workload_name)
    kind: Literal["Deployment", "StatefulSet"]
    namespace: str
    labels: Mapping[str, str]
    command: tuple[str, ...]
    env: Mapping[str, str]
    ports: tuple[ContainerPort, ...]
    liveness: ProbeSpec | None
    readiness: ProbeSpec | None
    startup: ProbeSpec | None
    termination_grace: float = 30
    data_dir: str | None = None
    services: tuple[tuple[str, int], ...] = ()
    service_ports: tuple[ServicePortMapping, ...] = ()
    working_dir: str | None = None
    cpu_request_millis: int | None = None
    memory_limit_bytes: int | None = None  # resources.limits.memory: beyond it, OOMKilled
    ignored_containers: tuple[str, ...] = ()
    container: str = "app"  # the name of the container that runs (`remora logs -c NAME`)
    annotations: Mapping[str, str] = field(default_factory=dict)  # the pod template's
    pod_ip: str = POD_IP
    hold_application: bool = False  # holdApplicationUntilProxyStarts: the app waits for it
    service_account: str = "default"  # its identity: spiffe://<td>/ns/<namespace>/sa/<this>


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """A Deployment or StatefulSet to run: its replicas and what the autoscaler needs."""

    name: str
    kind: Literal["Deployment", "StatefulSet"]
    namespace: str
    replicas: int
    labels: Mapping[str, str]
    cpu_request_millis: int | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def workloads(resources: Sequence[Resource]) -> list[WorkloadSpec]:
    """Every Deployment and StatefulSet, in the order given, with its replica count."""
    return [
        WorkloadSpec(
            name=w.name,
            kind=_kind(w),
            namespace=w.namespace,
            replicas=w.effective_replicas,
            labels=dict(w.pod_labels),
            cpu_request_millis=_cpu_request(w.spec.template.spec.containers[0]),
        )
        for w in resources
        if isinstance(w, Deployment | StatefulSet)
    ]


def instances_for(
    resources: Sequence[Resource],
    *,
    workload: str,
    replicas: int,
    state_dir: Path,
    rng: random.Random | None = None,
    pod_ip: Callable[[str], str] | None = None,
) -> list[InstanceSpec]:
    """`replicas` instance specs of `workload` ("name" or "namespace/name").

    A StatefulSet yields its first `replicas` ordinals; a Deployment yields fresh pod names
    (suffixes drawn from `rng`), so asking for 1 gives one more pod. `pod_ip` gives a pod's
    address by its name (status.podIP; default 127.0.0.1, the host network).
    """
    target = find_workload(resources, workload)
    draw = rng or random.Random()
    if isinstance(target, StatefulSet):
        start = (target.spec.ordinals.start if target.spec.ordinals else None) or 0
        names = [f"{target.name}-{i}" for i in range(start, start + replicas)]
    else:
        prefix = f"{target.name}-{pod_template_hash(target)}-"
        names = [prefix + "".join(draw.choice(_ALPHANUMS) for _ in range(5))
                 for _ in range(replicas)]  # fmt: skip
    address = pod_ip or (lambda _: POD_IP)
    return [_instance(resources, target, name, state_dir, address(name)) for name in names]


def find_workload(resources: Sequence[Resource], workload: str) -> Deployment | StatefulSet:
    """The Deployment or StatefulSet named `workload` ("name" or "namespace/name")."""
    namespace, _, name = workload.rpartition("/")
    found = [r for r in resources if isinstance(r, Deployment | StatefulSet)
             and r.name == name and namespace in ("", r.namespace)]  # fmt: skip
    if not found:
        raise SpecError(f"no Deployment or StatefulSet named {workload!r}")
    if len(found) > 1:
        names = ", ".join(r.subject for r in found)
        raise SpecError(f"{workload!r} is ambiguous ({names}): give it as namespace/name")
    return found[0]


def pod_template_hash(workload: Workload) -> str:
    """A stable 10-character hash of the pod template (FNV-1a 32 bits, as the Deployment
    controller's ComputeHash, encoded with rand.SafeEncodeString's alphabet)."""
    data = json.dumps(workload.spec.template.model_dump(mode="json", by_alias=True,
                                                        exclude_none=True),
                      sort_keys=True).encode()  # fmt: skip
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_ALPHANUMS[ord(c) % len(_ALPHANUMS)] for c in f"{value:010d}")


# ---------------------------------------------------------------------------------------------
# One instance
# ---------------------------------------------------------------------------------------------


def hold_application_until_proxy_starts(annotations: Mapping[str, str],
                                        default_config: Mapping[str, object], where: str
                                        ) -> bool:
    """ProxyConfig holdApplicationUntilProxyStarts (istio.io, "Global Mesh Options" →
    ProxyConfig; default false: the app and its sidecar start together): the pod's
    `proxy.istio.io/config` annotation over MeshConfig defaultConfig."""
    value = default_config.get("holdApplicationUntilProxyStarts", False)
    text = annotations.get(PROXY_CONFIG_ANNOTATION)
    if text is not None:
        import yaml  # noqa: PLC0415 - only for pods that carry the annotation

        try:
            config = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise SpecError(f"{where}: annotation {PROXY_CONFIG_ANNOTATION} is not YAML: "
                            f"{exc}") from None
        if not isinstance(config, dict):
            raise SpecError(f"{where}: annotation {PROXY_CONFIG_ANNOTATION} must be a "
                            "ProxyConfig mapping")
        value = config.get("holdApplicationUntilProxyStarts", value)
    if not isinstance(value, bool):
        raise SpecError(f"{where}: holdApplicationUntilProxyStarts must be true or false, got "
                        f"{value!r}")
    return value


def _kind(workload: Workload) -> Literal["Deployment", "StatefulSet"]:
    return "StatefulSet" if isinstance(workload, StatefulSet) else "Deployment"


def _cpu_request(container: Container) -> int | None:
    return container.resources.cpu_request_millis() if container.resources else None


def _instance(
    resources: Sequence[Resource], workload: Workload, pod: str, state_dir: Path, pod_ip: str
) -> InstanceSpec:
    template = workload.spec.template
    container = template.spec.containers[0]
    where = f"{workload.subject} container {container.name!r}"
    labels = dict(template.labels)
    annotations = dict(template.metadata.annotations)
    env = resolve_env(
        container, resources, namespace=workload.namespace, pod=pod, labels=labels,
        annotations={**workload.metadata.annotations, **annotations},
        service_account=template.spec.effective_service_account, where=where, pod_ip=pod_ip,
    )  # fmt: skip
    ports = tuple(ContainerPort(p.name or "", p.container_port) for p in container.ports)
    mappings = _service_ports(resources, workload.namespace, labels, container)
    return InstanceSpec(
        name=pod,
        workload=workload.name,
        workload_name=workload.workload_name,
        kind=_kind(workload),
        namespace=workload.namespace,
        labels=labels,
        annotations=annotations,
        pod_ip=pod_ip,
        service_account=template.spec.effective_service_account,
        hold_application=hold_application_until_proxy_starts(
            annotations, mesh_config_of(resources).default_config or {}, where),
        command=_command(workload, container, env, where),
        env=env,
        ports=ports,
        liveness=_probe(container.liveness_probe, container, where, "livenessProbe"),
        readiness=_probe(container.readiness_probe, container, where, "readinessProbe"),
        startup=_probe(container.startup_probe, container, where, "startupProbe"),
        termination_grace=float(template.spec.termination_grace_period),
        data_dir=_data_dir(workload, pod, state_dir),
        services=tuple(dict.fromkeys((m.service, m.target_port) for m in mappings)),
        service_ports=mappings,
        working_dir=container.working_dir,
        cpu_request_millis=_cpu_request(container),
        memory_limit_bytes=container.resources.memory_limit_bytes() if container.resources
        else None,
        container=container.name,
        ignored_containers=tuple(c.name for c in (*template.spec.init_containers,
                                                   *template.spec.containers[1:])),
    )  # fmt: skip


def _command(
    workload: Workload, container: Container, env: Mapping[str, str], where: str
) -> tuple[str, ...]:
    annotation = (workload.spec.template.metadata.annotations.get(COMMAND_ANNOTATION)
                  or workload.metadata.annotations.get(COMMAND_ANNOTATION))  # fmt: skip
    if annotation:
        try:
            return tuple(shlex.split(annotation))
        except ValueError as exc:
            raise SpecError(f"{where}: annotation {COMMAND_ANNOTATION}: {exc}") from None
    if not container.command:
        raise SpecError(f"{where}: no command to run: set `command` (and `args`) or the "
                        f"{COMMAND_ANNOTATION} annotation")  # fmt: skip
    return tuple(expand(part, env) for part in (*container.command, *container.args))


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined names are replaced, others kept, `$$` is `$`."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _VAR_REF.sub(one, text)


def _data_dir(workload: Workload, pod: str, state_dir: Path) -> str | None:
    """StatefulSet: `<state>/volumes/<claim>-<pod>` for the first volumeClaimTemplate."""
    if not isinstance(workload, StatefulSet) or not workload.spec.volume_claim_templates:
        return None
    claim = workload.spec.volume_claim_templates[0].metadata.name or "data"
    return str(state_dir / "volumes" / f"{claim}-{pod}")


def _service_ports(
    resources: Sequence[Resource], namespace: str, labels: Mapping[str, str], container: Container
) -> tuple[ServicePortMapping, ...]:
    out: list[ServicePortMapping] = []
    for svc in resources:
        if not isinstance(svc, Service) or svc.namespace != namespace or not svc.selector:
            continue
        if any(labels.get(k) != v for k, v in svc.selector.items()):
            continue
        for port in svc.spec.ports:
            target = port.effective_target_port
            if isinstance(target, str):
                named = container.port_named(target)
                if named is None:
                    continue
                target = named.container_port
            out.append(ServicePortMapping(svc.name, port.port, port.name or "", target))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------------------------


def _probe(probe: Probe | None, container: Container, where: str, key: str) -> ProbeSpec | None:
    if probe is None:
        return None
    timing = ProbeSpec(kind="exec", initial_delay=float(probe.initial_delay),
                       period=float(probe.period), timeout=float(probe.timeout),
                       success_threshold=probe.successes_needed,
                       failure_threshold=probe.failures_allowed)  # fmt: skip
    if probe.http_get is not None:
        get = probe.http_get
        return replace(
            timing, kind="http", path=get.path or "/", scheme=get.scheme or "HTTP",
            port=_probe_port(get.port, container, f"{where}: {key}.httpGet.port"),
            headers=tuple((h.name, h.value) for h in get.http_headers),
        )  # fmt: skip
    if probe.tcp_socket is not None:
        port = _probe_port(probe.tcp_socket.port, container, f"{where}: {key}.tcpSocket.port")
        return replace(timing, kind="tcp", port=port)
    if probe.exec is not None:
        return replace(timing, command=tuple(probe.exec.command))
    raise SpecError(f"{where}: {key}: gRPC probes are not supported locally; use httpGet, "
                    "tcpSocket or exec")  # fmt: skip


def _probe_port(port: int | str, container: Container, where: str) -> int:
    if isinstance(port, int):
        return port
    named = container.port_named(port)
    if named is None:
        raise SpecError(f"{where}: the container has no port named {port!r}")
    return named.container_port


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------


def resolve_env(
    container: Container,
    resources: Sequence[Resource],
    *,
    namespace: str,
    pod: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    service_account: str,
    where: str,
    pod_ip: str = POD_IP,
) -> dict[str, str]:
    """The container's environment: envFrom, then env in order, references resolved."""
    lookup = _Lookup(resources, namespace)
    env: dict[str, str] = {}
    for source in container.env_from:
        ref = source.config_map_ref or source.secret_ref
        assert ref is not None  # the model requires exactly one
        kind = "ConfigMap" if source.config_map_ref is not None else "Secret"
        data = lookup.all(kind, ref.name or "")
        if data is None:
            if not ref.optional:
                raise SpecError(f"{where}: envFrom: {kind} {namespace}/{ref.name} not found")
            continue
        env.update({(source.prefix or "") + key: value for key, value in data.items()})
    fields = {
        "metadata.name": pod, "metadata.namespace": namespace, "status.podIP": pod_ip,
        "status.podIPs": pod_ip, "status.hostIP": POD_IP, "status.hostIPs": POD_IP,
        "spec.nodeName": NODE_NAME, "spec.serviceAccountName": service_account,
        **{f"metadata.labels['{k}']": v for k, v in labels.items()},
        **{f"metadata.annotations['{k}']": v for k, v in annotations.items()},
    }  # fmt: skip
    for var in container.env:
        value = _env_value(
            var,
            env,
            lookup=lookup,
            fields=fields,
            container=container,
            where=f"{where}: env {var.name}",
        )
        if value is not None:
            env[var.name] = value
    return env


def _env_value(
    var: EnvVar,
    env: Mapping[str, str],
    *,
    lookup: _Lookup,
    fields: Mapping[str, str],
    container: Container,
    where: str,
) -> str | None:
    source = var.value_from
    if source is None:
        return expand(var.value or "", env)
    for kind, ref in (("ConfigMap", source.config_map_key_ref),
                      ("Secret", source.secret_key_ref)):  # fmt: skip
        if ref is None:
            continue
        data = lookup.all(kind, ref.name or "")
        if data is not None and ref.key in data:
            return data[ref.key]
        if ref.optional:
            return None
        missing = f"{kind} {lookup.namespace}/{ref.name}"
        raise SpecError(f"{where}: {missing} not found" if data is None
                        else f"{where}: key {ref.key!r} not found in {missing}")  # fmt: skip
    if source.field_ref is not None:
        path = source.field_ref.field_path
        if path not in fields:
            raise SpecError(f"{where}: fieldRef {path!r} is not supported (use metadata.name, "
                            "metadata.namespace, status.podIP, spec.nodeName, ...)")  # fmt: skip
        return fields[path]
    if source.resource_field_ref is not None:
        return _resource_field(source.resource_field_ref.resource,
                               source.resource_field_ref.divisor, container, where)  # fmt: skip
    raise SpecError(f"{where}: fileKeyRef is not supported")


def _resource_field(
    resource: str, divisor: str | int | float | None, container: Container, where: str
) -> str:
    """resourceFieldRef: requests/limits of the container divided by `divisor`, rounded up."""
    group, _, name = resource.partition(".")
    quantities = None
    if container.resources is not None and group in ("requests", "limits"):
        quantities = getattr(container.resources, group)
    if not quantities or name not in quantities:
        raise SpecError(f"{where}: resourceFieldRef {resource!r}: not set on the container")
    scaled = parse_quantity(quantities[name]) / parse_quantity(divisor or 1)
    return str(int(scaled.to_integral_value(ROUND_CEILING)))


@dataclass(frozen=True, slots=True)
class _Lookup:
    """ConfigMap and Secret data of one namespace, decoded to text."""

    resources: Sequence[Resource]
    namespace: str

    def all(self, kind: str, name: str) -> dict[str, str] | None:
        for res in self.resources:
            if res.kind == kind and res.name == name and res.namespace == self.namespace:
                return _DECODERS[kind](res, f"{kind} {self.namespace}/{name}")
        return None


def _config_map_data(res: Resource, where: str) -> dict[str, str]:
    assert isinstance(res, ConfigMap)
    out = dict(res.data)
    for key, value in res.binary_data.items():
        out[key] = _text(base64.b64decode(value), f"{where}: binaryData {key}")
    return out


def _secret_data(res: Resource, where: str) -> dict[str, str]:
    assert isinstance(res, Secret)
    decoded = res.decoded()
    return {key: _text(value, f"{where}: key {key}") for key, value in decoded.items()}


def _text(value: bytes, where: str) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise SpecError(f"{where}: not UTF-8 text, cannot be an environment variable") from None


_DECODERS: dict[str, Callable[[Resource, str], dict[str, str]]] = {
    "ConfigMap": _config_map_data,
    "Secret": _secret_data,
}
