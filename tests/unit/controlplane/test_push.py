"""The push loop: a proxy gets its view at once, a change reaches it after the debounce, an
unchanged view is not sent again, ACK/NACK are recorded (istiod's push, on our wire format)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from remora.controlplane.push import Entry, PushServer, encode, select
from remora.mesh.encoding import SnapshotDecoder
from remora.mesh.wire import apply_message
from remora.registry.store.sqlite import SqliteStore

pytestmark = [pytest.mark.timeout(30), pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

NODE = {"id": "sidecar~127.0.0.1~productpage.default", "mode": "sidecar", "namespace": "default",
        "labels": {"app": "productpage"}}


def doc(kind: str, name: str, spec: dict[str, Any], namespace: str = "default",
        api: str = "networking.istio.io/v1") -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace},
            "spec": spec}


SERVICE = doc("Service", "reviews", {"selector": {"app": "reviews"},
                                     "ports": [{"name": "http", "port": 9080}]}, api="v1")
VS = doc("VirtualService", "reviews", {"hosts": ["reviews"], "http": [
    {"route": [{"destination": {"host": "reviews"}}]}]})


async def put(store: SqliteStore, document: dict[str, Any]) -> None:
    meta = document["metadata"]
    await store.put(f"/resources/x/{document['kind']}/{meta['namespace']}/{meta['name']}",
                    json.dumps(document).encode())


async def next_message(stream: AsyncIterator[bytes]) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(anext(stream), 5))
        if message["type"] != "ping":
            return message  # type: ignore[no-any-return]


async def test_subscriber_gets_its_view_then_each_change(tmp_path: Path) -> None:
    store = await SqliteStore(tmp_path / "db").open()
    await put(store, SERVICE)
    push = PushServer(store, debounce=0.05)
    await push.start()
    try:
        stream = push.subscribe(NODE)
        first = await next_message(stream)
        assert first["type"] == "snapshot"
        # the proxy's snapshot, compiled here: a section per listener, route table, cluster
        sections = {d["section"] for d in first["documents"]}
        assert {"proxy", "routes/9080",
                "cluster/outbound|9080||reviews.default.svc.cluster.local"} <= sections
        documents, received = apply_message({}, "", first) or ({}, "")
        await put(store, VS)
        second = await next_message(stream)
        # only what changed travels: a delta on the snapshot the proxy has (the route table
        # the VirtualService now owns, not the cluster)
        assert second["type"] == "delta"
        assert second["base"] == first["version"]
        assert [d["section"] for d in second["put"]] == ["routes/9080"]
        documents, received = apply_message(documents, received, second) or ({}, "")
        assert received == second["version"] != first["version"]
        # the sections decode to the snapshot the proxy will run, no compile there
        snapshot = SnapshotDecoder().decode(documents, version=received)
        table = snapshot.outbound_table(9080)
        assert table is not None
        assert table.virtual_hosts[0].routes[0].virtual_service == "default/reviews"
        assert push.ack(NODE["id"], second["version"], None)
        assert push.status()[0]["acked"] == second["version"]
        assert push.ack(NODE["id"], "bad", "compile failed")
        assert push.status()[0]["error"] == "compile failed"
        assert not push.ack("nobody", "v", None)
        await stream.aclose()
        assert push.status() == []
    finally:
        await push.close()
        await store.close()


async def test_a_change_that_does_not_concern_the_proxy_is_not_pushed(tmp_path: Path) -> None:
    store = await SqliteStore(tmp_path / "db").open()
    push = PushServer(store, debounce=0.05)
    await push.start()
    try:
        stream = push.subscribe(NODE)
        first = await next_message(stream)
        # a ConfigMap is not something a proxy compiles: same view, no new version
        await put(store, doc("ConfigMap", "settings", {}, api="v1") | {"data": {"a": "b"}})
        await put(store, SERVICE)
        second = await next_message(stream)
        assert second["version"] != first["version"]
        assert "cluster/outbound|9080||reviews.default.svc.cluster.local" in {
            d["section"] for d in second["put"]}
        assert second["delete"] == []
        await stream.aclose()
    finally:
        await push.close()
        await store.close()


def entry(document: dict[str, Any]) -> Entry:
    return encode([document])[0]


def test_gateways_get_their_namespace_secrets_sidecars_none() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "tls", "namespace": "istio-system"}, "data": {}}
    sidecar = select(("sidecar", ""), [entry(secret), entry(VS)])
    assert list(sidecar.documents) == ["VirtualService/default/reviews"]
    gateway = select(("gateway", "istio-system"), [entry(secret)])
    assert list(gateway.documents) == ["Secret/istio-system/tls"]
    # the version is the content: equal views, equal versions (on any replica)
    assert select(("sidecar", ""), [entry(VS)]).version == sidecar.version
