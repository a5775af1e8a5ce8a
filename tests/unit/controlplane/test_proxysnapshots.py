"""The control plane compiles once per class of proxies that compile alike, and each proxy still
gets a snapshot of its own: its identity, and whatever a resource selects it for."""

from __future__ import annotations

import json
from typing import Any

import pytest

from remora.controlplane import proxysnapshots
from remora.controlplane.proxysnapshots import ProxySnapshots
from remora.mesh.encoding import SnapshotDecoder
from remora.mesh.snapshot import Snapshot
from remora.mesh.wire import View, apply_message, document_key, encode_document


def doc(kind: str, name: str, spec: dict[str, Any], api: str = "networking.istio.io/v1",
        ) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "default"},
            "spec": spec}


SERVICE = doc("Service", "web", {"selector": {"app": "web"},
                                 "ports": [{"name": "http", "port": 80}]}, api="v1")
# a DestinationRule only for the workloads labelled app=client-1 (Istio's workloadSelector)
ONLY_CLIENT_1 = doc("DestinationRule", "web-for-client-1", {
    "host": "web", "workloadSelector": {"matchLabels": {"app": "client-1"}},
    "trafficPolicy": {"connectionPool": {"http": {"http1MaxPendingRequests": 3}}}})


def view(*documents: dict[str, Any]) -> View:
    return View.of((document_key(d), encode_document(d)) for d in documents)


def node(name: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"sidecar~{name}", "mode": "sidecar", "namespace": "default",
            "labels": {"app": name}, "workload": name} | extra


def snapshot_of(snapshots: ProxySnapshots, resources: View, proxy: dict[str, Any]) -> Snapshot:
    compiled = snapshots.compiled(resources, proxy).view
    assert compiled is not None
    sections, version = apply_message({}, "", json.loads(compiled.snapshot_line())) or ({}, "")
    return SnapshotDecoder().decode(sections, version=version)


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The node of every compile the control plane runs."""
    seen: list[str] = []
    real = proxysnapshots.compile_parsed

    def counted(*args: Any, **kwargs: Any) -> Snapshot:
        seen.append(kwargs["identity"].workload)
        return real(*args, **kwargs)

    monkeypatch.setattr(proxysnapshots, "compile_parsed", counted)
    return seen


def pending_limit(snapshot: Snapshot) -> int:
    policy = snapshot.clusters["outbound|80||web.default.svc.cluster.local"].traffic_policy
    return policy.limits.max_pending if policy is not None else -1


def test_sidecars_no_resource_tells_apart_share_one_compile(compiles: list[str]) -> None:
    snapshots, resources = ProxySnapshots(), view(SERVICE)
    one = snapshot_of(snapshots, resources, node("client-1"))
    two = snapshot_of(snapshots, resources, node("client-2"))
    assert compiles == ["client-1"]
    # each still runs as itself: metrics and peer metadata come from its identity
    assert one.identity.labels == {"app": "client-1"} and one.identity.workload == "client-1"
    assert two.identity.labels == {"app": "client-2"} and two.identity.workload == "client-2"
    assert one.clusters.keys() == two.clusters.keys()


def test_a_resource_that_selects_a_proxy_gives_it_its_own_compile(compiles: list[str]) -> None:
    snapshots, resources = ProxySnapshots(), view(SERVICE, ONLY_CLIENT_1)
    one = snapshot_of(snapshots, resources, node("client-1"))
    two = snapshot_of(snapshots, resources, node("client-2"))
    three = snapshot_of(snapshots, resources, node("client-3"))
    assert compiles == ["client-1", "client-2"]  # client-3 compiles as client-2 does
    assert pending_limit(one) == 3
    assert pending_limit(two) == pending_limit(three) != 3


def test_a_proxy_with_an_app_port_compiles_as_its_own_workload(compiles: list[str]) -> None:
    snapshots, resources = ProxySnapshots(), view(SERVICE)
    web_1 = snapshot_of(snapshots, resources, node("web-1", appPort=8081, labels={"app": "web"}))
    web_2 = snapshot_of(snapshots, resources, node("web-2", appPort=8081, labels={"app": "web"}))
    assert compiles == ["web-1", "web-2"]
    (endpoint,) = web_2.clusters["inbound|8081||"].endpoints
    assert endpoint.workload == "web-2" and web_1.identity.workload == "web-1"


def test_a_new_view_compiles_again_and_old_ones_are_forgotten(compiles: list[str]) -> None:
    snapshots, first, second = ProxySnapshots(), view(SERVICE), view(SERVICE, ONLY_CLIENT_1)
    snapshot_of(snapshots, first, node("client-1"))
    snapshots.keep_only([second])
    assert snapshots.cached(first, node("client-1")) is None
    assert pending_limit(snapshot_of(snapshots, second, node("client-1"))) == 3
    assert compiles == ["client-1", "client-1"]
