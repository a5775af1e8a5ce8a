"""IST0109: VirtualServices bound to the mesh gateway that define the same host.

As istio/istio analyzers/virtualservice/conflictingmeshgatewayhosts.go: a VirtualService with
no gateways, or listing `mesh`, claims each of its hosts (as an FQDN) in every scope it is
exported to ("*" when exportTo is empty or has "*"). Two claims on one scoped host conflict; a
claim scoped to a namespace also conflicts with "*"-scoped claims whose host matches it. Each
VirtualService is reported once, naming all the conflicting ones.
"""

from __future__ import annotations

from remora.analysis.context import Context
from remora.analysis.hosts import EXPORT_ALL, MESH_GATEWAY, export_scopes
from remora.analysis.messages import CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS
from remora.analysis.models import VirtualService
from remora.api.networking.names import host_matches, to_fqdn


def check(ctx: Context) -> None:
    claims: dict[tuple[str, str], list[VirtualService]] = {}
    for vs in ctx.of(VirtualService):
        if vs.spec.gateways and MESH_GATEWAY not in vs.spec.gateways:
            continue
        for scope in export_scopes(vs.spec.export_to, vs.namespace):
            for host in dict.fromkeys(vs.spec.hosts):
                claims.setdefault((scope, to_fqdn(host, vs.namespace)), []).append(vs)
    reported: set[str] = set()
    for (scope, host), claimed in sorted(claims.items()):
        claimants = list(claimed)
        if scope != EXPORT_ALL:
            claimants += [
                vs
                for (other_scope, other_host), found in sorted(claims.items())
                if other_scope == EXPORT_ALL and host_matches(host, other_host)
                for vs in found
            ]
        keys = sorted({vs.key for vs in claimants})
        if len(keys) < 2:  # several documents of one VirtualService are versions, not rivals
            continue
        names = ",".join(keys)
        for vs in claimants:
            if vs.key in reported:
                continue
            reported.add(vs.key)
            ctx.report(
                vs,
                CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
                names,
                f"{scope}/{host}",
                path=("metadata", "name"),
            )
