"""A compiled snapshot on the wire (remora.mesh.encoding): what the control plane compiles is
what the proxy runs, sections carry plain data only, and a section cannot name code."""

from __future__ import annotations

import json
from typing import Any

import pytest

from remora.mesh.documents import compile_documents
from remora.mesh.encoding import (
    SectionError,
    SnapshotDecoder,
    decode_value,
    encode_value,
    snapshot_sections,
)
from remora.mesh.snapshot import Endpoint, ListenerPorts, ListenerTls, ProxyIdentity, Snapshot
from remora.mesh.wire import View, apply_message
from remora.policy.flags import ResponseFlag


def doc(kind: str, name: str, spec: dict[str, Any], api: str = "networking.istio.io/v1",
        ) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "default"},
            "spec": spec}


SERVICE = doc("Service", "web", {"selector": {"app": "web"},
                                 "ports": [{"name": "http", "port": 80}]}, api="v1")
ENTRY = doc("WorkloadEntry", "web-1", {"address": "127.0.0.9", "labels": {"app": "web"},
                                       "ports": {"http": 8080}})
ROUTES = doc("VirtualService", "web", {"hosts": ["web"], "http": [
    {"match": [{"uri": {"regex": "/v[0-9]+/.*"}, "headers": {"x-user": {"exact": "ann"}}}],
     "retries": {"attempts": 4, "retryOn": "5xx,reset"},
     "headers": {"response": {"set": {"x-served": "remora"}}},
     "route": [{"destination": {"host": "web"}}]},
    {"fault": {"abort": {"httpStatus": 418, "percentage": {"value": 100}}},
     "route": [{"destination": {"host": "web"}}]}]})
POLICY = doc("DestinationRule", "web", {"host": "web", "trafficPolicy": {
    "connectionPool": {"http": {"http1MaxPendingRequests": 7}},
    "outlierDetection": {"consecutive5xxErrors": 3, "interval": "2s"},
    "loadBalancer": {"consistentHash": {"httpHeaderName": "x-user"}}}})


def compiled(*documents: dict[str, Any]) -> Snapshot:
    return compile_documents(list(documents), version="1",
                             identity=ProxyIdentity(mode="sidecar", labels={"app": "shop"}),
                             ports=ListenerPorts())


def through_the_wire(snapshot: Snapshot) -> Snapshot:
    view = View.of(snapshot_sections(snapshot))
    sections, version = apply_message({}, "", json.loads(view.snapshot_line())) or ({}, "")
    return SnapshotDecoder().decode(sections, version=version)


def test_the_snapshot_the_proxy_decodes_is_the_one_the_control_plane_compiled() -> None:
    sent = compiled(SERVICE, ENTRY, ROUTES, POLICY)
    received = through_the_wire(sent)
    assert received.to_dict() == sent.to_dict() | {"version": received.version}
    cluster = received.clusters["outbound|80||web.default.svc.cluster.local"]
    assert [(e.address, e.port) for e in cluster.endpoints] == [("127.0.0.9", 8080)]
    table = received.outbound_table(80)
    assert table is not None
    assert table.find("web") is not None


def test_equal_snapshots_give_equal_versions_and_one_change_one_section() -> None:
    before = View.of(snapshot_sections(compiled(SERVICE, ENTRY)))
    assert View.of(snapshot_sections(compiled(SERVICE, ENTRY))).version == before.version
    after = View.of(snapshot_sections(compiled(SERVICE, ENTRY, POLICY)))
    delta = json.loads(after.delta_line(before))
    # the DestinationRule changes the cluster only: that section alone travels
    assert [d["section"] for d in delta["put"]] == [
        "cluster/outbound|80||web.default.svc.cluster.local"]


def test_a_delta_decodes_only_what_changed() -> None:
    decoder = SnapshotDecoder()
    first = View.of(snapshot_sections(compiled(SERVICE, ENTRY)))
    sections, version = apply_message({}, "", json.loads(first.snapshot_line())) or ({}, "")
    one = decoder.decode(sections, version=version)
    second = View.of(snapshot_sections(compiled(SERVICE, ENTRY, POLICY)))
    sections, version = apply_message(sections, version,
                                      json.loads(second.delta_line(first))) or ({}, "")
    two = decoder.decode(sections, version=version)
    assert two.route_tables["80"] is one.route_tables["80"]  # unchanged: not decoded again
    name = "outbound|80||web.default.svc.cluster.local"
    assert two.clusters[name] is not one.clusters[name]


def test_plain_values_round_trip() -> None:
    identity = ProxyIdentity(mode="gateway", labels={"istio": "ingressgateway"}, app_port=8080)
    tls = ListenerTls(cert_pem=b"-----BEGIN CERTIFICATE-----\n\x00\xff", key_pem=b"k")
    for value in (identity, tls, ResponseFlag.UH, frozenset({"a", "b"}),
                  (Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 81, weight=3))):
        assert decode_value(json.loads(json.dumps(encode_value(value)))) == value


def test_defaults_are_left_out() -> None:
    assert encode_value(Endpoint("10.0.0.1", 80)) == {
        "@": "mesh.snapshot:Endpoint", "address": "10.0.0.1", "port": 80}


@pytest.mark.parametrize("data", [
    {"@": "cli.main:main"},  # outside remora.mesh and remora.policy
    {"@": "os:system"},
    {"@": "mesh.snapshot:frozen_labels"},  # a function, not a type
    {"@": "mesh.snapshot:Nothing"},
    {"@": "mesh.snapshot:Endpoint", "address": "a"},  # a field missing
    {"@e": "mesh.snapshot:Endpoint", "v": 1},  # not an enum
    {"address": "a"},  # no type at all
])
def test_a_section_cannot_name_anything_but_a_snapshot_type(data: dict[str, Any]) -> None:
    with pytest.raises(SectionError):
        decode_value(data)


def test_what_is_not_plain_data_is_refused_when_encoding() -> None:
    with pytest.raises(TypeError, match="not plain data"):
        encode_value({"a": lambda: None})


def test_sections_without_the_proxy_section_or_a_listener_do_not_decode() -> None:
    view = View.of(snapshot_sections(compiled(SERVICE)))
    sections, version = apply_message({}, "", json.loads(view.snapshot_line())) or ({}, "")
    for missing in ("proxy", next(k for k in sections if k.startswith("listener/"))):
        with pytest.raises(SectionError):
            SnapshotDecoder().decode({k: v for k, v in sections.items() if k != missing},
                                     version=version)
