"""Registry changes reach proxies as istiod pushes them: debounced and merged (a burst of
registrations is a few pushes, each a delta of the changed endpoints only), and a burst that
never goes quiet is still pushed once it has lasted PILOT_DEBOUNCE_MAX."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from remora.controlplane.push import PushServer
from remora.mesh.encoding import decode_value
from remora.registry.model import Instance
from remora.registry.service import Registry
from remora.registry.store.sqlite import SqliteStore

NODE = {"id": "sidecar~127.0.0.1~client.default", "mode": "sidecar", "namespace": "default"}


async def collect(stream: AsyncIterator[bytes], into: list[dict[str, Any]]) -> None:
    async for line in stream:
        message = json.loads(line)
        if message["type"] != "ping":
            into.append(message)


async def scenario(tmp_path: Path, body: Any, **timing: float) -> None:
    store = await SqliteStore(tmp_path / "db").open()
    registry = Registry(store)
    await registry.start(background=False)
    push = PushServer(store, registry=registry, **timing)
    await push.start()
    received: list[dict[str, Any]] = []
    reader = asyncio.create_task(collect(push.subscribe(NODE), received))
    try:
        await asyncio.wait_for(body(registry, received), 20)
    finally:
        reader.cancel()
        await push.close()
        await registry.close()
        await store.close()


def keys(message: dict[str, Any]) -> set[str]:
    """`service/address` of every endpoint in the clusters the message carries (the proxy's
    compiled snapshot travels as sections: a cluster's section carries its endpoints)."""
    docs = message["documents"] if message["type"] == "snapshot" else message["put"]
    clusters = [decode_value(d["value"]) for d in docs if d["section"].startswith("cluster/")]
    return {f"{c.service_name}/{e.address}" for c in clusters for e in c.endpoints}


def test_a_burst_is_merged_and_each_push_carries_only_what_changed(tmp_path: Path) -> None:
    async def body(registry: Registry, received: list[dict[str, Any]]) -> None:
        await registry.register(Instance(ip="10.0.0.1", port=80, service="a"))
        await registry.register(Instance(ip="10.1.0.1", port=80, service="b"))
        while not any("b/10.1.0.1" in keys(m) for m in received):
            await asyncio.sleep(0.01)
        before = len(received)
        for i in range(2, 52):  # a burst: 50 registrations in service a
            await registry.register(Instance(ip=f"10.0.0.{i}", port=80, service="a"))
        wanted = {f"a/10.0.0.{i}" for i in range(1, 52)}
        while not wanted <= set().union(*(keys(m) for m in received)):
            await asyncio.sleep(0.01)
        burst = received[before:]
        assert len(burst) < 10  # merged: far fewer pushes than changes
        assert all(m["type"] == "delta" for m in burst)
        assert all(m["base"] == prev["version"] for prev, m in itertools.pairwise(received))
        changed = set().union(*(keys(m) for m in burst))
        assert not any(key.startswith("b/") for key in changed)  # b's cluster unchanged

    asyncio.run(scenario(tmp_path, body, debounce=0.05))


def test_a_burst_that_never_goes_quiet_is_pushed_after_debounce_max(tmp_path: Path) -> None:
    async def body(registry: Registry, received: list[dict[str, Any]]) -> None:
        while not received:
            await asyncio.sleep(0.01)
        first = len(received)
        pushed_during_burst = False
        for i in range(1, 200):  # a change every 20 ms: never quiet for the 100 ms debounce
            await registry.register(Instance(ip=f"10.0.0.{i}", port=80, service="a"))
            await asyncio.sleep(0.02)
            if len(received) > first + 1:
                pushed_during_burst = True
                break
        assert pushed_during_burst

    asyncio.run(scenario(tmp_path, body, debounce=0.1, debounce_max=0.3))
