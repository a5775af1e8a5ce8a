"""`remora get deploy|hpa` columns as kubectl's printers make them (pkg/printers/internalversion:
READY ready/desired; TARGETS current/target per metric, `<unknown>` unmeasured, two shown then
`+ N more...`; MINPODS, MAXPODS, REPLICAS)."""

from __future__ import annotations

from typing import Any

from remora.cli import columns

CPU50 = {"type": "Resource", "resource": {"name": "cpu", "target": {
    "type": "Utilization", "averageUtilization": 50}}}
RPS5 = {"type": "Pods", "pods": {"metric": {"name": "requests_per_second"},
                                 "target": {"type": "AverageValue", "averageValue": "5"}}}


def deployment(replicas: int | None = 3) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "web"}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": spec}


def test_kubectl_columns() -> None:
    obj = {**deployment(3), "status": {"readyReplicas": 2, "updatedReplicas": 3,
                                       "availableReplicas": 2}}
    assert [f(obj) for _, f in columns.DEPLOYMENT] == ["2/3", "3", "2"]
    assert columns.ready(deployment(None)) == "0/1"
    spec = {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1,
            "maxReplicas": 3, "metrics": [CPU50, RPS5]}
    unmeasured = {"spec": spec}
    assert [f(unmeasured) for _, f in columns.HPA] == [
        "Deployment/web", "cpu: <unknown>/50%, <unknown>/5", "1", "3", "0"]
    measured = {"spec": {**spec, "metrics": [CPU50, RPS5, CPU50]}, "status": {
        "currentReplicas": 2, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {
                "averageUtilization": 40}}},
            {"type": "Pods", "pods": {"current": {"averageValue": "7500m"}}}]}}
    assert columns.targets(measured) == "cpu: 40%/50%, 7500m/5 + 1 more..."
