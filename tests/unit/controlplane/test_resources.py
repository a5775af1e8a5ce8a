"""ResourceStore over a real SqliteStore: kubectl apply semantics and server-side metadata.

Kubernetes' object metadata rules (kubernetes.io/docs/reference/using-api/api-concepts/):
uid and creationTimestamp are set at create, generation changes with the spec only,
resourceVersion is opaque and changes on every write; a stale one is a 409 ResourceConflictError.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from remora.controlplane.kindnames import by_kind, lookup
from remora.controlplane.resources import (
    Action,
    AlreadyExistsError,
    ForbiddenError,
    InvalidError,
    Mode,
    NotFoundError,
    ResourceConflictError,
    ResourceStore,
)
from remora.controlplane.selectors import parse_selector
from remora.registry.store.sqlite import SqliteStore

VS = by_kind("networking.istio.io", "VirtualService")
NOW = datetime(2024, 5, 1, 12, 30, 0, tzinfo=UTC)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def vs(name: str = "reviews", *, host: str = "reviews", subset: str = "v1",
       labels: dict[str, str] | None = None, namespace: str | None = None,
       **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, **meta}
    if labels is not None:
        metadata["labels"] = labels
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": metadata,
        "spec": {"hosts": [host],
                 "http": [{"route": [{"destination": {"host": host, "subset": subset}}]}]},
    }


@pytest.fixture
async def resources(tmp_path: Path) -> AsyncIterator[ResourceStore]:
    store = await SqliteStore(tmp_path / "remora.db").open()
    uids = iter(f"uid-{n}" for n in range(1000))
    rs = ResourceStore(store, clock=lambda: NOW, new_uid=lambda: next(uids))
    await rs.ensure_namespaces()
    try:
        yield rs
    finally:
        await store.close()


async def test_create_sets_server_metadata(resources: ResourceStore) -> None:
    applied = await resources.apply(vs())
    meta = applied.object["metadata"]
    assert applied.action is Action.CREATED
    assert meta["namespace"] == "default"
    assert meta["generation"] == 1
    assert meta["uid"].startswith("uid-")
    assert meta["creationTimestamp"] == "2024-05-01T12:30:00Z"
    assert meta["resourceVersion"] == str(await resources.store.revision())
    assert applied.type.qualified == "virtualservice.networking.istio.io"


async def test_generation_bumps_only_when_spec_changes(resources: ResourceStore) -> None:
    first = (await resources.apply(vs())).object["metadata"]
    relabelled = await resources.apply(vs(labels={"team": "a"}))
    assert relabelled.action is Action.CONFIGURED
    meta = relabelled.object["metadata"]
    assert meta["generation"] == 1
    assert int(meta["resourceVersion"]) > int(first["resourceVersion"])
    assert meta["uid"] == first["uid"] and meta["creationTimestamp"] == first["creationTimestamp"]
    respec = (await resources.apply(vs(subset="v2", labels={"team": "a"}))).object["metadata"]
    assert respec["generation"] == 2


async def test_same_object_again_is_unchanged_and_not_written(resources: ResourceStore) -> None:
    first = await resources.apply(vs())
    revision = await resources.store.revision()
    again = await resources.apply(vs())
    assert again.action is Action.UNCHANGED
    assert again.object == first.object
    assert await resources.store.revision() == revision


async def test_server_fields_and_status_in_the_body_are_ignored(resources: ResourceStore) -> None:
    document = vs(uid="mine", generation=7, creationTimestamp="2000-01-01T00:00:00Z")
    document["status"] = {"anything": True}
    obj = (await resources.apply(document)).object
    assert obj["metadata"]["uid"] != "mine" and obj["metadata"]["generation"] == 1
    assert "status" not in obj


async def test_stale_resource_version_conflicts(resources: ResourceStore) -> None:
    first = await resources.apply(vs())
    rv = first.object["metadata"]["resourceVersion"]
    await resources.apply(vs(subset="v2", resourceVersion=rv))  # current: accepted
    with pytest.raises(ResourceConflictError) as caught:
        await resources.apply(vs(subset="v3", resourceVersion=rv))
    assert caught.value.code == 409
    assert caught.value.causes[0].field == "metadata.resourceVersion"


async def test_create_and_update_modes(resources: ResourceStore) -> None:
    with pytest.raises(NotFoundError):
        await resources.apply(vs(), mode=Mode.UPDATE)
    await resources.apply(vs(), mode=Mode.CREATE)
    with pytest.raises(AlreadyExistsError) as caught:
        await resources.apply(vs(), mode=Mode.CREATE)
    assert caught.value.code == 409


async def test_invalid_carries_every_field_path(resources: ResourceStore) -> None:
    document = vs()
    document["spec"]["http"][0]["route"][0]["weight"] = "heavy"
    document["spec"]["bogus"] = 1
    with pytest.raises(InvalidError) as caught:
        await resources.apply(document)
    fields = {cause.field for cause in caught.value.causes}
    assert {"spec.http[0].route[0].weight", "spec.bogus"} <= fields
    assert caught.value.code == 422


@pytest.mark.parametrize(("name", "namespace"), [("Bad/Name", None), ("ok", "Not OK"), ("", None)])
async def test_names_must_be_dns_names(resources: ResourceStore, name: str,
                                       namespace: str | None) -> None:
    with pytest.raises(InvalidError):
        await resources.apply(vs(name, namespace=namespace))


async def test_unknown_kind_and_namespace_are_not_found(resources: ResourceStore) -> None:
    with pytest.raises(NotFoundError):
        await resources.apply({"apiVersion": "example.com/v1", "kind": "Widget",
                               "metadata": {"name": "w"}})
    with pytest.raises(NotFoundError) as caught:
        await resources.apply(vs(namespace="nowhere"))
    assert 'namespaces "nowhere" not found' in caught.value.message


async def test_unreachable_rule_is_a_warning_not_an_error(resources: ResourceStore) -> None:
    document = vs()
    document["spec"]["http"].append({"route": [{"destination": {"host": "reviews"}}]})
    applied = await resources.apply(document)
    assert any("IST0130" in w for w in applied.warnings)


async def test_get_list_delete(resources: ResourceStore) -> None:
    assert VS is not None
    await resources.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    await resources.apply(vs("a", labels={"app": "a", "tier": "web"}))
    await resources.apply(vs("b", labels={"app": "b"}))
    await resources.apply(vs("c", labels={"app": "c", "tier": "db"}, namespace="shop"))
    assert (await resources.get(VS, "default", "a"))["metadata"]["labels"]["app"] == "a"
    everywhere, revision = await resources.list(VS, None)
    assert [o["metadata"]["name"] for o in everywhere] == ["a", "b", "c"]
    assert revision == await resources.store.revision()
    in_default, _ = await resources.list(VS, "default")
    assert [o["metadata"]["name"] for o in in_default] == ["a", "b"]
    for selector, names in [("app=a", ["a"]), ("tier", ["a", "c"]), ("!tier", ["b"]),
                            ("tier!=web", ["b", "c"]), ("app in (a,c),tier notin (db)", ["a"])]:
        found, _ = await resources.list(VS, None, parse_selector(selector))
        assert [o["metadata"]["name"] for o in found] == names, selector
    deleted = await resources.delete(VS, "default", "a")
    assert deleted["metadata"]["name"] == "a"
    with pytest.raises(NotFoundError):
        await resources.get(VS, "default", "a")
    with pytest.raises(NotFoundError):
        await resources.delete(VS, "default", "a")


async def test_deleting_a_namespace_deletes_its_objects(resources: ResourceStore) -> None:
    assert VS is not None
    namespace = lookup("ns")[0]
    await resources.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    await resources.apply(vs("c", namespace="shop"))
    await resources.delete(namespace, "", "shop")
    assert (await resources.list(VS, "shop"))[0] == []
    with pytest.raises(ForbiddenError):
        await resources.delete(namespace, "", "default")


async def test_watch_from_a_resource_version(resources: ResourceStore) -> None:
    assert VS is not None
    start = (await resources.apply(vs("before"))).object["metadata"]["resourceVersion"]
    events: list[tuple[str, str, str]] = []

    async def consume() -> None:
        async for event in resources.watch(VS, "default", resource_version=start,
                                           selector=parse_selector("!skip")):
            meta = event.object["metadata"]
            events.append((event.type, meta["name"], meta["resourceVersion"]))
            if len(events) == 4:
                return

    task = asyncio.create_task(consume())
    created = await resources.apply(vs("x"))
    await resources.apply(vs("skipped", labels={"skip": "1"}))
    modified = await resources.apply(vs("x", subset="v2"))
    await resources.apply(vs("x", subset="v2"))  # unchanged: no event
    gone = await resources.delete(VS, "default", "before")
    await resources.apply(vs("y"))
    await asyncio.wait_for(task, 5)
    deleted_at = str(await resources.store.revision() - 1)
    assert events == [
        ("ADDED", "x", created.object["metadata"]["resourceVersion"]),
        ("MODIFIED", "x", modified.object["metadata"]["resourceVersion"]),
        ("DELETED", "before", deleted_at),
        ("ADDED", "y", str(await resources.store.revision())),
    ]
    assert gone["metadata"]["name"] == "before"


async def test_watch_without_version_lists_first(resources: ResourceStore) -> None:
    assert VS is not None
    await resources.apply(vs("a"))
    stream = resources.watch(VS, None)
    first = await anext(stream)
    assert (first.type, first.object["metadata"]["name"]) == ("ADDED", "a")
    await resources.apply(vs("a", subset="v9"))
    second = await asyncio.wait_for(anext(stream), 5)
    assert (second.type, second.object["metadata"]["generation"]) == ("MODIFIED", 2)
    await stream.aclose()
