"""The control plane on a real three-member etcd cluster (Debian etcd-server on 127.0.0.1): the
EtcdStore's own lease expiry and member failover, then several `remora controlplane --store
etcd://...` replicas serving one view — a write through replica A reaches a proxy on replica B,
a SIGKILLed etcd member changes nothing, and a proxy whose replica is killed moves to the other
one while a client loop sees only 200s.

etcd's guarantees relied on: a three-member cluster keeps quorum with one member down
(https://etcd.io/docs/v3.4/faq/#what-is-failure-tolerance); a watch can be re-created from any
revision not yet compacted (https://etcd.io/docs/v3.4/learning/api/#watch-api); a lease's keys
are deleted when it expires (https://etcd.io/docs/v3.4/learning/api/#lease-api).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from remora.registry.store.base import ABSENT, EventType
from remora.registry.store.etcd import EtcdStore
from tests.e2e.meshkit import (
    ControlPlaneProcess,
    EchoServer,
    echo_servers,
    run_controlplane,
    run_proxy,
    wait_for,
)
from tests.e2e.test_proxy_controlplane import served, write_config
from tests.etcdkit import EtcdCluster, etcd_cluster

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def cluster() -> Iterator[EtcdCluster]:
    with etcd_cluster() as running:
        yield running


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, EchoServer]]:
    with echo_servers("v1", "v2") as servers:
        yield servers


@pytest.fixture(scope="module")
def replicas(cluster: EtcdCluster, tmp_path_factory: pytest.TempPathFactory,
             ) -> Iterator[tuple[ControlPlaneProcess, ControlPlaneProcess]]:
    """Two control-plane replicas on the one cluster (the last test kills A)."""
    tmp = tmp_path_factory.mktemp("replicas")
    with run_controlplane(tmp, store=cluster.url) as a, \
            run_controlplane(tmp, store=cluster.url) as b:
        yield a, b


@pytest.fixture
def member_down(cluster: EtcdCluster) -> Iterator[int]:
    """Member 0 — the one every client tries first — SIGKILLed for the test, then restarted."""
    cluster.kill(0)
    try:
        yield 0
    finally:
        cluster.restart(0)


def run(coroutine: object) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 30))  # type: ignore[arg-type]


# the store itself


def test_leases_expire_in_etcd_time_and_keep_alive_holds_them(cluster: EtcdCluster) -> None:
    """The contract tests drive lease expiry with a clock; here etcd's own lessor does it."""
    async def main() -> None:
        async with EtcdStore(cluster.endpoints, root="/leases") as store:
            held, dying = await store.grant(2), await store.grant(1)
            watch = store.watch("/i/")
            await store.put("/i/held", b"h", lease=held)
            await store.put("/i/dying", b"d", lease=dying)
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:  # past both ttls, refreshing only `held`
                assert await store.keep_alive(held)
                await asyncio.sleep(0.3)
            events = [await anext(watch) for _ in range(3)]
            assert [(e.type, e.entry.key) for e in events] == [
                (EventType.PUT, "/i/held"), (EventType.PUT, "/i/dying"),
                (EventType.DELETE, "/i/dying")]
            assert events[2].entry.value == b"d"
            assert not await store.keep_alive(dying)
            assert [e.key for e in (await store.list("/i/"))[0]] == ["/i/held"]
            await store.revoke(held)

    run(main())


def test_store_fails_over_and_its_watch_resumes_without_gaps(cluster: EtcdCluster) -> None:
    """SIGKILL the member the store and its watch are connected to, in the middle of writes:
    every write is acknowledged exactly once and the watch delivers each of them once, in
    order."""
    async def main() -> None:
        async with EtcdStore(cluster.endpoints, root="/failover") as store:
            assert store.endpoint == cluster.endpoints[0]
            watch = store.watch("/k/")
            written = [await store.put(f"/k/{i:02}", b"x") for i in range(10)]
            assert [(await anext(watch)).entry.key for _ in range(5)] == [
                f"/k/{i:02}" for i in range(5)]
            cluster.kill(0)
            written += [await store.put(f"/k/{i:02}", b"x") for i in range(10, 20)]
            assert store.endpoint != cluster.endpoints[0]
            got = [await anext(watch) for _ in range(15)]
            assert [e.revision for e in got] == [e.modified for e in written[5:]]
            assert len((await store.list("/k/"))[0]) == 20

    try:
        run(main())
    finally:
        cluster.restart(0)


def test_creates_in_flight_when_the_member_dies_are_settled_exactly_once(
        cluster: EtcdCluster) -> None:
    """Many create-only-if-absent writes in flight when their member is SIGKILLed: a write whose
    answer was lost is settled by reading the key (ours → done, absent → sent again), so every
    create succeeds once — no false conflict, no error, no duplicate."""
    async def main() -> None:
        async with EtcdStore(cluster.endpoints, root="/inflight") as store:
            async def create(i: int) -> int:
                await asyncio.sleep(i * 0.002)
                return (await store.put(f"/c/{i:03}", str(i).encode(), expected=ABSENT)).version

            creates = asyncio.gather(*(create(i) for i in range(300)))
            await asyncio.sleep(0.2)
            cluster.kill(0)
            assert await creates == [1] * 300
            entries, _ = await store.list("/c/")
            assert [(e.key, e.value, e.version) for e in entries] == [
                (f"/c/{i:03}", str(i).encode(), 1) for i in range(300)]

    try:
        run(main())
    finally:
        cluster.restart(0)


# replicas of the control plane


def test_a_write_through_replica_a_reaches_a_proxy_on_replica_b(
    replicas: tuple[ControlPlaneProcess, ControlPlaneProcess],
    upstreams: dict[str, EchoServer], tmp_path: Path,
) -> None:
    a, b = replicas
    a.apply(write_config(tmp_path / "v1", upstreams, "v1"))
    with run_proxy(tmp_path, tmp=tmp_path, controlplane=b.url) as proxy:
        assert served(proxy.url) == "v1"
        a.apply(write_config(tmp_path / "v2", upstreams, "v2"))
        wait_for(lambda: served(proxy.url) == "v2", timeout=10, message="B pushed A's write")
        b.apply(write_config(tmp_path / "v1-again", upstreams, "v1"))
        wait_for(lambda: served(proxy.url) == "v1", timeout=10, message="B pushed its write")


def test_an_instance_registered_on_a_is_listed_and_beaten_on_b(
    replicas: tuple[ControlPlaneProcess, ControlPlaneProcess], cluster: EtcdCluster,
) -> None:
    """Nacos v1 API on both replicas: the ephemeral instance registered through A is bound to an
    etcd lease, B lists it, and B accepts its beats (the lease is the cluster's, not A's)."""
    a, b = replicas
    where = {"serviceName": "ratings", "ip": "10.0.0.7", "port": "9080"}
    assert httpx.post(f"{a.url}/nacos/v1/ns/instance", params=where, headers=a.headers,
                      timeout=10).text == "ok"

    def hosts() -> list[str]:
        listed = httpx.get(f"{b.url}/nacos/v1/ns/instance/list", headers=b.headers,
                           params={"serviceName": "ratings"}, timeout=10).json()
        return [f"{host['ip']}:{host['port']}" for host in listed["hosts"]]

    wait_for(lambda: hosts() == ["10.0.0.7:9080"], timeout=10, message="B lists A's instance")
    beat = httpx.put(f"{b.url}/nacos/v1/ns/instance/beat", params=where, headers=b.headers,
                     timeout=10).json()
    assert beat["code"] == 10200, beat

    async def leased() -> None:
        async with EtcdStore(cluster.endpoints) as store:
            entries, _ = await store.list("/registry/instances/")
            assert [e.lease is not None for e in entries if "10.0.0.7:9080" in e.key] == [True]

    run(leased())


def test_everything_keeps_working_with_an_etcd_member_killed(
    replicas: tuple[ControlPlaneProcess, ControlPlaneProcess], member_down: int,
    upstreams: dict[str, EchoServer], tmp_path: Path,
) -> None:
    a, b = replicas
    with run_proxy(tmp_path, tmp=tmp_path, controlplane=b.url) as proxy:
        a.apply(write_config(tmp_path / "v2", upstreams, "v2"))
        wait_for(lambda: served(proxy.url) == "v2", timeout=15, message="v2 with a member down")
        b.apply(write_config(tmp_path / "v1", upstreams, "v1"))
        wait_for(lambda: served(proxy.url) == "v1", timeout=15, message="v1 with a member down")
    listed = httpx.get(f"{a.url}/apis/networking.istio.io/v1/namespaces/default/virtualservices",
                       headers=a.headers, timeout=10)
    assert listed.status_code == 200, listed.text


class ClientLoop(threading.Thread):
    """GETs through the proxy back to back until stopped, counting statuses."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.statuses: Counter[int | str] = Counter()
        self.upstreams: Counter[str] = Counter()
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.done.is_set():
                try:
                    answer = client.get(f"{self.url}/", headers={"host": "reviews:9080"})
                except httpx.HTTPError as exc:
                    self.statuses[type(exc).__name__] += 1
                    continue
                self.statuses[answer.status_code] += 1
                if answer.status_code == 200:
                    self.upstreams[str(answer.json()["upstream"])] += 1


def test_proxies_of_a_killed_replica_move_to_the_other_and_traffic_never_stops(
    replicas: tuple[ControlPlaneProcess, ControlPlaneProcess],
    upstreams: dict[str, EchoServer], tmp_path: Path,
) -> None:
    a, b = replicas
    b.apply(write_config(tmp_path / "v1", upstreams, "v1"))
    with run_proxy(tmp_path, tmp=tmp_path, controlplane=f"{a.url},{b.url}") as proxy:
        wait_for(lambda: served(proxy.url) == "v1", timeout=10, message="v1 from A")
        loop = ClientLoop(proxy.url)
        loop.start()
        try:
            wait_for(lambda: loop.statuses[200] >= 20, timeout=10, message="traffic")
            a.stop()  # SIGKILL
            b.apply(write_config(tmp_path / "v2", upstreams, "v2"))
            wait_for(lambda: loop.upstreams["v2"] >= 20, timeout=30,
                     message="the proxy following B")
        finally:
            loop.done.set()
            loop.join(timeout=10)
        assert set(loop.statuses) == {200}, loop.statuses
        assert loop.statuses[200] >= 40
