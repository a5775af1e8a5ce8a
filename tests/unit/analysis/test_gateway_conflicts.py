"""IST0145 ConflictingGateways (istio/istio analyzers/gateway/conflictinggateway.go)."""

from __future__ import annotations

import pytest

from tests.unit.analysis.conftest import Lines


def _gateway(name: str, *, port: int = 80, host: str = "foo.bar", selector: str = "ingress") -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: {name}
spec:
  selector: {{istio: {selector}}}
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    hosts: [{host}]
---
"""


def test_same_selector_port_and_host_conflict(lines: Lines) -> None:
    text = _gateway("beta") + _gateway("alpha")
    assert lines(text, file="gw.yaml") == [
        "Error [IST0145] (Gateway default/alpha gw.yaml:18) Conflict with gateways default/beta "
        "(workload selector istio=ingress, port 80, hosts foo.bar).",
        "Error [IST0145] (Gateway default/beta gw.yaml:8) Conflict with gateways default/alpha "
        "(workload selector istio=ingress, port 80, hosts foo.bar).",
    ]


@pytest.mark.parametrize(
    "other",
    [
        {"port": 443},
        {"host": "other.bar"},
        {"selector": "egress"},
    ],
)
def test_no_conflict(lines: Lines, other: dict[str, object]) -> None:
    assert lines(_gateway("alpha") + _gateway("beta", **other)) == []  # type: ignore[arg-type]
