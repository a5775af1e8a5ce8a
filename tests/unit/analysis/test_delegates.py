"""Delegate VirtualServices: IST0101 for a missing delegate (virtual_service.proto Delegate)."""

from __future__ import annotations

from tests.unit.analysis.conftest import Lines

ROOT = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: root
spec:
  hosts: [shop.example.com]
  http:
  - match:
    - uri: {prefix: /reviews}
    delegate:
      name: reviews
      namespace: team
"""

DELEGATE = """\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: team
spec:
  http:
  - route:
    - destination: {host: reviews}
"""


def test_missing_delegate(lines: Lines) -> None:
    assert lines(ROOT, file="vs.yaml") == [
        "Error [IST0101] (VirtualService default/root vs.yaml:10) Referenced delegate "
        'virtualservice not found: "team/reviews"'
    ]


def test_present_delegate(lines: Lines) -> None:
    assert lines(ROOT + DELEGATE) == []
