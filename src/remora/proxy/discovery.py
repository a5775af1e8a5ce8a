"""A proxy fed by the control plane: `remora proxy --controlplane URL[,URL...]`.

As with xDS, the proxy opens a stream with its identity (node), receives versioned snapshots of
its configuration compiled by the control plane (remora.mesh.encoding: no validation or YAML
machinery in the serving proxy), and answers ACK (applied) or NACK (with the error; the
previous snapshot keeps serving). A resource that could not be compiled does not NACK the
version: it was skipped, the rest applies, and the ACK lists it in `resourceErrors`.
When the control plane is unreachable the proxy keeps its last good snapshot and reconnects
with jittered exponential back-off, cycling through every address it was given.

Wire format: remora.mesh.wire (snapshots, deltas on the last received sections, pings) on
`POST /api/remora/v1/discovery` with `{"node": {...}}`; `POST /api/remora/v1/discovery/ack`
takes `{"node": ID, "version": V, "error": null | "...", "resourceErrors": [{"kind", "namespace",
"name", "message"}]}` (resourceErrors optional: an older proxy omits it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import TYPE_CHECKING, Any

from remora.credentials import CredentialsError, TokenSource
from remora.errors import RemoraError
from remora.mesh.encoding import SectionError, SnapshotDecoder
from remora.mesh.wire import ACK_PATH, DISCOVERY_PATH, Document, ack_body, apply_message
from remora.proxy.configlog import ConfigLog
from remora.proxy.cpclient import ControlPlaneClient, ControlPlaneHTTPError, ControlPlaneTls
from remora.proxy.labels import node_id

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from remora.mesh.snapshot import ListenerPorts, ProxyIdentity, SkippedResource, Snapshot

log = logging.getLogger("remora.proxy")

BACKOFF_BASE = 0.25  # seconds; doubles per failed attempt up to BACKOFF_MAX, fully jittered
BACKOFF_MAX = 8.0


class ControlPlaneUnavailableError(RemoraError):
    """No control plane answered with a valid first snapshot in time."""


class ControlPlaneRefusedError(ValueError):
    """The control plane refused the proxy's credentials (a ValueError: retried like a bad
    stream, with a fresh login)."""


def node_document(identity: ProxyIdentity, ports: ListenerPorts) -> dict[str, Any]:
    """Everything the control plane compiles this proxy's snapshot for (remora.mesh.wire
    node_identity reads it back)."""
    return {
        "id": node_id(identity),
        "mode": identity.mode,
        "namespace": identity.namespace,
        "labels": dict(identity.labels),
        "workload": identity.workload,
        "serviceAccount": identity.service_account,
        "ip": identity.ip,
        "appPort": identity.app_port,
        "locality": identity.locality,
        "cluster": identity.cluster,
        "containerPort": identity.container_port,
        "containerPortName": identity.container_port_name,
        "ports": {"outbound": ports.outbound, "inbound": ports.inbound, "admin": ports.admin,
                  "health": ports.health},
    }


__all__ = ["ControlPlaneUnavailableError", "RemoteSource", "node_id"]


class RemoteSource:
    """Snapshots pushed by one of several control planes."""

    def __init__(self, urls: Sequence[str], *, identity: ProxyIdentity, ports: ListenerPorts,
                 first_timeout: float = 30.0, rng: random.Random | None = None,
                 tls: ControlPlaneTls | None = None) -> None:
        if not urls:
            raise RemoraError("--controlplane needs at least one URL")
        self.urls = [url.rstrip("/") for url in urls]
        self.identity = identity
        self.ports = ports
        self.first_timeout = first_timeout
        self.rng = rng or random.Random()
        # the admin port too, so `remora proxy-config POD` finds this proxy through the
        # control plane's proxies list (istioctl reaches a pod's 15000 by port-forward)
        self.node = {**node_document(identity, ports), "adminPort": ports.admin}
        self.version = ""  # the last applied version
        self.received = ""  # the last received version (a NACKed one included)
        self.documents: dict[str, Document] = {}  # the snapshot's sections by key
        self._decoder = SnapshotDecoder()
        self._log = ConfigLog()
        self._first: asyncio.Future[Snapshot] | None = None
        self._apply: Callable[[Snapshot], None] | None = None
        self._task: asyncio.Task[None] | None = None
        try:
            self._clients = {url: ControlPlaneClient(url, tls) for url in self.urls}
        except ValueError as exc:
            raise RemoraError(f"--controlplane: {exc}") from None
        ca_file = (tls.ca_file if tls else None) or ""
        self._tokens = {url: TokenSource.for_server(url, ca_file=ca_file) for url in self.urls}
        self._renew = False  # the last stream was refused: log in again before the next

    async def first(self) -> Snapshot:
        loop = asyncio.get_running_loop()
        self._first = loop.create_future()
        self._task = loop.create_task(self._run())
        try:
            return await asyncio.wait_for(asyncio.shield(self._first), self.first_timeout)
        except TimeoutError:
            self._task.cancel()
            raise ControlPlaneUnavailableError(
                f"no snapshot from {', '.join(self.urls)} in {self.first_timeout:g} s"
            ) from None

    async def follow(self, apply: Callable[[Snapshot], None]) -> None:
        self._apply = apply
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            await asyncio.shield(self._task)
        finally:
            self._task.cancel()

    def reload(self) -> Snapshot | None:
        return None  # the control plane pushes; nothing to reread

    async def _run(self) -> None:
        """Stream from one control plane after another, backing off between failures."""
        failures = 0
        index = 0
        while True:
            url = self.urls[index % len(self.urls)]
            try:
                await self._stream(url)
                failures = 0  # a stream that ended cleanly: reconnect at once
            except (OSError, ValueError, CredentialsError) as exc:
                failures += 1
                index += 1
                delay = self.rng.random() * min(BACKOFF_MAX, BACKOFF_BASE * 2 ** failures)
                log.warning("control plane %s: %s; retrying in %.2f s", url, exc, delay)
                await asyncio.sleep(delay)

    async def _stream(self, url: str) -> None:
        self.received = ""  # a new stream starts with a snapshot
        body = {"node": self.node, "version": self.version}
        headers = await self._headers(url)
        response, connection = await self._clients[url].post(DISCOVERY_PATH, body, headers)
        try:
            status = response.status
            self._renew = status in (401, 403)
            if status != 200:
                text = (await response.read()).decode(errors="replace").strip()
                if self._renew:
                    raise ControlPlaneRefusedError(
                        f"refused this proxy ({status}): {text} "
                        "(credentials: REMORA_CREDENTIALS or REMORA_TOKEN)")
                raise ControlPlaneHTTPError(f"discovery answered {status}: {text[:200]}")
            log.info("connected to control plane %s", url)
            async for line in response.lines():
                if not line.strip():
                    continue
                applied = apply_message(self.documents, self.received, json.loads(line))
                if applied is not None:  # WireError (a ValueError) reconnects for a snapshot
                    self.documents, self.received = applied
                    await self._receive(url, self.received)
        finally:
            connection.close()

    async def _headers(self, url: str) -> dict[str, str]:
        """The token header (logging in, in a thread, when the token is due)."""
        tokens = self._tokens[url]
        renew, self._renew = self._renew, False
        return await asyncio.to_thread(tokens.headers, renew=renew)

    async def _receive(self, url: str, version: str) -> None:
        error: str | None = None
        skipped: Sequence[SkippedResource] = ()
        try:
            snapshot = self._decoder.decode(self.documents, version=version)
        except SectionError as exc:
            error = str(exc)
            log.error("NACK version %s, keeping %s: %s", version, self.version or "none", error)
        else:
            self._log.snapshot(snapshot)
            skipped = snapshot.skipped
            self.version = version
            first = self._first
            if first is not None and not first.done():
                first.set_result(snapshot)
            elif self._apply is not None:
                self._apply(snapshot)
            log.info("ACK version %s", version)
        await self._clients[url].post_json(ACK_PATH, ack_body(
            self.node["id"], version, error=error, skipped=skipped), await self._headers(url))
