"""One pod run locally: its sidecar, then its app; probes, restarts, readiness.

Theory of operation, per pod (Kubernetes' restartPolicy Always):

1. Start the sidecar (`remora proxy --controlplane ...`) and wait for its /healthz/ready; the
   app starts beside it, or only once it is ready when holdApplicationUntilProxyStarts is
   true (MeshConfig defaultConfig or the pod's proxy.istio.io/config annotation, as Istio).
   The pod is ready only once its sidecar is (probes run from then).
2. Start the app with the pod's env and PORT. In the host network (`--network host`),
   http_proxy points at the sidecar's outbound listener; in a pod network namespace
   (remora.runner.netns) the app and its sidecar run inside it, the sidecar as Istio's user
   1337 behind the pod's capture rules, and the app needs no proxy setting at all.
3. Watch: the app or the sidecar exiting, a startup or liveness probe failing, or the app's
   resident memory going over resources.limits.memory (SIGKILL: OOMKilled) ends the run;
   readiness (probe, or the app port accepting when there is none) is reported to the owner,
   which registers the pod in the registry while it is ready.
4. Stop the app (SIGTERM, SIGKILL after terminationGracePeriodSeconds), count a restart, wait
   the CrashLoopBackOff delay and go to 1 (the sidecar is restarted only when it died).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from remora.runner.backoff import CrashLoopBackOff
from remora.runner.cpclient import wait_http_ok
from remora.runner.metrics import Counters, Rates, group_rss_bytes
from remora.runner.netns import PodNetwork, opener_in
from remora.runner.ports import HOST, PortAllocator
from remora.runner.probes import Opener, PodProbes, Transition, run_probe
from remora.runner.process import Child, exit_reason, signal_group
from remora.runner.spec import InstanceSpec
from remora.runner.state import StateDir

REMORA = (sys.executable, "-m", "remora.cli.main")
SIDECAR_READY_TIMEOUT = 30.0
SIDECAR_GRACE = 5.0
MEMORY_INTERVAL = 0.5
_PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy",
                    "NO_PROXY", "all_proxy", "ALL_PROXY")
_CREDENTIAL_VARIABLES = ("REMORA_CREDENTIALS", "REMORA_TOKEN", "REMORA_ADMIN_PASSWORD",
                         "REMORA_PASSWORD")
"""Never passed to apps: a workload gets no control-plane credentials of the runner's."""


def credentials_env(path: Path | None) -> dict[str, str] | None:
    """A proxy's environment: ours, with REMORA_CREDENTIALS naming its own file."""
    if path is None:
        return None
    env = {k: v for k, v in os.environ.items() if k not in _CREDENTIAL_VARIABLES}
    env["REMORA_CREDENTIALS"] = str(path)
    return env


@dataclass(frozen=True, slots=True)
class SidecarPorts:
    """The local ports of a sidecar (or gateway) proxy."""

    outbound: int
    inbound: int
    admin: int
    health: int

    @classmethod
    def allocate(cls, ports: PortAllocator) -> SidecarPorts:
        return cls(outbound=ports.take(), inbound=ports.take(), admin=ports.take(),
                   health=ports.take())

    @classmethod
    def istio(cls) -> SidecarPorts:
        """A sidecar in its own pod network: Istio's fixed ports."""
        return cls(outbound=15001, inbound=15006, admin=15000, health=15021)


@dataclass(frozen=True, slots=True)
class PodPlan:
    """Where a pod runs: its spec, local ports, working directory and data directory."""

    spec: InstanceSpec
    app_ports: dict[int, int]  # containerPort -> local port (itself in a pod network)
    sidecar: SidecarPorts
    cwd: Path
    data_dir: Path
    network: PodNetwork | None = None  # None: the host network
    service_env: Mapping[str, str] = field(default_factory=dict)  # {SVC}_SERVICE_HOST...
    identity_token: Path | None = None  # the sidecar's proof of identity for the CA

    @property
    def app_port(self) -> int | None:
        return next(iter(self.app_ports.values()), None)

    @property
    def address(self) -> str:
        """Where the runner reaches the pod's sidecar: its pod IP, or 127.0.0.1."""
        return self.network.ip if self.network else HOST

    @property
    def endpoint_port(self) -> int:
        """The port the pod is registered at: its sidecar's inbound listener in the host
        network; in a pod network its app's port, captured to the sidecar as a Kubernetes
        endpoint is."""
        if self.network is None:
            return self.sidecar.inbound
        return next(iter(self.app_ports), self.sidecar.inbound)


@dataclass(frozen=True, slots=True)
class PodEnvironment:
    """What every pod of a run shares: the state directory and the control plane URL."""

    state: StateDir
    controlplane: str
    http: httpx.AsyncClient
    credentials: Path | None = None  # the sidecars' (runner/accounts.py)
    ca_cert: Path | None = None  # the mesh root the control plane's certificate chains to


def sidecar_argv(plan: PodPlan, controlplane: str, ca_cert: Path | None = None) -> list[str]:
    spec, ports = plan.spec, plan.sidecar
    labels = ",".join(f"{key}={value}" for key, value in spec.labels.items())
    argv = [*REMORA, "proxy", "--controlplane", controlplane, "--labels", labels,
            "--workload", spec.workload_name, "--namespace", spec.namespace,
            "--service-account", spec.service_account,
            "--outbound-port", str(ports.outbound), "--inbound-port", str(ports.inbound),
            "--admin-port", str(ports.admin), "--health-port", str(ports.health)]
    if plan.identity_token is not None:
        argv += ["--identity-token-file", str(plan.identity_token)]
    if ca_cert is not None:
        argv += ["--ca-cert", str(ca_cert)]
    if plan.app_port is not None:
        declared = next(p for p in spec.ports if p.container_port in plan.app_ports)
        argv += ["--app-port", str(plan.app_port),
                 "--container-port", str(declared.container_port)]
        if declared.name:
            argv += ["--container-port-name", declared.name]
    if plan.network is None:
        return argv
    # in the pod: listeners on every address (captured inbound arrives at the pod IP), and
    # routing by the original destination, as the user the capture rules let through
    return plan.network.proxy_argv([*argv, "--bind", "0.0.0.0", "--original-dst",
                                     "--ip", plan.network.ip])


def app_environment(plan: PodPlan) -> dict[str, str]:
    """The app's env: ours minus proxy settings, the Services' variables (in a pod network),
    the pod's resolved env, then what the runner decides (PORT and PORT_<NAME>, pod fields,
    DATA_DIR, and in the host network http_proxy to the sidecar)."""
    spec = plan.spec
    env = {k: v for k, v in os.environ.items()
           if k not in _PROXY_VARIABLES and k not in _CREDENTIAL_VARIABLES}
    env.update(plan.service_env)
    env.update(spec.env)
    env.update({"POD_NAME": spec.name, "POD_NAMESPACE": spec.namespace, "POD_IP": plan.address,
                "DATA_DIR": str(plan.data_dir)})
    if plan.network is None:
        proxy = f"http://{HOST}:{plan.sidecar.outbound}"
        env.update({"http_proxy": proxy, "HTTP_PROXY": proxy, "no_proxy": "", "NO_PROXY": ""})
    if plan.app_port is not None:
        env["PORT"] = str(plan.app_port)
    for port in spec.ports:
        if port.name:
            env[f"PORT_{port.name.upper().replace('-', '_')}"] = str(
                plan.app_ports[port.container_port])
    return env


async def port_accepts(port: int, timeout: float = 1.0, *, opener: Opener | None = None) -> bool:
    connect = opener or (lambda host, port, _: asyncio.open_connection(host, port))
    try:
        _, writer = await asyncio.wait_for(connect(HOST, port, None), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


ReadyHook = Callable[["Pod", bool], Awaitable[None]]


@dataclass
class Pod:
    """A running pod; `run()` keeps it running until `stop_app()`/`stop_sidecar()`."""

    plan: PodPlan
    env: PodEnvironment
    on_ready: ReadyHook
    on_change: Callable[[], None]
    sidecar: Child = field(init=False)
    app: Child = field(init=False)
    ready: bool = False
    phase: str = "Pending"
    restarts: int = 0
    last_exit: str = ""
    created: float = field(default_factory=time.time)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    counters: Counters | None = None  # the last sample (remora.runner.metrics)
    rates: Rates | None = None
    _backoff: CrashLoopBackOff = field(default_factory=CrashLoopBackOff)
    opener: Opener | None = field(init=False)  # how probes connect: inside the pod's network

    def __post_init__(self) -> None:
        spec, state = self.plan.spec, self.env.state
        argv = sidecar_argv(self.plan, self.env.controlplane, self.env.ca_cert)
        self.sidecar = Child(f"{spec.name} sidecar", argv,
                             log=state.log(f"{spec.name}.sidecar"),
                             env=credentials_env(self.env.credentials),
                             cwd=Path("/") if self.plan.network else None)  # user 1337's
        network = self.plan.network
        self.app = Child(spec.name, network.exec_argv(spec.command) if network else spec.command,
                         log=state.log(spec.name), env=app_environment(self.plan),
                         cwd=self.plan.cwd)
        self.opener = opener_in(network.namespace) if network else None

    @property
    def name(self) -> str:
        return self.plan.spec.name

    async def run(self) -> None:
        """Start, watch, restart, until told to stop."""
        self.plan.data_dir.mkdir(parents=True, exist_ok=True)
        while not self._stopping.is_set():
            reason = await self._run_once()
            await self._set_ready(False)
            if self._stopping.is_set():
                return
            await self.app.stop(self.plan.spec.termination_grace)
            self.restarts += 1
            self.last_exit = reason
            delay = self._backoff.record_exit(time.monotonic())
            self._set_phase("CrashLoopBackOff" if delay else "Restarting")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _run_once(self) -> str:
        """One life of the app; returns why it ended."""
        hold = self.plan.spec.hold_application
        if not self.sidecar.running:
            self._set_phase("ContainerCreating")
            await self.sidecar.start()
            if not hold:  # Istio's default: the app starts beside its proxy, not after it
                await self.app.start()
            ready = await wait_http_ok(self.env.http,
                                       f"http://{self.plan.address}:{self.plan.sidecar.health}"
                                       "/healthz/ready",
                                       timeout=SIDECAR_READY_TIMEOUT)
            if not ready:
                await self.sidecar.stop(SIDECAR_GRACE)
                return "sidecar not ready"
        if not self.app.running:
            await self.app.start()
        self._set_phase("Running")
        watchers = {
            asyncio.create_task(self._exited(self.app, "app")),
            asyncio.create_task(self._exited(self.sidecar, "sidecar")),
            asyncio.create_task(self._probe()),
            asyncio.create_task(self._until_stopped()),
        }
        if self.plan.spec.readiness is None and self.plan.spec.startup is None:
            watchers.add(asyncio.create_task(self._ready_when_listening()))
        if self.plan.spec.memory_limit_bytes is not None:
            watchers.add(asyncio.create_task(self._memory_limit(
                self.plan.spec.memory_limit_bytes)))
        try:
            done, _ = await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
            return str(next(iter(done)).result())
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)

    async def _exited(self, child: Child, role: str) -> str:
        reason = exit_reason(await child.wait())
        return reason if role == "app" else f"{role} {reason}"

    async def _memory_limit(self, limit: int) -> str:
        """The kernel's cgroup OOM killer, from outside: SIGKILL to the app's process group
        once its resident memory is over resources.limits.memory (sampled each
        MEMORY_INTERVAL, so a fast allocation can overshoot in between)."""
        pid = self.app.pid
        while pid is not None:
            rss = group_rss_bytes(pid)
            if rss is not None and rss > limit:
                signal_group(pid, signal.SIGKILL)
                return "OOMKilled"
            await asyncio.sleep(MEMORY_INTERVAL)
        await asyncio.Event().wait()
        return ""

    async def _until_stopped(self) -> str:
        await self._stopping.wait()
        return "stopped"

    async def _probe(self) -> str:
        """Run the probes as they fall due; returns when a startup or liveness probe fails."""
        spec = self.plan.spec
        probes = PodProbes.start(liveness=spec.liveness, readiness=spec.readiness,
                                 startup=spec.startup, now=time.monotonic())
        while (next_at := probes.next_at()) is not None:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            due = probes.due(time.monotonic())
            network = self.plan.network
            results = await asyncio.gather(*(
                run_probe(state.spec, self.plan.app_ports, env=self.app.env,
                          cwd=str(self.plan.cwd), opener=self.opener,
                          exec_prefix=tuple(network.exec_argv([])) if network else ())
                for state in due))
            for state, ok in zip(due, results, strict=True):
                transition = probes.record(state.kind, ok, time.monotonic())
                if transition is Transition.RESTART:
                    return f"{state.kind} probe failed"
                if transition in (Transition.READY, Transition.NOT_READY):
                    await self._set_ready(transition is Transition.READY)
        await asyncio.Event().wait()
        return ""

    async def _ready_when_listening(self) -> str:
        """No readiness or startup probe: ready once the app's port accepts connections."""
        port = self.plan.app_port
        while port is not None and not await port_accepts(port, opener=self.opener):
            await asyncio.sleep(0.05)
        await self._set_ready(True)
        await asyncio.Event().wait()
        return ""

    async def _set_ready(self, ready: bool) -> None:
        if ready != self.ready:
            self.ready = ready
            await self.on_ready(self, ready)
            self.on_change()

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self.on_change()

    async def stop_app(self) -> None:
        """Leave the registry, then SIGTERM the app (SIGKILL after its grace period)."""
        self._stopping.set()
        self._set_phase("Terminating")
        await self._set_ready(False)
        await self.app.stop(self.plan.spec.termination_grace)

    async def stop_sidecar(self) -> None:
        await self.sidecar.stop(SIDECAR_GRACE)
        self._set_phase("Stopped")

    def status(self) -> dict[str, Any]:
        spec, plan = self.plan.spec, self.plan
        return {
            "name": spec.name, "workload": spec.workload, "kind": spec.kind,
            "container": spec.container,
            "namespace": spec.namespace, "labels": dict(spec.labels), "phase": self.phase,
            "ready": self.ready, "restarts": self.restarts, "last_exit": self.last_exit,
            "backoff": self._backoff.window,
            "rps": self.rates.requests_per_second if self.rates else None,
            "errors": self.rates.errors if self.rates else None,
            "cpu_millis": self.rates.cpu_millis if self.rates else None,
            "created": self.created,
            "ip": plan.address, "network": plan.network.namespace if plan.network else "host",
            "ports": {"app": {str(k): v for k, v in plan.app_ports.items()},
                      "outbound": plan.sidecar.outbound, "inbound": plan.sidecar.inbound,
                      "admin": plan.sidecar.admin, "health": plan.sidecar.health},
            "app": _process(self.app), "sidecar": _process(self.sidecar),
            "log": str(self.app.log), "sidecar_log": str(self.sidecar.log),
            "data_dir": str(plan.data_dir), "cwd": str(plan.cwd),
        }


def _process(child: Child) -> dict[str, Any]:
    if not child.running:
        return {}
    return {"pid": child.pid, "started": child.start_ticks, "since": child.started_at}
