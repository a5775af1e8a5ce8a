"""The store contract (base.Store), run against every store factory: revisions, compare-and-swap,
prefixes, leases, watches — etcd's semantics, which both stores must share.

etcd's model: https://etcd.io/docs/v3.5/learning/data_model/ (one revision for the whole store,
bumped by every change; create_revision / mod_revision / version per key) and
https://etcd.io/docs/v3.5/learning/api/ (Txn compares on mod_revision, create_revision = 0 for
"absent"; leases delete their keys on expiry or revoke; watches replay from a revision, in order,
and fail with "compacted" for revisions before the last compaction).

A factory yields a Harness: the store plus `expire(ttl)`, which makes leases granted with `ttl`
run out (SQLite: an injected clock moved past the ttl and one sweep; etcd: a clock kept beside
the real leases, which revokes those it has run past — etcd's own expiry in real time is tested
separately below). Revisions are compared with the store's revision at the start, never as
absolute numbers: an etcd cluster shared by the tests keeps one revision counter (each test has
its own key root). To add a store, add a factory to FACTORIES.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remora.registry.store import open_store
from remora.registry.store.base import (
    ABSENT,
    ANY,
    CompactedError,
    ConflictError,
    Entry,
    Event,
    EventType,
    Store,
    StoreError,
)
from remora.registry.store.etcd import EtcdStore
from remora.registry.store.sqlite import SqliteStore, prefix_range
from remora.runner.ports import free_port
from tests.etcdkit import etcd_cluster

pytestmark = pytest.mark.timeout(120)


@dataclass
class Harness:
    store: Store
    expire: Callable[[float], Awaitable[None]]
    """Let leases granted with this ttl expire (and their keys be deleted)."""
    compact: Callable[[int], Awaitable[None]]
    """Drop the history up to a revision."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def sqlite_harness(directory: Path) -> AsyncIterator[Harness]:
    clock = FakeClock()
    store = SqliteStore(directory / "remora.db", clock=clock, watch_buffer=50)

    async def expire(ttl: float) -> None:
        clock.now += ttl + 0.001
        await store.sweep()

    async with store:
        yield Harness(store=store, expire=expire, compact=store.compact)


class ClockedEtcdStore(EtcdStore):
    """The etcd store with lease deadlines kept beside the real leases, on a clock the test
    moves: `expire(ttl)` revokes (in etcd) every lease the clock has run past, as SQLite's
    sweeper would."""

    now = 0.0

    async def open(self) -> ClockedEtcdStore:
        self.deadlines: dict[int, tuple[float, float]] = {}  # id -> (ttl, deadline)
        await super().open()
        return self

    async def grant(self, ttl: float) -> int:
        lease = await super().grant(ttl)
        self.deadlines[lease] = (ttl, self.now + ttl)
        return lease

    async def keep_alive(self, lease: int) -> bool:
        alive = await super().keep_alive(lease)
        if alive and lease in self.deadlines:
            ttl = self.deadlines[lease][0]
            self.deadlines[lease] = (ttl, self.now + ttl)
        return alive

    async def expire(self, ttl: float) -> None:
        self.now += ttl + 0.001
        for lease, (_, deadline) in list(self.deadlines.items()):
            if deadline <= self.now:
                del self.deadlines[lease]
                await self.revoke(lease)


@contextlib.asynccontextmanager
async def etcd_harness(directory: Path, *, url: str) -> AsyncIterator[Harness]:
    endpoints = url.removeprefix("etcd://").split(",")
    store = await ClockedEtcdStore(endpoints, root=f"/contract/{directory.name}").open()
    try:
        yield Harness(store=store, expire=store.expire, compact=store.compact)
    finally:  # leave nothing behind that could change the shared revision later
        for lease in store.deadlines:
            await store.revoke(lease)
        for entry in (await store.list(""))[0]:
            await store.delete(entry.key)
        await store.close()


Factory = Callable[..., contextlib.AbstractAsyncContextManager[Harness]]
FACTORIES: dict[str, Factory] = {"sqlite": sqlite_harness, "etcd": etcd_harness}

Scenario = Callable[[Harness], Awaitable[None]]


@pytest.fixture(scope="module")
def etcd_url() -> Iterator[str]:
    """One real three-member cluster for the module (skips when etcd is not installed)."""
    with etcd_cluster() as cluster:
        yield cluster.url


@pytest.fixture(params=sorted(FACTORIES))
def within(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Scenario], None]:
    """Run a scenario against a fresh store of the parametrized kind (bounded in time)."""
    factory = FACTORIES[request.param]
    if request.param == "etcd":
        factory = functools.partial(factory, url=request.getfixturevalue("etcd_url"))

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            async with factory(Path(tempfile.mkdtemp(dir=tmp_path))) as harness:
                await asyncio.wait_for(scenario(harness), 30)

        asyncio.run(main())

    return run


async def take(watch: AsyncIterator[Event], count: int) -> list[Event]:
    return [await asyncio.wait_for(anext(watch), 10) for _ in range(count)]


def summary(events: list[Event]) -> list[tuple[str, str, bytes]]:
    return [(e.type.value, e.entry.key, e.entry.value) for e in events]


# revisions and compare-and-swap


def test_every_change_bumps_the_one_store_revision(within: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        s = h.store
        start = await s.revision()
        a = await s.put("/a", b"1")
        b = await s.put("/b", b"1")
        a2 = await s.put("/a", b"2")
        assert start < a.modified < b.modified < a2.modified == await s.revision()
        assert (a.created, a.version) == (a.modified, 1)
        assert (a2.created, a2.version) == (a.created, 2)
        assert await s.get("/a") == a2
        assert await s.get("/missing") is None
        deleted = await s.delete("/a")
        assert deleted == a2
        assert await s.revision() > a2.modified
        assert await s.get("/a") is None
        before = await s.revision()
        assert await s.delete("/a") is None
        assert await s.revision() == before, "deleting nothing is no change"
        again = await s.put("/a", b"3")
        assert (again.created, again.version) == (again.modified, 1), "a new life after delete"

    within(scenario)


def test_create_only_if_absent(within: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        s = h.store
        first = await s.put("/k", b"1", expected=ABSENT)
        with pytest.raises(ConflictError) as caught:
            await s.put("/k", b"2", expected=ABSENT)
        assert (caught.value.key, caught.value.expected, caught.value.actual) == (
            "/k", ABSENT, first.modified)
        assert await s.get("/k") == first

    within(scenario)


def test_update_only_at_the_revision_read(within: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        s = h.store
        first = await s.put("/k", b"1")
        second = await s.put("/k", b"2", expected=first.modified)
        with pytest.raises(ConflictError) as caught:
            await s.put("/k", b"3", expected=first.modified)
        assert caught.value.actual == second.modified
        with pytest.raises(ConflictError) as absent:
            await s.put("/other", b"3", expected=first.modified)
        assert absent.value.actual is None
        assert await s.get("/other") is None
        assert (await s.put("/k", b"4", expected=ANY)).version == 3

    within(scenario)


def test_delete_only_at_the_revision_read(within: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        s = h.store
        first = await s.put("/k", b"1")
        second = await s.put("/k", b"2")
        with pytest.raises(ConflictError):
            await s.delete("/k", expected=first.modified)
        with pytest.raises(ConflictError):
            await s.delete("/k", expected=ABSENT)
        with pytest.raises(ConflictError):
            await s.delete("/gone", expected=second.modified)
        assert await s.get("/k") == second
        assert await s.delete("/k", expected=second.modified) == second
        assert await s.get("/k") is None

    within(scenario)


def test_concurrent_writers(within: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        s = h.store
        watch = s.watch("/c/")
        creates = await asyncio.gather(*(s.put("/c/one", str(i).encode(), expected=ABSENT)
                                         for i in range(20)), return_exceptions=True)
        assert sum(isinstance(r, Entry) for r in creates) == 1
        assert all(isinstance(r, (Entry, ConflictError)) for r in creates)
        written = await asyncio.gather(*(s.put(f"/c/{i:02}", b"x") for i in range(50)))
        events = await take(watch, 51)
        # one revision each; concurrent requests may reach etcd in any order, so the revisions
        # are compared as a set, and the watch delivers them in revision order
        assert [e.revision for e in events[1:]] == sorted(e.modified for e in written)
        assert len((await s.list("/c/"))[0]) == 51

    within(scenario)


# list


def test_list_is_exactly_the_prefix_in_key_order(within: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        s = h.store
        for key in ["/a/2", "/ab", "/a/1", "/a", "/a/1/x", "/b/1", "/a0"]:
            await s.put(key, key.encode())
        entries, revision = await s.list("/a/")
        assert [e.key for e in entries] == ["/a/1", "/a/1/x", "/a/2"]
        assert [e.value for e in entries] == [b"/a/1", b"/a/1/x", b"/a/2"]
        assert revision == await s.revision()
        assert [e.key for e in (await s.list("/a"))[0]] == [
            "/a", "/a/1", "/a/1/x", "/a/2", "/a0", "/ab"]
        assert len((await s.list(""))[0]) == 7
        assert (await s.list("/c/"))[0] == []

    within(scenario)


def test_prefix_range_covers_exactly_the_prefix() -> None:
    assert prefix_range("/a/") == ("/a/", "/a0")
    assert prefix_range("") == ("", None)
    assert prefix_range("/a" + chr(0x10FFFF)) == ("/a" + chr(0x10FFFF), "/b")


# leases


def test_lease_keys_vanish_on_expiry_with_delete_events(
        within: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        s = h.store
        lease = await s.grant(5)
        other = await s.grant(50)
        watch = s.watch("/i/")
        a = await s.put("/i/a", b"a", lease=lease)
        await s.put("/i/b", b"b", lease=lease)
        kept = await s.put("/i/c", b"c", lease=other)
        assert a.lease == lease
        assert await s.keep_alive(lease)
        await h.expire(5)
        assert [e.key for e in (await s.list("/i/"))[0]] == ["/i/c"]
        events = await take(watch, 5)
        assert summary(events[3:]) == [("DELETE", "/i/a", b"a"), ("DELETE", "/i/b", b"b")]
        assert events[3].entry == a
        assert not await s.keep_alive(lease), "an expired lease cannot be revived"
        with pytest.raises(StoreError):
            await s.put("/i/d", b"d", lease=lease)
        assert await s.get("/i/c") == kept

    within(scenario)


def test_keep_alive_holds_a_lease(within: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        s = h.store
        lease = await s.grant(9)
        await s.put("/i/a", b"a", lease=lease)
        for _ in range(3):
            await h.expire(3)  # a third of the ttl each time, refreshed each time
            assert await s.keep_alive(lease)
        assert await s.get("/i/a") is not None
        await h.expire(9)
        assert await s.get("/i/a") is None
        assert not await s.keep_alive(lease)

    within(scenario)


def test_revoke_deletes_at_once_and_put_without_lease_detaches(
        within: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        s = h.store
        lease = await s.grant(60)
        await s.put("/i/a", b"a", lease=lease)
        await s.put("/i/b", b"b", lease=lease)
        detached = await s.put("/i/b", b"b2")
        assert detached.lease is None
        watch = s.watch("/i/")
        await s.revoke(lease)
        assert summary(await take(watch, 1)) == [("DELETE", "/i/a", b"a")]
        assert [e.key for e in (await s.list("/i/"))[0]] == ["/i/b"]
        assert not await s.keep_alive(lease)

    within(scenario)


# watches


def test_watch_replays_from_a_revision_then_streams_live(
        within: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        s = h.store
        first = await s.put("/w/a", b"1")
        await s.put("/other", b"x")
        await s.put("/w/b", b"2")
        await s.delete("/w/a")
        watch = s.watch("/w/", since=first.modified - 1)
        replay = await take(watch, 3)
        assert summary(replay) == [("PUT", "/w/a", b"1"), ("PUT", "/w/b", b"2"),
                                   ("DELETE", "/w/a", b"1")]
        live = asyncio.ensure_future(take(watch, 2))
        await asyncio.sleep(0)
        await s.put("/wx", b"not under /w/")
        await s.put("/w/c", b"3")
        await s.put("/w/b", b"4")
        events = replay + await live
        assert summary(events[3:]) == [("PUT", "/w/c", b"3"), ("PUT", "/w/b", b"4")]
        revisions = [e.revision for e in events]
        assert revisions == sorted(set(revisions))
        assert events[-1].revision == await s.revision()

    within(scenario)


def test_watch_from_now_sees_only_later_changes(within: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        s = h.store
        await s.put("/w/old", b"0")
        watch = s.watch("/w/")
        await s.put("/w/new", b"1")
        assert summary(await take(watch, 1)) == [("PUT", "/w/new", b"1")]

    within(scenario)


def test_watch_before_compaction_fails(within: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        s = h.store
        base = await s.revision()
        for i in range(10):
            await s.put(f"/w/{i}", b"x")
        await h.compact(base + 5)
        with pytest.raises(CompactedError):
            await take(s.watch("/w/", since=base + 2), 1)
        kept = await take(s.watch("/w/", since=base + 5), 5)
        assert [e.entry.key for e in kept] == [f"/w/{i}" for i in range(5, 10)]

    within(scenario)


def test_many_watchers_each_see_their_prefix(within: Callable[[Scenario], None]) -> None:
    async def scenario(h: Harness) -> None:
        s = h.store
        watches = {p: s.watch(f"/{p}/") for p in "abc"}
        for i in range(30):
            await s.put(f"/{'abc'[i % 3]}/{i}", str(i).encode())
        for p, watch in watches.items():
            got = await take(watch, 10)
            assert all(e.entry.key.startswith(f"/{p}/") for e in got)

    within(scenario)


# property: the store is a dict with revisions, and its watch stream rebuilds it

KEYS = st.sampled_from(["/p/a", "/p/b", "/p/a/x", "/pa", "/q"])
OPS = st.lists(st.one_of(
    st.tuples(st.just("put"), KEYS, st.binary(max_size=4),
              st.sampled_from(["any", "absent", "current", "stale"]), st.booleans()),
    st.tuples(st.just("delete"), KEYS, st.sampled_from(["any", "absent", "current", "stale"])),
    st.tuples(st.just("revoke")),
    st.tuples(st.just("expire")),
), max_size=40)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_random_operations_match_a_dict_and_the_watch_rebuilds_it(
        within: Callable[[Scenario], None], ops: list[tuple[object, ...]]) -> None:
    async def scenario(h: Harness) -> None:
        s = h.store
        model: dict[str, Entry] = {}
        start = await s.revision()
        watch = s.watch("/p", since=start)
        lease = await s.grant(10)
        for op in ops:
            if op[0] in ("put", "delete"):
                key, mode = str(op[1]), op[3 if op[0] == "put" else 2]
                held = model.get(key)
                expected = {"any": ANY, "absent": ABSENT, "stale": 10**9,
                            "current": held.modified if held else ABSENT}[str(mode)]
                ok = mode in ("any", "current") or (mode == "absent" and held is None)
                if op[0] == "delete" and mode == "absent" and held is not None:
                    ok = False
                try:
                    if op[0] == "put":
                        bound = lease if op[4] else None
                        entry = await s.put(key, bytes(op[2]), expected=expected,
                                            lease=bound)
                        assert entry.modified == await s.revision()
                        assert entry.version == (held.version + 1 if held else 1)
                        model[key] = entry
                    else:
                        assert await s.delete(key, expected=expected) == held
                        model.pop(key, None)
                    assert ok
                except ConflictError:
                    assert not ok
            else:
                if op[0] == "revoke":
                    await s.revoke(lease)
                else:
                    await h.expire(10)
                model = {k: e for k, e in model.items() if e.lease != lease}
                lease = await s.grant(10)
            entries, _ = await s.list("")
            assert {e.key: e for e in entries} == model
        rebuilt: dict[str, bytes] = {}
        await s.put("/p~end", b"")  # the last event the watch must reach
        last = start
        while True:
            event = await asyncio.wait_for(anext(watch), 10)
            assert event.revision >= last
            last = event.revision
            if event.entry.key == "/p~end":
                break
            if event.type is EventType.PUT:
                rebuilt[event.entry.key] = event.entry.value
            else:
                del rebuilt[event.entry.key]
        assert rebuilt == {k: e.value for k, e in model.items() if k.startswith("/p")}

    within(scenario)


# the SQLite store itself


def test_sqlite_slow_watcher_catches_up_from_history(tmp_path: Path) -> None:
    async def main() -> None:
        async with SqliteStore(tmp_path / "db", watch_buffer=5) as s:
            watch = s.watch("/w/")
            for i in range(40):  # far past the live buffer
                await s.put(f"/w/{i:02}", b"x")
            got = await take(watch, 40)
            assert [e.entry.key for e in got] == [f"/w/{i:02}" for i in range(40)]
            await s.put("/w/live", b"y")
            assert summary(await take(watch, 1)) == [("PUT", "/w/live", b"y")]

    asyncio.run(main())


def test_sqlite_watcher_left_behind_past_history_fails(tmp_path: Path) -> None:
    async def main() -> None:
        async with SqliteStore(tmp_path / "db", watch_buffer=5, history=20) as s:
            watch = s.watch("/w/")
            for i in range(60):
                await s.put(f"/w/{i:02}", b"x")
            with pytest.raises(CompactedError):
                await take(watch, 60)

    asyncio.run(main())


def test_sqlite_reopen_keeps_state_and_leases(tmp_path: Path) -> None:
    async def main() -> None:
        clock = FakeClock()
        async with SqliteStore(tmp_path / "db", clock=clock) as s:
            lease = await s.grant(30)
            await s.put("/k", b"1", lease=lease)
            await s.put("/j", b"2")
            revision = await s.revision()
        clock.now += 1000  # down far longer than the ttl: the lease restarts at reopen
        async with SqliteStore(tmp_path / "db", clock=clock) as s:
            assert await s.revision() == revision
            assert (await s.get("/k")) is not None
            assert await s.keep_alive(lease)
            other = await s.grant(30)
            assert other != lease
            clock.now += 31
            await s.sweep()
            assert await s.get("/k") is None
            assert [e.type for e in await take(s.watch("/", since=0), 3)] == [
                EventType.PUT, EventType.PUT, EventType.DELETE]

    asyncio.run(main())


def test_sqlite_one_process_per_file(tmp_path: Path) -> None:
    async def main() -> None:
        async with SqliteStore(tmp_path / "db") as s:
            await s.put("/k", b"1")
            with pytest.raises(StoreError):
                await SqliteStore(tmp_path / "db").open()

    asyncio.run(main())


def test_sqlite_closed_store_refuses_and_ends_watches(tmp_path: Path) -> None:
    async def main() -> None:
        s = await SqliteStore(tmp_path / "db").open()
        watch = s.watch("/")
        waiting = asyncio.ensure_future(take(watch, 1))
        await asyncio.sleep(0)
        await s.close()
        with pytest.raises(StoreError):
            await waiting
        with pytest.raises(StoreError):
            await s.get("/k")

    asyncio.run(main())


def test_open_store_urls(tmp_path: Path) -> None:
    async def main() -> None:
        store = await open_store("sqlite", data_dir=tmp_path)
        await store.close()
        assert (tmp_path / "remora.db").exists()
        with pytest.raises(StoreError, match="unreachable"):
            await open_store(f"etcd://127.0.0.1:{free_port()}", data_dir=tmp_path)
        with pytest.raises(StoreError):
            await open_store("redis://x", data_dir=tmp_path)

    asyncio.run(main())
