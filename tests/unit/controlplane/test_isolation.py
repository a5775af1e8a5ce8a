"""Issue 11 item 3, through the push: a WorkloadEntry that cannot compile (written straight into
the store, past every check at the door) does not freeze the mesh. The running proxy follows a
later VirtualService change, a new proxy gets a snapshot it can run, and the skipped resource
shows in the ACK, on GET /api/remora/v1/proxies and in `remora proxy-status`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from remora.cli.proxystatus import table
from remora.controlplane.api_push import answer_ack
from remora.controlplane.push import PushServer
from remora.mesh.encoding import SnapshotDecoder
from remora.mesh.snapshot import Snapshot
from remora.mesh.wire import Document, ack_body, apply_message
from remora.registry.store.sqlite import SqliteStore

pytestmark = [pytest.mark.timeout(30), pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def doc(kind: str, name: str, spec: dict[str, Any], api: str = "networking.istio.io/v1",
        ) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "default"},
            "spec": spec}


SERVICE = doc("Service", "web", {"selector": {"app": "web"},
                                 "ports": [{"name": "http", "port": 80}]}, api="v1")
BAD = doc("WorkloadEntry", "web-bad-host", {"address": "bad_host!", "labels": {"app": "web"},
                                            "ports": {"http": 8080}})


def route(prefix: str) -> dict[str, Any]:
    return doc("VirtualService", "web", {"hosts": ["web"], "http": [
        {"match": [{"uri": {"prefix": prefix}}], "route": [{"destination": {"host": "web"}}]}]})


async def put(store: SqliteStore, document: dict[str, Any]) -> None:
    meta = document["metadata"]
    await store.put(f"/resources/x/{document['kind']}/{meta['namespace']}/{meta['name']}",
                    json.dumps(document).encode())


class FakeProxy:
    """What remora.proxy.discovery does with a stream: apply each message, decode the
    compiled snapshot, ACK."""

    def __init__(self, push: PushServer, name: str) -> None:
        self.push = push
        self.node = {"id": name, "mode": "sidecar", "namespace": "default"}
        self.stream: AsyncIterator[bytes] = push.subscribe(self.node)
        self.documents: dict[str, Document] = {}
        self.received = ""
        self.decoder = SnapshotDecoder()

    async def next_snapshot(self) -> Snapshot:
        while True:
            message = json.loads(await asyncio.wait_for(anext(self.stream), 5))
            applied = apply_message(self.documents, self.received, message)
            if applied is not None:
                break
        self.documents, self.received = applied
        snapshot = self.decoder.decode(self.documents, version=self.received)
        body = ack_body(self.node["id"], self.received, error=None, skipped=snapshot.skipped)
        assert answer_ack(self.push, json.dumps(body).encode()) == (200, b'{"accepted":true}')
        return snapshot


def prefix(snapshot: Snapshot) -> str:
    vhost, _allow_any = snapshot.route_tables["80"].virtual_hosts  # the service's, unknown hosts
    uri = vhost.routes[0].match_dump.get("uri")
    return str(uri.get("prefix")) if uri else ""


async def test_a_bad_workload_entry_is_skipped_and_every_other_change_arrives(
        tmp_path: Path) -> None:
    store = await SqliteStore(tmp_path / "db").open()
    for document in (SERVICE, BAD, route("/v1")):
        await put(store, document)
    push = PushServer(store, debounce=0.01)
    await push.start()
    try:
        running = FakeProxy(push, "sidecar~a")
        assert prefix(await running.next_snapshot()) == "/v1"
        await put(store, route("/v2"))
        assert prefix(await running.next_snapshot()) == "/v2"  # the change reaches it
        newcomer = FakeProxy(push, "sidecar~b")
        assert prefix(await newcomer.next_snapshot()) == "/v2"  # a new proxy starts
        status = {p["id"]: p for p in push.status()}
        assert all(p["synced"] and p["error"] is None for p in status.values())
        (skipped,) = status["sidecar~a"]["resourceErrors"]
        assert skipped["kind"] == "WorkloadEntry" and skipped["name"] == "web-bad-host"
        assert "spec.address" in skipped["message"]
        shown = table(list(status.values()))
        assert "SYNCED" in shown
        assert "sidecar~b: skipped WorkloadEntry default/web-bad-host: spec.address:" in shown
    finally:
        await push.close()
        await store.close()


def test_an_ack_with_malformed_resource_errors_is_400() -> None:
    push = PushServer.__new__(PushServer)
    body = {"node": "n", "version": "v", "error": None, "resourceErrors": [{"kind": 1}]}
    status, answer = answer_ack(push, json.dumps(body).encode())
    assert status == 400 and b"resourceErrors" in answer
