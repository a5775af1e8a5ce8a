"""Documents (stored JSON or loaded files) to a snapshot, one resource at a time: a document
that does not parse is skipped and named in `Snapshot.skipped`, the rest is compiled."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from remora.api.errors import ConfigError, ConfigIssue
from remora.api.loader import parse_resource
from remora.api.resource import Resource
from remora.mesh.compile import compile_snapshot
from remora.mesh.memo import CompileMemo
from remora.mesh.snapshot import ListenerPorts, ProxyIdentity, SkippedResource, Snapshot


def skipped_from_issues(issues: Iterable[ConfigIssue]) -> list[SkippedResource]:
    """The resources load issues leave out, one per resource with its issues joined; issues
    that belong to no resource (a file that does not parse) are named by their file."""
    by_subject: dict[tuple[str, str, str], list[str]] = {}
    for issue in issues:
        kind, _, key = issue.subject.partition(" ")
        ns, slash, name = key.rpartition("/")
        if not kind:  # the file did not parse: no resource to name
            kind, ns, slash, name = "File", "", "", issue.source.file if issue.source else "-"
        detail = f"{issue.path}: {issue.message}" if issue.path else issue.message
        if issue.source is not None and issue.source.file != "-":  # file mode: say where
            detail = f"{issue.source}: {detail}"
        by_subject.setdefault((kind, ns if slash else "", name), []).append(detail)
    return [SkippedResource(kind, ns, name, "; ".join(details))
            for (kind, ns, name), details in by_subject.items()]


def parse_document(document: Mapping[str, Any]) -> Resource | list[ConfigIssue]:
    """A stored document as its resource, or the issues that keep it out (each naming it)."""
    try:
        return parse_resource(document, namespace=_namespace_of(document))
    except ConfigError as exc:
        return [_with_subject(issue, document) for issue in exc.issues]


def compile_parsed(parsed: Iterable[Resource | list[ConfigIssue]], *, version: str,
                   identity: ProxyIdentity, ports: ListenerPorts,
                   memo: CompileMemo | None = None) -> Snapshot:
    """A snapshot of parsed documents: those that did not parse skipped (named in
    `Snapshot.skipped`), the rest compiled (with what `memo` lends, remora.mesh.memo)."""
    resources: list[Resource] = []
    issues: list[ConfigIssue] = []
    for item in parsed:
        if isinstance(item, list):
            issues.extend(item)
        else:
            resources.append(item)
    return compile_snapshot(resources, identity, version=version, listener_ports=ports,
                            skipped=skipped_from_issues(issues), memo=memo)


def compile_documents(documents: Sequence[Mapping[str, Any]], *, version: str,
                      identity: ProxyIdentity, ports: ListenerPorts) -> Snapshot:
    """The documents as a snapshot: each parsed on its own, those that do not parse skipped
    (named in `Snapshot.skipped`), the rest compiled."""
    return compile_parsed([parse_document(d) for d in documents], version=version,
                          identity=identity, ports=ports)


def _namespace_of(document: Mapping[str, Any]) -> str:
    metadata = document.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return namespace if isinstance(namespace, str) and namespace else "default"


def _with_subject(issue: ConfigIssue, document: Mapping[str, Any]) -> ConfigIssue:
    """A pushed document's issue names its resource even when parsing stopped before that."""
    if issue.subject:
        return issue
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    subject = f"{document.get('kind')} {_namespace_of(document)}/{name}"
    return ConfigIssue(issue.message, source=issue.source, subject=subject, path=issue.path)
