"""The service registry over a Store: register, beat, list, subscribe; health kept current.

Data lives in the store (`/registry/services/...`, `/registry/instances/...`, JSON) and is
mirrored in memory for reads. Liveness is split on purpose:
- the *beat bookkeeping* (health.BeatTracker, this process's clock) decides Nacos's two
  ephemeral deadlines — unhealthy after 15 s, deleted after 30 s — which no lease can express
  (an etcd lease only deletes, at one TTL);
- each ephemeral instance is also bound to a store lease with TTL = its delete timeout, kept
  alive by beats, so the store itself removes instances nobody vouches for any more (a control
  plane killed, or beats answered by another replica; on etcd this is the cluster-wide truth).
Persistent instances have no lease; server-side TCP/HTTP probes flip them (health.record_check).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

from remora.registry.health import (
    BeatTiming,
    BeatTracker,
    CheckState,
    Verdict,
    beat_timing,
    record_check,
    select_hosts,
)
from remora.registry.mirror import StoreMirror
from remora.registry.model import (
    SERVICES_PREFIX,
    HealthChecker,
    Instance,
    RegistryError,
    Service,
    instance_key,
    service_key,
)
from remora.registry.store.base import ABSENT, ConflictError, Entry, EventType, Store
from remora.tasks import stop_tasks

log = logging.getLogger(__name__)
REGISTRY_PREFIX = "/registry/"

Prober = Callable[[Instance, HealthChecker, float], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class _Record:
    item: Service | Instance
    lease: int | None


@dataclass(frozen=True, slots=True)
class InstanceList:
    """A list query's answer: the hosts to use and whether protection returned them all."""

    namespace: str
    group: str
    service: str
    clusters: tuple[str, ...]
    hosts: tuple[Instance, ...]
    reach_protection_threshold: bool
    known: bool


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    """A change a subscriber sees: a service or instance written (PUT) or removed (DELETE)."""

    type: EventType
    item: Service | Instance
    revision: int


def _decode(entry: Entry) -> _Record:
    if entry.key.startswith(SERVICES_PREFIX):
        return _Record(Service.from_json(entry.value), entry.lease)
    return _Record(Instance.from_json(entry.value), entry.lease)


async def probe(instance: Instance, checker: HealthChecker, timeout: float) -> bool:
    """One active check: a TCP connect, or an HTTP/1.0 GET answered with the expected code."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(instance.ip, instance.port)
            try:
                if checker.type != "HTTP":
                    return True
                writer.write(f"GET {checker.path} HTTP/1.0\r\nHost: {instance.ip}\r\n"
                             "User-Agent: Remora-Health-Check\r\n\r\n".encode())
                status = (await reader.readline()).split()
                return len(status) >= 2 and status[1] == str(checker.expected_code).encode()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return False


class Registry:
    """Services and instances with Nacos's health rules. `start()` loads and follows the
    store and runs the beat sweep and the active checks; `close()` stops them."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.monotonic,
                 sweep_interval: float = 1.0, check_interval: float = 5.0,
                 check_timeout: float = 2.0, prober: Prober = probe) -> None:
        self._store = store
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._check_interval = check_interval
        self._check_timeout = check_timeout
        self._prober = prober
        self._mirror: StoreMirror[_Record] = StoreMirror(
            store, REGISTRY_PREFIX, decode=_decode, on_change=self._changed)
        self._services: dict[str, Service] = {}
        self._instances: dict[str, dict[str, Instance]] = {}  # service key -> instance key ->
        self._beats = BeatTracker()
        self._checks: dict[str, CheckState] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.generation = 0  # bumped by every change: answers computed earlier are stale
        self._stamps: dict[str, int] = {}  # service key -> generation of its last change
        self._listeners: list[Callable[[str], None]] = []

    # lifecycle

    async def start(self, *, background: bool = True) -> None:
        """Load the registry. A replica judges only the beats it receives: instances found in
        the store (registered before a restart, or through another replica on a shared etcd)
        are not marked unhealthy here for want of beats; their store lease, which every beat
        renews on whichever replica gets it, removes them once their clients stop."""
        await self._mirror.start()
        if background:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._every(self._sweep_interval, self.sweep)),
                           loop.create_task(self._every(self._check_interval, self.check))]

    async def close(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks = []
        await self._mirror.close()

    async def _every(self, interval: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await job()
            except Exception:  # a failing round must not end the loop
                log.exception("registry %s failed", getattr(job, "__name__", job))

    def stamp(self, service_key: str) -> int:
        """The generation of the service's last change (its instances' included): an answer
        about one service computed at an equal stamp is still current, whatever else changed
        (Nacos 2 tracks changes per service the same way)."""
        return self._stamps.get(service_key, 0)

    def service_keys(self) -> list[str]:
        """Every known service's key."""
        return list(self._services)

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call `listener(service_key)` after each change of a service or its instances, once
        the in-memory view (instances, stamp) already shows it."""
        self._listeners.append(listener)

    def _changed(self, key: str, old: _Record | None, new: _Record | None) -> None:
        """A change the mirror applied: index it, stamp its service, tell the listeners."""
        self.generation += 1
        record = new or old
        item = record.item if record else None
        if item is not None:
            self._index(key, item, new is None)
            skey = item.key if isinstance(item, Service) else item.service_key
            self._stamps[skey] = self.generation
            for listener in self._listeners:
                listener(skey)

    def _index(self, key: str, item: Service | Instance, removed: bool) -> None:
        """Keep the per-service indexes in step with the mirror."""
        if isinstance(item, Service):
            if removed:
                self._services.pop(key, None)
            else:
                self._services[key] = item
        else:
            instances = self._instances.setdefault(item.service_key, {})
            if removed:
                instances.pop(key, None)
                if not instances:
                    del self._instances[item.service_key]
                self._beats.forget(key)
                self._checks.pop(key, None)
            else:
                instances[key] = item

    # instances

    def get_instance(self, *, namespace: str, group: str, service: str, cluster: str,
                     address: str) -> Instance | None:
        key = instance_key(namespace=namespace, group=group, service=service, cluster=cluster,
                           address=address)
        record = self._mirror.get(key)
        return record.item if record and isinstance(record.item, Instance) else None

    async def register(self, instance: Instance) -> Instance:
        """Create or replace an instance (its service is created if absent)."""
        await self._ensure_service(instance)
        key = instance.key
        if not instance.ephemeral:
            await self._write(instance, lease=None)
            self._beats.forget(key)  # it may have been ephemeral: beats no longer judge it
            self._checks[key] = CheckState(healthy=instance.healthy)
            return instance
        timing = beat_timing(instance.metadata)
        record = self._mirror.get(key)
        lease = record.lease if record else None
        if lease is None or not await self._store.keep_alive(lease):
            lease = await self._store.grant(timing.delete_timeout)
        await self._write(instance, lease=lease)
        self._beats.beat(key, now=self._clock(), timing=timing)
        return instance

    async def update(self, instance: Instance) -> Instance:
        """Replace an existing instance's attributes; health stays the server's judgement."""
        record = self._mirror.get(instance.key)
        if record is None or not isinstance(record.item, Instance):
            raise RegistryError(f"instance not exist: {instance.instance_id}")
        instance = instance.with_(healthy=record.item.healthy, ephemeral=record.item.ephemeral)
        await self._write(instance, lease=record.lease)
        return instance

    async def deregister(self, *, namespace: str, group: str, service: str, cluster: str,
                         address: str) -> Instance | None:
        key = instance_key(namespace=namespace, group=group, service=service, cluster=cluster,
                           address=address)
        return await self._remove(key)

    async def heartbeat(self, *, namespace: str, group: str, service: str, cluster: str,
                        address: str) -> BeatTiming | None:
        """A client beat; None when the instance is unknown (Nacos answers 20404)."""
        key = instance_key(namespace=namespace, group=group, service=service, cluster=cluster,
                           address=address)
        record = self._mirror.get(key)
        if record is None or not isinstance(record.item, Instance):
            return None
        instance = record.item
        if record.lease is not None and not await self._store.keep_alive(record.lease):
            return None  # the store expired it; the watch will drop it
        timing = beat_timing(instance.metadata)
        if instance.ephemeral:
            self._beats.beat(key, now=self._clock(), timing=timing)
        if not instance.healthy:
            await self._write(instance.with_(healthy=True), lease=record.lease)
        return timing

    def instances(self, *, namespace: str, group: str, service: str, clusters: Iterable[str] = (),
             healthy_only: bool = False) -> InstanceList:
        """The instances to hand out, filtered as Nacos's /instance/list does."""
        skey = service_key(namespace=namespace, group=group, service=service)
        wanted = tuple(c for c in clusters if c)
        found = self._instances.get(skey, {})
        instances = [found[key] for key in sorted(found)
                     if not wanted or found[key].cluster in wanted]
        svc = self._services.get(skey)
        selection = select_hosts(instances, healthy_only=healthy_only,
                                 protect_threshold=svc.protect_threshold if svc else 0.0)
        return InstanceList(namespace=namespace, group=group, service=service, clusters=wanted,
                            hosts=selection.hosts, known=svc is not None or bool(found),
                            reach_protection_threshold=selection.reach_protection_threshold)

    # services

    def get_service(self, *, namespace: str, group: str, name: str) -> Service | None:
        return self._services.get(service_key(namespace=namespace, group=group, service=name))

    def services(self, *, namespace: str, group: str | None = None) -> list[Service]:
        """Services of a namespace (and group), by name."""
        found = [svc for svc in self._services.values() if svc.namespace == namespace
                 and (group is None or svc.group == group)]
        return sorted(found, key=lambda svc: (svc.group, svc.name))

    def instance_count(self, service: Service) -> int:
        return len(self._instances.get(service.key, {}))

    async def create_service(self, service: Service) -> Service:
        try:
            entry = await self._store.put(service.key, service.to_json(), expected=ABSENT)
        except ConflictError:
            raise RegistryError(f"specified service already exists, serviceName : "
                                f"{service.grouped_name}") from None
        self._mirror.put(entry)
        return service

    async def update_service(self, service: Service) -> Service:
        if service.key not in self._services:
            raise RegistryError(f"service {service.grouped_name} not found")
        self._mirror.put(await self._store.put(service.key, service.to_json()))
        return service

    async def delete_service(self, *, namespace: str, group: str, name: str) -> Service:
        skey = service_key(namespace=namespace, group=group, service=name)
        svc = self._services.get(skey)
        if svc is None:
            raise RegistryError(f"specified service not exist, serviceName : {group}@@{name}")
        if self._instances.get(skey):
            raise RegistryError(f"service {group}@@{name} is not empty, can't be delete. "
                                "Please unregister instance first")
        await self._remove(skey)
        return svc

    async def subscribe(self, *, namespace: str | None = None, group: str | None = None,
                        service: str | None = None) -> AsyncIterator[RegistryEvent]:
        """Registry changes from now on (services and instances), narrowed to a namespace,
        group and service when given; follows the store's watch, so every writer is seen."""
        async for event in self._store.watch(REGISTRY_PREFIX):
            try:
                item = _decode(event.entry).item
            except (ValueError, KeyError, TypeError):
                continue
            name = item.name if isinstance(item, Service) else item.service
            if ((namespace is None or item.namespace == namespace)
                    and (group is None or item.group == group)
                    and (service is None or name == service)):
                yield RegistryEvent(type=event.type, item=item, revision=event.revision)

    # health

    async def sweep(self) -> None:
        """Apply the beat verdicts: mark silent instances unhealthy, delete expired ones."""
        for key, verdict in self._beats.sweep(self._clock()):
            record = self._mirror.get(key)
            if record is None or not isinstance(record.item, Instance):
                self._beats.forget(key)
            elif verdict is Verdict.EXPIRED:
                log.info("instance %s expired: no beat", record.item.instance_id)
                await self._remove(key)
            elif record.item.healthy:
                log.info("instance %s unhealthy: no beat", record.item.instance_id)
                await self._write(record.item.with_(healthy=False), lease=record.lease)

    async def check(self) -> None:
        """One round of active checks on persistent instances; flips after 3 in a row."""
        targets = []
        for skey, instances in self._instances.items():
            svc = self._services.get(skey)
            checker = svc.health_checker if svc else HealthChecker()
            if checker.type == "NONE":
                continue
            targets += [(key, inst, checker) for key, inst in instances.items()
                        if not inst.ephemeral and inst.enabled]
        results = await asyncio.gather(*(self._prober(inst, checker, self._check_timeout)
                                         for _, inst, checker in targets))
        for (key, inst, _), ok in zip(targets, results, strict=True):
            state = record_check(self._checks.get(key, CheckState(healthy=inst.healthy)), ok)
            self._checks[key] = state
            current = self._mirror.get(key)
            if current and isinstance(current.item, Instance) \
                    and state.healthy != current.item.healthy:
                log.info("instance %s %s after active checks", inst.instance_id,
                         "healthy" if state.healthy else "unhealthy")
                await self._write(current.item.with_(healthy=state.healthy), lease=None)

    # store writes

    async def _ensure_service(self, instance: Instance) -> None:
        """Nacos creates an empty service on first registration (createEmptyService)."""
        if instance.service_key in self._services:
            return
        svc = Service(name=instance.service, namespace=instance.namespace, group=instance.group)
        with contextlib.suppress(RegistryError):
            await self.create_service(svc)

    async def _write(self, instance: Instance, *, lease: int | None) -> None:
        self._mirror.put(await self._store.put(instance.key, instance.to_json(), lease=lease))

    async def _remove(self, key: str) -> Instance | None:
        record = self._mirror.get(key)
        if record is not None and record.lease is not None:
            # one lease per instance: revoking it deletes the key and frees the lease
            await self._store.revoke(record.lease)
            self._mirror.deleted(key, self._mirror.revision_of(key) + 1)
        else:
            deleted = await self._store.delete(key)
            if deleted is not None:
                # the delete's revision is past the deleted value's: a safe lower bound
                self._mirror.deleted(key, deleted.modified + 1)
        if record is not None and isinstance(record.item, Instance):
            return record.item
        return None
