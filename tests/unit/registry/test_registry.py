"""The Registry over a real SqliteStore: Nacos's register / beat / list / subscribe semantics.

Nacos sources cited: ServiceManager.registerInstance (createEmptyService on first
registration), ClientBeatCheckTask (15 s unhealthy, 30 s deleted), Service.processClientBeat
(a beat heals an unhealthy instance), ServiceController.remove ("is not empty, can't be
delete"), HealthCheckCommon (3 consecutive results), listInstance (protection threshold).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from remora.registry.model import Instance, RegistryError, Service
from remora.registry.service import InstanceList, Registry, RegistryEvent
from remora.registry.store.base import EventType

from .conftest import Scenario, World

Run = Callable[[Scenario], None]
ADDRESS = "10.0.0.1:8080"


def listing(world: World, *, healthy_only: bool = False) -> InstanceList:
    return world.registry.instances(namespace="public", group="DEFAULT_GROUP", service="orders",
                                    healthy_only=healthy_only)


def orders(port: int = 8080, **changes: object) -> Instance:
    return Instance(ip="10.0.0.1", port=port, service="orders").with_(**changes)


def current(world: World) -> Instance:
    found = world.registry.get_instance(namespace="public", group="DEFAULT_GROUP",
                                        service="orders", cluster="DEFAULT", address=ADDRESS)
    assert found is not None
    return found


async def beat(world: World, address: str = ADDRESS) -> object:
    return await world.registry.heartbeat(namespace="public", group="DEFAULT_GROUP",
                                          service="orders", cluster="DEFAULT", address=address)


def test_register_creates_the_service_and_lists_the_instance(world: Run) -> None:
    async def scenario(w: World) -> None:
        await w.registry.register(orders(metadata={"version": "v1"}))
        found = listing(w)
        ids = [i.instance_id for i in found.hosts]
        assert ids == ["10.0.0.1#8080#DEFAULT#DEFAULT_GROUP@@orders"]
        assert found.known and not found.reach_protection_threshold
        svc = w.registry.get_service(namespace="public", group="DEFAULT_GROUP", name="orders")
        assert svc == Service(name="orders")
        stored = await w.store.get(orders().key)
        assert stored is not None and stored.lease is not None  # ephemeral: bound to a lease
        assert Instance.from_json(stored.value) == orders(metadata={"version": "v1"})

    world(scenario)


def test_silent_instance_unhealthy_after_15s_healed_by_a_beat_deleted_after_30s(
        world: Run) -> None:
    async def scenario(w: World) -> None:
        await w.registry.register(orders())
        await w.registry.register(orders(9090))  # beats on time throughout
        w.clock.now += 15.0
        await beat(w, "10.0.0.1:9090")
        await w.registry.sweep()
        assert all(i.healthy for i in listing(w).hosts)  # 15 s exactly: not yet
        w.clock.now += 0.5
        await w.registry.sweep()
        assert [i.port for i in listing(w, healthy_only=True).hosts] == [9090]
        assert await beat(w) is not None  # a beat heals it at once
        assert len(listing(w, healthy_only=True).hosts) == 2
        w.clock.now += 20.0
        await beat(w, "10.0.0.1:9090")
        await w.registry.sweep()
        assert [i.port for i in listing(w, healthy_only=True).hosts] == [9090]
        w.clock.now += 10.1  # 30.1 s since the last beat of 8080
        await beat(w, "10.0.0.1:9090")
        await w.registry.sweep()
        assert [i.port for i in listing(w).hosts] == [9090]
        assert await w.store.get(orders().key) is None
        assert await beat(w) is None  # unknown now: Nacos answers 20404

    world(scenario)


def test_per_instance_timeouts_from_metadata(world: Run) -> None:
    async def scenario(w: World) -> None:
        await w.registry.register(orders(metadata={"preserved.heart.beat.timeout": "3000",
                                                   "preserved.ip.delete.timeout": "6000"}))
        w.clock.now += 3.5
        await w.registry.sweep()
        assert (await w.store.get(orders().key)) is not None
        stored = listing(w, healthy_only=False)
        assert stored.reach_protection_threshold  # the only instance is unhealthy: 0/1 <= 0
        w.clock.now += 3.0
        await w.registry.sweep()
        assert listing(w).hosts == ()

    world(scenario)


def test_store_lease_expiry_removes_an_instance_nobody_beats_for(world: Run) -> None:
    async def scenario(w: World) -> None:
        await w.registry.register(orders())
        w.store_clock.now += 30.5  # the store's lessor, not the registry's sweep
        await w.store.sweep()
        for _ in range(100):  # the mirror hears it through the watch
            if not listing(w).hosts:
                break
            await asyncio.sleep(0.01)
        assert listing(w).hosts == ()

    world(scenario)


def test_persistent_instances_flip_after_three_checks_and_are_never_expired(
        world: Run) -> None:
    async def scenario(w: World) -> None:
        await w.registry.register(orders(ephemeral=False))
        w.probes[8080] = False
        for expected in (True, True, False):
            await w.registry.check()
            assert current(w).healthy is expected
        assert listing(w).reach_protection_threshold  # 0/1 healthy
        w.clock.now += 3600
        await w.registry.sweep()
        assert len(listing(w).hosts) == 1
        w.probes[8080] = True
        for expected in (False, False, True):
            await w.registry.check()
            assert current(w).healthy is expected
        found = listing(w, healthy_only=True)
        assert not found.reach_protection_threshold and found.hosts[0].healthy
        stored = await w.store.get(orders().key)
        assert stored is not None and stored.lease is None

    world(scenario)


def test_protection_threshold_of_the_service(world: Run) -> None:
    async def scenario(w: World) -> None:
        await w.registry.create_service(Service(name="orders", protect_threshold=0.6))
        for port in (1, 2, 3):
            await w.registry.register(orders(port))
        w.clock.now += 16
        await beat(w, "10.0.0.1:1")
        await w.registry.sweep()  # 1 of 3 healthy: 0.33 <= 0.6
        protected = listing(w, healthy_only=True)
        assert protected.reach_protection_threshold and len(protected.hosts) == 3
        await w.registry.update_service(Service(name="orders", protect_threshold=0.2))
        plain = listing(w, healthy_only=True)
        assert not plain.reach_protection_threshold
        assert [i.port for i in plain.hosts] == [1]

    world(scenario)


def test_update_keeps_health_and_deregister_removes(world: Run) -> None:
    async def scenario(w: World) -> None:
        with pytest.raises(RegistryError, match="instance not exist"):
            await w.registry.update(orders())
        await w.registry.register(orders())
        await w.registry.update(orders(weight=5.0, enabled=False, healthy=False))
        assert listing(w).hosts == ()  # disabled instances are not listed
        before = current(w)
        assert before == orders(weight=5.0, enabled=False)  # healthy stays the server's
        gone = await w.registry.deregister(namespace="public", group="DEFAULT_GROUP",
                                           service="orders", cluster="DEFAULT", address=ADDRESS)
        assert gone == before
        assert await w.store.get(orders().key) is None

    world(scenario)


def test_services_create_list_delete(world: Run) -> None:
    async def scenario(w: World) -> None:
        await w.registry.create_service(Service(name="b", metadata={"team": "x"}))
        await w.registry.create_service(Service(name="a", group="G"))
        with pytest.raises(RegistryError, match="already exists"):
            await w.registry.create_service(Service(name="b"))
        names = [(s.group, s.name) for s in w.registry.services(namespace="public")]
        assert names == [("DEFAULT_GROUP", "b"), ("G", "a")]
        await w.registry.register(Instance(ip="1.1.1.1", port=1, service="b"))
        with pytest.raises(RegistryError, match="is not empty"):
            await w.registry.delete_service(namespace="public", group="DEFAULT_GROUP", name="b")
        await w.registry.delete_service(namespace="public", group="G", name="a")
        with pytest.raises(RegistryError, match="not exist"):
            await w.registry.delete_service(namespace="public", group="G", name="a")

    world(scenario)


def test_subscribe_sees_registrations_health_changes_and_removals(world: Run) -> None:
    async def scenario(w: World) -> None:
        events = w.registry.subscribe(namespace="public", service="orders")
        first = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0)
        await w.registry.register(Instance(ip="9.9.9.9", port=1, service="other"))
        await w.registry.register(orders())
        seen: list[RegistryEvent] = [await asyncio.wait_for(first, 5)]
        w.clock.now += 16
        await w.registry.sweep()
        await w.registry.deregister(namespace="public", group="DEFAULT_GROUP", service="orders",
                                    cluster="DEFAULT", address=ADDRESS)
        seen += [await asyncio.wait_for(anext(events), 5) for _ in range(3)]
        summary = [(e.type, type(e.item).__name__, getattr(e.item, "healthy", None))
                   for e in seen]
        assert summary == [(EventType.PUT, "Service", None), (EventType.PUT, "Instance", True),
                           (EventType.PUT, "Instance", False),
                           (EventType.DELETE, "Instance", False)]
        await events.aclose()

    world(scenario)


def test_a_replica_does_not_judge_beats_it_never_received(world: Run) -> None:
    """Another replica (or this one after a restart) sees the instance in the store but got
    none of its beats: it leaves its health alone; the store lease, which the beats renew
    wherever they arrive, removes it once they stop (delete timeout 30 s)."""
    async def scenario(w: World) -> None:
        await w.registry.register(orders())
        await w.registry.register(orders(9000, ephemeral=False))
        other = Registry(w.store, clock=w.clock)
        await other.start(background=False)
        try:
            assert len(other.instances(namespace="public", group="DEFAULT_GROUP",
                                       service="orders").hosts) == 2
            w.clock.now += 20  # past the 15 s unhealthy mark, but no beat was due *here*
            await other.sweep()
            found = other.instances(namespace="public", group="DEFAULT_GROUP",
                                    service="orders", healthy_only=True)
            assert sorted(i.port for i in found.hosts) == [8080, 9000]
            w.store_clock.now += 31  # the beats stopped: the lease runs out in the store
            await w.store.sweep()
            await asyncio.sleep(0.05)  # the watch brings the deletion to both replicas
            left = other.instances(namespace="public", group="DEFAULT_GROUP", service="orders")
            assert [i.port for i in left.hosts] == [9000]
        finally:
            await other.close()

    world(scenario)


def test_model_rejects_values_nacos_rejects() -> None:
    with pytest.raises(RegistryError, match="weight"):
        orders(weight=10001.0)
    with pytest.raises(RegistryError, match="port"):
        orders(70000)
    with pytest.raises(RegistryError, match="protectThreshold"):
        Service(name="x", protect_threshold=1.5)
    assert orders(metadata={"istio-locality": "eu.west-1a"}).locality == "eu/west-1a"
    assert Instance.from_json(orders(cluster="C").to_json()) == orders(cluster="C")
