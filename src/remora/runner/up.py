"""`remora up`: a whole mesh from Kubernetes + Istio YAML, as local processes.

Process tree (every child in its own process group, output in <state>/logs):

    remora up (the supervisor; this module)
    ├── remora controlplane --listen 127.0.0.1:<cp> --data-dir <state>/controlplane
    ├── remora proxy --mode gateway ...        one per distinct Gateway selector
    └── per pod: remora proxy (sidecar) ...    started and ready first, then
                 the app (container command)   with PORT, http_proxy=<sidecar outbound>, ...

With `--controlplane-tls` the control plane serves over TLS with a certificate of the mesh's
own CA (`--tls auto`, as istiod): its root (<state>/controlplane/root-cert.pem) is what the
runner's client, the CLI (beside the saved credentials) and every proxy (`--ca-cert`) verify
it with, and a proxy renews its workload certificate on its own certificate alone.

Start: control plane → apply every document → gateways and pods (all at once) → ready. A pod
that turns ready is registered, for each Service selecting it, as a persistent Nacos instance
at its sidecar's inbound port with the pod labels and its workload name
(`service.istio.io/workload-name`) as metadata; the control plane turns it into a WorkloadEntry
of that Service, so sidecars route to it by Service name. Stop (SIGTERM, SIGINT,
`remora down`): apps, then sidecars, then gateways, then the control plane.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from remora.api.kube.core import Service
from remora.api.loader import YAML_SUFFIXES
from remora.api.networking.gateway import Gateway
from remora.api.resource import (
    DEFAULT_NAMESPACE,
    SERVICE_ACCOUNT_METADATA,
    TLS_MODE_LABEL,
    WORKLOAD_NAME_LABEL,
    Resource,
)
from remora.api.yamlsource import read_documents
from remora.credentials import FILE_NAME, ROOT_CERT, read_file, remember
from remora.errors import RemoraError
from remora.runner import accounts, capture, netns, podnet, traffic
from remora.runner import spec as specs
from remora.runner.controllers import Controllers
from remora.runner.cpclient import ControlPlaneClient, ControlPlaneError, wait_http_ok
from remora.runner.podnet import AddressPool, ClusterNetwork, ServiceAddress
from remora.runner.ports import HOST, PortAllocator, port_is_free
from remora.runner.process import Child
from remora.runner.state import StateDir
from remora.runner.supervisor import (
    REMORA,
    SIDECAR_GRACE,
    Pod,
    PodEnvironment,
    PodPlan,
    SidecarPorts,
    credentials_env,
)

log = logging.getLogger("remora.up")

CONTROLPLANE_READY_TIMEOUT = 30.0
CONTROLPLANE_GRACE = 10.0
PRIVILEGED_PORT_OFFSET = 8000  # a Gateway server on port 80 listens on 8080, 443 on 8443
STATUS_INTERVAL = 0.2


@dataclass(frozen=True, slots=True)
class UpOptions:
    """How to run: the YAML, the state directory, the control plane's port."""

    paths: tuple[str, ...]
    state: StateDir
    controlplane_port: int = 15080
    hpa_interval: float = 15.0
    network: ClusterNetwork | None = None  # None: the host network (`--network host`)
    controlplane_tls: bool = True  # the control plane over https, with the mesh's own root


def yaml_documents(paths: Sequence[str]) -> list[tuple[Path, dict[str, Any]]]:
    """Every mapping document in the files (directories recursively), with its file."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()
                            and p.suffix in YAML_SUFFIXES) if path.is_dir() else [path])
    return [(file, document.data) for file in files
            for document in read_documents(file.read_text(encoding="utf-8"), str(file))
            if isinstance(document.data, dict)]


@dataclass(frozen=True, slots=True)
class GatewayPlan:
    """One gateway proxy: the Gateways it serves and the port each server listens on."""

    name: str
    namespace: str
    selector: dict[str, str]
    gateways: tuple[str, ...]
    listen: dict[int, int]  # Gateway server port -> local port
    ports: SidecarPorts

    @property
    def service_account(self) -> str:
        """Istio's chart names its gateways' accounts so: `istio-ingressgateway-service-account`
        for the gateway selected by `istio: ingressgateway`."""
        return f"istio-{self.name.removeprefix('gateway-')}-service-account"


def plan_gateways(resources: Sequence[Resource], ports: PortAllocator) -> list[GatewayPlan]:
    """One gateway proxy per distinct selector (Istio: a gateway workload serves every Gateway
    that selects it); privileged server ports are mapped to PRIVILEGED_PORT_OFFSET + port."""
    groups: dict[tuple[tuple[str, str], ...], list[Gateway]] = {}
    for resource in resources:
        if isinstance(resource, Gateway):
            groups.setdefault(tuple(sorted(resource.spec.selector.items())), []).append(resource)
    plans = []
    for selector, gateways in groups.items():
        numbers = sorted({server.port.number for g in gateways for server in g.spec.servers})
        listen = {n: ports.prefer(PRIVILEGED_PORT_OFFSET + n) if n < 1024 else n
                  for n in numbers}
        name = "-".join(v for _, v in selector) or gateways[0].name
        plans.append(GatewayPlan(name=f"gateway-{name}", namespace=gateways[0].namespace,
                                 selector=dict(selector),
                                 gateways=tuple(g.key for g in gateways), listen=listen,
                                 ports=SidecarPorts.allocate(ports)))
    return plans


def mapped_documents(documents: list[tuple[Path, dict[str, Any]]],
                     gateways: Sequence[GatewayPlan],
                     service_ips: Mapping[tuple[str, str], str] | None = None
                     ) -> list[dict[str, Any]]:
    """The documents to apply: Gateways with privileged ports get their mapped port instead
    (the Gateway's server port is the port its proxy listens on); in a pod network, each
    ClusterIP Service its allocated `spec.clusterIP`, as the API server fills it in."""
    listen = {key: plan.listen for plan in gateways for key in plan.gateways}
    out = []
    for _, data in documents:
        meta = data.get("metadata") or {}
        namespace = str(meta.get("namespace") or DEFAULT_NAMESPACE)
        key = f"{namespace}/{meta.get('name')}"
        ip = (service_ips or {}).get((namespace, str(meta.get("name"))))
        if data.get("kind") == "Service" and ip is not None:
            out.append({**data, "spec": {**(data.get("spec") or {}), "clusterIP": ip}})
            continue
        if data.get("kind") != "Gateway" or key not in listen:
            out.append(data)
            continue
        servers = [{**server, "port": {**server["port"],
                                       "number": listen[key][server["port"]["number"]]}}
                   for server in data["spec"]["servers"]]
        out.append({**data, "spec": {**data["spec"], "servers": servers}})
    return out


def workload_templates(documents: list[tuple[Path, dict[str, Any]]]
                       ) -> dict[tuple[str, str, str], Any]:
    """(kind, namespace, name) -> the pod template of each Deployment and StatefulSet of the
    YAML: the pods `up` can start, and what makes them up to date."""
    out = {}
    for _, data in documents:
        meta = data.get("metadata") or {}
        if data.get("kind") in ("Deployment", "StatefulSet"):
            key = (str(data["kind"]), str(meta.get("namespace") or DEFAULT_NAMESPACE),
                   str(meta.get("name")))
            out[key] = (data.get("spec") or {}).get("template")
    return out


class Mesh:
    """Everything one `remora up` runs, started and stopped in order."""

    def __init__(self, resources: Sequence[Resource], documents: list[tuple[Path, dict[str, Any]]],
                 options: UpOptions, *, say: Callable[[str], None]) -> None:
        self.resources = list(resources)
        self.documents = documents
        self.options = options
        self.state = options.state
        self.say = say
        self.ports = PortAllocator()
        scheme = "https" if options.controlplane_tls else "http"
        self.url = f"{scheme}://{HOST}:{options.controlplane_port}"
        self.root = self.state.controlplane_data / ROOT_CERT if options.controlplane_tls \
            else None
        # the mesh's root is loaded into it once the control plane has written it
        self.tls = ssl.create_default_context()
        self.http = httpx.AsyncClient(trust_env=False, verify=self.tls)
        self.client = ControlPlaneClient(self.url, self.http,
                                         ca_file=str(self.root.absolute()) if self.root else "")
        listen = f"{HOST}:{options.controlplane_port}"
        sidecars_url = self.url
        plan = options.network
        self.network = netns.HostNetwork(plan, self.state.root / "network.json") \
            if plan is not None else None
        self.pod_ips = AddressPool(plan.pod_cidr) if plan is not None else None
        self.services: list[ServiceAddress] = []
        if plan is not None:  # pods reach the control plane at their bridge's address
            listen += f",{plan.gateway}:{options.controlplane_port}"
            sidecars_url = f"{scheme}://{plan.gateway}:{options.controlplane_port}"
            self.services = service_addresses(self.resources, plan)
        self.controlplane = Child("controlplane", [
            *REMORA, "controlplane", "--listen", listen,
            "--data-dir", str(self.state.controlplane_data),
            *(["--tls", "auto"] if self.root else [])], log=self.state.log("controlplane"))
        self.gateways = plan_gateways(self.resources, self.ports)
        self.gateway_children = [self._gateway_child(plan) for plan in self.gateways]
        self.pods: list[Pod] = []
        self.pod_env = PodEnvironment(state=self.state, controlplane=sidecars_url,
                                      http=self.http)
        self.tasks: set[asyncio.Task[None]] = set()
        self.phase = "Starting"
        self.error = ""
        self.started = time.time()
        self.ready_after: float | None = None
        self._changed = asyncio.Event()
        self.traffic = traffic.TrafficWatch(self.http)
        self.controllers = Controllers(
            client=self.client, http=self.http, mesh=self,
            templates=workload_templates(self.documents),
            namespaces=[r.namespace for r in self.resources
                        if r.kind in ("Deployment", "StatefulSet", "HorizontalPodAutoscaler")],
            hpa_interval=options.hpa_interval, say=say)

    def _gateway_child(self, plan: GatewayPlan) -> Child:
        labels = ",".join(f"{k}={v}" for k, v in plan.selector.items())
        return Child(plan.name, [
            *REMORA, "proxy", "--mode", "gateway", "--controlplane", self.url, "--labels", labels,
            "--namespace", plan.namespace, "--workload", plan.name,
            "--service-account", plan.service_account,
            "--identity-token-file", str(self.state.identity_token(plan.name)),
            *(["--ca-cert", str(self.root)] if self.root else []),
            "--admin-port", str(plan.ports.admin), "--health-port", str(plan.ports.health)],
            log=self.state.log(plan.name))

    # -- start ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Control plane, resources, gateways and pods; returns once all were started."""
        taken = [f"{port} ({plan.name})" for plan in self.gateways
                 for port, local in plan.listen.items() if port == local and not port_is_free(port)]
        if taken:
            raise RemoraError(f"Gateway port in use: {', '.join(taken)}")
        for stale in (self.state.controlplane_data, self.state.logs, self.state.root / "data"):
            shutil.rmtree(stale, ignore_errors=True)
        self._spawn(self._write_status_forever())
        self._spawn(self.traffic.forever(self._proxies, time.time, self.changed))
        if self.network is not None:  # the bridge first: the control plane listens on it
            await self.network.start()
        await self.controlplane.start()
        self.changed()
        await self._trust_root(time.monotonic() + CONTROLPLANE_READY_TIMEOUT)
        if not await self.client.wait_healthy(CONTROLPLANE_READY_TIMEOUT):
            raise RemoraError(f"the control plane did not answer on {self.url} within "
                              f"{CONTROLPLANE_READY_TIMEOUT:.0f} s; see {self.controlplane.log}")
        await self._sign_in()
        await self.client.apply(mapped_documents(
            self.documents, self.gateways,
            {(s.namespace, s.name): s.ip for s in self.services}))
        await self._provision_accounts()
        for plan, child in zip(self.gateways, self.gateway_children, strict=True):
            await self._write_identity_token(plan.namespace, plan.service_account, plan.name,
                                             self.state.identity_token(plan.name))
            await child.start()
            ports = ", ".join(f"{HOST}:{local}" + (f" (Gateway port {port})" if local != port
                                                   else "") for port, local in plan.listen.items())
            self.say(f"gateway {plan.name}: {ports}")
        for workload in specs.workloads(self.resources):
            self.scale(workload.namespace, workload.name, workload.replicas)
        for loop in self.controllers.loops():  # from here on spec.replicas comes from the
            self._spawn(loop)                  # control plane (runner/controllers.py)
        self.changed()

    async def _trust_root(self, deadline: float) -> None:
        """Wait for the control plane to write the mesh's root; the runner's client verifies
        it with it from then on, and the pods' sidecars are handed it (in a pod network, a
        copy the sidecars' user reads)."""
        root = self.root
        if root is None:
            return
        while not root.exists():
            if not self.controlplane.running or time.monotonic() > deadline:
                raise RemoraError(f"the control plane wrote no root ({root}); see "
                                  f"{self.controlplane.log}")
            await asyncio.sleep(0.05)
        self.tls.load_verify_locations(cafile=str(root))
        sidecars = self.network.write_private(ROOT_CERT, root.read_bytes()) \
            if self.network is not None else root
        self.pod_env = replace(self.pod_env, ca_cert=sidecars)

    async def _sign_in(self) -> None:
        """Act as the control plane's first admin (it wrote the file before serving), and
        keep its credentials for this URL in ~/.remora, where `remora apply/get` find them
        from any directory (as `kind create cluster` writes ~/.kube/config)."""
        admin = self.state.controlplane_data / FILE_NAME
        if admin.exists():  # absent only when the control plane runs without auth
            credentials = read_file(admin)[0]
            self.client.use(credentials)
            remember(credentials)

    async def _provision_accounts(self) -> None:
        """Users for the runner, the sidecars and the gateways (runner/accounts.py); from
        here on the runner registers instances with its own, narrower, token."""
        if not self.client.tokens.credentials:
            return
        plans = accounts.plan_accounts(self.resources, (p.namespace for p in self.gateways))
        files = await accounts.provision(self.client, plans, state=self.state)
        for plan, child in zip(self.gateways, self.gateway_children, strict=True):
            child.env = credentials_env(files[accounts.gateway_user(plan.namespace)])
        sidecar = files[accounts.SIDECAR]
        if self.network is not None:  # the sidecars run as 1337: a copy only it can read
            sidecar = self.network.private_copy(sidecar)
        self.pod_env = replace(self.pod_env, credentials=sidecar)
        self.client.use(read_file(files[accounts.RUNNER])[0])

    def pods_of(self, namespace: str, workload: str) -> list[Pod]:
        return [pod for pod in self.pods
                if pod.plan.spec.namespace == namespace and pod.plan.spec.workload == workload]

    def scale(self, namespace: str, workload: str, replicas: int) -> None:
        """Start or stop pods until `workload` has `replicas`: new pods go through the same
        start path; the newest pods (a StatefulSet's highest ordinals) are stopped first."""
        if self.phase == "Stopping":  # a watch event late in the stop starts nothing
            return
        current = self.pods_of(namespace, workload)
        if replicas > len(current):
            instances = specs.instances_for(
                self.resources, workload=f"{namespace}/{workload}", state_dir=self.state.root,
                replicas=replicas if current and current[0].plan.spec.kind == "StatefulSet"
                else replicas - len(current),
                pod_ip=self.pod_ips.address if self.pod_ips is not None else None)
            for instance in instances[len(instances) - (replicas - len(current)):]:
                pod = Pod(self._plan(instance), self.pod_env, on_ready=self._registered,
                          on_change=self.changed)
                self.pods.append(pod)
                self._spawn(self._run(pod))
        for pod in current[replicas:][::-1]:
            self.pods.remove(pod)
            self._spawn(self._remove(pod))
        self.changed()

    async def _run(self, pod: Pod) -> None:
        """A pod's identity token and network namespace (in a pod network), then the pod."""
        try:
            await self._hand_identity(pod)
        except ControlPlaneError as exc:
            pod.last_exit = f"identity: {exc}"
            pod.phase = "Failed"
            log.error("%s: no identity token: %s", pod.name, exc)
            self.changed()
            return
        network = pod.plan.network
        if self.network is not None and network is not None:
            spec = pod.plan.spec
            try:
                await self.network.create_pod(
                    network, hosts=podnet.hosts_file(spec.name, network.ip, spec.namespace,
                                                     self.services),
                    rules=capture.iptables_restore(capture_spec(spec)))
            except RemoraError as exc:
                pod.last_exit = f"network: {exc}"
                pod.phase = "Failed"
                log.error("%s: %s", pod.name, exc)
                self.changed()
                return
        await pod.run()

    async def _remove(self, pod: Pod) -> None:
        await pod.stop_app()
        await pod.stop_sidecar()
        if self.network is not None:
            await self.network.remove_pod(pod.name)
        if self.pod_ips is not None:
            self.pod_ips.release(pod.name)

    def _plan(self, instance: specs.InstanceSpec) -> PodPlan:
        source = specs.find_workload(self.resources, f"{instance.namespace}/{instance.workload}")
        where = source.source
        base = Path(where.file).resolve().parent if where and where.file != "-" else Path.cwd()
        cwd = base / instance.working_dir if instance.working_dir else base
        data_dir = Path(instance.data_dir) if instance.data_dir else self.state.scratch(
            instance.name)
        if self.network is not None:  # its own network: the ports as declared, Istio's
            return PodPlan(spec=instance, cwd=cwd, data_dir=data_dir.resolve(),
                           app_ports={p.container_port: p.container_port
                                      for p in instance.ports},
                           sidecar=SidecarPorts.istio(),
                           network=self.network.plan_pod(instance.name, instance.pod_ip),
                           service_env=podnet.service_environment(instance.namespace,
                                                                  self.services),
                           identity_token=self.network.private_path(
                               f"{instance.name}.token"))
        return PodPlan(spec=instance, cwd=cwd, data_dir=data_dir.resolve(),
                       app_ports={p.container_port: self.ports.take() for p in instance.ports},
                       sidecar=SidecarPorts.allocate(self.ports),
                       identity_token=self.state.identity_token(instance.name))

    async def _hand_identity(self, pod: Pod) -> None:
        """The sidecar's identity token (the kubelet's projected service account token, in
        Kubernetes): a file only the sidecar's user reads. A pod whose token cannot be had
        does not start — its sidecar could get no certificate."""
        spec, path = pod.plan.spec, pod.plan.identity_token
        assert path is not None
        await self._write_identity_token(spec.namespace, spec.service_account, spec.name, path,
                                         in_pod=self.network is not None)

    async def _write_identity_token(self, namespace: str, service_account: str, name: str,
                                    path: Path, *, in_pod: bool = False) -> None:
        token = (await self.client.identity_token(
            namespace=namespace, service_account=service_account, pod=name)).encode()
        if in_pod and self.network is not None:  # for user 1337 (the pod's sidecar)
            self.network.write_private(path.name, token)
            return
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(token)

    async def wait_ready(self) -> None:
        """Until the gateways and every pod are ready (then phase Ready)."""
        for plan in self.gateways:
            url = f"http://{HOST}:{plan.ports.health}/healthz/ready"
            while not await wait_http_ok(self.http, url, timeout=1.0):
                self._check_alive()
        while not all(pod.ready for pod in self.pods):
            self._check_alive()
            await asyncio.sleep(0.05)
        self.phase = "Ready"
        self.ready_after = time.time() - self.started
        self.changed()

    def _check_alive(self) -> None:
        for child in (self.controlplane, *self.gateway_children):
            if not child.running:
                raise RemoraError(f"{child.name} exited; see {child.log}")

    async def _registered(self, pod: Pod, ready: bool) -> None:
        """Put a pod in (or take it out of) the registry for each Service selecting it."""
        spec = pod.plan.spec
        for service in dict.fromkeys(name for name, _ in spec.services):
            try:
                if ready:
                    await self.client.register(
                        service=service, namespace=spec.namespace, port=pod.plan.endpoint_port,
                        labels={**spec.labels, WORKLOAD_NAME_LABEL: spec.workload_name,
                                TLS_MODE_LABEL: "istio",
                                SERVICE_ACCOUNT_METADATA: spec.service_account},
                        ip=pod.plan.address)
                else:
                    await self.client.deregister(service=service, namespace=spec.namespace,
                                                 port=pod.plan.endpoint_port,
                                                 ip=pod.plan.address)
            except ControlPlaneError as exc:
                log.warning("%s: %s", pod.name, exc)

    # -- status --------------------------------------------------------------------------------

    def changed(self) -> None:
        self._changed.set()

    def _proxies(self) -> list[traffic.Proxy]:
        """Every sidecar and gateway, for the traffic watch."""
        return [
            *(traffic.Proxy(pod.name, pod.plan.sidecar.admin, "destination",
                            pod.sidecar.started_at if pod.sidecar.running else 0.0,
                            address=pod.plan.address)
              for pod in self.pods),
            *(traffic.Proxy(plan.name, plan.ports.admin, "source",
                            child.started_at if child.running else 0.0)
              for plan, child in zip(self.gateways, self.gateway_children, strict=True))]

    def status(self) -> dict[str, Any]:
        return {
            "phase": self.phase, "error": self.error, "started": self.started,
            "ready_after": self.ready_after, "state_dir": str(self.state.root),
            "network": self.network.status() if self.network is not None else {"mode": "host"},
            "controlplane": {"url": self.url, "process": _process(self.controlplane),
                             "log": str(self.controlplane.log)},
            "gateways": [
                {"name": plan.name, "namespace": plan.namespace, "selector": plan.selector,
                 "gateways": list(plan.gateways), "admin": plan.ports.admin,
                 "listen": {str(k): v for k, v in plan.listen.items()},
                 "process": _process(child), "log": str(child.log),
                 **self.traffic.of(plan.name)}
                for plan, child in zip(self.gateways, self.gateway_children, strict=True)],
            "instances": [{**pod.status(), **self.traffic.of(pod.name)} for pod in self.pods],
        }

    async def _write_status_forever(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            self.state.write_status(self.status())
            await asyncio.sleep(STATUS_INTERVAL)

    # -- stop ----------------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def stop(self) -> None:
        """Apps, sidecars, gateways, control plane — each step waiting for the one before."""
        self.phase = "Stopping"
        self.changed()
        await asyncio.gather(*(pod.stop_app() for pod in self.pods))
        await asyncio.gather(*(pod.stop_sidecar() for pod in self.pods))
        await asyncio.gather(*(child.stop(SIDECAR_GRACE) for child in self.gateway_children))
        await self.controlplane.stop(CONTROLPLANE_GRACE)
        if self.network is not None:
            await self.network.stop()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.http.aclose()
        self.phase = "Failed" if self.error else "Stopped"
        self.state.write_status(self.status())


def service_addresses(resources: Sequence[Resource], plan: ClusterNetwork
                      ) -> list[ServiceAddress]:
    """Every ClusterIP Service of the YAML with its address in the Service CIDR."""
    services = [r for r in resources if isinstance(r, Service)]
    ips = podnet.allocate_service_ips(
        ((s.namespace, s.name, s.spec.cluster_ip) for s in services), plan.service_cidr)
    return [ServiceAddress(s.name, s.namespace, ips[s.namespace, s.name],
                           tuple((p.name or "", p.port) for p in s.spec.ports))
            for s in services if (s.namespace, s.name) in ips]


def capture_spec(spec: specs.InstanceSpec) -> capture.CaptureSpec:
    """The pod's capture rules from its annotations; the sidecar's admin port is not captured
    (the runner reads it at the pod IP), besides Istio's 15020, 15021 and 15090."""
    return capture.CaptureSpec.from_annotations(
        spec.annotations, always_excluded_inbound=(15000, 15020, 15021, 15090))


def _process(child: Child) -> dict[str, Any]:
    if not child.running:
        return {}
    return {"pid": child.pid, "started": child.start_ticks, "since": child.started_at}


async def serve(resources: Sequence[Resource], options: UpOptions, *,
                say: Callable[[str], None]) -> None:
    """Run the mesh until SIGTERM or SIGINT, then stop it in order."""
    documents = yaml_documents(options.paths)
    options.state.claim()
    mesh = Mesh(resources, documents, options, say=say)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    starting = asyncio.create_task(_start(mesh, say))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done() and not starting.exception():
            await stopping
        say("stopping: apps, sidecars, gateways, control plane")
    finally:
        for task in (starting, stopping):
            task.cancel()
        await asyncio.gather(starting, stopping, return_exceptions=True)
        await mesh.stop()
        options.state.release()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    if mesh.error:
        raise RemoraError(mesh.error)


async def _start(mesh: Mesh, say: Callable[[str], None]) -> None:
    try:
        await mesh.start()
        await mesh.wait_ready()
    except Exception as exc:  # reported as the run's error, then everything is stopped
        mesh.error = str(exc) if isinstance(exc, RemoraError) else f"{type(exc).__name__}: {exc}"
        mesh.phase = "Failed"
        mesh.changed()
        raise
    say(f"ready in {mesh.ready_after:.1f} s: {len(mesh.pods)} instances, "
        f"control plane {mesh.url}")
