"""The columns `kubectl get` prints for workloads and HPAs, from their spec and status.

kubectl's printers (pkg/printers/internalversion/printers.go): a Deployment shows READY
(`readyReplicas/spec.replicas`), UP-TO-DATE (updatedReplicas) and AVAILABLE
(availableReplicas); a StatefulSet READY; a HorizontalPodAutoscaler REFERENCE (`Kind/name`),
TARGETS (per metric `current/target`: `cpu: 40%/50%`, `7500m/5` for a Pods metric,
`<unknown>` before the first measure; two at most, then `+ N more...`), MINPODS, MAXPODS and
REPLICAS (status.currentReplicas).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Column = tuple[str, Callable[[dict[str, Any]], str]]
_MAX_TARGETS = 2


def _section(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _replicas(obj: dict[str, Any]) -> int:
    replicas = _section(obj, "spec").get("replicas")
    return 1 if replicas is None else int(replicas)


def _status(obj: dict[str, Any], key: str) -> str:
    return str(_section(obj, "status").get(key) or 0)


def ready(obj: dict[str, Any]) -> str:
    return f"{_status(obj, 'readyReplicas')}/{_replicas(obj)}"


def reference(obj: dict[str, Any]) -> str:
    ref = _section(_section(obj, "spec"), "scaleTargetRef")
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def _target_metric(spec: dict[str, Any], current: dict[str, Any]) -> str:
    kind = spec.get("type")
    if kind == "Resource":
        resource = spec.get("resource") or {}
        target = resource.get("target") or {}
        now = (current.get("resource") or {}).get("current") or {}
        name = resource.get("name", "")
        if target.get("averageValue") is not None:
            return f"{name}: {now.get('averageValue', '<unknown>')}/{target['averageValue']}"
        value = now.get("averageUtilization")
        shown = f"{value}%" if value is not None else "<unknown>"
        goal = target.get("averageUtilization")
        return f"{name}: {shown}/{f'{goal}%' if goal is not None else '<auto>'}"
    if kind == "Pods":
        target = (spec.get("pods") or {}).get("target") or {}
        now = (current.get("pods") or {}).get("current") or {}
        return f"{now.get('averageValue', '<unknown>')}/{target.get('averageValue')}"
    return "<unknown>/<unknown>"


def targets(obj: dict[str, Any]) -> str:
    metrics = _section(obj, "spec").get("metrics") or [
        {"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": 80}}}]  # the HPA's default
    current = _section(obj, "status").get("currentMetrics") or []
    shown = [_target_metric(spec, current[i] if i < len(current) else {})
             for i, spec in enumerate(metrics)]
    text = ", ".join(shown[:_MAX_TARGETS])
    more = len(shown) - _MAX_TARGETS
    return f"{text} + {more} more..." if more > 0 else text


def _min_pods(obj: dict[str, Any]) -> str:
    value = _section(obj, "spec").get("minReplicas")
    return "<unset>" if value is None else str(value)


DEPLOYMENT: list[Column] = [("READY", ready),
                            ("UP-TO-DATE", lambda o: _status(o, "updatedReplicas")),
                            ("AVAILABLE", lambda o: _status(o, "availableReplicas"))]
STATEFULSET: list[Column] = [("READY", ready)]
HPA: list[Column] = [("REFERENCE", reference), ("TARGETS", targets), ("MINPODS", _min_pods),
                     ("MAXPODS", lambda o: str(_section(o, "spec").get("maxReplicas", ""))),
                     ("REPLICAS", lambda o: _status(o, "currentReplicas"))]
