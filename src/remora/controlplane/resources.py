"""The resource store: Istio and Kubernetes objects kept as `kubectl apply` and the API server do.

Objects live under `/resources/<group>/<Kind>/<namespace>/<name>` (group "core" for v1 kinds)
as JSON. The server owns part of `metadata`: `uid` and `creationTimestamp` (set at create),
`generation` (bumped when anything but metadata/status changes, as for Kubernetes' spec) and
`resourceVersion` (the key's modified store revision, so it is never stored, only injected on
read). A body carrying a `resourceVersion` is a precondition: another value is a conflict.
`status` in a body is ignored and the stored one kept: controllers write it through the status
subresource (subresources.py).
Errors carry the HTTP status the API answers with (`ResourceError.code`).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from remora.analysis import envoyfilter, unenforced
from remora.analysis.context import Context
from remora.analysis.messages import Level, Message
from remora.analysis.virtualservice import rules
from remora.api.errors import ConfigError
from remora.api.loader import parse_resource
from remora.api.resource import DEFAULT_NAMESPACE, Resource, split_api_version
from remora.api.unenforced import not_modelled
from remora.controlplane.kindnames import ResourceType, by_kind
from remora.controlplane.selectors import Selector
from remora.errors import RemoraError
from remora.registry.store.base import (
    ABSENT,
    ANY,
    CompactedError,
    ConflictError,
    Entry,
    EventType,
    Store,
)

PREFIX = "/resources/"
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "istio-system")
"""Namespaces that exist from the start, as on a fresh cluster with Istio installed."""
SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
                 "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")
SINGLE_RESOURCE_ANALYZERS = (rules.check, envoyfilter.check, unenforced.check)
"""Analyzers that judge one object on its own (the others need the whole mesh): what Istio's
validating webhook reports too (unreachable rules are its warnings), and what Remora accepts
without enforcing it (never silently: a warning names the field)."""
_APPLY_RETRIES = 5
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class Cause:
    """One reason a request failed: the field (path) and what is wrong with it."""

    field: str
    message: str


class ResourceError(RemoraError):
    """A request the store refuses, with the HTTP status and Kubernetes reason it maps to."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, causes: Iterable[Cause] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.causes = list(causes)


class BadRequestError(ResourceError):
    code, reason = 400, "BadRequest"


class ForbiddenError(ResourceError):
    code, reason = 403, "Forbidden"


class NotFoundError(ResourceError):
    code, reason = 404, "NotFound"


class ResourceConflictError(ResourceError):
    code, reason = 409, "Conflict"


class AlreadyExistsError(ResourceError):
    code, reason = 409, "AlreadyExists"


class ExpiredError(ResourceError):
    code, reason = 410, "Expired"


class InvalidError(ResourceError):
    code, reason = 422, "Invalid"


class Action(StrEnum):
    """What an apply did, in kubectl's words."""

    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"


class Mode(StrEnum):
    """POST creates, PUT replaces, apply does whichever is needed."""

    CREATE = "create"
    UPDATE = "update"
    APPLY = "apply"


@dataclass(frozen=True, slots=True)
class Applied:
    """The stored object after an apply, what happened, and analyzer warnings about it."""

    object: dict[str, Any]
    action: Action
    type: ResourceType
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Validated:
    """A document that passed the config model: its type, model and analyzer warnings."""

    document: dict[str, Any]
    type: ResourceType
    resource: Resource
    warnings: list[str]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One Kubernetes watch event: ADDED, MODIFIED or DELETED and the object."""

    type: str
    object: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "object": self.object}


def validate(document: Any, *, namespace: str = DEFAULT_NAMESPACE) -> Validated:
    """Check one document against the config model and the single-object analyzers; Invalid
    (every field path and message) or NotFoundError (a kind Remora does not serve)."""
    if not isinstance(document, dict):
        raise InvalidError("the object must be a mapping with apiVersion, kind and metadata",
                      causes=[Cause("", f"got {type(document).__name__}")])
    kind = document.get("kind")
    group = split_api_version(str(document.get("apiVersion", "")))[0]
    rtype = by_kind(group, kind) if isinstance(kind, str) else None
    try:
        resource = parse_resource(document, namespace=namespace)
    except ConfigError as exc:
        if rtype is None and isinstance(kind, str) and isinstance(document.get("apiVersion"), str):
            entry = not_modelled(kind)
            why = f" (Remora does not model {kind}: {entry.reason})" if entry else ""
            raise NotFoundError(f"the server could not find the requested resource: kind "
                                f"{kind!r} in apiVersion {document['apiVersion']!r} is not "
                                f"served{why}") from None
        causes = [Cause(issue.path, issue.message) for issue in exc.issues]
        raise InvalidError(_invalid_message(document, causes), causes=causes) from None
    if rtype is None:  # parse_resource only builds served kinds
        raise NotFoundError(f"kind {kind!r} is not served")
    causes = _name_causes(resource)
    if causes:
        raise InvalidError(_invalid_message(document, causes), causes=causes)
    messages = _analyze(resource)
    errors = [m for m in messages if m.type.level is Level.ERROR]
    if errors:
        causes = [Cause("", f"[{m.type.code}] {m.text}") for m in errors]
        raise InvalidError(_invalid_message(document, causes), causes=causes)
    warnings = [f"[{m.type.code}] {m.text}" for m in messages]
    return Validated(document, rtype, resource, warnings)


def _name_causes(resource: Resource) -> list[Cause]:
    """Names become store keys and URL segments: Kubernetes' DNS-1123 rules (apimachinery
    validation: object names are subdomains, namespaces are labels)."""
    name, namespace = resource.metadata.name, resource.metadata.namespace
    causes = []
    if not name:
        causes.append(Cause("metadata.name", "name is required"))
    elif len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        causes.append(Cause("metadata.name", f"{name!r}: a lowercase RFC 1123 subdomain must "
                            "consist of lower case alphanumeric characters, '-' or '.', and must "
                            "start and end with an alphanumeric character"))
    if namespace is not None and (len(namespace) > 63 or not _DNS_LABEL.match(namespace)):
        causes.append(Cause("metadata.namespace", f"{namespace!r}: a lowercase RFC 1123 label "
                            "must consist of lower case alphanumeric characters or '-', and "
                            "must start and end with an alphanumeric character"))
    if resource.kind == "Namespace" and name and not _DNS_LABEL.match(name):
        causes.append(Cause("metadata.name", f"{name!r}: a namespace name must be an RFC 1123 "
                            "label"))
    return causes


def _analyze(resource: Resource) -> list[Message]:
    context = Context([resource])
    for analyzer in SINGLE_RESOURCE_ANALYZERS:
        analyzer(context)
    return context.messages


def _invalid_message(document: dict[str, Any], causes: list[Cause]) -> str:
    meta = document.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    what = f"{document.get('kind', 'object')} {name!r}" if isinstance(name, str) \
        else str(document.get("kind", "object"))
    details = "; ".join(f"{c.field}: {c.message}" if c.field else c.message for c in causes)
    return f"{what} is invalid: {details}"


def key_of(rtype: ResourceType, namespace: str, name: str) -> str:
    return f"{PREFIX}{rtype.group or 'core'}/{rtype.kind}/{namespace}/{name}"


def prefix_of(rtype: ResourceType, namespace: str | None) -> str:
    base = f"{PREFIX}{rtype.group or 'core'}/{rtype.kind}/"
    return f"{base}{namespace}/" if namespace and rtype.namespaced else base


def decode(entry: Entry) -> dict[str, Any]:
    """The stored object with its resourceVersion (the entry's modified revision) filled in."""
    obj: dict[str, Any] = json.loads(entry.value)
    obj["metadata"]["resourceVersion"] = str(entry.modified)
    return obj


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    """What generation counts: everything but the envelope (spec, data, ports, ...)."""
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}


def _rfc3339(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ResourceStore:
    """Apply, get, list, delete and watch resources over a `Store`."""

    def __init__(self, store: Store, *, clock: Callable[[], datetime] = _utcnow,
                 new_uid: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self.store = store
        self.clock = clock
        self.new_uid = new_uid

    async def ensure_namespaces(self, names: Iterable[str] = BUILTIN_NAMESPACES) -> None:
        """Create the built-in namespaces that do not exist yet."""
        for name in names:
            if await self.store.get(key_of(_NAMESPACE, "", name)) is None:
                document = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                await self.apply(document, mode=Mode.CREATE)

    async def apply(self, document: Any, *, mode: Mode = Mode.APPLY,
                    namespace: str = DEFAULT_NAMESPACE) -> Applied:
        """Validate and write one object (create, replace, or either); see the module doc."""
        valid = validate(document, namespace=namespace)
        rtype, resource = valid.type, valid.resource
        ns = resource.namespace
        if rtype.namespaced:
            await self._require_namespace(ns)
        wanted = _precondition(valid.document)
        key = key_of(rtype, ns, resource.name)
        for _ in range(_APPLY_RETRIES):
            current = await self.store.get(key)
            obj, action = self._merge(valid, ns, current, mode=mode, wanted=wanted)
            if action is Action.UNCHANGED:
                assert current is not None
                return Applied(decode(current), action, rtype, valid.warnings)
            expected = current.modified if current else ABSENT
            try:
                entry = await self.store.put(key, _encode(obj), expected=expected)
            except ConflictError:
                continue  # written meanwhile: _merge judges again against what is there now
            return Applied(decode(entry), action, rtype, valid.warnings)
        raise ResourceConflictError(f"{rtype.qualified} {resource.name!r}: the object kept "
                                    "changing while it was being applied; try again")

    def _merge(self, valid: Validated, ns: str, current: Entry | None, *, mode: Mode,
               wanted: int | None) -> tuple[dict[str, Any], Action]:
        """The object to store and what writing it means, given what is stored now."""
        rtype, name = valid.type, valid.resource.name
        label = _label(rtype, name)
        if current is None:
            if mode is Mode.UPDATE:
                raise NotFoundError(f"{label} not found")
            if wanted is not None:
                raise _conflict(label, "has been deleted; resourceVersion should not be set on "
                                "objects to be created")
        elif mode is Mode.CREATE:
            raise AlreadyExistsError(f"{label} already exists")
        elif wanted is not None and wanted != current.modified:
            raise _conflict(label, "has been modified; please apply your changes to the latest "
                            "version and try again",
                            Cause("metadata.resourceVersion",
                                  f"is {current.modified}, not {wanted}"))
        obj = {k: v for k, v in valid.document.items() if k != "status"}
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_FIELDS}
        if rtype.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if current is None:
            meta.update(uid=self.new_uid(), generation=1,
                        creationTimestamp=_rfc3339(self.clock()))
            obj["metadata"] = meta
            return obj, Action.CREATED
        old = json.loads(current.value)
        old_meta = old["metadata"]
        generation = old_meta.get("generation", 1)
        if _content(old) != _content(obj):
            generation += 1
        meta.update(uid=old_meta.get("uid"), generation=generation,
                    creationTimestamp=old_meta.get("creationTimestamp"))
        obj["metadata"] = meta
        if "status" in old:  # written through the status subresource only (subresources.py)
            obj["status"] = old["status"]
        return obj, (Action.UNCHANGED if obj == old else Action.CONFIGURED)

    async def _require_namespace(self, namespace: str) -> None:
        if await self.store.get(key_of(_NAMESPACE, "", namespace)) is None:
            raise NotFoundError(f'namespaces "{namespace}" not found')

    async def get(self, rtype: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        entry = await self.store.get(key_of(rtype, namespace if rtype.namespaced else "", name))
        if entry is None:
            raise NotFoundError(f"{_label(rtype, name)} not found")
        return decode(entry)

    async def list(self, rtype: ResourceType, namespace: str | None = None,
                   selector: Selector | None = None) -> tuple[list[dict[str, Any]], int]:
        """Objects of one type (in `namespace`, or all when None) matching `selector`, with the
        store revision they were read at (the list's resourceVersion)."""
        entries, revision = await self.store.list(prefix_of(rtype, namespace))
        objects = [decode(e) for e in entries]
        if selector is not None and selector.requirements:
            objects = [o for o in objects if selector.matches(_labels(o))]
        return objects, revision

    async def delete(self, rtype: ResourceType, namespace: str, name: str, *,
                     resource_version: str | None = None) -> dict[str, Any]:
        """Delete one object (a namespace takes its objects with it); returns its last state."""
        if rtype.kind == "Namespace" and name in BUILTIN_NAMESPACES:
            raise ForbiddenError(f'namespaces "{name}" is forbidden: this namespace may not be '
                                 "deleted")
        key = key_of(rtype, namespace if rtype.namespaced else "", name)
        expected = ANY if resource_version is None else _revision(resource_version)
        try:
            entry = await self.store.delete(key, expected=expected)
        except ConflictError:
            raise _conflict(_label(rtype, name), "has been modified", Cause(
                "metadata.resourceVersion", f"is not {resource_version}")) from None
        if entry is None:
            raise NotFoundError(f"{_label(rtype, name)} not found")
        if rtype.kind == "Namespace":
            await self._delete_namespaced(name)
        return decode(entry)

    async def _delete_namespaced(self, namespace: str) -> None:
        entries, _ = await self.store.list(PREFIX)
        for entry in entries:
            if entry.key.split("/")[4] == namespace:
                await self.store.delete(entry.key)

    async def watch(self, rtype: ResourceType, namespace: str | None = None, *,
                    resource_version: str | None = None,
                    selector: Selector | None = None) -> AsyncIterator[WatchEvent]:
        """Kubernetes watch semantics: from `resource_version` N, every change after N; without
        one (or "0"), ADDED for every current object, then the changes."""
        prefix = prefix_of(rtype, namespace)
        if resource_version in (None, "", "0"):
            objects, since = await self.list(rtype, namespace, selector)
            for obj in objects:
                yield WatchEvent("ADDED", obj)
        else:
            since = _revision(resource_version)
        try:
            async for event in self.store.watch(prefix, since=since):
                obj = decode(event.entry)
                if event.type is EventType.DELETE:
                    obj["metadata"]["resourceVersion"] = str(event.revision)
                    kind = "DELETED"
                else:
                    kind = "ADDED" if event.entry.version == 1 else "MODIFIED"
                if selector is None or selector.matches(_labels(obj)):
                    yield WatchEvent(kind, obj)
        except CompactedError:
            raise ExpiredError(f"too old resource version: {since}") from None


def _namespace_type() -> ResourceType:
    rtype = by_kind("", "Namespace")
    assert rtype is not None, "the config model serves Namespace"
    return rtype


_NAMESPACE = _namespace_type()


def _label(rtype: ResourceType, name: str) -> str:
    """`virtualservices.networking.istio.io "reviews"`, `services "x"`: the API server's way."""
    resource = f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural
    return f'{resource} "{name}"'


def _conflict(label: str, what: str, *causes: Cause) -> ResourceConflictError:
    """Kubernetes' wording for a failed precondition (apimachinery errors.NewConflict)."""
    return ResourceConflictError(f"Operation cannot be fulfilled on {label}: the object {what}",
                                 causes=causes)


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    labels = obj.get("metadata", {}).get("labels") or {}
    return labels if isinstance(labels, dict) else {}


def _precondition(document: dict[str, Any]) -> int | None:
    meta = document.get("metadata") or {}
    value = meta.get("resourceVersion")
    return None if value in (None, "") else _revision(value)


def _revision(value: Any) -> int:
    try:
        revision = int(value)
    except (TypeError, ValueError):
        raise InvalidError(f"resourceVersion {value!r} is not valid", causes=[
            Cause("metadata.resourceVersion", "must be an integer string")]) from None
    if revision < 0:
        raise InvalidError(f"resourceVersion {value!r} is not valid",
                      causes=[Cause("metadata.resourceVersion", "must not be negative")])
    return revision


def _encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
