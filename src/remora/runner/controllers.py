"""The controllers of `remora up`: what Kubernetes' deployment, statefulset and HPA controllers
do, against the control plane the runner started.

Theory of operation:

1. Watch. For every namespace the YAML runs workloads or HPAs in, list then watch the
   Deployments, StatefulSets and HorizontalPodAutoscalers of the control plane (a broken watch
   lists again). The latest object of each is kept.
2. Carry out `spec.replicas`. Each Deployment or StatefulSet seen (applied, scaled) has its pods
   started or stopped until their count is its spec.replicas; a deleted one has its pods
   stopped. Only workloads of the YAML `up` started from can run (their pod template and
   working directory come from there).
3. Autoscale. Every --hpa-interval the pods are measured and each HPA proposes replicas for
   its target (remora.runner.autoscaler, from the target's spec.replicas); a change is written
   as the target's scale subresource, as Kubernetes' HPA controller does, and step 2 carries
   it out. An HPA so wins over a `replicas:` applied by hand at its next run.
4. Report. Every REPORT_INTERVAL each workload's `.status` (remora.runner.statuses) is written
   through its status subresource when it differs from the stored one; each HPA's after each
   of its runs.

The runner's account may read these kinds and write their `status` and `scale` only
(runner/accounts.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from remora.api.errors import ConfigError
from remora.api.kube.autoscaling import HorizontalPodAutoscaler
from remora.api.loader import parse_resource
from remora.runner import statuses
from remora.runner.autoscaler import ScaleHistory, desired_replicas, metric_proposal
from remora.runner.cpclient import ControlPlaneClient, ControlPlaneError
from remora.runner.scaling import measure, pod_metrics
from remora.runner.supervisor import Pod

log = logging.getLogger("remora.up")

REPORT_INTERVAL = 0.5
WATCH_RETRY = 1.0
DEPLOYMENTS, STATEFULSETS, HPAS = "deployments", "statefulsets", "horizontalpodautoscalers"
KINDS = {DEPLOYMENTS: ("apps", "v1", "Deployment"), STATEFULSETS: ("apps", "v1", "StatefulSet"),
         HPAS: ("autoscaling", "v2", "HorizontalPodAutoscaler")}
PLURALS = {kind: plural for plural, (_, _, kind) in KINDS.items()}


class Workloads(Protocol):
    """What the controllers need from the mesh that runs the pods."""

    pods: list[Pod]

    def pods_of(self, namespace: str, workload: str) -> list[Pod]: ...

    def scale(self, namespace: str, workload: str, replicas: int) -> None: ...


def rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_path(plural: str, namespace: str, name: str | None = None) -> str:
    group, version, _ = KINDS[plural]
    path = f"/apis/{group}/{version}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


def _normal(value: Any) -> Any:
    """As the control plane stores it (JSON)."""
    return json.loads(json.dumps(value))


@dataclass
class HPAState:
    """One HPA, parsed, with what its algorithm remembers between runs."""

    hpa: HorizontalPodAutoscaler
    history: ScaleHistory = field(default_factory=ScaleHistory)
    last_scale_time: str | None = None


class Controllers:
    """Watches, scales and reports for one `remora up` (see the module doc)."""

    def __init__(self, *, client: ControlPlaneClient, http: httpx.AsyncClient,
                 mesh: Workloads, templates: Mapping[tuple[str, str, str], Any],
                 namespaces: Sequence[str], hpa_interval: float,
                 say: Callable[[str], None]) -> None:
        self.client = client
        self.http = http
        self.mesh = mesh
        self.templates = {key: _normal(t) for key, t in templates.items()}
        self.namespaces = sorted(set(namespaces))
        self.hpa_interval = hpa_interval
        self.say = say
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, ns, name)
        self.hpas: dict[tuple[str, str], HPAState] = {}

    def loops(self) -> list[Any]:
        """The coroutines to run for as long as the mesh runs."""
        watches = [self._watch(plural, namespace) for namespace in self.namespaces
                   for plural in KINDS]
        return [*watches, self._report_forever(), self._autoscale_forever()]

    # -- 1, 2: watch and carry out spec.replicas -----------------------------------------------

    async def _watch(self, plural: str, namespace: str) -> None:
        path = object_path(plural, namespace)
        while True:
            try:
                listed = await self.client.get(path)
                names = {item["metadata"]["name"] for item in listed.get("items", [])}
                for key in [k for k in self.objects if k[:2] == (plural, namespace)
                            and k[2] not in names]:
                    self._observe(plural, "DELETED", self.objects[key])
                for item in listed.get("items", []):
                    self._observe(plural, "ADDED", item)
                version = str(listed.get("metadata", {}).get("resourceVersion", "0"))
                async for event in self.client.watch(path, version):
                    if event.get("type") == "ERROR":
                        break
                    self._observe(plural, str(event.get("type")), event["object"])
            except ControlPlaneError as exc:
                log.warning("watch %s: %s", path, exc)
            await asyncio.sleep(WATCH_RETRY)

    def _observe(self, plural: str, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        key = (plural, namespace, name)
        if kind == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        if plural == HPAS:
            self._observe_hpa(namespace, name, None if kind == "DELETED" else obj)
            return
        if (KINDS[plural][2], namespace, name) not in self.templates:
            return  # not from the YAML `up` started from: nothing here can run it
        self.mesh.scale(namespace, name, 0 if kind == "DELETED" else statuses.desired(obj))

    def _observe_hpa(self, namespace: str, name: str, obj: dict[str, Any] | None) -> None:
        if obj is None:
            self.hpas.pop((namespace, name), None)
            return
        try:
            hpa = parse_resource(obj, namespace=namespace)
        except ConfigError as exc:
            log.warning("HorizontalPodAutoscaler %s/%s: %s", namespace, name, exc)
            return
        assert isinstance(hpa, HorizontalPodAutoscaler)
        state = self.hpas.get((namespace, name))
        if state is None:
            self.hpas[(namespace, name)] = HPAState(hpa)
        else:
            state.hpa = hpa

    # -- 4: workload status ---------------------------------------------------------------------

    async def _report_forever(self) -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL)
            now = rfc3339(time.time())
            for (plural, namespace, name), obj in list(self.objects.items()):
                if plural == HPAS:
                    continue
                template_key = (KINDS[plural][2], namespace, name)
                if template_key not in self.templates:
                    continue
                pods = self.mesh.pods_of(namespace, name)
                current = _normal((obj.get("spec") or {}).get("template"))
                counts = statuses.PodCounts(
                    replicas=len(pods), ready=sum(p.ready for p in pods),
                    updated=len(pods) if current == self.templates[template_key] else 0)
                replica_set = pods[0].name.rsplit("-", 1)[0] if pods else name
                status = statuses.workload_status(obj, counts, replica_set=replica_set, now=now)
                if status != obj.get("status"):
                    await self._write_status(plural, namespace, name, obj, status)

    async def _write_status(self, plural: str, namespace: str, name: str,
                            obj: Mapping[str, Any], status: dict[str, Any]) -> None:
        group, version, kind = KINDS[plural]
        body = {"apiVersion": f"{group}/{version}", "kind": kind,
                "metadata": {"name": name, "namespace": namespace}, "status": status}
        try:
            written = await self.client.put(object_path(plural, namespace, name) + "/status",
                                            body)
        except ControlPlaneError as exc:
            log.warning("%s %s/%s status: %s", kind, namespace, name, exc)
            return
        key = (plural, namespace, name)
        if self.objects.get(key) is obj:  # not replaced by a newer event meanwhile
            self.objects[key] = written

    # -- 3: autoscale ----------------------------------------------------------------------------

    async def _autoscale_forever(self) -> None:
        while True:
            await asyncio.sleep(self.hpa_interval)
            if not self.hpas:
                continue
            await measure(self.mesh.pods, self.http, time.monotonic())
            for (namespace, name), state in list(self.hpas.items()):
                await self._autoscale(namespace, name, state)

    async def _autoscale(self, namespace: str, name: str, state: HPAState) -> None:
        hpa = state.hpa
        ref = hpa.spec.scale_target_ref
        plural = PLURALS.get(ref.kind)
        target = self.objects.get((plural, namespace, ref.name)) if plural else None
        if plural is None or target is None:
            return
        pods = self.mesh.pods_of(namespace, ref.name)
        metrics = [pod_metrics(pod) for pod in pods]
        spec_replicas = statuses.desired(target)
        now = time.monotonic()
        proposal = metric_proposal(hpa, current=spec_replicas, metrics=metrics)
        desired = desired_replicas(hpa, current=spec_replicas, metrics=metrics,
                                   history=state.history, now=now)
        error = ""
        if desired != spec_replicas:
            body = {"apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": ref.name, "namespace": namespace},
                    "spec": {"replicas": desired}}
            try:
                await self.client.put(object_path(plural, namespace, ref.name) + "/scale", body)
            except ControlPlaneError as exc:
                error = str(exc)
                log.warning("autoscaler %s/%s: %s", namespace, name, exc)
            else:
                state.last_scale_time = rfc3339(time.time())
                self.say(f"autoscaler {namespace}/{name}: {ref.name} {spec_replicas} -> "
                         f"{desired}")
        obj = self.objects.get((HPAS, namespace, name))
        if obj is None:
            return
        outcome = statuses.HPAOutcome(current=len(pods), spec_replicas=spec_replicas,
                                      proposal=proposal, desired=desired, scale_error=error,
                                      last_scale_time=state.last_scale_time)
        status = statuses.hpa_status(hpa, outcome, metrics, now=rfc3339(time.time()),
                                     previous=obj.get("status"))
        if status != obj.get("status"):
            await self._write_status(HPAS, namespace, name, obj, status)
