"""The x-envoy-peer-metadata codec: base64 of a google.protobuf.Struct with Istio's keys
(istio/proxy metadata_object convertWorkloadMetadataToStruct / convertStructToWorkloadMetadata),
checked against protobuf's own Struct, the type an Istio sidecar parses it with."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from remora.telemetry.peer import PeerMetadata, decode, encode

struct_pb2 = pytest.importorskip("google.protobuf.struct_pb2")

PRODUCT = PeerMetadata(
    workload="product-v1", namespace="default", cluster="Kubernetes",
    labels={"app": "product", "version": "v1", "service.istio.io/canonical-name": "product",
            "service.istio.io/canonical-revision": "v1"},
)  # fmt: skip


def _struct_value(fields: dict[str, object]) -> str:
    message = struct_pb2.Struct()
    message.update(fields)
    return base64.b64encode(message.SerializeToString(deterministic=True)).decode()


def test_encoding_is_what_protobuf_writes_for_istios_struct() -> None:
    """Only Istio's four labels travel; the bytes are protobuf's deterministic encoding."""
    value = encode(replace(PRODUCT, labels={**PRODUCT.labels, "team": "shop"}))
    assert value == _struct_value({
        "WORKLOAD_NAME": "product-v1", "NAMESPACE": "default", "CLUSTER_ID": "Kubernetes",
        "LABELS": dict(PRODUCT.labels),
    })  # fmt: skip
    assert decode(value) == PRODUCT


def test_decoding_a_struct_an_istio_sidecar_sends() -> None:
    """Fields Remora does not read (NAME, OWNER, numbers, lists, bools) are skipped; base64
    padding may be left out (Istio decodes without it)."""
    value = _struct_value({
        "NAME": "product-v1-7d9f-abcde", "OWNER": "kubernetes://apis/apps/v1/namespaces/shop/"
        "deployments/product-v1", "WORKLOAD_NAME": "product-v1", "NAMESPACE": "shop",
        "LABELS": {"app": "product", "version": "v1"}, "INSTANCE_IPS": ["10.0.0.1"],
        "MESH_ID": 1.5, "ENABLED": True,
    })  # fmt: skip
    assert decode(value.rstrip("=")) == PeerMetadata(
        workload="product-v1", namespace="shop", labels={"app": "product", "version": "v1"})


@pytest.mark.parametrize("value", ["not base64!", "AAAA", base64.b64encode(b"\x0a\x05ab").decode()])
def test_what_is_not_a_struct_is_no_peer(value: str) -> None:
    assert decode(value) is None
