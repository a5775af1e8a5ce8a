"""DestinationRule checks: IST0174 unknown host, IST0173 subsets that select no workload.

As istio/istio analyzers/destinationrule/subset.go, with Remora's offline view of what exists:
- IST0174 when the input has Services or ServiceEntries and none of them is the rule's host.
- IST0173 when the input has workloads (Deployments, StatefulSets, WorkloadEntries) and none
  carries the subset's labels. When the host is a Service or ServiceEntry with a selector, the
  workload must also be selected by it, in its namespace (the endpoints a subset filters);
  when the host is not in the input, any workload with the subset's labels counts.
"""

from __future__ import annotations

from remora.analysis.context import Context
from remora.analysis.hosts import ServiceInfo
from remora.analysis.inventory import Workload
from remora.analysis.messages import (
    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
    UNKNOWN_DESTINATION_RULE_HOST,
)
from remora.analysis.models import DestinationRule


def check(ctx: Context) -> None:
    inventory = ctx.inventory
    for dr in ctx.of(DestinationRule):
        info = inventory.services.lookup(
            dr.spec.host, namespace=dr.namespace, export_to=dr.spec.export_to
        )
        if inventory.services and info is None:
            ctx.report(dr, UNKNOWN_DESTINATION_RULE_HOST, dr.spec.host, path=("spec", "host"))
            continue
        if not inventory.workloads or (info is not None and info.selector is None):
            continue
        candidates = _endpoints(inventory.workloads, info)
        for k, subset in enumerate(dr.spec.subsets):
            labels = dict(subset.labels)
            if not any(w.selected_by(labels) for w in candidates):
                ctx.report(
                    dr,
                    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
                    subset.name,
                    path=("spec", "subsets", k, "name"),
                )


def _endpoints(workloads: list[Workload], info: ServiceInfo | None) -> list[Workload]:
    """The workloads behind the host: those its selector picks in its namespace, else all."""
    if info is None or info.selector is None:
        return workloads
    selector = info.selector
    return [w for w in workloads if w.namespace == info.namespace and w.selected_by(selector)]
