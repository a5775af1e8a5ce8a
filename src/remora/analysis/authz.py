"""AuthorizationPolicy checks: IST0127 no matching workloads, IST0101 unknown namespace.

As istio/istio analyzers/authz/authorizationpolicies.go, offline:
- IST0127 (only when the input has workloads): a policy with a selector must select a workload
  in its namespace -- in any namespace for a policy in the root namespace (istio-system); a
  policy without a selector outside the root namespace needs some workload in its namespace.
  Policies with targetRef(s) attach to Gateways or Services and are not checked here.
- IST0101 namespace (only when the input has Namespace objects): each from.source.namespaces /
  notNamespaces entry (exact, "prefix*", "*suffix" or "*") must match a known namespace: one
  declared, one some input resource lives in, or one every cluster has.
"""

from __future__ import annotations

from remora.analysis.context import Context
from remora.analysis.messages import (
    NO_MATCHING_WORKLOADS_FOUND,
    REFERENCED_RESOURCE_NOT_FOUND,
    go_quote,
    selector_string,
)
from remora.analysis.models import AuthorizationPolicy


def check(ctx: Context) -> None:
    for policy in ctx.of(AuthorizationPolicy):
        if ctx.inventory.workloads:
            _check_workloads(ctx, policy)
        if ctx.inventory.namespace_objects:
            _check_namespaces(ctx, policy)


def _check_workloads(ctx: Context, policy: AuthorizationPolicy) -> None:
    spec = policy.spec
    if spec.target_ref is not None or spec.target_refs:
        return
    inventory = ctx.inventory
    if spec.selector is None:
        if (
            policy.namespace != ctx.mesh.root
            and policy.namespace not in inventory.namespaces_with_workloads
        ):
            ctx.report(policy, NO_MATCHING_WORKLOADS_FOUND, "")
        return
    labels = spec.selector.match_labels
    reach = None if policy.namespace == ctx.mesh.root else policy.namespace
    if not inventory.select(labels, namespace=reach):
        ctx.report(
            policy,
            NO_MATCHING_WORKLOADS_FOUND,
            selector_string(labels),
            path=("spec", "selector", "matchLabels"),
        )


def _check_namespaces(ctx: Context, policy: AuthorizationPolicy) -> None:
    known = ctx.inventory.known_namespaces
    for i, rule in enumerate(policy.spec.rules):
        for j, from_ in enumerate(rule.from_):
            source = from_.source
            for key, values in (
                ("namespaces", source.namespaces),
                ("notNamespaces", source.not_namespaces),
            ):
                for k, pattern in enumerate(values):
                    if not any(namespace_matches(ns, pattern) for ns in known):
                        ctx.report(
                            policy,
                            REFERENCED_RESOURCE_NOT_FOUND,
                            "namespace",
                            go_quote(pattern),
                            path=("spec", "rules", i, "from", j, "source", key, k),
                        )


def namespace_matches(namespace: str, pattern: str) -> bool:
    """AuthorizationPolicy string match: "*", "prefix*", "*suffix", or exact."""
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return namespace.endswith(pattern[1:])
    if pattern.endswith("*"):
        return namespace.startswith(pattern[:-1])
    return namespace.lower() == pattern.lower()
