"""One bad resource never blocks the rest (issue 11 item 3): what does not parse or compile is
skipped for the proxy with the reason, and every other resource still compiles."""

from __future__ import annotations

from typing import Any

import pytest

from remora.mesh import routes
from remora.mesh.documents import compile_documents
from remora.mesh.snapshot import ListenerPorts, ProxyIdentity, SkippedResource, Snapshot

SIDECAR = ProxyIdentity(mode="sidecar", labels={"app": "productpage"})


def doc(kind: str, name: str, spec: dict[str, Any], api: str = "networking.istio.io/v1",
        ) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "default"},
            "spec": spec}


SERVICE = doc("Service", "web", {"selector": {"app": "web"},
                                 "ports": [{"name": "http", "port": 80}]}, api="v1")
GOOD = doc("WorkloadEntry", "web-1", {"address": "127.0.0.1", "labels": {"app": "web"},
                                      "ports": {"http": 8080}})
BAD = doc("WorkloadEntry", "web-bad", {"address": "bad_host!", "labels": {"app": "web"},
                                       "ports": {"http": 8080}})


def vs(name: str, prefix: str) -> dict[str, Any]:
    return doc("VirtualService", name, {"hosts": ["web"], "http": [
        {"match": [{"uri": {"prefix": prefix}}], "route": [{"destination": {"host": "web"}}]}]})


def compiled(*documents: dict[str, Any]) -> Snapshot:
    return compile_documents(list(documents), version="1", identity=SIDECAR,
                             ports=ListenerPorts())


def prefixes(snapshot: Snapshot) -> list[str]:
    vhost = next(v for v in snapshot.route_tables["80"].virtual_hosts
                 if v.name.startswith("web."))
    return [str(route.match_dump["uri"].get("prefix")) for route in vhost.routes
            if "uri" in route.match_dump]


def test_an_instance_with_a_bad_address_is_skipped_and_the_rest_compiles() -> None:
    snapshot = compiled(SERVICE, GOOD, BAD, vs("web", "/v2"))
    assert prefixes(snapshot) == ["/v2"]
    endpoints = snapshot.clusters["outbound|80||web.default.svc.cluster.local"].endpoints
    assert [e.address for e in endpoints] == ["127.0.0.1"]
    (skipped,) = snapshot.skipped
    assert (skipped.kind, skipped.namespace, skipped.name) == ("WorkloadEntry", "default",
                                                              "web-bad")
    assert "spec.address" in skipped.message and "bad_host!" in skipped.message
    assert "-:1" not in skipped.message  # a pushed document has no file to point at


def test_a_resource_that_fails_to_compile_is_skipped_the_others_route(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A compile failure (a bug, or a value the model let through) in one VirtualService drops
    that VirtualService for this proxy; the other one still routes."""
    real = routes.RouteBuilder._route

    def failing(self: routes.RouteBuilder, item: routes.Rule, block: Any, port: int) -> Any:
        if item.virtual_service == "default/broken":
            raise ValueError("boom")
        return real(self, item, block, port)

    monkeypatch.setattr(routes.RouteBuilder, "_route", failing)
    other = doc("VirtualService", "other", {"hosts": ["other.example.com"], "http": [
        {"route": [{"destination": {"host": "web"}}]}]})
    snapshot = compiled(SERVICE, GOOD, vs("broken", "/broken"), other)
    assert snapshot.skipped == (SkippedResource("VirtualService", "default", "broken",
                                                "cannot be compiled: boom"),)
    assert prefixes(snapshot) == []  # web falls back to its default route
    assert "other.example.com:80" in {v.name for v in snapshot.route_tables["80"].virtual_hosts}


def test_a_document_of_an_unknown_shape_is_named_by_kind_and_name() -> None:
    broken = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
              "metadata": {"name": "typo", "namespace": "default"}, "spec": {"hostz": ["web"]}}
    snapshot = compiled(SERVICE, GOOD, broken)
    assert [s.subject for s in snapshot.skipped] == ["VirtualService default/typo"]
    assert "spec.hostz" in snapshot.skipped[0].message
