"""IST0145: Gateways with the same workload selector, port and a common server host.

As istio/istio analyzers/gateway/conflictinggateway.go: two Gateways conflict on a server when
their selectors are the same (or, with workloads in the input, select a common workload), the
server ports are equal, and a host appears in both with the same bind address. Each Gateway is
reported per conflicting server, naming the other Gateways.
"""

from __future__ import annotations

from remora.analysis.context import Context
from remora.analysis.messages import CONFLICTING_GATEWAYS, selector_string
from remora.analysis.models import Gateway


def check_conflicts(ctx: Context) -> None:
    gateways = ctx.of(Gateway)
    for gateway in gateways:
        for k, server in enumerate(gateway.spec.servers):
            port = server.port.number if server.port else 0
            hosts = {(h, server.bind or "") for h in server.hosts}
            others = sorted(
                {
                    other.key
                    for other in gateways
                    if other is not gateway
                    and _same_workloads(ctx, gateway, other)
                    and any(
                        (o.port.number if o.port else 0) == port
                        and hosts & {(h, o.bind or "") for h in o.hosts}
                        for o in other.spec.servers
                    )
                }
            )
            if others:
                ctx.report(
                    gateway,
                    CONFLICTING_GATEWAYS,
                    ",".join(others),
                    selector_string(dict(gateway.spec.selector)),
                    str(port),
                    ",".join(server.hosts),
                    path=("spec", "servers", k),
                )


def _same_workloads(ctx: Context, a: Gateway, b: Gateway) -> bool:
    sa, sb = dict(a.spec.selector), dict(b.spec.selector)
    if sa == sb:
        return True
    return any(w.selected_by(sb) for w in ctx.inventory.select(sa))
