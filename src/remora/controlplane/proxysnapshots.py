"""Each subscribing proxy's snapshot, compiled here as istiod computes each proxy's config.

A proxy is sent its Snapshot compiled (remora.mesh.encoding sections), so the serving proxy
needs no validation or YAML machinery. The resources of a view are parsed once per document
content. A snapshot is compiled once per view and *class* of proxies that compile alike, and
only the "proxy" section (who the proxy is) is encoded per proxy:

- the compile reads a proxy's mode, namespace and ports; its inbound fields (app port,
  container port, workload, service account, labels) only when it has an app port;
- otherwise it reads labels only through selectors, which compare a label's value with a
  value written in some resource (Service selectors, subsets, workloadSelector, sourceLabels,
  Gateway selectors, targetRefs). A label whose value is written nowhere in the view selects
  nothing and is left out of the class: a hundred sidecars labelled app=client-1..100 that no
  resource names are one compile, not a hundred.

Locality, IP, cluster and node id are not read by the compile at all (the proxy uses them at
run time, from the identity in its proxy section).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from remora.errors import RemoraError
from remora.mesh.documents import compile_parsed, parse_document
from remora.mesh.encoding import SectionEncoder, proxy_section, proxy_section_rest
from remora.mesh.memo import CompileMemo
from remora.mesh.wire import View, node_identity, snapshot_pieces

if TYPE_CHECKING:
    from remora.api.errors import ConfigIssue
    from remora.api.resource import Resource
    from remora.mesh.snapshot import Snapshot

log = logging.getLogger("remora.controlplane")

KEPT_COMPILES = 4096  # compiled classes kept (older view versions are dropped first)


@dataclass(frozen=True, slots=True)
class Compiled:
    """A proxy's compiled snapshot as wire sections, or why it could not be compiled."""

    view: View | None
    error: str | None = None
    proxy: bytes = b""  # its own section
    shared: bytes = b""  # the sections of its class, joined: one object for all of them

    def snapshot_pieces(self) -> tuple[bytes, ...]:
        """The whole snapshot as one line, in pieces: the large one shared by the class."""
        assert self.view is not None
        return snapshot_pieces(self.view.version, (self.proxy, self.shared))


@dataclass(frozen=True, slots=True)
class _Shared:
    """One compile, for a class of proxies: the snapshot and its shared sections digested."""

    snapshot: Snapshot | None
    sections: View | None = None  # the listener, route table and cluster sections
    error: str | None = None
    joined: bytes = b""  # their documents joined with commas, as a snapshot line has them
    proxy_rest: list[Any] | None = None  # the proxy section but the identity, encoded


def compile_key(node: Mapping[str, Any], values: frozenset[str]) -> str:
    """The class of the proxy `node` in a view whose resources write `values`: equal keys,
    equal snapshots but for the proxy section."""
    labels = node.get("labels") or {}
    inbound = node.get("appPort") is not None
    key = {name: node.get(name) for name in ("mode", "namespace", "ports", "appPort",
                                             "containerPort", "containerPortName")}
    if inbound:  # the inbound cluster's endpoint carries the workload's facts
        key |= {"labels": labels, "workload": node.get("workload"),
                "serviceAccount": node.get("serviceAccount")}
    else:
        key["labels"] = {k: v for k, v in labels.items() if v in values}
    return json.dumps(key, sort_keys=True)


# Kinds that never select a proxy (they are endpoints and certificates): their values are not
# read, which keeps this cheap with tens of thousands of registered instances.
NOT_SELECTING = ("WorkloadEntry/", "EndpointSlice/", "Secret/")


def written_values(documents: Mapping[str, bytes]) -> frozenset[str]:
    """Every string value written in the documents of kinds that may select a proxy (a
    superset of what selectors compare a proxy's labels with)."""
    found: set[str] = set()
    for key, data in documents.items():
        if not key.startswith(NOT_SELECTING):
            found.update(_strings(json.loads(data)))
    return frozenset(found)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


class ProxySnapshots:
    """Parsed documents and compiled snapshots, reused while their inputs are unchanged."""

    def __init__(self) -> None:
        self._parsed: dict[str, tuple[bytes, Resource | list[ConfigIssue]]] = {}
        self._values: dict[str, frozenset[str]] = {}  # view version -> written_values
        self._shared: dict[tuple[str, str], _Shared] = {}
        self._encoder = SectionEncoder()  # an unchanged cluster is not encoded again
        self._memo = CompileMemo()  # endpoints and findings of unchanged resources

    def cached(self, view: View, node: Mapping[str, Any]) -> Compiled | None:
        """The snapshot of `view` for `node` if its class is compiled already."""
        values = self._values.get(view.version)
        if values is None:
            return None
        shared = self._shared.get((view.version, compile_key(node, values)))
        return None if shared is None else self._for(shared, node)

    def compiled(self, view: View, node: Mapping[str, Any]) -> Compiled:
        """The snapshot of `view` for the proxy `node`, as sections (a Compiled with the error
        when the control plane cannot compile one; the proxy keeps what it runs)."""
        values = self._values.get(view.version)
        if values is None:
            values = self._values[view.version] = written_values(view.documents)
        key = (view.version, compile_key(node, values))
        shared = self._shared.get(key)
        if shared is None:
            shared = self._compile(view, node)
            if len(self._shared) >= KEPT_COMPILES:
                self._shared.clear()
            self._shared[key] = shared
        return self._for(shared, node)

    def keep_only(self, views: Iterable[View]) -> None:
        """Forget what belongs to no view in use (deleted documents, older versions)."""
        views = list(views)
        versions = {view.version for view in views}
        keys = {key for view in views for key in view.documents}
        self._shared = {k: v for k, v in self._shared.items() if k[0] in versions}
        self._values = {k: v for k, v in self._values.items() if k in versions}
        self._parsed = {k: v for k, v in self._parsed.items() if k in keys}

    @staticmethod
    def _for(shared: _Shared, node: Mapping[str, Any]) -> Compiled:
        """The sections of one proxy: the class's, and its own proxy section."""
        if shared.snapshot is None or shared.sections is None:
            return Compiled(None, shared.error)
        identity, _ = node_identity(node)
        key, data = proxy_section(shared.snapshot, identity, rest=shared.proxy_rest)
        return Compiled(shared.sections.plus(key, data), proxy=data, shared=shared.joined)

    def _compile(self, view: View, node: Mapping[str, Any]) -> _Shared:
        identity, ports = node_identity(node)
        try:
            snapshot = compile_parsed(self._parse(view), version=view.version,
                                      identity=identity, ports=ports, memo=self._memo)
            sections = View.of(self._encoder.shared_sections(snapshot))
            return _Shared(snapshot, sections, joined=b",".join(sections.documents.values()),
                           proxy_rest=proxy_section_rest(snapshot))
        except (RemoraError, ValueError, TypeError) as exc:
            log.warning("cannot compile a snapshot for proxy %s: %s", node.get("id"), exc)
            return _Shared(None, error=f"the control plane could not compile a snapshot: {exc}")

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
