"""base.Store on an etcd v3 cluster (through aetcd's gRPC stubs), for control-plane replicas.

The Store interface is etcd's own model, so most methods are one RPC: a conditional write is a
Txn comparing the key's mod_revision (create_revision = 0 for "absent") whose failure branch reads
the key to report the revision found; leases are etcd leases (etcd deletes their keys on expiry,
one revision for all of them, keys in sorted order); a watch is an etcd watch with prev_kv, so a
DELETE event carries the value the key had.

Failover. aetcd (and one gRPC channel) talks to one member; the store holds every endpoint of
`etcd://h:p,h:p` and moves to the next one when a call fails with UNAVAILABLE or
DEADLINE_EXCEEDED. Reads and lease calls are simply retried there. A write whose request may have
reached the old member is settled by reading the key afterwards: our value at a revision newer
than any we had seen means it happened (for a delete: the key is gone, and what it held is read
at the revision before); a key still as `expected` means it did not, and it is sent again; only a
write that cannot be told apart fails with StoreError. Watches remember the revision they have
delivered and resume after it on the next member, so a reconnect loses and repeats nothing;
a watch ends with StoreError only when the store closes, and with CompactedError when etcd has
compacted past its cursor.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from aetcd import rpc
from aetcd.utils import prefix_range_end

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

log = logging.getLogger(__name__)

T = TypeVar("T")
Entries = list[Entry]

TIMEOUT = 5.0
"""Seconds one RPC may take before the store tries the next member."""
PAGE = 1000
"""Keys per Range request when listing a prefix (all pages read at one revision)."""
_FAILOVER = (rpc.StatusCode.UNAVAILABLE, rpc.StatusCode.DEADLINE_EXCEEDED)
_NOT_SENT = ("failed to connect", "connection refused", "no leader", "dns resolution failed")
"""UNAVAILABLE details meaning the request was never applied, so a write may be sent again."""
_MAX_BACKOFF = 1.0


def parse_url(url: str) -> tuple[list[str], str]:
    """`etcd://h:p,h:p[/root]` → (["h:p", ...], "/root" or "")."""
    if not url.startswith("etcd://"):
        raise StoreError(f"not an etcd url: {url!r}")
    hosts, _, root = url.removeprefix("etcd://").partition("/")
    endpoints = [host.strip() for host in hosts.split(",") if host.strip()]
    if not endpoints or any(":" not in host for host in endpoints):
        raise StoreError(f"{url!r}: expected etcd://host:port[,host:port...][/root]")
    return endpoints, "/" + root.strip("/") if root.strip("/") else ""


@dataclass(frozen=True)
class _Stubs:
    """One channel to one member and the stubs on it."""

    endpoint: str
    channel: rpc.Channel
    kv: Any
    lease: Any
    watch: Any


class _UncertainError(StoreError):
    """A write's request was sent but no answer came back: it may or may not have happened."""


class _StreamLostError(Exception):
    """A long-lived stream to a member broke or stopped answering."""


def _error(exc: rpc.AioRpcError) -> StoreError:
    return StoreError(f"etcd: {exc.code().name}: {exc.details()}")


class EtcdStore:
    """base.Store on etcd; `await store.open()` (or `async with`) before use."""

    def __init__(self, endpoints: Sequence[str], *, root: str = "",
                 timeout: float = TIMEOUT) -> None:
        if not endpoints:
            raise StoreError("no etcd endpoints")
        self.endpoints = list(endpoints)
        self.root = root
        self._root = root.encode()
        self._timeout = timeout
        self._index = 0
        self._stubs: _Stubs | None = None
        self._revision = 0  # the newest revision any response has shown us
        self._closed = False
        self._watches: weakref.WeakSet[EtcdWatch] = weakref.WeakSet()
        self._keepalives: _KeepAlives | None = None

    @classmethod
    def from_url(cls, url: str, *, timeout: float = TIMEOUT) -> EtcdStore:
        endpoints, root = parse_url(url)
        return cls(endpoints, root=root, timeout=timeout)

    # lifecycle

    async def open(self) -> EtcdStore:
        """Reach a member (trying each endpoint) and learn the current revision."""
        self._closed = False
        await self.revision()
        return self

    async def close(self) -> None:
        self._closed = True
        for watch in list(self._watches):
            watch.end()
        if self._keepalives is not None:
            self._keepalives.end()
            self._keepalives = None
        stubs, self._stubs = self._stubs, None
        if stubs is not None:
            await stubs.channel.close()

    async def __aenter__(self) -> EtcdStore:
        return await self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    @property
    def endpoint(self) -> str:
        """The member the store talks to now."""
        return self.endpoints[self._index]

    def _connect(self) -> _Stubs:
        if self._closed:
            raise StoreError("store is closed")
        if self._stubs is None:
            endpoint = self.endpoints[self._index]
            channel = rpc.insecure_channel(endpoint)
            self._stubs = _Stubs(endpoint=endpoint, channel=channel, kv=rpc.KVStub(channel),
                                 lease=rpc.LeaseStub(channel), watch=rpc.WatchStub(channel))
        return self._stubs

    def _failover(self, stubs: _Stubs) -> None:
        """`stubs` failed: the next call goes to the next member (once per failure)."""
        if self._stubs is not stubs:
            return
        self._index = (self._index + 1) % len(self.endpoints)
        self._stubs = None
        log.warning("etcd member %s unavailable; moving to %s", stubs.endpoint, self.endpoint)
        # calls still in flight there end on their own (closing at once would cancel them)
        asyncio.get_running_loop().create_task(stubs.channel.close(grace=self._timeout))

    async def _call(self, call: Callable[[_Stubs], Awaitable[T]], *, retry: bool) -> T:
        """Run `call` on the current member, failing over on connection errors. `retry`: the
        call is safe to repeat; otherwise a failure after sending raises _UncertainError."""
        attempts = 0
        while True:
            stubs = self._connect()
            try:
                return await call(stubs)
            except (rpc.AioRpcError, _StreamLostError) as exc:
                if isinstance(exc, rpc.AioRpcError) and exc.code() not in _FAILOVER:
                    raise _error(exc) from exc
                self._failover(stubs)
                attempts += 1
                details = exc.details() if isinstance(exc, rpc.AioRpcError) else str(exc)
                sent = not any(text in (details or "").lower() for text in _NOT_SENT)
                if sent and not retry:
                    raise _UncertainError(f"etcd: {details}") from exc
                if attempts >= 3 * len(self.endpoints):
                    raise StoreError(f"etcd unreachable at {self.endpoints}: {details}") from exc
                await asyncio.sleep(min(_MAX_BACKOFF, 0.05 * attempts))

    def _seen(self, header: Any) -> int:
        self._revision = max(self._revision, header.revision)
        return int(header.revision)

    # keys

    def _key(self, key: str) -> bytes:
        return self._root + key.encode()

    def _range(self, prefix: str) -> tuple[bytes, bytes]:
        start = self._key(prefix)
        return (start, prefix_range_end(start)) if start else (b"\0", b"\0")

    def _entry(self, kv: Any) -> Entry:
        return Entry(key=kv.key[len(self._root):].decode(), value=bytes(kv.value),
                     created=kv.create_revision, modified=kv.mod_revision, version=kv.version,
                     lease=kv.lease or None)

    # reads

    async def get(self, key: str) -> Entry | None:
        return await self._get(key)

    async def _get(self, key: str, *, revision: int = 0) -> Entry | None:
        request = rpc.RangeRequest(key=self._key(key), revision=revision)
        response = await self._call(self._ranger(request), retry=True)
        self._seen(response.header)
        return self._entry(response.kvs[0]) if response.kvs else None

    async def list(self, prefix: str) -> tuple[Entries, int]:
        start, end = self._range(prefix)
        entries: Entries = []
        revision = 0
        while True:
            request = rpc.RangeRequest(key=start, range_end=end, limit=PAGE, revision=revision)
            response = await self._call(self._ranger(request), retry=True)
            revision = revision or self._seen(response.header)
            entries.extend(self._entry(kv) for kv in response.kvs)
            if not response.more or not response.kvs:
                return entries, revision
            start = response.kvs[-1].key + b"\0"

    def _ranger(self, request: Any) -> Callable[[_Stubs], Awaitable[Any]]:
        return lambda stubs: stubs.kv.Range(request, timeout=self._timeout)

    async def revision(self) -> int:
        request = rpc.RangeRequest(key=self._root or b"/", count_only=True)
        response = await self._call(self._ranger(request), retry=True)
        return self._seen(response.header)

    # writes

    def _compare(self, key: bytes, expected: int) -> Sequence[Any]:
        if expected == ANY:
            return []
        if expected == ABSENT:
            return [rpc.Compare(key=key, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL,
                                create_revision=0)]
        return [rpc.Compare(key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL,
                            mod_revision=expected)]

    async def _txn(self, key: str, expected: int, op: Any) -> tuple[Any, Any]:
        """Run `op` if the key is at `expected`: (header, op's response); ConflictError else."""
        raw = self._key(key)
        request = rpc.TxnRequest(compare=self._compare(raw, expected), success=[op],
                                 failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=raw))])
        response = await self._call(lambda s: s.kv.Txn(request, timeout=self._timeout),
                                    retry=False)
        self._seen(response.header)
        if not response.succeeded:
            found = response.responses[0].response_range.kvs
            raise ConflictError(key, expected=expected,
                                actual=found[0].mod_revision if found else None)
        return response.header, response.responses[0]

    async def put(self, key: str, value: bytes, *, expected: int = ANY,
                  lease: int | None = None) -> Entry:
        before = self._revision
        op = rpc.RequestOp(request_put=rpc.PutRequest(key=self._key(key), value=value,
                                                      lease=lease or 0, prev_kv=True))
        try:
            header, result = await self._txn(key, expected, op)
        except _UncertainError as exc:
            log.warning("put %s: %s; settling it by reading the key", key, exc)
            current = await self.get(key)
            if (current is not None and current.modified > before and current.value == value
                    and current.lease == lease):
                return current  # it happened
            if expected not in (ANY, ABSENT) and (current is None
                                                  or current.modified != expected):
                raise
            return await self.put(key, value, expected=expected, lease=lease)
        prev = result.response_put.prev_kv if result.response_put.HasField("prev_kv") else None
        revision = int(header.revision)
        return Entry(key=key, value=bytes(value), modified=revision, lease=lease,
                     created=prev.create_revision if prev else revision,
                     version=prev.version + 1 if prev else 1)

    async def delete(self, key: str, *, expected: int = ANY) -> Entry | None:
        before = self._revision
        op = rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=self._key(key),
                                                                        prev_kv=True))
        try:
            _, result = await self._txn(key, expected, op)
        except _UncertainError as exc:
            log.warning("delete %s: %s; settling it by reading the key", key, exc)
            if await self.get(key) is None:  # gone: it held what it held before we asked
                held = await self._get(key, revision=before) if before else None
                if expected in (ANY, ABSENT) or (held is not None and held.modified == expected):
                    return held
                raise
            return await self.delete(key, expected=expected)
        deleted = result.response_delete_range.prev_kvs
        return self._entry(deleted[0]) if deleted else None

    async def compact(self, revision: int) -> None:
        """Drop the history up to `revision` (etcd Compact, physical): older watches fail."""
        request = rpc.CompactionRequest(revision=revision, physical=True)
        await self._call(lambda s: s.kv.Compact(request, timeout=self._timeout), retry=True)

    # leases

    async def grant(self, ttl: float) -> int:
        """An etcd lease of ceil(ttl) seconds (etcd raises very short ones to its minimum)."""
        if ttl <= 0:
            raise StoreError(f"lease ttl must be positive, got {ttl}")
        request = rpc.LeaseGrantRequest(TTL=math.ceil(ttl))
        response = await self._call(lambda s: s.lease.LeaseGrant(request, timeout=self._timeout),
                                    retry=True)  # a lease granted twice expires unused
        self._seen(response.header)
        if response.error:
            raise StoreError(f"etcd lease grant: {response.error}")
        return int(response.ID)

    async def keep_alive(self, lease: int) -> bool:
        """One request on the member's long-lived LeaseKeepAlive stream (a heartbeat per
        instance beat: a stream per call would cost a round trip more)."""
        async def refresh(stubs: _Stubs) -> Any:
            if self._keepalives is None or self._keepalives.stubs is not stubs:
                if self._keepalives is not None:
                    self._keepalives.end()
                self._keepalives = _KeepAlives(stubs)
            return await self._keepalives.refresh(lease, timeout=self._timeout)

        response = await self._call(refresh, retry=True)
        self._seen(response.header)
        return bool(response.TTL > 0)

    async def revoke(self, lease: int) -> None:
        request = rpc.LeaseRevokeRequest(ID=lease)
        try:
            response = await self._call(
                lambda s: s.lease.LeaseRevoke(request, timeout=self._timeout), retry=True)
        except StoreError as exc:
            if "lease not found" in str(exc):
                return
            raise
        self._seen(response.header)

    # watches

    def watch(self, prefix: str, *, since: int | None = None) -> EtcdWatch:
        """Changes after `since`; None means after the newest revision this store has seen
        (events a little older than the call may come too: other replicas write concurrently)."""
        if self._closed:
            raise StoreError("store is closed")
        watch = EtcdWatch(self, prefix, since=self._revision if since is None else since)
        self._watches.add(watch)
        return watch


class _KeepAlives:
    """One LeaseKeepAlive stream to one member; answers are matched to requests by lease id."""

    def __init__(self, stubs: _Stubs) -> None:
        self.stubs = stubs
        self._requests: asyncio.Queue[int | None] = asyncio.Queue()
        self._waiting: dict[int, list[asyncio.Future[Any]]] = {}
        self._call = stubs.lease.LeaseKeepAlive(self._send())
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _send(self) -> AsyncIterator[Any]:
        while (lease := await self._requests.get()) is not None:
            yield rpc.LeaseKeepAliveRequest(ID=lease)

    async def refresh(self, lease: int, *, timeout: float) -> Any:
        if self._reader.done():
            raise _StreamLostError("keep-alive stream ended")
        answer = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(lease, []).append(answer)
        self._requests.put_nowait(lease)
        try:
            return await asyncio.wait_for(asyncio.shield(answer), timeout)
        except TimeoutError:
            self.end()
            raise _StreamLostError(f"no keep-alive answer in {timeout}s") from None

    async def _read(self) -> None:
        error: BaseException = _StreamLostError("keep-alive stream ended")
        try:
            while isinstance(response := await self._call.read(), rpc.LeaseKeepAliveResponse):
                for answer in self._waiting.pop(response.ID, []):
                    if not answer.done():
                        answer.set_result(response)
        except (rpc.AioRpcError, asyncio.CancelledError) as exc:
            error = exc if isinstance(exc, rpc.AioRpcError) else error
        waiting, self._waiting = self._waiting, {}
        for answer in (a for answers in waiting.values() for a in answers if not a.done()):
            answer.set_exception(error)

    def end(self) -> None:
        self._requests.put_nowait(None)
        self._call.cancel()
        self._reader.cancel()


class EtcdWatch:
    """One etcd watch that survives member failures: it re-creates itself on the next member
    from the revision after the last one it delivered."""

    def __init__(self, store: EtcdStore, prefix: str, *, since: int) -> None:
        self._store = store
        self._prefix = prefix
        self._cursor = since  # every event up to here has been taken
        self._pending: deque[Event] = deque()
        self._call: Any = None
        self._stubs: _Stubs | None = None
        self._stop = asyncio.Event()
        self._ended = False

    def __aiter__(self) -> EtcdWatch:
        return self

    async def __anext__(self) -> Event:
        failures = 0
        while not self._pending:
            if self._ended:
                raise StoreError("store closed")
            try:
                if self._call is None:
                    await self._start()
                await self._receive()
                failures = 0
            except rpc.AioRpcError as exc:
                if self._ended:
                    raise StoreError("store closed") from exc
                if exc.code() not in _FAILOVER and exc.code() != rpc.StatusCode.CANCELLED:
                    raise _error(exc) from exc
                self._drop(failover=True)
                failures += 1
                log.warning("watch on %s lost its member (%s); resuming after revision %d",
                            self._prefix, exc.details(), self._cursor)
                await asyncio.sleep(min(_MAX_BACKOFF, 0.05 * failures))
        return self._pending.popleft()

    async def _requests(self, create: Any) -> AsyncIterator[Any]:
        yield create
        await self._stop.wait()

    async def _start(self) -> None:
        start, end = self._store._range(self._prefix)
        create = rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
            key=start, range_end=end, start_revision=self._cursor + 1, prev_kv=True))
        self._stubs = self._store._connect()
        self._stop = asyncio.Event()
        self._call = self._stubs.watch.Watch(self._requests(create))

    async def _receive(self) -> None:
        """Read one response: buffer its events and move the cursor past them."""
        response = await self._call.read()
        if not isinstance(response, rpc.WatchResponse):  # EOF: resume on the next member
            self._drop(failover=True)
            return
        if response.compact_revision:
            self._drop(failover=False)
            raise CompactedError(f"revision {self._cursor} is compacted (etcd kept history "
                                 f"from {response.compact_revision})")
        if response.canceled:
            self._drop(failover=False)
            raise StoreError(f"etcd canceled the watch: {response.cancel_reason}")
        store = self._store
        for event in response.events:
            if event.type == rpc.Event.DELETE:
                revision = event.kv.mod_revision
                entry = (store._entry(event.prev_kv) if event.HasField("prev_kv") else
                         Entry(key=event.kv.key[len(store._root):].decode(), value=b"",
                               created=0, modified=revision, version=0))
                self._pending.append(Event(type=EventType.DELETE, entry=entry,
                                           revision=revision))
            else:
                entry = store._entry(event.kv)
                self._pending.append(Event(type=EventType.PUT, entry=entry,
                                           revision=entry.modified))
        if self._pending:
            self._cursor = self._pending[-1].revision
            store._revision = max(store._revision, self._cursor)

    def _drop(self, *, failover: bool) -> None:
        call, stubs = self._call, self._stubs
        self._call = self._stubs = None
        self._stop.set()
        if call is not None:
            call.cancel()
        if failover and stubs is not None:
            self._store._failover(stubs)

    def end(self) -> None:
        """The store closed: a waiting reader fails with StoreError."""
        self._ended = True
        self._drop(failover=False)

    async def aclose(self) -> None:
        """Stop watching."""
        self._drop(failover=False)
        self._store._watches.discard(self)
