"""Liveness, readiness and startup probes: a pure state machine and thin async executors.

Theory of operation (kubernetes.io, "Liveness, Readiness and Startup Probes" and "Configure
Liveness, Readiness and Startup Probes"; kubelet pkg/kubelet/prober/worker.go):

- No probe runs before `initialDelaySeconds` after the container started; then every
  `periodSeconds`.
- A result counts only after `successThreshold` consecutive successes or `failureThreshold`
  consecutive failures ("run" counters that reset when the result flips).
- Readiness starts as failure (not ready) and is re-evaluated for the container's whole life;
  without a readiness probe the container is ready once started.
- Liveness starts as success; reaching its failure threshold restarts the container.
- A startup probe, when set, disables liveness and readiness until it succeeds once; reaching
  its failure threshold restarts the container. After it succeeds it no longer runs.
- After a restart decision nothing more is probed: the next container gets new states.

`ProbeState.record(ok, now)` and `PodProbes.record(kind, ok, now)` return a `Transition`; the
shell runs `run_probe` when `PodProbes.due(now)` says so and applies the transitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from remora.runner.spec import ProbeSpec

ProbeKind = Literal["liveness", "readiness", "startup"]
Opener = Callable[[str, int, "ssl.SSLContext | None"],
                  Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
"""How a probe connects: asyncio.open_connection, or the same from inside a pod's network
namespace (remora.runner.netns.opener_in)."""
HOST = "127.0.0.1"
USER_AGENT = "kube-probe/remora"


class Transition(Enum):
    """What a probe result changed."""

    NONE = "none"
    READY = "ready"
    NOT_READY = "not-ready"
    STARTED = "started"
    RESTART = "restart"


@dataclass(slots=True)
class ProbeState:
    """One probe of one container: run counters, its current result and when it is due."""

    kind: ProbeKind
    spec: ProbeSpec
    started_at: float  # when the container started
    result: bool | None = field(init=False)  # None: no result yet ("Unknown")
    on_hold: bool = field(default=False, init=False)  # a restart was decided: probe no more
    next_at: float = field(init=False)
    _last: bool | None = field(default=None, init=False)
    _run: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.next_at = self.started_at + self.spec.initial_delay
        # kubelet: readiness starts as Failure, liveness as Success, startup as Unknown.
        self.result = {"readiness": False, "liveness": True, "startup": None}[self.kind]

    def record(self, ok: bool, now: float) -> Transition:
        """Count one probe result taken at `now`; the transition it causes, if any."""
        if self.on_hold or now < self.started_at + self.spec.initial_delay:
            return Transition.NONE
        self.next_at = now + self.spec.period
        if self._last is ok:
            self._run += 1
        else:
            self._last, self._run = ok, 1
        threshold = self.spec.success_threshold if ok else self.spec.failure_threshold
        if self._run < threshold:
            return Transition.NONE
        previous, self.result = self.result, ok
        if not ok and self.kind != "readiness":
            self.on_hold, self._run = True, 0
            return Transition.RESTART
        if self.kind == "startup":
            return Transition.STARTED if previous is not True else Transition.NONE
        if self.kind == "readiness" and previous is not ok:
            return Transition.READY if ok else Transition.NOT_READY
        return Transition.NONE


@dataclass(slots=True)
class PodProbes:
    """The probes of one container, with the startup probe gating the other two."""

    liveness: ProbeState | None
    readiness: ProbeState | None
    startup: ProbeState | None

    @classmethod
    def start(
        cls,
        *,
        liveness: ProbeSpec | None,
        readiness: ProbeSpec | None,
        startup: ProbeSpec | None,
        now: float,
    ) -> PodProbes:
        """Fresh states for a container started at `now`."""

        def state(kind: ProbeKind, spec: ProbeSpec | None) -> ProbeState | None:
            return None if spec is None else ProbeState(kind, spec, now)

        return cls(state("liveness", liveness), state("readiness", readiness),
                   state("startup", startup))  # fmt: skip

    @property
    def started(self) -> bool:
        return self.startup is None or self.startup.result is True

    @property
    def restarting(self) -> bool:
        return any(s.on_hold for s in self._all())

    @property
    def ready(self) -> bool:
        """Started, not being restarted, and readiness succeeded (or there is no such probe)."""
        if not self.started or self.restarting:
            return False
        return self.readiness is None or self.readiness.result is True

    def active(self) -> list[ProbeState]:
        """The probes that run at all now: startup until it succeeds, then the others."""
        if self.restarting:
            return []
        if not self.started:
            return [self.startup] if self.startup else []
        return [s for s in (self.liveness, self.readiness) if s is not None]

    def due(self, now: float) -> list[ProbeState]:
        """The active probes whose time has come."""
        return [s for s in self.active() if s.next_at <= now]

    def next_at(self) -> float | None:
        """When the next probe is due (None: nothing left to probe)."""
        return min((s.next_at for s in self.active()), default=None)

    def record(self, kind: ProbeKind, ok: bool, now: float) -> Transition:
        """Count a result of the `kind` probe. STARTED becomes READY when readiness is implied
        (no readiness probe); results of a gated or finished probe are ignored."""
        state = next((s for s in self.active() if s.kind == kind), None)
        if state is None:
            return Transition.NONE
        transition = state.record(ok, now)
        if transition is Transition.STARTED and self.readiness is None:
            return Transition.READY
        return transition

    def _all(self) -> list[ProbeState]:
        return [s for s in (self.liveness, self.readiness, self.startup) if s is not None]


# ---------------------------------------------------------------------------------------------
# Executors (I/O)
# ---------------------------------------------------------------------------------------------


async def run_probe(
    spec: ProbeSpec,
    port_map: Mapping[int, int],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    opener: Opener | None = None,
    exec_prefix: tuple[str, ...] = (),
) -> bool:
    """Run one probe against the local process; `port_map` maps container ports to local
    ports (a port not in it is used as is). `opener` connects (default: on this host's
    network), `exec_prefix` runs an exec probe's command where the app runs (`ip netns exec`).
    False on failure or after `spec.timeout`."""
    try:
        async with asyncio.timeout(spec.timeout):
            if spec.kind == "exec":
                return await _exec((*exec_prefix, *spec.command) if spec.command else (),
                                   env, cwd)
            port = port_map.get(int(spec.port or 0), int(spec.port or 0))
            connect = opener or _open_connection
            if spec.kind == "tcp":
                return await _tcp(port, connect)
            return await _http_get(spec, port, connect)
    except (TimeoutError, OSError, ValueError):
        return False


async def _open_connection(host: str, port: int, context: ssl.SSLContext | None
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port, ssl=context)


async def _tcp(port: int, connect: Opener) -> bool:
    """tcpSocket: success when the connection opens."""
    _, writer = await connect(HOST, port, None)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _http_get(spec: ProbeSpec, port: int, connect: Opener) -> bool:
    """httpGet: 200 <= status < 400 is success (redirects are not followed)."""
    context = None
    if spec.scheme == "HTTPS":  # the kubelet does not verify the certificate either
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    reader, writer = await connect(HOST, port, context)
    try:
        headers = {"Host": f"{HOST}:{port}", "User-Agent": USER_AGENT, "Accept": "*/*",
                   "Connection": "close"}  # fmt: skip
        headers.update(dict(spec.headers))
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"GET {spec.path or '/'} HTTP/1.1\r\n{head}\r\n".encode("latin-1"))
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = status_line.split()
    return len(parts) >= 2 and parts[0].startswith(b"HTTP/") and 200 <= int(parts[1]) < 400


async def _exec(command: tuple[str, ...], env: Mapping[str, str] | None, cwd: str | None) -> bool:
    """exec: exit status 0 is success; the process is killed when the probe times out."""
    if not command:
        return False
    process = await asyncio.create_subprocess_exec(
        *command, env=dict(env) if env is not None else None, cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        return await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
