"""Istio's peer metadata headers: who is on the other side of a request, for telemetry.

Theory of operation (istio/proxy `peer_metadata` filter, IstioHeaders method; pilot configures
sidecars with it): the client sidecar sends `x-envoy-peer-metadata-id` (its node id) and
`x-envoy-peer-metadata`, base64 of a serialized `google.protobuf.Struct` holding NAMESPACE,
WORKLOAD_NAME, CLUSTER_ID and LABELS (app, version, canonical name and revision), on every
request to a mesh cluster; the server sidecar reads them for its `source_*` labels, removes them
before the app sees them, and answers with its own, which the client removes in turn.

This module is the codec only: no I/O, and a protobuf wire reader/writer for the two value
kinds Istio writes (string and nested Struct); anything else in a Struct is skipped.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field

PEER_METADATA = "x-envoy-peer-metadata"
PEER_METADATA_ID = "x-envoy-peer-metadata-id"
HEADERS = frozenset({PEER_METADATA, PEER_METADATA_ID})
# The labels Istio's metadata object carries (istio/proxy extensions/common/metadata_object.h).
LABEL_KEYS = ("service.istio.io/canonical-name", "service.istio.io/canonical-revision",
              "app", "version")  # fmt: skip

_STRUCT_FIELDS = 1  # Struct.fields: map<string, Value>, entries {1: key, 2: value}
_STRING_VALUE = 3  # Value.string_value
_STRUCT_VALUE = 5  # Value.struct_value
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True, slots=True)
class PeerMetadata:
    """One side of a request as its peer describes itself."""

    workload: str
    namespace: str
    cluster: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


def encode(peer: PeerMetadata) -> str:
    """The `x-envoy-peer-metadata` value: fields in sorted order, as Istio's deterministic
    serialisation writes them; empty ones left out."""
    labels = {key: peer.labels[key] for key in LABEL_KEYS if peer.labels.get(key)}
    struct: dict[str, str | dict[str, str]] = {
        "CLUSTER_ID": peer.cluster, "LABELS": labels, "NAMESPACE": peer.namespace,
        "WORKLOAD_NAME": peer.workload,
    }  # fmt: skip
    return base64.b64encode(_struct(struct)).decode("ascii")


def decode(value: str) -> PeerMetadata | None:
    """The peer a header value describes; None when it is not base64 of a Struct."""
    try:
        fields = _read_struct(base64.b64decode(value + "=" * (-len(value) % 4), validate=True))
    except (binascii.Error, ValueError, IndexError):
        return None
    labels = fields.get("LABELS")
    workload, namespace, cluster = (
        fields.get(key) for key in ("WORKLOAD_NAME", "NAMESPACE", "CLUSTER_ID"))
    return PeerMetadata(
        workload=workload if isinstance(workload, str) else "",
        namespace=namespace if isinstance(namespace, str) else "",
        cluster=cluster if isinstance(cluster, str) else "",
        labels={k: v for k, v in labels.items() if isinstance(v, str)}
        if isinstance(labels, dict) else {},
    )  # fmt: skip


# protobuf wire format (protobuf.dev/programming-guides/encoding) ----------------------------
def _varint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _length_delimited(field_number: int, payload: bytes) -> bytes:
    return _varint(field_number << 3 | _LENGTH) + _varint(len(payload)) + payload


def _struct(fields: Mapping[str, str | Mapping[str, str]]) -> bytes:
    out = bytearray()
    for key in sorted(fields):
        value = fields[key]
        if not value:
            continue
        encoded = (_length_delimited(_STRING_VALUE, value.encode()) if isinstance(value, str)
                   else _length_delimited(_STRUCT_VALUE, _struct(value)))
        entry = _length_delimited(1, key.encode()) + _length_delimited(2, encoded)
        out += _length_delimited(_STRUCT_FIELDS, entry)
    return bytes(out)


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    number = shift = 0
    while True:
        byte = data[position]
        position += 1
        number |= (byte & 0x7F) << shift
        if byte < 0x80:
            return number, position
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data: bytes) -> list[tuple[int, bytes]]:
    """The length-delimited fields of a message, in order; other wire types skipped."""
    out: list[tuple[int, bytes]] = []
    position = 0
    while position < len(data):
        tag, position = _read_varint(data, position)
        wire = tag & 7
        if wire == _VARINT:
            _, position = _read_varint(data, position)
        elif wire == _FIXED64:
            position += 8
        elif wire == _FIXED32:
            position += 4
        elif wire == _LENGTH:
            size, position = _read_varint(data, position)
            if position + size > len(data):
                raise ValueError("truncated field")
            out.append((tag >> 3, data[position:position + size]))
            position += size
        else:
            raise ValueError(f"wire type {wire}")
    if position != len(data):
        raise ValueError("truncated field")
    return out


def _read_struct(data: bytes) -> dict[str, object]:
    """Struct fields holding a string or a Struct (as a dict); other kinds left out."""
    out: dict[str, object] = {}
    for number, entry in _fields(data):
        if number != _STRUCT_FIELDS:
            continue
        parts = dict(_fields(entry))
        key = parts.get(1, b"").decode()
        value = dict(_fields(parts.get(2, b"")))
        if _STRING_VALUE in value:
            out[key] = value[_STRING_VALUE].decode()
        elif _STRUCT_VALUE in value:
            out[key] = _read_struct(value[_STRUCT_VALUE])
    return out
