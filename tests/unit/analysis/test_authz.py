"""AuthorizationPolicy: IST0127 NoMatchingWorkloadsFound and IST0101 namespace
(istio/istio analyzers/authz/authorizationpolicies.go)."""

from __future__ import annotations

import pytest

from remora.analysis.authz import namespace_matches
from tests.unit.analysis.conftest import Lines

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: httpbin
  namespace: httpbin
spec:
  selector:
    matchLabels: {app: httpbin}
  template:
    metadata:
      labels: {app: httpbin, version: v1}
    spec:
      containers:
      - {name: app, image: httpbin}
---
"""


def _policy(namespace: str, selector: str = "", rules: str = "") -> str:
    return f"""\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: p
  namespace: {namespace}
spec:
{selector}{rules or "  rules: [{}]"}
"""


@pytest.mark.parametrize(
    ("namespace", "labels", "expected"),
    [
        ("httpbin", "{app: httpbin}", None),
        ("httpbin", "{app: httpbin, version: v2}", "app=httpbin,version=v2"),
        ("other", "{app: httpbin}", "app=httpbin"),
        ("istio-system", "{app: httpbin}", None),  # root namespace: any namespace
        ("istio-system", "{app: nothing}", "app=nothing"),
    ],
)
def test_selector_must_match_a_workload(
    lines: Lines, namespace: str, labels: str, expected: str | None
) -> None:
    selector = f"  selector:\n    matchLabels: {labels}\n"
    out = lines(DEPLOYMENT + _policy(namespace, selector), file="ap.yaml")
    assert out == (
        [
            f"Warning [IST0127] (AuthorizationPolicy {namespace}/p ap.yaml:23) No matching "
            f"workloads for this resource with the following labels: {expected}"
        ]
        if expected
        else []
    )


def test_namespace_wide_policy_needs_a_workload_in_its_namespace(lines: Lines) -> None:
    assert lines(DEPLOYMENT + _policy("httpbin")) == []
    assert lines(DEPLOYMENT + _policy("empty"), file="ap.yaml") == [
        "Warning [IST0127] (AuthorizationPolicy empty/p ap.yaml:16) No matching workloads for "
        "this resource with the following labels: "
    ]


def test_workloads_not_checked_without_workloads_in_the_input(lines: Lines) -> None:
    assert lines(_policy("empty", "  selector:\n    matchLabels: {app: x}\n")) == []


NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata:
  name: frontend
---
"""
RULES = """\
  rules:
  - from:
    - source:
        namespaces: [frontend, "front*", "*end", bogus]
        notNamespaces: [default, "bog*"]
"""


def test_unknown_namespaces_when_namespaces_are_in_the_input(lines: Lines) -> None:
    assert lines(NAMESPACE + _policy("httpbin", rules=RULES), file="ap.yaml") == [
        "Error [IST0101] (AuthorizationPolicy httpbin/p ap.yaml:15) Referenced namespace not "
        'found: "bogus"',
        "Error [IST0101] (AuthorizationPolicy httpbin/p ap.yaml:16) Referenced namespace not "
        'found: "bog*"',
    ]
    assert lines(_policy("httpbin", rules=RULES)) == []


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [("*", True), ("front*", True), ("*end", True), ("Frontend", True), ("back*", False)],
)
def test_namespace_patterns(pattern: str, matches: bool) -> None:
    assert namespace_matches("frontend", pattern) is matches
