"""IST0101 / IST0112 about where a VirtualService sends traffic.

- host: the destination (or mirror) host is no Service or ServiceEntry visible to the
  VirtualService (istio/istio analyzers/virtualservice/destinationhosts.go). Offline the
  registry is only what the input holds, so hosts are checked only when the input has at least
  one Service or ServiceEntry.
- host:port: the destination names a port the service does not expose; IST0112 when it names
  none and the service exposes several.
- host+subset in destinationrule: no DestinationRule for that host defines the subset
  (destinationrules.go); mirrors say "mirror+subset in destinationrule".
"""

from __future__ import annotations

from remora.analysis.context import Context
from remora.analysis.messages import (
    REFERENCED_RESOURCE_NOT_FOUND,
    VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
    go_list,
    go_quote,
)
from remora.analysis.models import DestinationRule, VirtualService
from remora.analysis.virtualservice.walk import Located, mirror_destinations, route_destinations
from remora.api.networking.names import host_matches, to_fqdn


def check_hosts(ctx: Context) -> None:
    registry = ctx.inventory.services
    if not registry:
        return
    for vs in ctx.of(VirtualService):
        for located in [*route_destinations(vs), *mirror_destinations(vs)]:
            _check_host(ctx, vs, located)


def _check_host(ctx: Context, vs: VirtualService, located: Located) -> None:
    dest = located.destination
    info = ctx.inventory.services.lookup(
        dest.host, namespace=vs.namespace, export_to=vs.spec.export_to
    )
    if info is None:
        reftype = "mirror host" if located.mirror else "host"
        ctx.report(
            vs, REFERENCED_RESOURCE_NOT_FOUND, reftype, go_quote(dest.host), path=located.at("host")
        )
        return
    if dest.port is None or dest.port.number is None:
        if len(info.ports) > 1:
            ctx.report(
                vs,
                VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
                go_quote(dest.host),
                go_list(info.ports),
                path=located.at("host"),
            )
        return
    if dest.port.number not in info.ports:
        value = f"{dest.host}:{dest.port.number}"
        ctx.report(
            vs,
            REFERENCED_RESOURCE_NOT_FOUND,
            "host:port",
            go_quote(value),
            path=(*located.at("port"), "number"),
        )


def check_subsets(ctx: Context) -> None:
    subsets: dict[str, set[str]] = {}
    for dr in ctx.of(DestinationRule):
        names = subsets.setdefault(to_fqdn(dr.spec.host, dr.namespace), set())
        names.update(s.name for s in dr.spec.subsets)
    for vs in ctx.of(VirtualService):
        for located in [*route_destinations(vs), *mirror_destinations(vs)]:
            dest = located.destination
            if not dest.subset or _defined(subsets, to_fqdn(dest.host, vs.namespace), dest.subset):
                continue
            reftype = (
                "mirror+subset in destinationrule"
                if located.mirror
                else ("host+subset in destinationrule")
            )
            ctx.report(
                vs,
                REFERENCED_RESOURCE_NOT_FOUND,
                reftype,
                go_quote(f"{dest.host}+{dest.subset}"),
                path=located.at("subset"),
            )


def _defined(subsets: dict[str, set[str]], host: str, subset: str) -> bool:
    """The subset is defined by the DestinationRule for exactly this host, or else by the most
    specific one whose wildcard host covers it (the rule Istio would apply)."""
    if host in subsets:
        return subset in subsets[host]
    covering = [h for h in subsets if h.startswith("*") and host_matches(h, host)]
    return bool(covering) and subset in subsets[max(covering, key=len)]
