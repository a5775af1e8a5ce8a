"""A resource's status as Istio reports it (istio.io "Configuration Status Field"): analysis
messages and config distribution, computed when the resource is read.

- `status.validationMessages`: what the single-resource analyzers say about it (an
  AuthorizationPolicy's RMR0001 NotEnforced...), in Istio's shape `{type: {code, name}, level,
  documentationUrl}`;
- `status.conditions` `Reconciled`: Istio writes it once the proxies have the resource; Remora
  sets it to False, with the reason, when a connected proxy skipped the resource (it could not
  be compiled for it), from the ACKs the push server holds.
Nothing is written to the store: a report never triggers a push, and it is gone when the
proxy is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from remora.analysis.context import Context
from remora.api.errors import ConfigError
from remora.api.loader import parse_resource

RECONCILED = "Reconciled"


def with_validation_messages(obj: dict[str, Any],
                             analyzers: Sequence[Callable[[Context], None]]) -> dict[str, Any]:
    """`obj` with Istio's `status.validationMessages` from `analyzers` (none: unchanged)."""
    try:
        resource = parse_resource(obj)
    except ConfigError:  # stored past validation: proxies report it (Reconciled)
        return obj
    context = Context([resource])
    for analyzer in analyzers:
        analyzer(context)
    if not context.messages:
        return obj
    status = dict(obj.get("status") or {})
    status["validationMessages"] = [
        {"type": {"code": m.type.code, "name": m.type.name},
         "level": m.type.level.value.upper(), "documentationUrl": m.type.documentation_url}
        for m in context.messages
    ]
    return {**obj, "status": status}


def with_proxy_status(push: Any, obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` with a Reconciled=False condition when connected proxies skipped it."""
    if push is None:
        return obj
    meta = obj.get("metadata") or {}
    key = (obj.get("kind"), meta.get("namespace", ""), meta.get("name"))
    subscribers = list(push.subscribers.values())
    reasons = [
        f"{subscriber.id}: {item['message']}"
        for subscriber in subscribers for item in subscriber.resource_errors
        if (item["kind"], item["namespace"], item["name"]) == key
    ]
    if not reasons:
        return obj
    condition = {
        "type": RECONCILED, "status": "False", "reason": "SkippedByProxy",
        "message": f"{len(reasons)} of {len(subscribers)} connected proxies could not apply "
                   f"it (the rest of their configuration is applied): " + "; ".join(reasons[:5]),
    }
    status = dict(obj.get("status") or {})
    status["conditions"] = [c for c in status.get("conditions") or []
                            if c.get("type") != RECONCILED] + [condition]
    if meta.get("generation") is not None:
        status["observedGeneration"] = meta["generation"]
    return {**obj, "status": status}
