"""An in-memory copy of one store prefix, kept current by a watch and by the owner's writes.

Reads (instance lists, config MD5s) are served from memory so they cost no store round trip;
the watch makes changes written by anyone else (another replica on etcd, a lease expiring in
the store) visible. Every key remembers the revision of the change it holds, so a watch event
older than a write already applied locally is ignored (read-your-writes without going back).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from remora.registry.store.base import CompactedError, Entry, EventType, Store, StoreError
from remora.tasks import stop_tasks

T = TypeVar("T")
log = logging.getLogger(__name__)
_TOMBSTONES = 4096
"""Deleted keys remembered (with their revision) before pruning the ones the watch has passed."""


class StoreMirror(Generic[T]):
    """key → decoded value for every key under `prefix`. `on_change(key, old, new)` runs for
    each applied change (new None for a delete), so owners keep their own indexes."""

    def __init__(self, store: Store, prefix: str, *, decode: Callable[[Entry], T],
                 on_change: Callable[[str, T | None, T | None], None]) -> None:
        self._store = store
        self._prefix = prefix
        self._decode = decode
        self._on_change = on_change
        self._values: dict[str, T] = {}
        self._revisions: dict[str, int] = {}
        self._deleted: dict[str, int] = {}
        self._seen = 0  # revision the watch has delivered up to
        self._task: asyncio.Task[None] | None = None

    def get(self, key: str) -> T | None:
        return self._values.get(key)

    def revision_of(self, key: str) -> int:
        return self._revisions.get(key, 0)

    async def start(self) -> None:
        """Load the prefix and follow it."""
        since = await self._load()
        self._task = asyncio.get_running_loop().create_task(self._follow(since))

    async def close(self) -> None:
        await stop_tasks([self._task])
        self._task = None

    async def _load(self) -> int:
        entries, revision = await self._store.list(self._prefix)
        present = {entry.key for entry in entries}
        for key in [key for key in self._values if key not in present]:
            self.deleted(key, revision)
        for entry in entries:
            self.put(entry)
        self._seen = revision
        return revision

    async def _follow(self, since: int) -> None:
        while True:
            try:
                async for event in self._store.watch(self._prefix, since=since):
                    if event.type is EventType.PUT:
                        self.put(event.entry)
                    else:
                        self.deleted(event.entry.key, event.revision)
                    since = self._seen = event.revision
                return
            except CompactedError:
                log.warning("watch on %s fell behind the store's history; reloading", self._prefix)
                since = await self._load()
            except StoreError:
                return  # the store closed

    def put(self, entry: Entry) -> None:
        """Apply a value the store holds at `entry.modified` (ignored if older than ours)."""
        key = entry.key
        if entry.modified <= max(self._revisions.get(key, 0), self._deleted.get(key, 0)):
            return
        try:
            value = self._decode(entry)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring undecodable %s: %s", key, exc)
            return
        self._deleted.pop(key, None)
        old = self._values.get(key)
        self._values[key] = value
        self._revisions[key] = entry.modified
        self._on_change(key, old, value)

    def deleted(self, key: str, revision: int) -> None:
        """Apply a delete the store made at `revision`."""
        if revision <= max(self._revisions.get(key, 0), self._deleted.get(key, 0)):
            return
        self._revisions.pop(key, None)
        self._deleted[key] = revision
        if len(self._deleted) > _TOMBSTONES:
            self._deleted = {k: r for k, r in self._deleted.items() if r > self._seen}
        old = self._values.pop(key, None)
        if old is not None:
            self._on_change(key, old, None)
