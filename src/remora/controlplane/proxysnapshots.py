"""Each subscribing proxy's snapshot, compiled here as istiod computes each proxy's config.

A proxy is sent its Snapshot compiled (remora.mesh.encoding sections), so the serving proxy
needs no validation or YAML machinery. The resources of a view are parsed once per document
content, and a snapshot is compiled once per view version and proxy identity: five hundred
proxies of one workload cost one compile per change, and a change of one service's endpoints
re-parses that service's documents only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from remora.errors import RemoraError
from remora.mesh.documents import compile_parsed, parse_document
from remora.mesh.encoding import snapshot_sections
from remora.mesh.wire import View, node_identity

if TYPE_CHECKING:
    from remora.api.errors import ConfigIssue
    from remora.api.resource import Resource

log = logging.getLogger("remora.controlplane")

# the node fields a snapshot depends on (remora.mesh.wire node_identity reads them)
COMPILE_FIELDS = ("mode", "namespace", "labels", "workload", "serviceAccount", "cluster", "ip",
                  "appPort", "containerPort", "containerPortName", "locality", "ports")
KEPT_COMPILES = 4096  # compiled snapshots kept (older view versions are dropped first)


@dataclass(frozen=True, slots=True)
class Compiled:
    """A proxy's compiled snapshot as wire sections, or why it could not be compiled."""

    view: View | None
    error: str | None = None


def compile_key(node: Mapping[str, Any]) -> str:
    """What a snapshot is compiled for: equal keys, equal snapshots."""
    return json.dumps({name: node.get(name) for name in COMPILE_FIELDS}, sort_keys=True)


class ProxySnapshots:
    """Parsed documents and compiled snapshots, reused while their inputs are unchanged."""

    def __init__(self) -> None:
        self._parsed: dict[str, tuple[bytes, Resource | list[ConfigIssue]]] = {}
        self._compiled: dict[tuple[str, str], Compiled] = {}

    def cached(self, view: View, node: Mapping[str, Any]) -> Compiled | None:
        """The snapshot of `view` for `node` if it is compiled already."""
        return self._compiled.get((view.version, compile_key(node)))

    def compiled(self, view: View, node: Mapping[str, Any]) -> Compiled:
        """The snapshot of `view` for the proxy `node`, as sections (a Compiled with the error
        when the control plane cannot compile one; the proxy keeps what it runs)."""
        key = (view.version, compile_key(node))
        found = self._compiled.get(key)
        if found is None:
            found = self._compile(view, node)
            if len(self._compiled) >= KEPT_COMPILES:
                self._compiled.clear()
            self._compiled[key] = found
        return found

    def keep_only(self, views: Iterable[View]) -> None:
        """Forget what belongs to no view in use (deleted documents, older versions)."""
        views = list(views)
        versions = {view.version for view in views}
        keys = {key for view in views for key in view.documents}
        self._compiled = {k: v for k, v in self._compiled.items() if k[0] in versions}
        self._parsed = {k: v for k, v in self._parsed.items() if k in keys}

    def _compile(self, view: View, node: Mapping[str, Any]) -> Compiled:
        identity, ports = node_identity(node)
        try:
            snapshot = compile_parsed(self._parse(view), version=view.version,
                                      identity=identity, ports=ports)
            return Compiled(View.of(snapshot_sections(snapshot)))
        except (RemoraError, ValueError, TypeError) as exc:
            log.warning("cannot compile a snapshot for proxy %s: %s", node.get("id"), exc)
            return Compiled(None, f"the control plane could not compile a snapshot: {exc}")

    def _parse(self, view: View) -> list[Resource | list[ConfigIssue]]:
        parsed: dict[str, tuple[bytes, Resource | list[ConfigIssue]]] = {}
        for key, data in view.documents.items():
            known = self._parsed.get(key)
            if known is None or known[0] != data:
                known = (data, parse_document(json.loads(data)))
            parsed[key] = known
        # what other views hold stays too (a gateway's view and a sidecar's share documents)
        self._parsed.update(parsed)
        return [item for _, item in parsed.values()]
