"""A compiled snapshot as JSON sections, so a proxy receives its configuration compiled.

The control plane compiles each proxy's Snapshot (what istiod does per proxy) and sends it as
sections, one per listener, route table and cluster, plus one for the rest ("proxy"): a change
of one cluster's endpoints travels as that section alone (remora.mesh.wire deltas), as Envoy's
CDS/EDS resources do. The proxy rebuilds the Snapshot from them with no validation or YAML
machinery: every type in a snapshot is a dataclass of plain data (tests/unit/mesh/
test_snapshot_plain.py), so one generic codec carries them all.

Encoding: a dataclass is `{"@": "module:Name", field: value, ...}` (its init fields, those
equal to their default left out), a mapping `{"@d": [[key, value], ...]}`, a tuple a list,
a frozenset `{"@s": [...]}`, bytes `{"@b": base64}`, an enum member `{"@e": "module:Name",
"v": value}`. Only types of remora.mesh and remora.policy (and remora.api.finding's Finding) are
decoded: a section names a class, it cannot make the proxy import or call anything else.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import importlib
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from remora.mesh.snapshot import ProxyIdentity, Snapshot

ALLOWED_MODULES = ("remora.mesh.", "remora.policy.", "remora.api.finding")
PROXY_SECTION = "proxy"
_PROXY_FIELDS = ("identity", "notes", "skipped", "unenforced", "mesh", "http_filter_patches",
                 "tcp_services", "inbound_mtls")


class SectionError(ValueError):
    """A section that does not decode (a WireError for the receiver: it reconnects)."""


def encode_value(value: Any) -> Any:
    """`value` as JSON-able data (see the module docstring)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, enum.Enum):
            return _enum(value)
        return value
    if isinstance(value, tuple | list):
        return [encode_value(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _dataclass(value)
    if isinstance(value, enum.Enum):
        return _enum(value)
    if isinstance(value, Mapping):
        return {"@d": [[encode_value(k), encode_value(v)] for k, v in value.items()]}
    if isinstance(value, frozenset | set):
        return {"@s": sorted((encode_value(item) for item in value), key=repr)}
    if isinstance(value, bytes):
        return {"@b": base64.b64encode(value).decode()}
    raise TypeError(f"{type(value).__qualname__} is not plain data a snapshot may hold")


def _tag(cls: type) -> str:
    return f"{cls.__module__.removeprefix('remora.')}:{cls.__qualname__}"


def _enum(member: enum.Enum) -> dict[str, Any]:
    return {"@e": _tag(type(member)), "v": member.value}


def _dataclass(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"@": _tag(type(obj))}
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING and _same(value, f.default):
            continue
        if f.default_factory is not dataclasses.MISSING and _same(value, f.default_factory()):
            continue
        out[f.name] = encode_value(value)
    return out


def _same(value: Any, default: Any) -> bool:
    return type(value) is type(default) and bool(value == default)


def decode_value(data: Any) -> Any:
    """The value `encode_value` gave `data` for (SectionError when it names no plain type)."""
    if isinstance(data, list):
        return tuple(decode_value(item) for item in data)
    if not isinstance(data, dict):
        return data
    tag = data.get("@")
    if tag is not None:
        cls = _class(tag)
        if not dataclasses.is_dataclass(cls):
            raise SectionError(f"{tag} is not a dataclass")
        try:
            return cls(**{k: decode_value(v) for k, v in data.items() if k != "@"})
        except TypeError as exc:
            raise SectionError(f"{tag}: {exc}") from exc
    if "@d" in data:
        return MappingProxyType({decode_value(k): decode_value(v) for k, v in data["@d"]})
    if "@s" in data:
        return frozenset(decode_value(item) for item in data["@s"])
    if "@b" in data:
        return base64.b64decode(data["@b"])
    if "@e" in data:
        cls = _class(data["@e"])
        if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
            raise SectionError(f"{data['@e']} is not an enum")
        return cls(data["v"])
    raise SectionError(f"an object without a type tag: {sorted(data)[:5]}")


_CLASSES: dict[str, type] = {}


def _class(tag: str) -> type:
    found = _CLASSES.get(tag)
    if found is not None:
        return found
    module_name, _, qualname = tag.partition(":")
    module_name = "remora." + module_name
    if not module_name.startswith(ALLOWED_MODULES) or not qualname.isidentifier():
        raise SectionError(f"type {tag!r} is not one a snapshot holds")
    try:
        cls = getattr(importlib.import_module(module_name), qualname)
    except (ImportError, AttributeError) as exc:
        raise SectionError(f"unknown type {tag!r}") from exc
    if not isinstance(cls, type):
        raise SectionError(f"{tag!r} is not a type")
    _CLASSES[tag] = cls
    return cls


def encode_section(key: str, value: Any) -> bytes:
    """Canonical JSON of one section, `{"section": key, "value": ...}`: equal sections give
    equal bytes (and versions)."""
    return json.dumps({"section": key, "value": encode_value(value)}, sort_keys=True,
                      separators=(",", ":")).encode()


def snapshot_sections(snapshot: Snapshot) -> list[tuple[str, bytes]]:
    """The snapshot as (key, canonical JSON) sections, its version left out (the wire's
    version is the content hash of the sections)."""
    return [proxy_section(snapshot), *shared_sections(snapshot)]


def proxy_section(snapshot: Snapshot, identity: ProxyIdentity | None = None, *,
                  rest: list[Any] | None = None) -> tuple[str, bytes]:
    """The "proxy" section: who the proxy is (`identity`, else the snapshot's), what was left
    out and why, MeshConfig settings, EnvoyFilter patches, the order of the listeners.
    `rest` is `proxy_section_rest(snapshot)` when the caller keeps it for many proxies."""
    pairs = [["identity", encode_value(identity or snapshot.identity)],
             *(rest if rest is not None else proxy_section_rest(snapshot))]
    return PROXY_SECTION, json.dumps({"section": PROXY_SECTION, "value": {"@d": pairs}},
                                     sort_keys=True, separators=(",", ":")).encode()


def proxy_section_rest(snapshot: Snapshot) -> list[Any]:
    """The proxy section's fields but the identity, encoded: the same for every proxy that
    compiles alike."""
    fields = {name: getattr(snapshot, name) for name in _PROXY_FIELDS if name != "identity"}
    fields["listeners"] = tuple(lst.name for lst in snapshot.listeners)  # in their order
    return [[name, encode_value(value)] for name, value in fields.items()]


def shared_sections(snapshot: Snapshot) -> list[tuple[str, bytes]]:
    """The listener, route table and cluster sections: what proxies compiled alike share."""
    return [(key, encode_section(key, value)) for key, value in _shared_items(snapshot)]


def _shared_items(snapshot: Snapshot) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = [(f"listener/{lst.name}", lst) for lst in snapshot.listeners]
    items += [(f"routes/{name}", table) for name, table in snapshot.route_tables.items()]
    items += [(f"cluster/{name}", cluster) for name, cluster in snapshot.clusters.items()]
    return items


class SectionEncoder:
    """`shared_sections`, remembering each section's last value and bytes: a section equal to
    the one encoded before is not encoded again (comparing is some 30 times cheaper than
    encoding; at 10,000 endpoints a route change re-encoded every cluster)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._last: dict[str, tuple[Any, bytes]] = {}
        self._limit = limit  # sections remembered; then it starts afresh (deleted ones go)

    def shared_sections(self, snapshot: Snapshot) -> list[tuple[str, bytes]]:
        out = []
        for key, value in _shared_items(snapshot):
            last = self._last.get(key)
            if last is None or not (last[0] is value or last[0] == value):
                if len(self._last) >= self._limit:
                    self._last.clear()
                last = self._last[key] = (value, encode_section(key, value))
            out.append((key, last[1]))
        return out


class SnapshotDecoder:
    """Sections back into a Snapshot; a section whose bytes did not change since the last
    decode is not decoded again (a delta of one cluster decodes one cluster)."""

    def __init__(self) -> None:
        self._decoded: dict[str, tuple[Any, Any]] = {}  # key -> (section data, decoded value)

    def decode(self, sections: Mapping[str, Mapping[str, Any]], *, version: str) -> Snapshot:
        """The snapshot of `sections` (key -> section document, as remora.mesh.wire's
        apply_message keeps them), SectionError when they do not make one."""
        decoded: dict[str, tuple[Any, Any]] = {}
        for key, document in sections.items():
            cached = self._decoded.get(key)
            if cached is None or cached[0] is not document:
                if not isinstance(document, Mapping) or document.get("section") != key:
                    raise SectionError(f"section {key!r} is malformed")
                cached = (document, decode_value(document.get("value")))
            decoded[key] = cached
        self._decoded = decoded
        proxy = decoded.get(PROXY_SECTION)
        fields = dict(proxy[1]) if proxy is not None and isinstance(proxy[1], Mapping) else {}
        names = fields.pop("listeners", None)
        if set(fields) != set(_PROXY_FIELDS) or not isinstance(names, tuple):
            raise SectionError("the proxy section is missing or malformed")
        try:
            listeners = tuple(decoded[f"listener/{name}"][1] for name in names)
        except KeyError as exc:
            raise SectionError(f"no section for listener {exc}") from None
        return Snapshot(
            version=version,
            listeners=listeners,
            route_tables=_named(decoded, "routes/"),
            clusters=_named(decoded, "cluster/"),
            **fields,
        )


def _named(decoded: Mapping[str, tuple[Any, Any]], prefix: str) -> dict[str, Any]:
    """The values of the sections under `prefix`, by their names, in name order (a delta
    does not keep the order sections were first sent in)."""
    return {key.removeprefix(prefix): value for key, (_, value) in sorted(decoded.items())
            if key.startswith(prefix)}
