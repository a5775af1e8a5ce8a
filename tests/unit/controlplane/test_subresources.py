"""The status and scale subresources (kubernetes.io/docs/reference/using-api/api-concepts,
"Subresources"; kubectl scale; the HPA controller's Scale writes): a status write changes only
`.status`, writes to the object keep it, and a Scale sets spec.replicas as a spec change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from remora.controlplane import subresources
from remora.controlplane.kindnames import by_kind
from remora.controlplane.resources import (
    BadRequestError,
    NotFoundError,
    ResourceConflictError,
    ResourceStore,
)
from remora.registry.store.sqlite import SqliteStore

DEPLOY = by_kind("apps", "Deployment")
VS = by_kind("networking.istio.io", "VirtualService")
assert DEPLOY is not None and VS is not None

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def resources(tmp_path: Path) -> AsyncIterator[ResourceStore]:
    store = await SqliteStore(tmp_path / "remora.db").open()
    rs = ResourceStore(store)
    await rs.ensure_namespaces()
    try:
        yield rs
    finally:
        await store.close()


def deployment(replicas: int | None = 2) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "web", "image": "web"}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": spec}


async def test_a_status_write_changes_only_the_status(resources: ResourceStore) -> None:
    created = (await resources.apply(deployment())).object
    written = await subresources.write_status(
        resources, DEPLOY, "default", "web",
        {"metadata": {"name": "web"}, "status": {"replicas": 1, "readyReplicas": 1}})
    assert written["status"] == {"replicas": 1, "readyReplicas": 1}
    assert written["spec"] == created["spec"]
    assert written["metadata"]["generation"] == created["metadata"]["generation"]
    assert written["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]


async def test_applying_the_object_again_keeps_its_status(resources: ResourceStore) -> None:
    await resources.apply(deployment())
    await subresources.write_status(resources, DEPLOY, "default", "web",
                                    {"status": {"replicas": 2}})
    again = await resources.apply({**deployment(3), "status": {"replicas": 99}})
    assert again.action.value == "configured"
    assert again.object["status"] == {"replicas": 2} and again.object["spec"]["replicas"] == 3


async def test_a_stale_status_write_conflicts(resources: ResourceStore) -> None:
    created = (await resources.apply(deployment())).object
    await resources.apply(deployment(3))
    with pytest.raises(ResourceConflictError):
        await subresources.write_status(resources, DEPLOY, "default", "web", {
            "metadata": {"resourceVersion": created["metadata"]["resourceVersion"]},
            "status": {}})
    with pytest.raises(NotFoundError):
        await subresources.write_status(resources, DEPLOY, "default", "nope", {"status": {}})
    with pytest.raises(BadRequestError):
        await subresources.write_status(resources, DEPLOY, "default", "web", {"status": [1]})


async def test_scale_reads_and_sets_spec_replicas(resources: ResourceStore) -> None:
    await resources.apply(deployment(None))
    scale = await subresources.get_scale(resources, DEPLOY, "default", "web")
    assert scale["kind"] == "Scale" and scale["spec"] == {"replicas": 1}
    assert scale["status"] == {"replicas": 0, "selector": "app=web"}
    after = await subresources.write_scale(resources, DEPLOY, "default", "web",
                                           {"spec": {"replicas": 3}})
    assert after["spec"] == {"replicas": 3}
    stored = await resources.get(DEPLOY, "default", "web")
    assert stored["spec"]["replicas"] == 3 and stored["metadata"]["generation"] == 2
    with pytest.raises(BadRequestError):
        await subresources.write_scale(resources, DEPLOY, "default", "web",
                                       {"spec": {"replicas": -1}})


async def test_only_workloads_have_a_scale(resources: ResourceStore) -> None:
    with pytest.raises(NotFoundError):
        await subresources.get_scale(resources, VS, "default", "x")
