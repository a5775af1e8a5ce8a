"""Registry instances reach proxies as endpoints: of the Kubernetes Service of the same name
(its selector labels added, so subsets select them by metadata), or of a Service made up from
the instances; unhealthy or disabled instances are left out (Nacos healthyOnly)."""

from __future__ import annotations

from pathlib import Path

import pytest

from remora.controlplane.registry_view import documents_of
from remora.mesh.documents import compile_documents
from remora.mesh.snapshot import Endpoint, ListenerPorts, ProxyIdentity
from remora.registry.model import Instance
from remora.registry.service import Registry
from remora.registry.store.sqlite import SqliteStore

pytestmark = [pytest.mark.timeout(30), pytest.mark.anyio]

KUBE_SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "reviews", "namespace": "default"},
    "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]},
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def endpoints_of(tmp_path: Path, instances: list[Instance],
                       kube: list[dict[str, object]]) -> dict[str, tuple[Endpoint, ...]]:
    store = await SqliteStore(tmp_path / "db").open()
    registry = Registry(store)
    await registry.start(background=False)
    try:
        for instance in instances:
            await registry.register(instance)
        services = {("default", str(doc["metadata"]["name"])): doc  # type: ignore[index]
                    for doc in kube}
        documents = [*kube, *(doc for key in registry.service_keys()
                              for doc in documents_of(registry, key, services))]
    finally:
        await registry.close()
        await store.close()
    snapshot = compile_documents(documents, version="1", identity=ProxyIdentity(mode="sidecar"),
                                 ports=ListenerPorts())
    return {name: cluster.endpoints for name, cluster in snapshot.clusters.items()}


def versions(endpoints: tuple[Endpoint, ...]) -> list[tuple[str, int, str]]:
    return [(e.address, e.port, e.labels.get("version", "")) for e in endpoints]


async def test_instances_become_endpoints_of_the_kubernetes_service(tmp_path: Path) -> None:
    found = await endpoints_of(tmp_path, [
        Instance(ip="127.0.0.1", port=7001, service="reviews", metadata={"version": "v1"}),
        Instance(ip="127.0.0.1", port=7002, service="reviews", metadata={"version": "v2"}),
        Instance(ip="127.0.0.1", port=7003, service="reviews", enabled=False),
    ], [KUBE_SERVICE])
    assert sorted(versions(found["outbound|9080||reviews.default.svc.cluster.local"])) == [
        ("127.0.0.1", 7001, "v1"), ("127.0.0.1", 7002, "v2"),
    ]


async def test_a_registry_only_service_gets_a_service_made_up(tmp_path: Path) -> None:
    found = await endpoints_of(tmp_path, [
        Instance(ip="127.0.0.1", port=8081, service="order_service"),
    ], [])
    assert versions(found["outbound|8081||order-service.default.svc.cluster.local"]) == [
        ("127.0.0.1", 8081, ""),
    ]


async def test_an_instance_names_its_workload_as_a_pod_would(tmp_path: Path) -> None:
    """The entry is named after the address (`reviews-127-0-0-1-7001`); its workload is what
    the instance's `service.istio.io/workload-name` says, as Istio's WorkloadEntry label does
    (WorkloadNameFromWorkloadEntry), else the entry's name."""
    found = await endpoints_of(tmp_path, [
        Instance(ip="127.0.0.1", port=7001, service="reviews",
                 metadata={"version": "v1", "service.istio.io/workload-name": "reviews-v1"}),
        Instance(ip="127.0.0.1", port=7002, service="reviews"),
    ], [KUBE_SERVICE])
    endpoints = found["outbound|9080||reviews.default.svc.cluster.local"]
    assert sorted((e.port, e.workload) for e in endpoints) == [
        (7001, "reviews-v1"), (7002, "reviews-127-0-0-1-7002"),
    ]
