"""Push: each connected proxy gets the configuration that concerns it, versioned, as changes
happen — the xDS loop of istiod, on the wire format of remora.mesh.wire.

A proxy subscribes with its node (identity). A change of a stored resource (the store's watch)
or of the registry (its change listener, per service) is pushed at once after a quiet period,
and a burst of changes is coalesced until it has been quiet for 100 ms or has lasted 10 s
(istiod's debounce); a registry change re-derives only its own service's endpoints. Each
subscriber's snapshot is compiled here (remora.controlplane.proxysnapshots) and one whose
snapshot changed — its version is a hash of its sections — gets it on its stream, as a delta
from the one it has. ACKs and NACKs are recorded per proxy, so
`GET /api/remora/v1/proxies` shows who runs which version and who refused what (a NACKing
proxy keeps serving its previous version).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from remora.api.meshconfig import MESH_CONFIGMAP, MESH_NAMESPACE
from remora.controlplane.proxysnapshots import ProxySnapshots
from remora.controlplane.registry_cache import KubeServices, RegistryEntries
from remora.mesh.wire import PING_LINE, View, document_digest, document_key, encode_document
from remora.registry.service import Registry
from remora.registry.store.base import CompactedError, Store
from remora.tasks import stop_tasks

log = logging.getLogger("remora.controlplane")

RESOURCES = "/resources/"
DEBOUNCE = 0.1  # istiod PILOT_DEBOUNCE_AFTER
DEBOUNCE_MAX = 10.0  # istiod PILOT_DEBOUNCE_MAX
PING_INTERVAL = 15.0  # a line on idle streams, so dead connections are noticed
WRITE_CHUNK = 64 * 1024  # bytes of a line written at a time (see subscribe)
# Kinds a proxy compiles its snapshot from (remora.mesh.compile reads these).
PROXY_KINDS = frozenset({
    "VirtualService", "DestinationRule", "Gateway", "ServiceEntry", "WorkloadEntry", "Sidecar",
    "Service", "EndpointSlice", "Deployment", "StatefulSet",
    "EnvoyFilter",  # its HTTP_FILTER patches: Snapshot.http_filter_patches
    # not enforced yet, but pushed as istiod does: the proxy says so (remora.api.unenforced)
    "AuthorizationPolicy", "PeerAuthentication", "RequestAuthentication", "Telemetry",
})

MESH_CONFIG_KEY = f"ConfigMap/{MESH_NAMESPACE}/{MESH_CONFIGMAP}"  # as mesh.wire.document_key

Documents = list[dict[str, Any]]
Entry = tuple[str, bytes, str, str, int]  # key, canonical JSON, kind, namespace, digest
ViewKey = tuple[str, str]  # ("sidecar", "") or ("gateway", namespace): who sees the same view


@dataclass
class Subscriber:
    """One connected proxy."""

    node: dict[str, Any]
    queue: asyncio.Queue[tuple[bytes, ...]] = field(default_factory=asyncio.Queue)  # lines
    snapshot: View | None = None  # the compiled snapshot last sent, as sections
    sent: str = ""  # its version
    acked: str = ""  # version it applied
    nacked: str = ""  # version it refused, with the error
    error: str | None = None
    resource_errors: list[dict[str, str]] = field(default_factory=list)  # skipped in `acked`
    connected_at: float = field(default_factory=time.time)

    @property
    def id(self) -> str:
        return str(self.node.get("id", "?"))

    @property
    def view_key(self) -> ViewKey:
        if self.node.get("mode") == "gateway":
            return ("gateway", str(self.node.get("namespace", "default")))
        return ("sidecar", "")


def encode(documents: list[dict[str, Any]]) -> list[Entry]:
    """Each document encoded and digested once (the registry's are kept per service)."""
    entries = []
    for doc in documents:
        key, data = document_key(doc), encode_document(doc)
        entries.append((key, data, str(doc.get("kind")),
                        str(doc.get("metadata", {}).get("namespace", "default")),
                        document_digest(key, data)))
    return entries


def select(view_key: ViewKey, entries: list[Entry]) -> View:
    """The view for proxies of `view_key`: the kinds a proxy compiles, plus the TLS Secrets of
    its own namespace for a gateway (credentialName), and the mesh config (ConfigMap
    istio-system/istio: every proxy reads MeshConfig)."""
    mode, namespace = view_key
    return View.build(
        (key, data, digest) for key, data, kind, doc_namespace, digest in entries
        if kind in PROXY_KINDS or key == MESH_CONFIG_KEY
        or (mode == "gateway" and kind == "Secret" and doc_namespace == namespace)
    )


def write_pieces(line: tuple[bytes, ...]) -> Iterator[bytes]:
    """A line's parts as writes of at most WRITE_CHUNK bytes, small parts joined (a small
    line is one write), made one at a time as the stream takes them (a slow stream holds one
    piece, not a copy of its line)."""
    held = b""
    for part in line:
        if len(held) + len(part) <= WRITE_CHUNK:
            held += part
            continue
        for start in range(0, len(part), WRITE_CHUNK):
            if held and len(held) + min(WRITE_CHUNK, len(part) - start) > WRITE_CHUNK:
                yield held
                held = b""
            held += part[start:start + WRITE_CHUNK]
    if held:
        yield held


class PushServer:
    """Subscribers, the shared view of the configuration, and the debounced recompute."""

    def __init__(self, store: Store, *, registry: Registry | None = None,
                 debounce: float = DEBOUNCE, debounce_max: float = DEBOUNCE_MAX) -> None:
        self.store = store
        self.registry = registry
        self.debounce = debounce
        self.debounce_max = debounce_max
        self.subscribers: dict[str, Subscriber] = {}
        self._entries: list[Entry] | None = None
        # stored resources, encoded, and the Kubernetes Services among them
        self._resources: tuple[list[Entry], KubeServices] | None = None
        self._registry: RegistryEntries[Entry] | None = None
        if registry is not None:
            self._registry = RegistryEntries(registry, encode=encode)
            registry.on_change(self._registry_changed)
        self._views: dict[ViewKey, View] = {}
        self.snapshots = ProxySnapshots()
        self._compiling = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        revision = await self.store.revision()
        self._tasks = [
            loop.create_task(self._watch(RESOURCES, revision)),
            loop.create_task(self._pusher()),
        ]

    async def close(self) -> None:
        await stop_tasks(self._tasks)

    # the view ----------------------------------------------------------------------------------
    async def entries(self) -> list[Entry]:
        """Every resource a proxy may need plus the registry's endpoints, each encoded once.
        Resources and registry are cached apart: a route change does not re-encode the
        thousands of endpoints, an instance change re-derives only its own service's
        (RegistryEntries) and does not re-read the resources."""
        if self._entries is None:
            if self._resources is None:
                stored, _ = await self.store.list(RESOURCES)
                documents = [json.loads(entry.value) for entry in stored]
                self._resources = encode(documents), {
                    (doc["metadata"].get("namespace", "default"), doc["metadata"]["name"]): doc
                    for doc in documents if doc.get("kind") == "Service"
                }
            resources, services = self._resources
            registry = [] if self._registry is None else self._registry.entries(services)
            self._entries = resources + registry
        return self._entries

    async def view(self, view_key: ViewKey) -> View:
        found = self._views.get(view_key)
        if found is None:
            found = self._views[view_key] = select(view_key, await self.entries())
        return found

    def _resources_changed(self) -> None:
        self._entries = self._resources = None
        self._dirty.set()

    def _registry_changed(self, service_key: str) -> None:
        """The registry's in-memory view changed (its own write or its watch): the push
        follows the registry itself, so a recompute never reads it before the change."""
        self._entries = None
        self._dirty.set()

    async def _watch(self, prefix: str, since: int) -> None:
        while True:
            try:
                async for _ in self.store.watch(prefix, since=since):
                    self._resources_changed()
                return
            except CompactedError:
                since = await self.store.revision()  # resync: recompute from scratch
                self._resources_changed()

    async def _pusher(self) -> None:
        """Push a change at once when it comes after a quiet period; coalesce a burst of
        changes until it has been quiet for `debounce` (istiod's PILOT_DEBOUNCE_AFTER, 100 ms)
        or has lasted `debounce_max` (PILOT_DEBOUNCE_MAX, 10 s), so a storm of registrations
        costs a few pushes yet still reaches proxies while it lasts, and a lone route change is
        not delayed."""
        loop = asyncio.get_running_loop()
        last_push = -self.debounce
        while True:
            await self._dirty.wait()
            started = loop.time()
            if started - last_push < self.debounce:
                while loop.time() - started < self.debounce_max:  # a burst: wait for quiet
                    self._dirty.clear()
                    await asyncio.sleep(self.debounce)
                    if not self._dirty.is_set():
                        break
            self._dirty.clear()
            await self.push_all()
            last_push = loop.time()

    async def push_all(self) -> None:
        """Recompute the views in use and each subscriber's snapshot; send each whose snapshot
        changed a delta from the one it has (each line built once for equal snapshots)."""
        entries = await self.entries()
        new = {key: select(key, entries) for key in {s.view_key for s in self.subscribers.values()}}
        self._views = new
        self.snapshots.keep_only(new.values())
        deltas: dict[tuple[str, str], bytes] = {}
        for subscriber in list(self.subscribers.values()):
            await self._send(subscriber, new[subscriber.view_key], deltas)

    async def _send(self, subscriber: Subscriber, view: View,
                    deltas: dict[tuple[str, str], bytes] | None = None) -> None:
        """Queue the subscriber's snapshot of `view` if it changed: a delta from the one it
        has, else the whole snapshot. A snapshot the control plane cannot compile is recorded
        as the subscriber's error; the proxy keeps what it runs. A compile runs in a thread,
        so the API keeps answering while a large mesh compiles."""
        compiled = self.snapshots.cached(view, subscriber.node)
        if compiled is None:
            async with self._compiling:  # one compile at a time: proxies of a class that
                # subscribe together wait for the first one's compile instead of repeating it
                compiled = self.snapshots.cached(view, subscriber.node)
                if compiled is None:
                    compiled = await asyncio.to_thread(self.snapshots.compiled, view,
                                                       subscriber.node)
        snapshot = compiled.view
        if snapshot is None:
            if subscriber.nacked != view.version:
                subscriber.nacked, subscriber.error = view.version, compiled.error
            return
        if snapshot.version == subscriber.sent:
            return
        base = subscriber.snapshot
        if base is not None and base.version == subscriber.sent:
            key = (base.version, snapshot.version)
            line = deltas.get(key) if deltas is not None else None
            if line is None:
                line = snapshot.delta_line(base)
                if deltas is not None:
                    deltas[key] = line
            pieces: tuple[bytes, ...] = (line,)
        else:
            pieces = compiled.snapshot_pieces()
        subscriber.snapshot, subscriber.sent = snapshot, snapshot.version
        subscriber.queue.put_nowait(pieces)

    # the stream --------------------------------------------------------------------------------
    async def subscribe(self, node: dict[str, Any]) -> AsyncIterator[bytes]:
        """NDJSON lines for one proxy: its current view at once, then each change."""
        subscriber = Subscriber(node)
        previous = self.subscribers.get(subscriber.id)
        if previous is not None:  # a reconnect: the new stream replaces the old one
            subscriber.acked = previous.acked
        self.subscribers[subscriber.id] = subscriber
        await self._send(subscriber, await self.view(subscriber.view_key))
        try:
            while True:
                try:
                    line = await asyncio.wait_for(subscriber.queue.get(), PING_INTERVAL)
                except TimeoutError:
                    yield PING_LINE
                    continue
                # in pieces, so the server's flow control holds back all but one piece per
                # slow stream: one 15 MB snapshot (50,000 endpoints) to each of 500 proxies
                # buffered whole was 7.5 GB of write buffers; the line's own pieces share
                # its largest part with the other proxies of its class
                for piece in write_pieces(line):
                    yield piece
        finally:
            if self.subscribers.get(subscriber.id) is subscriber:
                del self.subscribers[subscriber.id]

    def ack(self, node_id: str, version: str, error: str | None,
            resource_errors: list[dict[str, str]] | None = None) -> bool:
        """Record an ACK (error None; `resource_errors` the resources it skipped) or NACK;
        False for an unknown proxy."""
        subscriber = self.subscribers.get(node_id)
        if subscriber is None:
            return False
        if error is None:
            subscriber.acked, subscriber.error = version, None
            if resource_errors != subscriber.resource_errors:
                for item in resource_errors or ():
                    log.warning("proxy %s skipped %s %s/%s: %s", node_id, item["kind"],
                                item["namespace"], item["name"], item["message"])
            subscriber.resource_errors = resource_errors or []
        else:
            subscriber.nacked, subscriber.error = version, error
            log.warning("proxy %s refused version %s: %s", node_id, version, error)
        return True

    def status(self) -> list[dict[str, Any]]:
        return [
            {"id": s.id, "mode": s.node.get("mode"), "namespace": s.node.get("namespace"),
             "workload": s.node.get("workload"), "labels": s.node.get("labels") or {},
             "adminPort": s.node.get("adminPort"), "ip": s.node.get("ip"), "sent": s.sent,
             "acked": s.acked,
             "nacked": s.nacked or None, "error": s.error,
             "resourceErrors": s.resource_errors,
             "synced": s.sent == s.acked, "connectedAt": s.connected_at}
            for s in self.subscribers.values()
        ]
