"""The push wire format shared by the control plane and the proxy (pure: bytes in, bytes out).

NDJSON lines on one HTTP stream per proxy, like an xDS stream, whose documents are the sections
of the proxy's compiled snapshot (remora.mesh.encoding: one per listener, route table and
cluster, and "proxy"):
  {"type": "snapshot", "version": V, "documents": [...]}        the whole view
  {"type": "delta", "base": B, "version": V, "put": [...], "delete": [keys]}
                                                                only what changed since B
  {"type": "ping"}                                              keeps an idle stream alive
The proxy answers each version on ACK_PATH with
  {"node": ID, "version": V, "error": null | "why the whole version was refused",
   "resourceErrors": [{"kind", "namespace", "name", "message"}]}   resources it skipped
(`resourceErrors` is optional, so a proxy that does not send it is still understood).
A delta applies only on top of the view the proxy last received (`base`); a proxy that does not
have `base` reconnects and gets a snapshot. Versions are content hashes, so an unchanged view is
never sent twice and two control-plane replicas give the same view the same version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from remora.mesh.snapshot import ListenerPorts, ProxyIdentity

if TYPE_CHECKING:
    from remora.mesh.snapshot import SkippedResource

DISCOVERY_PATH = "/api/remora/v1/discovery"
ACK_PATH = "/api/remora/v1/discovery/ack"

Document = dict[str, Any]


class WireError(ValueError):
    """A message the receiver cannot apply (malformed, or a delta on another base)."""


def document_key(document: Mapping[str, Any]) -> str:
    """What identifies a document in a view: a compiled snapshot's section by its key
    (remora.mesh.encoding), a resource by kind/namespace/name."""
    section = document.get("section")
    if isinstance(section, str):
        return section
    metadata = document.get("metadata") or {}
    return f"{document.get('kind')}/{metadata.get('namespace', 'default')}/{metadata.get('name')}"


def encode_document(document: Mapping[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, no spaces): equal documents give equal bytes."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def snapshot_pieces(version: str, parts: Iterable[bytes]) -> tuple[bytes, ...]:
    """A snapshot line in pieces that join into it; each part is a document, or several
    already joined with commas (so proxies can share one large part instead of a copy each)."""
    pieces = [b'{"type":"snapshot","version":"' + version.encode() + b'","documents":[']
    for part in parts:
        if part:
            if len(pieces) > 1:
                pieces.append(b",")
            pieces.append(part)
    pieces.append(b"]}\n")
    return tuple(pieces)


def document_digest(key: str, data: bytes) -> int:
    """64 bits of SHA-256 over a document's key and canonical JSON."""
    return int.from_bytes(hashlib.sha256(key.encode() + b"\0" + data).digest()[:8], "big")


@dataclass(frozen=True, slots=True)
class View:
    """One proxy view: documents by key, as canonical JSON, and its content version.

    The version is the sum of the documents' digests (mod 2**64): it depends on the content
    only, not on order, so building a view needs no sort, and the digests of unchanged
    documents are computed once (at 50,000 endpoints sorting and hashing every document on
    each push was most of a push's cost)."""

    version: str
    documents: Mapping[str, bytes]

    @classmethod
    def build(cls, items: Iterable[tuple[str, bytes, int]]) -> View:
        """A view of (key, canonical JSON, document_digest) items; of two documents with one
        key the greater JSON wins, so every replica keeps the same one."""
        documents: dict[str, bytes] = {}
        digests: dict[str, int] = {}
        for key, data, digest in items:
            if key in documents and documents[key] >= data:
                continue
            documents[key], digests[key] = data, digest
        return cls(f"{sum(digests.values()) % (1 << 64):016x}", documents)

    def plus(self, key: str, data: bytes) -> View:
        """This view with one more document, under a key it does not have (what `build` would
        give, without going over the others again: every proxy of a class shares them)."""
        version = (int(self.version, 16) + document_digest(key, data)) % (1 << 64)
        return View(f"{version:016x}", {key: data, **self.documents})

    @classmethod
    def of(cls, documents: Iterable[tuple[str, bytes]]) -> View:
        """A view of (key, canonical JSON) pairs, digests computed here."""
        return cls.build((key, data, document_digest(key, data)) for key, data in documents)

    def snapshot_line(self) -> bytes:
        """The whole view as one line (the control plane sends it in pieces instead, sharing
        the large part between the proxies of a class: ProxySnapshots)."""
        return b"".join(snapshot_pieces(self.version, self.documents.values()))

    def delta_line(self, base: View) -> bytes:
        """What changed from `base` to this view."""
        put = [data for key, data in self.documents.items() if base.documents.get(key) != data]
        delete = [key for key in base.documents if key not in self.documents]
        return (b'{"type":"delta","base":"' + base.version.encode() + b'","version":"'
                + self.version.encode() + b'","put":[' + b",".join(put) + b'],"delete":'
                + json.dumps(delete).encode() + b"}\n")


PING_LINE = b'{"type":"ping"}\n'


def node_identity(node: Mapping[str, Any]) -> tuple[ProxyIdentity, ListenerPorts]:
    """Who a subscribing proxy is and the ports it listens on, from its node document (the
    control plane compiles its snapshot for them; remora.proxy.discovery sends them)."""
    ports = node.get("ports") or {}
    defaults = ListenerPorts()
    return ProxyIdentity(
        mode="gateway" if node.get("mode") == "gateway" else "sidecar",
        namespace=str(node.get("namespace") or "default"),
        labels={str(k): str(v) for k, v in (node.get("labels") or {}).items()},
        workload=str(node.get("workload") or "unknown"),
        service_account=str(node.get("serviceAccount") or "default"),
        cluster=str(node.get("cluster") or "Kubernetes"),
        ip=str(node.get("ip") or "127.0.0.1"),
        app_port=_port(node.get("appPort")),
        container_port=_port(node.get("containerPort")),
        container_port_name=str(node.get("containerPortName") or ""),
        locality=str(node.get("locality") or ""),
    ), ListenerPorts(**{name: _port(ports.get(name)) or getattr(defaults, name)
                        for name in ("outbound", "inbound", "admin", "health")})


def _port(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def ack_body(node: str, version: str, *, error: str | None,
             skipped: Iterable[SkippedResource] = ()) -> dict[str, Any]:
    """An ACK (error None, possibly with resources skipped) or a NACK of `version`."""
    body: dict[str, Any] = {"node": node, "version": version, "error": error}
    errors = [item.to_dict() for item in skipped]
    if errors:
        body["resourceErrors"] = errors
    return body


RESOURCE_ERROR_FIELDS = ("kind", "namespace", "name", "message")


def resource_errors(value: Any) -> list[dict[str, str]]:
    """The `resourceErrors` of an ACK body, checked (ValueError when malformed)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 10_000:
        raise ValueError("resourceErrors must be a list")
    out = []
    for item in value:
        if not isinstance(item, dict) or not all(
                isinstance(item.get(key), str) for key in RESOURCE_ERROR_FIELDS):
            raise ValueError("resourceErrors items are {kind, namespace, name, message}")
        out.append({key: item[key][:4096] for key in RESOURCE_ERROR_FIELDS})
    return out


def apply_message(documents: dict[str, Document], received: str,
                  message: Mapping[str, Any]) -> tuple[dict[str, Document], str] | None:
    """The documents and version after `message`, given what was last `received`; None for a
    ping. WireError for a delta whose base is not `received`."""
    kind = message.get("type")
    if kind == "ping":
        return None
    version = message.get("version")
    if not isinstance(version, str):
        raise WireError("message without a version")
    if kind == "snapshot":
        items = message.get("documents") or []
        return {document_key(doc): doc for doc in items}, version
    if kind == "delta":
        if message.get("base") != received:
            raise WireError(f"delta on {message.get('base')!r}, but {received!r} was received")
        updated = dict(documents)
        for key in message.get("delete") or []:
            updated.pop(key, None)
        for doc in message.get("put") or []:
            updated[document_key(doc)] = doc
        return updated, version
    raise WireError(f"unknown message type {kind!r}")
