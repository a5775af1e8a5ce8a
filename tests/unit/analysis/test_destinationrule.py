"""IST0173 DestinationRuleSubsetNotSelectPods and IST0174 UnknownDestinationRuleHost
(istio/istio analyzers/destinationrule/subset.go)."""

from __future__ import annotations

from tests.unit.analysis.conftest import Lines

DR = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v4
    labels: {version: v4}
"""


def _deployment(name: str, labels: str, namespace: str = "default") -> str:
    return f"""\
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
spec:
  selector:
    matchLabels: {labels}
  template:
    metadata:
      labels: {labels}
    spec:
      containers:
      - {{name: app, image: app}}
"""


SERVICE = """\
---
apiVersion: v1
kind: Service
metadata:
  name: reviews
spec:
  selector: {app: reviews}
  ports:
  - {port: 9080, name: http}
"""

V4_TEXT = (
    "The Subset v4 defined in the DestinationRule does not select any pods. Which may lead to "
    "503 UH (NoHealthyUpstream)."
)


def test_subset_without_workloads(lines: Lines) -> None:
    text = DR + _deployment("reviews-v1", "{app: reviews, version: v1}")
    assert lines(text, file="dr.yaml") == [
        f"Error [IST0173] (DestinationRule default/reviews dr.yaml:10) {V4_TEXT}"
    ]


def test_not_checked_without_workloads_in_the_input(lines: Lines) -> None:
    assert lines(DR) == []


def test_workloads_must_be_behind_the_service(lines: Lines) -> None:
    text = DR + SERVICE + _deployment("other-v1", "{app: other, version: v1}")
    text += _deployment("reviews-v4", "{app: reviews, version: v4}", namespace="elsewhere")
    out = lines(text, file="dr.yaml")
    assert sorted(line.split(") ")[1][:14] for line in out) == ["The Subset v1 ", "The Subset v4 "]
    text += _deployment("reviews-v4", "{app: reviews, version: v4}")
    text += _deployment("reviews-v1", "{app: reviews, version: v1}")
    assert lines(text) == []


def test_unknown_host_when_services_are_in_the_input(lines: Lines) -> None:
    text = (
        DR.replace("host: reviews", "host: reviewz").replace("name: reviews", "name: reviewz")
        + SERVICE
    )
    assert lines(text, file="dr.yaml") == [
        "Warning [IST0174] (DestinationRule default/reviewz dr.yaml:6) The host reviewz defined "
        "in the DestinationRule does not match any services in the mesh."
    ]


def test_workload_entries_count_as_workloads(lines: Lines) -> None:
    entry = """\
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: vm-v4
spec:
  address: 10.0.0.4
  labels: {app: reviews, version: v4}
"""
    assert lines(DR + _deployment("reviews-v1", "{app: reviews, version: v1}") + entry) == []
