"""Effective DestinationRule policy per cluster and which rule applies, following the Istio
"Destination Rule" reference ("Traffic settings specified at the destination-level will not be
inherited when overridden by port-level settings"; subsets override the service-level settings)
and pilot MergeSubsetTrafficPolicy."""

from __future__ import annotations

from typing import Any

import pytest

from remora.api.networking.traffic_policy import TrafficPolicy
from remora.mesh.snapshot import ProxyIdentity
from remora.mesh.trafficpolicy import DestinationRules, effective_policy
from tests.unit.mesh import load

RULE = {
    "loadBalancer": {"simple": "ROUND_ROBIN"},
    "connectionPool": {"tcp": {"maxConnections": 10}},
    "outlierDetection": {"consecutive5xxErrors": 3},
    "portLevelSettings": [
        {"port": {"number": 9443}, "loadBalancer": {"simple": "RANDOM"}},
    ],
}
SUBSET = {
    "loadBalancer": {"simple": "LEAST_REQUEST"},
    "portLevelSettings": [
        {"port": {"number": 9080}, "connectionPool": {"tcp": {"maxConnections": 1}}},
    ],
}


def _tp(data: dict[str, Any] | None) -> TrafficPolicy | None:
    return TrafficPolicy.model_validate(data) if data is not None else None


def _summary(policy: TrafficPolicy | None) -> dict[str, Any]:
    if policy is None:
        return {}
    return policy.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)


@pytest.mark.parametrize(
    ("rule", "subset", "port", "expected"),
    [
        # no subset: the rule's policy, port-level entries gone from the result
        (RULE, None, 9080, {k: v for k, v in RULE.items() if k != "portLevelSettings"}),
        # the rule's port-level entry replaces the four fields wholesale, no inheritance
        (RULE, None, 9443, {"loadBalancer": {"simple": "RANDOM"}}),
        # a subset overrides field by field; the rest is the rule's
        (RULE, {"loadBalancer": {"simple": "LEAST_REQUEST"}}, 8000, {
            "loadBalancer": {"simple": "LEAST_REQUEST"},
            "connectionPool": {"tcp": {"maxConnections": 10}},
            "outlierDetection": {"consecutive5xxErrors": 3},
        }),
        # the subset's port-level entry replaces all four fields of the merged policy
        (RULE, SUBSET, 9080, {"connectionPool": {"tcp": {"maxConnections": 1}}}),
        # subset without a rule-level policy
        (None, SUBSET, 8000, {"loadBalancer": {"simple": "LEAST_REQUEST"}}),
        (None, None, 8000, {}),
    ],
)
def test_effective_policy(
    rule: dict[str, Any] | None, subset: dict[str, Any] | None, port: int,
    expected: dict[str, Any],
) -> None:  # fmt: skip
    assert _summary(effective_policy(_tp(rule), _tp(subset), port=port)) == expected


def _rule(name: str, namespace: str, host: str, extra: str = "") -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  host: "{host}"{extra}
---
"""


RULES = (
    _rule("in-proxy-ns", "client", "reviews.shop.svc.cluster.local")
    + _rule("in-service-ns", "shop", "reviews")
    + _rule("root", "istio-system", "*.svc.cluster.local")
    + _rule("private", "shop", "ratings", "\n  exportTo: ['.']")
    + _rule("wide", "shop", "*.shop.svc.cluster.local")
    + _rule("selected", "client", "details.shop.svc.cluster.local",
            "\n  workloadSelector: {matchLabels: {app: other}}")
)  # fmt: skip


@pytest.mark.parametrize(
    ("proxy_ns", "host", "expected"),
    [
        ("client", "reviews.shop.svc.cluster.local", ["client/in-proxy-ns"]),  # proxy ns first
        ("shop", "reviews.shop.svc.cluster.local", ["shop/in-service-ns"]),  # then service ns
        ("other", "reviews.shop.svc.cluster.local", ["shop/in-service-ns"]),
        ("shop", "ratings.shop.svc.cluster.local", ["shop/private"]),  # exportTo "." at home
        ("other", "ratings.shop.svc.cluster.local", ["shop/wide"]),  # ... hidden elsewhere
        ("other", "x.shop.svc.cluster.local", ["shop/wide"]),  # wildcard in service ns
        ("other", "x.other.svc.cluster.local", ["istio-system/root"]),  # then root ns
        # a workloadSelector that does not select this proxy: the rule is ignored
        ("client", "details.shop.svc.cluster.local", ["shop/wide"]),
    ],
)
def test_which_destination_rule_applies(proxy_ns: str, host: str, expected: list[str]) -> None:
    rules = DestinationRules(load(RULES), ProxyIdentity(mode="sidecar", namespace=proxy_ns))
    service_ns = host.split(".")[1]
    found = rules.for_host(host, service_ns)
    assert found is not None and found.names == expected


def test_rules_for_one_host_in_one_namespace_merge() -> None:
    text = (
        _rule("a", "shop", "reviews", """
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets: [{name: v1, labels: {version: v1}}]""")
        + _rule("b", "shop", "reviews", """
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets: [{name: v1, labels: {version: other}}, {name: v2, labels: {version: v2}}]""")
    )  # fmt: skip
    rules = DestinationRules(load(text), ProxyIdentity(mode="sidecar", namespace="shop"))
    found = rules.for_host("reviews.shop.svc.cluster.local", "shop")
    assert found is not None
    assert found.traffic_policy is not None and found.traffic_policy.load_balancer is not None
    assert found.traffic_policy.load_balancer.simple == "RANDOM"  # the oldest rule's policy
    assert {n: s.labels for n, s in found.subsets.items()} == {
        "v1": {"version": "v1"}, "v2": {"version": "v2"},
    }  # fmt: skip
