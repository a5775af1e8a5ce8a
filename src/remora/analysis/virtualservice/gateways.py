"""IST0101 (gateway) and IST0132 for the Gateways a VirtualService binds to.

As istio/istio analyzers/virtualservice/gateways.go: `mesh` is skipped; `name` means a Gateway
in the VirtualService's namespace, `ns/name` one in `ns`. A VirtualService whose hosts match
none of the Gateway's server hosts (as visible from the VirtualService's namespace) gets
IST0132 -- also when the Gateway is missing, as istioctl reports both.
"""

from __future__ import annotations

from remora.analysis.context import Context
from remora.analysis.hosts import MESH_GATEWAY, split_namespaced_name
from remora.analysis.messages import (
    REFERENCED_RESOURCE_NOT_FOUND,
    VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
    go_list,
    go_quote,
)
from remora.analysis.models import Gateway, VirtualService
from remora.api.networking.names import host_matches


def check(ctx: Context) -> None:
    for vs in ctx.of(VirtualService):
        for i, ref in enumerate(vs.spec.gateways):
            if ref == MESH_GATEWAY:
                continue
            namespace, name = split_namespaced_name(ref, vs.namespace)
            gateway = ctx.find(Gateway, namespace, name)
            path = ("spec", "gateways", i)
            if gateway is None:
                ctx.report(vs, REFERENCED_RESOURCE_NOT_FOUND, "gateway", go_quote(ref), path=path)
            if not _hosts_in_gateway(gateway, vs.spec.hosts, vs.namespace):
                ctx.report(
                    vs,
                    VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
                    go_list(vs.spec.hosts),
                    vs.key,
                    f"{namespace}/{name}",
                    path=path,
                )


def gateway_hosts(gateway: Gateway) -> list[str]:
    """Server hosts with "./h" made "<gw ns>/h", "*/h" made "h", and "*/*" meaning "*"."""
    hosts: list[str] = []
    for server in gateway.spec.servers:
        server_hosts: list[str] = []
        for host in server.hosts:
            ns, slash, name = host.partition("/")
            if not slash:
                server_hosts.append(host)
            elif ns == ".":
                server_hosts.append(f"{gateway.namespace}/{name}")
            elif ns == "*" and name == "*":
                server_hosts = ["*"]
                break
            elif ns == "*":
                server_hosts.append(name)
            else:
                server_hosts.append(host)
        hosts.extend(server_hosts)
    return hosts


def _hosts_in_gateway(gateway: Gateway | None, vs_hosts: list[str], vs_namespace: str) -> bool:
    if gateway is None:
        return False
    visible = []
    for host in gateway_hosts(gateway):
        ns, slash, name = host.partition("/")
        if slash and ns not in (vs_namespace, "*"):
            continue
        visible.append(name if slash else host)
    return any(host_matches(g, h) for g in visible for h in vs_hosts)
