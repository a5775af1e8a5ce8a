"""IST0149 JwtClaimBasedRoutingWithoutRequestAuthN (virtualservice/jwtclaimroute.go)."""

from __future__ import annotations

import pytest

from remora.analysis.virtualservice.jwtclaims import is_claim_key
from tests.unit.analysis.conftest import Lines

GATEWAY_AND_VS = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: web
  namespace: istio-system
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: foo
spec:
  hosts: [foo.example.com]
  gateways: [istio-system/web]
  http:
  - match:
    - headers:
        "@request.auth.claims.group":
          exact: admin
    route:
    - destination: {host: foo}
"""

AUTHN = """\
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt
  namespace: {namespace}
spec:
  selector:
    matchLabels: {{istio: {label}}}
  jwtRules:
  - issuer: https://issuer.example.com
"""

GATEWAY_DEPLOYMENT = """\
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: istio-ingressgateway
  namespace: istio-system
spec:
  selector:
    matchLabels: {istio: ingressgateway}
  template:
    metadata:
      labels: {istio: ingressgateway}
    spec:
      containers:
      - name: istio-proxy
        image: proxyv2
"""

TAIL = (
    "The request authentication must first be applied for the gateway pods to validate the JWT "
    "token and make the claims available for routing."
)


@pytest.mark.parametrize(
    ("key", "claim"),
    [
        ("@request.auth.claims.group", True),
        ("@request.auth.claims[group][sub]", True),
        ("@request.auth.claims", False),
        ("@request.auth.claims.", False),
        ("x-group", False),
    ],
)
def test_claim_keys(key: str, claim: bool) -> None:
    assert is_claim_key(key) is claim


def test_no_request_authentication_for_the_gateway_pods(lines: Lines) -> None:
    assert lines(GATEWAY_AND_VS + GATEWAY_DEPLOYMENT, file="vs.yaml") == [
        "Error [IST0149] (VirtualService default/foo vs.yaml:22) The virtual service uses the "
        "JWT claim based routing (key: @request.auth.claims.group) but found no request "
        "authentication for the gateway (istio-system/web) pod (istio-ingressgateway). " + TAIL
    ]


def test_without_gateway_pods_the_selector_stands_for_them(lines: Lines) -> None:
    out = lines(GATEWAY_AND_VS + AUTHN.format(namespace="istio-system", label="other"))
    assert out == [
        "Error [IST0149] (VirtualService default/foo in.yaml:22) The virtual service uses the "
        "JWT claim based routing (key: @request.auth.claims.group) but found no request "
        "authentication for the gateway (istio-system/web) pod (istio=ingressgateway). " + TAIL
    ]


@pytest.mark.parametrize("pods", ["", GATEWAY_DEPLOYMENT])
def test_request_authentication_in_root_namespace_covers_the_gateway(
    lines: Lines, pods: str
) -> None:
    authn = AUTHN.format(namespace="istio-system", label="ingressgateway")
    assert lines(GATEWAY_AND_VS + pods + authn) == []
