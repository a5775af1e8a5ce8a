"""kill -9 durability of the SQLite store: every write acknowledged before the kill is there after.

WAL with synchronous=NORMAL: "Transactions are durable across application crashes regardless of
the synchronous setting or journal mode" (https://www.sqlite.org/pragma.html#pragma_synchronous);
a `put` returns after its COMMIT, so its WAL frames are in the OS when the writer prints the key.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from remora.registry.store.base import EventType
from remora.registry.store.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(120)

WRITER = """
import asyncio, sys
from pathlib import Path
from remora.registry.store.sqlite import SqliteStore

async def main() -> None:
    store = await SqliteStore(Path(sys.argv[1])).open()
    lease = await store.grant(600)
    i = 0
    while True:
        await store.put(f"/k/{i:08}", str(i).encode() * 20, lease=lease if i % 2 else None)
        print(i, flush=True)
        i += 1

asyncio.run(main())
"""


def write_until_killed(db: Path, *, acknowledged: int) -> int:
    """Run the writer, SIGKILL it once `acknowledged` writes are acknowledged; the last key
    it acknowledged."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE,
                              text=True)
    last = -1
    try:
        assert writer.stdout is not None
        for line in writer.stdout:
            last = int(line)
            if last + 1 >= acknowledged:
                os.kill(writer.pid, signal.SIGKILL)
                break
        assert last + 1 >= acknowledged, "the writer stopped early"
    finally:
        writer.kill()
        writer.wait(10)
    assert writer.returncode == -signal.SIGKILL
    for extra in writer.stdout or []:  # acknowledged after our kill decision, before it landed
        last = int(extra)
    return last


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "remora.db"
    last = write_until_killed(db, acknowledged=3000)

    async def check() -> None:
        async with SqliteStore(db) as store:
            entries, revision = await store.list("/k/")
            keys = [e.key for e in entries]
            # every acknowledged key, and at most the one in flight at the kill beyond it
            assert keys[: last + 1] == [f"/k/{i:08}" for i in range(last + 1)]
            assert len(keys) - (last + 1) in (0, 1)
            assert all(e.value == str(i).encode() * 20 for i, e in enumerate(entries))
            # one revision per put, nothing else: the revision counts the keys exactly
            assert revision == len(keys) == await store.revision()
            assert [e.modified for e in entries] == list(range(1, len(keys) + 1))
            history = store.watch("/k/", since=0)
            for i in range(len(keys)):
                event = await asyncio.wait_for(anext(history), 10)
                assert (event.type, event.revision, event.entry.key) == (
                    EventType.PUT, i + 1, f"/k/{i:08}")
            assert (await store.put("/k/after", b"x")).modified == revision + 1

    asyncio.run(check())


def test_two_kills_in_a_row_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "remora.db"
    first = write_until_killed(db, acknowledged=500)
    # the writer restarts from key 0: its puts overwrite, each a new revision
    second = write_until_killed(db, acknowledged=800)

    async def check() -> None:
        async with SqliteStore(db) as store:
            entries, revision = await store.list("/k/")
            assert len(entries) >= max(first, second) + 1
            updated = [e for e in entries if e.version == 2]
            assert len(updated) >= min(first, second) + 1
            assert revision == sum(e.version for e in entries)

    asyncio.run(check())
