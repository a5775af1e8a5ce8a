"""IST0149: routing on JWT claims at a gateway that no RequestAuthentication covers.

Claims are only available for routing after a RequestAuthentication validated the token on
the gateway pods (istio/istio analyzers/virtualservice/jwtclaimroute.go, pkg/jwt/routing.go).
For each Gateway the VirtualService binds to, each workload its selector picks must be
selected by a RequestAuthentication in its own namespace or in the root namespace.
Offline the gateway's Deployment is usually not in the input: then the Gateway's selector
stands for its pods, in the Gateway's namespace, and the message names the selector.
"""

from __future__ import annotations

from remora.analysis.context import Context
from remora.analysis.hosts import MESH_GATEWAY, split_namespaced_name
from remora.analysis.inventory import Workload
from remora.analysis.messages import JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN, selector_string
from remora.analysis.models import Gateway, RequestAuthentication, VirtualService

CLAIM_PREFIX = "@request.auth.claims"


def is_claim_key(header: str) -> bool:
    """`@request.auth.claims.<name>[.<name>]` or `@request.auth.claims[<name>][<name>]`."""
    if not header.lower().startswith(CLAIM_PREFIX):
        return False
    rest = header[len(CLAIM_PREFIX) :]
    return (rest.startswith(".") and len(rest) > 1) or (
        rest.startswith("[") and rest.endswith("]") and len(rest) > 2
    )


def _claim_key(vs: VirtualService) -> tuple[str, tuple[str | int, ...]] | None:
    for i, rule in enumerate(vs.spec.http):
        for j, match in enumerate(rule.match):
            for field, key in [("headers", k) for k in match.headers] + [
                ("withoutHeaders", k) for k in match.without_headers
            ]:
                if is_claim_key(key):
                    return key, ("spec", "http", i, "match", j, field, key)
    return None


def check(ctx: Context) -> None:
    authns = ctx.of(RequestAuthentication)
    for vs in ctx.of(VirtualService):
        found = _claim_key(vs)
        if found is None:
            continue
        key, path = found
        for ref in vs.spec.gateways:
            if ref == MESH_GATEWAY:
                continue
            namespace, name = split_namespaced_name(ref, vs.namespace)
            gateway = ctx.find(Gateway, namespace, name)
            if gateway is None:  # reported by the gateways check
                continue
            for pod, label in _gateway_pods(ctx, gateway):
                if not any(_covers(ra, pod, ctx.mesh.root) for ra in authns):
                    ctx.report(
                        vs,
                        JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN,
                        key,
                        f"{namespace}/{name}",
                        label,
                        path=path,
                    )


def _gateway_pods(ctx: Context, gateway: Gateway) -> list[tuple[Workload, str]]:
    selector = dict(gateway.spec.selector)
    pods = ctx.inventory.select(selector)
    if pods:
        return [(w, w.name) for w in pods]
    stand_in = Workload("Gateway", gateway.name, gateway.namespace, selector)
    return [(stand_in, selector_string(selector))]


def _covers(ra: RequestAuthentication, pod: Workload, root_namespace: str) -> bool:
    if ra.namespace not in (pod.namespace, root_namespace):
        return False
    selector = ra.spec.selector.match_labels if ra.spec.selector else {}
    return pod.selected_by(selector)
