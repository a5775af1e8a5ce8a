"""Push: each connected proxy gets the configuration that concerns it, versioned, as changes
happen — the xDS loop of istiod, on the wire format of remora.proxy.discovery.

A proxy subscribes with its node (identity). Every change under the store's resource or registry
prefixes schedules one recompute after a quiet period (istiod debounces pushes by 100 ms); each
subscriber whose view changed — its version is a hash of its documents — gets the new view on
its stream. ACKs and NACKs are recorded per proxy, so `GET /api/remora/v1/proxies` shows who runs
which version and who refused what (a NACKing proxy keeps serving its previous version).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from remora.controlplane.registry_view import registry_documents
from remora.registry.service import Registry
from remora.registry.store.base import CompactedError, Store

log = logging.getLogger("remora.controlplane")

RESOURCES = "/resources/"
REGISTRY = "/registry/"
DEBOUNCE = 0.1  # istiod PILOT_DEBOUNCE_AFTER
PING_INTERVAL = 15.0  # a line on idle streams, so dead connections are noticed
# Kinds a proxy compiles its snapshot from (remora.mesh.compile reads these).
PROXY_KINDS = frozenset({
    "VirtualService", "DestinationRule", "Gateway", "ServiceEntry", "WorkloadEntry", "Sidecar",
    "Service", "EndpointSlice", "Deployment", "StatefulSet",
})

Documents = list[dict[str, Any]]


@dataclass
class Subscriber:
    """One connected proxy."""

    node: dict[str, Any]
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    sent: str = ""  # version of the last view sent
    acked: str = ""  # version it applied
    nacked: str = ""  # version it refused, with the error
    error: str | None = None
    connected_at: float = field(default_factory=time.time)

    @property
    def id(self) -> str:
        return str(self.node.get("id", "?"))


def view_for(node: dict[str, Any], documents: Documents) -> tuple[str, Documents]:
    """The documents a proxy needs, and their version: the kinds it compiles, plus the TLS
    Secrets of its own namespace when it is a gateway (credentialName)."""
    namespace = node.get("namespace", "default")
    gateway = node.get("mode") == "gateway"
    chosen = [
        doc for doc in documents
        if doc.get("kind") in PROXY_KINDS
        or (gateway and doc.get("kind") == "Secret"
            and doc.get("metadata", {}).get("namespace", "default") == namespace)
    ]
    digest = hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()
    return digest[:16], chosen


class PushServer:
    """Subscribers, the shared view of the configuration, and the debounced recompute."""

    def __init__(self, store: Store, *, registry: Registry | None = None,
                 debounce: float = DEBOUNCE) -> None:
        self.store = store
        self.registry = registry
        self.debounce = debounce
        self.subscribers: dict[str, Subscriber] = {}
        self._documents: Documents | None = None
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        revision = await self.store.revision()
        self._tasks = [
            loop.create_task(self._watch(RESOURCES, revision)),
            loop.create_task(self._watch(REGISTRY, revision)),
            loop.create_task(self._pusher()),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # the view ----------------------------------------------------------------------------------
    async def documents(self) -> Documents:
        """Every resource a proxy may need plus the registry's endpoints (cached until a
        change)."""
        if self._documents is None:
            entries, _ = await self.store.list(RESOURCES)
            documents = [json.loads(entry.value) for entry in entries]
            if self.registry is not None:
                services = {
                    (doc["metadata"].get("namespace", "default"), doc["metadata"]["name"]): doc
                    for doc in documents if doc.get("kind") == "Service"
                }
                documents.extend(await registry_documents(self.registry, self.store, services))
            self._documents = documents
        return self._documents

    async def _watch(self, prefix: str, since: int) -> None:
        while True:
            try:
                async for _ in self.store.watch(prefix, since=since):
                    self._documents = None
                    self._dirty.set()
                return
            except CompactedError:
                since = await self.store.revision()  # resync: recompute from scratch
                self._documents = None
                self._dirty.set()

    async def _pusher(self) -> None:
        """Debounce: wait for a quiet period after a change, then push changed views."""
        while True:
            await self._dirty.wait()
            while True:
                self._dirty.clear()
                await asyncio.sleep(self.debounce)
                if not self._dirty.is_set():
                    break
            await self.push_all()

    async def push_all(self) -> None:
        documents = await self.documents()
        for subscriber in list(self.subscribers.values()):
            self._offer(subscriber, documents)

    def _offer(self, subscriber: Subscriber, documents: Documents) -> None:
        version, chosen = view_for(subscriber.node, documents)
        if version != subscriber.sent:
            subscriber.sent = version
            subscriber.queue.put_nowait(
                {"type": "snapshot", "version": version, "documents": chosen}
            )

    # the stream --------------------------------------------------------------------------------
    async def subscribe(self, node: dict[str, Any]) -> AsyncIterator[bytes]:
        """NDJSON lines for one proxy: its current view at once, then each change."""
        subscriber = Subscriber(node)
        previous = self.subscribers.get(subscriber.id)
        if previous is not None:  # a reconnect: the new stream replaces the old one
            subscriber.acked = previous.acked
        self.subscribers[subscriber.id] = subscriber
        self._offer(subscriber, await self.documents())
        try:
            while True:
                try:
                    message = await asyncio.wait_for(subscriber.queue.get(), PING_INTERVAL)
                except TimeoutError:
                    message = {"type": "ping"}
                yield (json.dumps(message) + "\n").encode()
        finally:
            if self.subscribers.get(subscriber.id) is subscriber:
                del self.subscribers[subscriber.id]

    def ack(self, node_id: str, version: str, error: str | None) -> bool:
        """Record an ACK (error None) or NACK; False for an unknown proxy."""
        subscriber = self.subscribers.get(node_id)
        if subscriber is None:
            return False
        if error is None:
            subscriber.acked, subscriber.error = version, None
        else:
            subscriber.nacked, subscriber.error = version, error
            log.warning("proxy %s refused version %s: %s", node_id, version, error)
        return True

    def status(self) -> list[dict[str, Any]]:
        return [
            {"id": s.id, "mode": s.node.get("mode"), "namespace": s.node.get("namespace"),
             "workload": s.node.get("workload"), "sent": s.sent, "acked": s.acked,
             "nacked": s.nacked or None, "error": s.error,
             "synced": s.sent == s.acked, "connectedAt": s.connected_at}
            for s in self.subscribers.values()
        ]
