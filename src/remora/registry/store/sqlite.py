"""The embedded store: base.Store on one SQLite file (WAL), the default for a single control plane.

Theory of operation. One connection, used only from the event-loop thread: every method runs its
SQL synchronously before its first await, so each read-check-write is atomic with respect to
every other coroutine (no locks). A write stages its key row and event row in the open
transaction; the writes of one event-loop iteration share one COMMIT (group commit, with one
`meta.revision` update), and a write returns only after that COMMIT. With journal_mode=WAL and
synchronous=NORMAL a commit is a write() of the WAL frames into the OS, not an fsync, so an
acknowledged write survives the process being killed (kill -9) but may roll back on power loss:
"Transactions are durable across application crashes regardless of the synchronous setting or
journal mode ... A transaction committed in WAL mode with synchronous=NORMAL might roll back
following a power loss or system crash" (https://www.sqlite.org/pragma.html#pragma_synchronous).
locking_mode=EXCLUSIVE keeps a second process off the same file: the revision lives in memory too.

`events` keeps the last `history` revisions for watches; a watch reads the table from its
revision up to the last commit and only then takes live events, so nothing falls between.
Lease expiries live in memory (a keep-alive is a heartbeat, not a write) and are re-based to
now + ttl when the store opens, as etcd's lessor does when a member becomes leader (`Promote`
refreshes every lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from remora.registry.store.base import (
    ABSENT,
    ANY,
    CompactedError,
    ConflictError,
    Entry,
    Event,
    EventType,
    StoreError,
)
from remora.tasks import stop_tasks

log = logging.getLogger(__name__)

HISTORY = 100_000
"""Revisions of history kept for watches (etcd compacts too; older `since` → CompactedError)."""
WATCH_BUFFER = 10_000
"""Live events a watcher may have unread before it falls back to reading history."""

_CHECKPOINT_PAGES = 10_000
"""WAL pages (4 KiB) between checkpoints: a checkpoint is where synchronous=NORMAL fsyncs, on the
event-loop thread; SQLite's default of 1,000 made it most of the cost of a write (measured)."""
_CACHE_KIB = 65_536

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, created INT NOT NULL,
    modified INT NOT NULL, version INT NOT NULL, lease INT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_lease ON kv(lease) WHERE lease IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (revision INTEGER PRIMARY KEY, type TEXT NOT NULL,
    key TEXT NOT NULL, value BLOB NOT NULL, created INT NOT NULL, modified INT NOT NULL,
    version INT NOT NULL, lease INT);
CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY AUTOINCREMENT, ttl REAL NOT NULL,
    expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
"""
Events = list[Event]
Entries = list[Entry]
_ENTRY = "key, value, created, modified, version, lease"


def prefix_range(prefix: str) -> tuple[str, str | None]:
    """The key range [start, end) holding exactly the keys that start with `prefix`."""
    stripped = prefix.rstrip(chr(0x10FFFF))
    if not stripped:
        return prefix, None
    return prefix, stripped[:-1] + chr(ord(stripped[-1]) + 1)


def _entry(row: tuple[Any, ...]) -> Entry:
    key, value, created, modified, version, lease = row
    return Entry(key=key, value=bytes(value), created=created, modified=modified,
                 version=version, lease=lease)


class SqliteStore:
    """base.Store on SQLite; `await store.open()` (or `async with`) before use."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time,
                 history: int = HISTORY, watch_buffer: int = WATCH_BUFFER) -> None:
        self.path = path
        self._clock = clock
        self._history = history
        self._db: sqlite3.Connection | None = None
        self._revision = 0  # of the last staged write
        self._durable = 0  # of the last committed one: what watchers may see
        self._compacted = 0
        self._batch: asyncio.Future[None] | None = None
        self._unpublished: Events = []
        self._leases: dict[int, tuple[float, float]] = {}  # id -> (ttl, expires)
        self._watch_buffer = watch_buffer
        self._watchers: weakref.WeakSet[Watcher] = weakref.WeakSet()
        self._sweeper: asyncio.Task[None] | None = None

    # lifecycle

    async def open(self) -> SqliteStore:
        """Open (creating) the file, recover revision and leases, start the lease sweeper."""
        if self._db is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, isolation_level=None)
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
            db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        self._db = db
        self._leases = {}
        self._load()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())
        return self

    async def close(self) -> None:
        await stop_tasks([self._sweeper])
        self._sweeper = None
        if self._db is not None:
            self._flush()
        for watcher in list(self._watchers):
            watcher.end()
        self._watchers.clear()
        if self._db is not None:
            self._db.close()
            self._db = None

    async def __aenter__(self) -> SqliteStore:
        return await self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    @contextlib.contextmanager
    def _staged(self) -> Iterator[sqlite3.Connection]:
        """Statements of one write, added to the open batch transaction (see _commit)."""
        db = self.db
        try:
            if not db.in_transaction:
                db.execute("BEGIN")
            yield db
        except sqlite3.Error as exc:
            self._abort(exc)
            raise StoreError(f"{self.path}: {exc}") from exc

    async def _commit(self, events: Events) -> None:
        """Return once the batch holding this write is committed. Every write staged in one
        event-loop iteration shares one COMMIT (group commit), which is most of a write's cost."""
        self._unpublished.extend(events)
        if self._batch is None:
            loop = asyncio.get_running_loop()
            self._batch = loop.create_future()
            loop.call_soon(self._flush)
        await asyncio.shield(self._batch)

    def _flush(self) -> None:
        """COMMIT the batch, wake its writers, publish its events to the watchers."""
        batch, events = self._batch, self._unpublished
        self._batch, self._unpublished = None, []
        if batch is None:
            return
        try:
            if self._db is not None and self._db.in_transaction:
                self._db.execute("UPDATE meta SET value = ? WHERE name = 'revision'",
                                 (self._revision,))
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._abort(exc)
            batch.set_exception(StoreError(f"{self.path}: commit failed: {exc}"))
            return
        batch.set_result(None)
        self._durable = self._revision
        if self._durable - self._compacted > self._history + max(1, self._history // 10):
            self._compact_now(self._durable - self._history)
        for watcher in list(self._watchers):
            watcher.publish(events)

    def _compact_now(self, upto: int) -> None:
        try:
            self._compact_to(upto)
            self.db.execute("COMMIT")
        except StoreError:
            log.exception("%s: compaction failed; history kept", self.path)
        except sqlite3.Error as exc:
            self._abort(exc)

    def _abort(self, exc: sqlite3.Error) -> None:
        """A statement or COMMIT failed: the whole batch rolls back; memory follows the file."""
        log.error("%s: write failed, batch rolled back: %s", self.path, exc)
        db = self.db
        if db.in_transaction:
            db.execute("ROLLBACK")
        if self._batch is not None:
            self._batch.set_exception(StoreError(f"{self.path}: batch rolled back: {exc}"))
        self._batch, self._unpublished = None, []
        self._load()

    def _load(self) -> None:
        """Revision, compaction point and leases as the file has them (on open, after abort)."""
        db = self.db
        meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        self._revision = self._durable = meta["revision"]
        self._compacted = meta["compacted"]
        now = self._clock()
        self._leases = {lid: self._leases.get(lid, (ttl, now + ttl))
                        for lid, ttl in db.execute("SELECT id, ttl FROM leases")}

    # reads

    async def get(self, key: str) -> Entry | None:
        row = self.db.execute(f"SELECT {_ENTRY} FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else _entry(row)

    async def list(self, prefix: str) -> tuple[Entries, int]:
        start, end = prefix_range(prefix)
        if end is None:
            rows = self.db.execute(
                f"SELECT {_ENTRY} FROM kv WHERE key >= ? ORDER BY key", (start,))
        else:
            rows = self.db.execute(
                f"SELECT {_ENTRY} FROM kv WHERE key >= ? AND key < ? ORDER BY key", (start, end))
        return [_entry(row) for row in rows], self._revision

    async def revision(self) -> int:
        self.db  # noqa: B018 - raises when closed
        return self._revision

    def history(self, prefix: str, *, after: int, upto: int, limit: int) -> Events:
        """Events under `prefix` in (after, upto], oldest first, at most `limit` (for watches);
        CompactedError when part of that range is no longer kept."""
        if after < self._compacted:
            raise CompactedError(
                f"revision {after} is compacted (history starts after {self._compacted})")
        start, end = prefix_range(prefix)
        sql = ("SELECT revision, type, key, value, created, modified, version, lease FROM events"
               " WHERE revision > ? AND revision <= ? AND key >= ?")
        params: tuple[Any, ...] = (after, upto, start)
        if end is not None:
            sql, params = sql + " AND key < ?", (*params, end)
        rows = self.db.execute(sql + " ORDER BY revision LIMIT ?", (*params, limit)).fetchall()
        return [Event(type=EventType(kind), entry=_entry(rest), revision=rev)
                for rev, kind, *rest in rows]

    # writes

    def _check(self, key: str, expected: int, current: Entry | None) -> None:
        actual = None if current is None else current.modified
        if expected in (ANY, actual) or (expected == ABSENT and actual is None):
            return
        raise ConflictError(key, expected=expected, actual=actual)

    def _record(self, db: sqlite3.Connection, kind: EventType, entry: Entry,
                revision: int) -> Event:
        """Append the event at `revision` (meta follows once per batch, in _flush)."""
        db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (revision, kind.value, entry.key, entry.value, entry.created,
                    entry.modified, entry.version, entry.lease))
        return Event(type=kind, entry=entry, revision=revision)

    async def compact(self, revision: int) -> None:
        """Drop the history up to `revision` (as etcd's Compact): watches from before it fail."""
        self._compact_to(min(revision, self._revision))
        await self._commit([])

    def _compact_to(self, upto: int) -> None:
        if upto <= self._compacted:
            return
        with self._staged() as db:
            db.execute("DELETE FROM events WHERE revision <= ?", (upto,))
            db.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (upto,))
        self._compacted = upto

    async def put(self, key: str, value: bytes, *, expected: int = ANY,
                  lease: int | None = None) -> Entry:
        current = await self.get(key)
        self._check(key, expected, current)
        if lease is not None and lease not in self._leases:
            raise StoreError(f"lease {lease} not found")
        revision = self._revision + 1
        entry = Entry(key=key, value=bytes(value), modified=revision, lease=lease,
                      created=revision if current is None else current.created,
                      version=1 if current is None else current.version + 1)
        with self._staged() as db:
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, ?, ?)",
                       (key, entry.value, entry.created, revision, entry.version, lease))
            event = self._record(db, EventType.PUT, entry, revision)
        self._revision = revision
        await self._commit([event])
        return entry

    async def delete(self, key: str, *, expected: int = ANY) -> Entry | None:
        current = await self.get(key)
        self._check(key, expected, current)
        if current is None:
            return None
        await self._commit(self._delete_entries([current]))
        return current

    def _delete_entries(self, entries: Entries, *, leases: tuple[int, ...] = ()) -> Events:
        """Stage deleting `entries` (one revision each) and the lease rows `leases`."""
        events: Events = []
        with self._staged() as db:
            for revision, entry in enumerate(entries, start=self._revision + 1):
                db.execute("DELETE FROM kv WHERE key = ?", (entry.key,))
                events.append(self._record(db, EventType.DELETE, entry, revision))
            db.executemany("DELETE FROM leases WHERE id = ?", [(lid,) for lid in leases])
        if events:
            self._revision = events[-1].revision
        return events

    # leases

    async def grant(self, ttl: float) -> int:
        if ttl <= 0:
            raise StoreError(f"lease ttl must be positive, got {ttl}")
        now = self._clock()
        with self._staged() as db:
            cursor = db.execute("INSERT INTO leases (ttl, expires) VALUES (?, ?)",
                                (ttl, now + ttl))
        lease = cursor.lastrowid
        assert lease is not None
        await self._commit([])
        self._leases[lease] = (ttl, now + ttl)
        return lease

    async def keep_alive(self, lease: int) -> bool:
        now = self._clock()
        await self._expire(now)
        held = self._leases.get(lease)
        if held is None:
            return False
        self._leases[lease] = (held[0], now + held[0])
        return True

    async def revoke(self, lease: int) -> None:
        await self._end_leases((lease,))

    async def _end_leases(self, leases: tuple[int, ...]) -> None:
        """Forget `leases` and delete their keys (DELETE events)."""
        rows: list[tuple[Any, ...]] = []
        for lid in leases:
            self._leases.pop(lid, None)
            rows += self.db.execute(f"SELECT {_ENTRY} FROM kv WHERE lease = ?", (lid,))
        entries = sorted((_entry(row) for row in rows), key=lambda entry: entry.key)
        await self._commit(self._delete_entries(entries, leases=leases))

    async def _expire(self, now: float) -> int:
        """End every lease whose expiry has passed; how many ended."""
        expired = tuple(lid for lid, (_, expires) in self._leases.items() if expires <= now)
        if expired:
            await self._end_leases(expired)
        return len(expired)

    async def sweep(self) -> int:
        """One pass of the lease sweeper at the store clock's now (tests drive this directly)."""
        return await self._expire(self._clock())

    def _sweep_period(self) -> float:
        shortest = min((ttl for ttl, _ in self._leases.values()), default=3.0)
        return min(1.0, max(0.05, shortest / 3))

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_period())
            try:
                await self.sweep()
            except StoreError:
                log.exception("lease sweep failed; retrying")

    # watches

    def watch(self, prefix: str, *, since: int | None = None) -> Watcher:
        return Watcher(self, prefix, since=self._revision if since is None else since)

    def _go_live(self, watcher: Watcher) -> asyncio.Queue[Event | None]:
        """Register `watcher` for live events after the current revision."""
        self._watchers.add(watcher)
        return asyncio.Queue()


_CHUNK = 1000
"""Events read from history per query while a watcher catches up."""


class Watcher:
    """One watch. It reads history from its cursor until it has caught up with the store, then
    takes live events from a queue; a queue that reaches the store's watch_buffer is dropped
    and the watcher reads history again (memory stays bounded; only a watcher left behind past
    the kept history fails, with CompactedError)."""

    def __init__(self, store: SqliteStore, prefix: str, *, since: int) -> None:
        self._store = store
        self._prefix = prefix
        self._cursor = since  # every matching event up to here has been taken
        self._pending: deque[Event] = deque()
        self._queue: asyncio.Queue[Event | None] | None = None
        self._ended = False

    def __aiter__(self) -> Watcher:
        return self

    async def __anext__(self) -> Event:
        while not self._pending:
            if self._ended:
                raise StoreError("store closed")
            if self._queue is None:
                self._catch_up()
                continue
            event = await self._queue.get()
            if event is None:
                raise StoreError("store closed")
            self._cursor = event.revision
            return event
        return self._pending.popleft()

    def _catch_up(self) -> None:
        store = self._store
        upto = store._durable
        events = store.history(self._prefix, after=self._cursor, upto=upto, limit=_CHUNK)
        self._pending.extend(events)
        if len(events) < _CHUNK:  # caught up: live events from here on
            self._cursor = max(self._cursor, upto)  # a `since` ahead of the store stays
            self._queue = store._go_live(self)
        else:
            self._cursor = events[-1].revision

    def publish(self, events: Events) -> None:
        """Queue the live events under this watch's prefix; overflow drops back to history."""
        queue = self._queue
        if queue is None:
            return
        for event in events:
            if event.revision <= self._cursor or not event.entry.key.startswith(self._prefix):
                continue
            if queue.qsize() >= self._store._watch_buffer:
                self._queue = None
                self._store._watchers.discard(self)
                return
            queue.put_nowait(event)

    def end(self) -> None:
        """The store closed: wake a waiting reader, which then fails."""
        self._ended = True
        if self._queue is not None:
            self._queue.put_nowait(None)

    async def aclose(self) -> None:
        """Stop watching (also happens when the watcher is garbage-collected)."""
        self._store._watchers.discard(self)
        self._queue = None


