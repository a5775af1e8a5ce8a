"""A resource's status as the proxies report it: Istio's config distribution status.

Istio (with status reporting on) writes a `Reconciled` condition on a resource once the proxies
have it (istio.io "Configuration Status Field"). Remora computes the same condition when the
resource is read, from the ACKs the push server holds: when a connected proxy skipped the
resource (it could not be compiled for it), `status.conditions` says so with the reason. The
store is not written: a report never triggers a push, and it is gone when the proxy is.
"""

from __future__ import annotations

from typing import Any

RECONCILED = "Reconciled"


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
