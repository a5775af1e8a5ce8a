"""An object's `status` and `scale` subresources, as the Kubernetes API server serves them.

- `.../{name}/status`: GET is the object; PUT replaces only its `.status` (what a controller
  reports) — spec, metadata and generation stay, and writes to the object itself keep the
  status (resources.py).
- `.../{name}/scale` (kinds with `spec.replicas`: Deployment, StatefulSet): an autoscaling/v1
  Scale. PUT sets `spec.replicas` — a spec change, so generation moves — which is how a
  HorizontalPodAutoscaler scales its target.

A body's `metadata.resourceVersion` is a precondition, as for the object.
"""

from __future__ import annotations

import json
from typing import Any

from remora.controlplane.kindnames import ResourceType
from remora.controlplane.resources import (
    BadRequestError,
    Mode,
    NotFoundError,
    ResourceConflictError,
    ResourceStore,
    decode,
    key_of,
)
from remora.registry.store.base import ConflictError

SCALABLE = frozenset({"Deployment", "StatefulSet"})
_RETRIES = 5


def _precondition(document: dict[str, Any]) -> str | None:
    meta = document.get("metadata")
    value = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return None if value in (None, "") else str(value)


def _check_version(label: str, wanted: str | None, current: dict[str, Any]) -> None:
    have = current["metadata"]["resourceVersion"]
    if wanted is not None and wanted != have:
        raise ResourceConflictError(f"Operation cannot be fulfilled on {label}: the object has "
                                    "been modified; please apply your changes to the latest "
                                    "version and try again")


async def write_status(resources: ResourceStore, rtype: ResourceType, namespace: str,
                       name: str, document: Any) -> dict[str, Any]:
    """Replace the `.status` of an object with the body's; the object as stored."""
    if not isinstance(document, dict) or not isinstance(document.get("status", {}), dict):
        raise BadRequestError("expected an object whose status is a mapping")
    status = document.get("status") or {}
    wanted = _precondition(document)
    key = key_of(rtype, namespace if rtype.namespaced else "", name)
    for _ in range(_RETRIES):
        entry = await resources.store.get(key)
        if entry is None:
            raise NotFoundError(f'{rtype.plural} "{name}" not found')
        current = decode(entry)
        _check_version(f'{rtype.plural} "{name}"', wanted, current)
        stored = json.loads(entry.value)
        stored["status"] = status
        try:
            written = await resources.store.put(
                key, json.dumps(stored, separators=(",", ":"), ensure_ascii=False).encode(),
                expected=entry.modified)
        except ConflictError:
            if wanted is not None:
                raise ResourceConflictError(f'{rtype.plural} "{name}" was modified meanwhile') \
                    from None
            continue
        return decode(written)
    raise ResourceConflictError(f'{rtype.plural} "{name}" kept changing; try again')


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale of a Deployment or StatefulSet."""
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    labels = ((spec.get("selector") or {}).get("matchLabels") or {})
    replicas = spec.get("replicas")
    return {
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                          "creationTimestamp") if k in meta},
        "spec": {"replicas": 1 if replicas is None else replicas},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                   "selector": ",".join(f"{k}={v}" for k, v in labels.items())},
    }


def _scalable(rtype: ResourceType) -> None:
    if rtype.kind not in SCALABLE:
        raise NotFoundError(f"{rtype.plural} have no scale subresource")


async def get_scale(resources: ResourceStore, rtype: ResourceType, namespace: str,
                    name: str) -> dict[str, Any]:
    _scalable(rtype)
    return scale_of(await resources.get(rtype, namespace, name))


async def write_scale(resources: ResourceStore, rtype: ResourceType, namespace: str,
                      name: str, document: Any) -> dict[str, Any]:
    """Set `spec.replicas` from a Scale body; the Scale after the write."""
    _scalable(rtype)
    replicas = (document.get("spec") or {}).get("replicas") if isinstance(document, dict) \
        else None
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise BadRequestError("a Scale needs spec.replicas, an integer >= 0")
    wanted = _precondition(document)
    for _ in range(_RETRIES):
        current = await resources.get(rtype, namespace, name)
        _check_version(f'{rtype.plural} "{name}"', wanted, current)
        current["spec"] = {**(current.get("spec") or {}), "replicas": replicas}
        try:
            applied = await resources.apply(current, mode=Mode.UPDATE, namespace=namespace)
        except ResourceConflictError:
            if wanted is not None:
                raise
            continue
        return scale_of(applied.object)
    raise ResourceConflictError(f'{rtype.plural} "{name}" kept changing; try again')
