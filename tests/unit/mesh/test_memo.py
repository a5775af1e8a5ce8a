"""A compile that borrows from earlier ones (remora.mesh.memo) gives exactly what a fresh
compile gives, whatever changed in between; and it does borrow what did not change."""

from __future__ import annotations

from typing import Any

import pytest

from remora.api.resource import Resource
from remora.mesh.compile import compile_snapshot
from remora.mesh.documents import parse_document
from remora.mesh.memo import CompileMemo
from remora.mesh.snapshot import ListenerPorts, ProxyIdentity, Snapshot

SIDECAR = ProxyIdentity(mode="sidecar", labels={"app": "client"})
WEB = "outbound|80||web.default.svc.cluster.local"


def doc(kind: str, name: str, spec: dict[str, Any], api: str = "networking.istio.io/v1",
        ) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "default"},
            "spec": spec}


def parsed(document: dict[str, Any]) -> Resource:
    resource = parse_document(document)
    assert not isinstance(resource, list), resource
    return resource


def entry(name: str, address: str, **labels: str) -> Resource:
    return parsed(doc("WorkloadEntry", name, {"address": address, "ports": {"http": 8080},
                                              "labels": {"app": "web", **labels}}))


SERVICE = parsed(doc("Service", "web", {"selector": {"app": "web"},
                                        "ports": [{"name": "http", "port": 80}]}, api="v1"))
SUBSETS = parsed(doc("DestinationRule", "web", {"host": "web", "subsets": [
    {"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]}))
ONE, TWO = entry("web-1", "10.0.0.1", version="v1"), entry("web-2", "10.0.0.2", version="v2")


def compiled(resources: list[Resource], memo: CompileMemo | None = None) -> Snapshot:
    return compile_snapshot(resources, SIDECAR, version="1", listener_ports=ListenerPorts(),
                            memo=memo)


@pytest.mark.parametrize("after", [
    [SERVICE, SUBSETS, ONE, TWO, entry("web-3", "10.0.0.3", version="v1")],  # one more
    [SERVICE, SUBSETS, ONE],  # one less
    [SERVICE, SUBSETS, ONE, entry("web-2", "10.0.0.2", version="v1")],  # relabelled
    [SERVICE, SUBSETS, ONE, entry("web-2", "10.0.0.9", version="v2")],  # moved
    [SERVICE, ONE, TWO],  # the subsets gone
    [parsed(doc("Service", "web", {"selector": {"app": "web"},
                                   "ports": [{"name": "http", "port": 80, "targetPort": 9090}]},
                api="v1")), SUBSETS, ONE, TWO],  # the Service changed
    [SERVICE, SUBSETS, TWO, ONE],  # reordered
], ids=["added", "removed", "relabelled", "moved", "no-subsets", "service", "reordered"])
def test_a_compile_with_a_memo_is_the_fresh_compile(after: list[Resource]) -> None:
    memo = CompileMemo()
    compiled([SERVICE, SUBSETS, ONE, TWO], memo)
    assert compiled(after, memo).to_dict() == compiled(after).to_dict()


def test_what_did_not_change_is_borrowed() -> None:
    memo = CompileMemo()
    before = compiled([SERVICE, SUBSETS, ONE, TWO], memo)
    route = parsed(doc("VirtualService", "web", {"hosts": ["web"], "http": [
        {"timeout": "2s", "route": [{"destination": {"host": "web", "subset": "v1"}}]}]}))
    after = compiled([SERVICE, SUBSETS, ONE, TWO, route], memo)
    for name in (WEB, "outbound|80|v1|web.default.svc.cluster.local"):
        assert after.clusters[name].endpoints is before.clusters[name].endpoints
