"""IST0106 SchemaValidationError: the loader's issues about a known resource, as messages."""

from __future__ import annotations

from collections.abc import Iterable

from remora.analysis.messages import SCHEMA_VALIDATION_ERROR, Message
from remora.api.errors import ConfigIssue
from remora.api.meshconfig import MESH_CONFIGMAP, MESH_NAMESPACE

MESH_SUBJECTS = (f"ConfigMap {MESH_NAMESPACE}/{MESH_CONFIGMAP}", "MeshConfig")


def schema_messages(issues: Iterable[ConfigIssue], *, namespace: str | None) -> list[Message]:
    """One message per issue that names its resource (parse errors have no subject: the CLI
    prints those itself, as istioctl does)."""
    out = []
    for issue in issues:
        if not issue.subject:
            continue
        if namespace is not None and subject_namespace(issue.subject) not in (namespace, None) \
                and issue.subject not in MESH_SUBJECTS:  # the mesh config concerns every namespace
            continue
        detail = f"{issue.path}: {issue.message}" if issue.path else issue.message
        text = SCHEMA_VALIDATION_ERROR.format(detail)
        out.append(Message(SCHEMA_VALIDATION_ERROR, text, issue.subject, issue.source))
    return out


def subject_namespace(subject: str) -> str | None:
    """ "VirtualService default/reviews" -> "default"; None for a cluster-scoped subject."""
    _, _, key = subject.partition(" ")
    namespace, slash, _ = key.partition("/")
    return namespace if slash else None
