"""IST0101 gateway and IST0132 VirtualServiceHostNotFoundInGateway (virtualservice/gateways.go)."""

from __future__ import annotations

import pytest

from tests.unit.analysis.conftest import Lines

GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: web
  namespace: edge
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [{hosts}]
---
"""

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: shop
spec:
  hosts: [shop.example.com]
  gateways:
  - mesh
  - {gateway}
  http:
  - route:
    - destination: {{host: shop}}
"""


def _input(gateway_hosts: str, ref: str = "edge/web") -> str:
    return GATEWAY.replace("{hosts}", gateway_hosts) + VS.format(gateway=ref)


@pytest.mark.parametrize(
    "hosts",
    [
        '"shop.example.com"',
        '"*.example.com"',
        '"*"',
        '"default/shop.example.com"',
        '"*/shop.example.com"',
        '"*/*"',
    ],
)
def test_host_visible_in_gateway(lines: Lines, hosts: str) -> None:
    assert lines(_input(hosts)) == []


@pytest.mark.parametrize(
    "hosts", ['"other.example.com"', '"team/shop.example.com"', '"./shop.example.com"']
)
def test_host_not_found_in_gateway(lines: Lines, hosts: str) -> None:
    # "./h" is the Gateway's own namespace (edge); the VirtualService lives in default.
    assert lines(_input(hosts), file="gw.yaml") == [
        "Warning [IST0132] (VirtualService default/shop gw.yaml:20) one or more host "
        "[shop.example.com] defined in VirtualService default/shop not found in Gateway edge/web."
    ]


def test_missing_gateway_reports_both_as_istioctl_does(lines: Lines) -> None:
    assert lines(_input('"*"', ref="web"), file="gw.yaml") == [
        "Error [IST0101] (VirtualService default/shop gw.yaml:20) "
        'Referenced gateway not found: "web"',
        "Warning [IST0132] (VirtualService default/shop gw.yaml:20) one or more host "
        "[shop.example.com] defined in VirtualService default/shop not found in Gateway "
        "default/web.",
    ]
