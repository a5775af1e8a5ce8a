"""Load resources from files, directories and stdin into typed models, collecting every issue.

Nothing valid is lost because something else is broken: each document is built on its own, and
a bad document yields issues (file:line, resource, field path, message) instead of an exception.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from remora.api.errors import ConfigError, ConfigIssue, Source
from remora.api.kinds import KINDS
from remora.api.meshconfig import configmap_mesh_config, is_mesh_configmap
from remora.api.resource import DEFAULT_NAMESPACE, Resource, split_api_version
from remora.api.validation_messages import document_issues
from remora.api.yamlsource import Document, read_documents
from remora.gcpause import no_gc_pauses

YAML_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A well-formed object of a kind Remora does not model (Ingress, NetworkPolicy, ...)."""

    api_version: str
    kind: str
    name: str
    source: Source


@dataclass
class LoadResult:
    """What a load produced: valid resources, issues, and objects of kinds not modelled."""

    resources: list[Resource] = field(default_factory=list)
    issues: list[ConfigIssue] = field(default_factory=list)
    unsupported: list[Unsupported] = field(default_factory=list)

    def extend(self, other: LoadResult) -> None:
        self.resources.extend(other.resources)
        self.issues.extend(other.issues)
        self.unsupported.extend(other.unsupported)

    def raise_for_issues(self) -> None:
        if self.issues:
            raise ConfigError(self.issues)


def load_paths(
    paths: Sequence[str], *, namespace: str = DEFAULT_NAMESPACE, stdin: TextIO | None = None
) -> LoadResult:
    """Load every YAML/JSON file named, recursing into directories; "-" reads stdin."""
    result = LoadResult()
    for file, text in _read_sources(paths, stdin or sys.stdin, result):
        result.extend(load_text(text, file, namespace=namespace))
    return result


def load_text(text: str, file: str = "-", *, namespace: str = DEFAULT_NAMESPACE) -> LoadResult:
    """Load a multi-document YAML stream."""
    result = LoadResult()
    with no_gc_pauses():
        try:
            for document in read_documents(text, file):
                _build_into(result, document, namespace)
        except ConfigError as exc:
            result.issues.extend(exc.issues)
    return result


def parse_resource(
    data: Any, *, source: Source | None = None, namespace: str = DEFAULT_NAMESPACE
) -> Resource:
    """Build one resource from already-parsed data (e.g. a JSON API body); raise ConfigError."""
    document = Document(data, source or Source("-", 1))
    result = LoadResult()
    _build_into(result, document, namespace)
    result.raise_for_issues()
    if not result.resources:
        kind = data.get("kind") if isinstance(data, dict) else None
        raise ConfigError([ConfigIssue(f"unsupported kind {kind!r}", source=source)])
    return result.resources[0]


def _read_sources(
    paths: Sequence[str], stdin: TextIO, result: LoadResult
) -> Iterator[tuple[str, str]]:
    for raw in paths:
        if raw == "-":
            yield "-", stdin.read()
            continue
        path = Path(raw)
        if path.is_dir():
            files: Iterable[Path] = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix in YAML_SUFFIXES
            )
        elif path.exists():
            files = [path]
        else:
            result.issues.append(ConfigIssue("no such file or directory", source=Source(raw, 0)))
            continue
        for file in files:
            try:
                yield str(file), file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                result.issues.append(
                    ConfigIssue(f"cannot read: {reason}", source=Source(str(file), 0))
                )


def _build_into(result: LoadResult, document: Document, namespace: str) -> None:
    data = document.data
    if not isinstance(data, dict):
        result.issues.append(ConfigIssue(
            f"expected a Kubernetes object (a mapping with apiVersion and kind), "
            f"got {type(data).__name__}", source=document.source))  # fmt: skip
        return
    api_version, kind = data.get("apiVersion"), data.get("kind")
    missing = [
        k for k, v in (("apiVersion", api_version), ("kind", kind)) if not isinstance(v, str)
    ]
    if missing:
        key = missing[0]
        result.issues.append(ConfigIssue(
            "required field is missing" if data.get(key) is None else "must be a string",
            source=Source(document.source.file, document.line_of((key,))), path=key))  # fmt: skip
        return
    assert isinstance(api_version, str) and isinstance(kind, str)
    if kind == "List" and api_version == "v1":
        _build_list_into(result, document, namespace)
        return
    group, version = split_api_version(api_version)
    info = KINDS.get((group, kind))
    name = _name_of(data)
    if info is None:
        result.unsupported.append(Unsupported(api_version, kind, name, document.source))
        return
    subject = f"{kind} {_key_of(data, namespace, info.model.NAMESPACED)}"
    if version not in info.versions:
        result.issues.append(ConfigIssue(
            f"version {version!r} of {group or 'core'} {kind} is not served "
            f"(served: {', '.join(info.api_versions())})",
            source=Source(document.source.file, document.line_of(("apiVersion",))),
            subject=subject, path="apiVersion"))  # fmt: skip
        return
    try:
        resource = info.model.model_validate(data)
    except ValidationError as exc:
        result.issues.extend(document_issues(exc, document, subject=subject))
        return
    except (ValueError, TypeError, RecursionError) as exc:  # never a traceback to the user
        result.issues.append(ConfigIssue(str(exc), source=document.source, subject=subject))
        return
    resource.attach(source=document.source, locate=document.line_of, default_namespace=namespace)
    if is_mesh_configmap(resource):  # its `mesh` key is YAML in a string: check it too
        try:
            configmap_mesh_config(resource)  # type: ignore[arg-type]
        except ConfigError as exc:
            result.issues.extend(exc.issues)
            return
    result.resources.append(resource)


def _build_list_into(result: LoadResult, document: Document, namespace: str) -> None:
    items = document.data.get("items")
    if not isinstance(items, list):
        result.issues.append(ConfigIssue("a List must have a list of items", source=document.source,
                                         path="items"))  # fmt: skip
        return
    for position in range(len(items)):
        line = document.line_of(("items", position))
        _build_into(result, document.item("items", position, line), namespace)


def _name_of(data: dict[str, Any]) -> str:
    meta = data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else "<unnamed>"


def _key_of(data: dict[str, Any], namespace: str, namespaced: bool) -> str:
    name = _name_of(data)
    if not namespaced:
        return name
    meta = data.get("metadata")
    ns = meta.get("namespace") if isinstance(meta, dict) else None
    return f"{ns if isinstance(ns, str) else namespace}/{name}"
