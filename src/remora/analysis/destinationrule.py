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
from remora.analysis.inventory import Inventory
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
        for k, subset in enumerate(dr.spec.subsets):
            if not _selects_any(inventory, info, dict(subset.labels)):
                ctx.report(
                    dr,
                    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
                    subset.name,
                    path=("spec", "subsets", k, "name"),
                )


def _selects_any(inventory: Inventory, info: ServiceInfo | None, labels: dict[str, str]) -> bool:
    """A workload behind the host carries the subset's labels. The workloads behind the host are
    those its selector picks in its namespace; all workloads when the host is not known."""
    if info is None or info.selector is None:
        return bool(inventory.select(labels))
    return bool(inventory.select({**info.selector, **labels}, namespace=info.namespace))
