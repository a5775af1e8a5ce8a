"""The store interface: etcd's data model (revisions, compare-and-swap, leases, watches).

Everything the control plane keeps — resources, instances, configs — is a key with a value and
the store-wide revision of its last change. Writes can be conditional on a key's revision
(optimistic concurrency, 409 upstream), can be bound to a lease (ephemeral instances vanish
when their lease expires), and every change is an event a watch can replay from a revision.
SQLite (embedded, the default) and etcd (through aetcd) implement it; they must behave the same,
and the shared tests in tests/unit/registry check both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from remora.errors import RemoraError


class StoreError(RemoraError):
    """The store could not do what was asked (unreachable, closed, corrupt)."""


class ConflictError(StoreError):
    """A conditional write found the key at another revision (or absent / present)."""

    def __init__(self, key: str, *, expected: int | None, actual: int | None) -> None:
        super().__init__(f"{key}: expected revision {expected}, found {actual}")
        self.key = key
        self.expected = expected
        self.actual = actual


class CompactedError(StoreError):
    """A watch asked for revisions the store no longer keeps history for."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A key's current value. `created` and `modified` are store revisions (etcd's
    create_revision / mod_revision); `version` counts writes since creation."""

    key: str
    value: bytes
    created: int
    modified: int
    version: int
    lease: int | None = None


class EventType(StrEnum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class Event:
    """One change, at store revision `revision`; for DELETE, `entry` is the value it had."""

    type: EventType
    entry: Entry
    revision: int


ANY = -1
"""`expected` for a write that does not care about the key's revision."""
ABSENT = 0
"""`expected` for a write that requires the key not to exist (create)."""


class Store(Protocol):
    """A consistent key-value store with revisions, leases and watches."""

    async def get(self, key: str) -> Entry | None: ...

    async def list(self, prefix: str) -> tuple[list[Entry], int]:
        """Entries under `prefix` (key order) and the store revision they were read at."""
        ...

    async def put(self, key: str, value: bytes, *, expected: int = ANY,
                  lease: int | None = None) -> Entry:
        """Write; `expected` = the key's modified revision (or ABSENT / ANY), else ConflictError."""
        ...

    async def delete(self, key: str, *, expected: int = ANY) -> Entry | None:
        """Delete; returns what was deleted (None if absent); ConflictError on revision mismatch."""
        ...

    async def grant(self, ttl: float) -> int:
        """A lease id that expires `ttl` seconds after its last keep-alive."""
        ...

    async def keep_alive(self, lease: int) -> bool:
        """Refresh a lease; False when it has already expired (its keys are gone)."""
        ...

    async def revoke(self, lease: int) -> None:
        """End a lease now: its keys are deleted (DELETE events)."""
        ...

    def watch(self, prefix: str, *, since: int | None = None) -> AsyncIterator[Event]:
        """Changes under `prefix` after revision `since` (None: from now on), in revision
        order, without gaps; raises CompactedError when `since` is older than the kept history."""
        ...

    async def revision(self) -> int:
        """The store's current revision."""
        ...

    async def close(self) -> None: ...
