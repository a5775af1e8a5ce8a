"""Registry changes are tracked per service (Nacos 2's per-service change events): a change
stamps only its own service, and listeners hear of it once the in-memory view shows it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from remora.registry.model import Instance, service_key
from remora.registry.service import Registry
from remora.registry.store.sqlite import SqliteStore

A = service_key(namespace="public", group="DEFAULT_GROUP", service="a")
B = service_key(namespace="public", group="DEFAULT_GROUP", service="b")


def test_a_change_stamps_its_own_service_and_tells_listeners(tmp_path: Path) -> None:
    async def main() -> None:
        store = await SqliteStore(tmp_path / "db").open()
        registry = Registry(store)
        await registry.start(background=False)
        heard: list[tuple[str, int]] = []

        def listener(key: str) -> None:  # what a listener can read when it is called
            name = key.rsplit("/", 1)[1]
            hosts = registry.instances(namespace="public", group="DEFAULT_GROUP", service=name)
            heard.append((key, len(hosts.hosts)))

        registry.on_change(listener)
        try:
            await registry.register(Instance(ip="10.0.0.1", port=80, service="a"))
            await registry.register(Instance(ip="10.0.0.2", port=80, service="b"))
            a, b = registry.stamp(A), registry.stamp(B)
            assert a and b and sorted(registry.service_keys()) == [A, B]

            await registry.register(Instance(ip="10.0.0.3", port=80, service="b"))
            assert registry.stamp(A) == a
            assert registry.stamp(B) > b
            assert (B, 2) in heard  # the listener already saw the second instance of b

            await registry.deregister(namespace="public", group="DEFAULT_GROUP", service="a",
                                      cluster="DEFAULT", address="10.0.0.1:80")
            assert registry.stamp(A) > a
            assert heard[-1] == (A, 0)
        finally:
            await registry.close()
            await store.close()

    asyncio.run(main())
