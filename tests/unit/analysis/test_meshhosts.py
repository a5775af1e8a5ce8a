"""IST0109 ConflictingMeshGatewayVirtualServiceHosts
(istio/istio analyzers/virtualservice/conflictingmeshgatewayhosts.go)."""

from __future__ import annotations

from tests.unit.analysis.conftest import Lines


def _vs(name: str, namespace: str, host: str, extra: str = "") -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: {namespace}
spec:
  hosts: [{host}]
{extra}  http:
  - route:
    - destination: {{host: {host}}}
---
"""


def test_two_mesh_virtual_services_for_one_host(lines: Lines) -> None:
    text = _vs("ratings", "foo", "ratings.bar.svc.cluster.local") + _vs("ratings", "bar", "ratings")
    message = (
        "The VirtualServices bar/ratings,foo/ratings associated with mesh gateway define the same "
        "host */ratings.bar.svc.cluster.local which can lead to undefined behavior. This can be "
        "fixed by merging the conflicting VirtualServices into a single resource."
    )
    assert lines(text, file="vs.yaml") == [
        f"Error [IST0109] (VirtualService bar/ratings vs.yaml:15) {message}",
        f"Error [IST0109] (VirtualService foo/ratings vs.yaml:4) {message}",
    ]


def test_no_conflict_for_gateway_only_or_private_or_same_resource(lines: Lines) -> None:
    gateway_only = "  gateways: [web]\n"
    lines = _only_ist0109(lines)
    private = "  exportTo: [.]\n"
    assert lines(_vs("a", "foo", "ratings") + _vs("b", "foo", "ratings", gateway_only)) == []
    assert lines(_vs("a", "foo", "r.bar.svc.cluster.local", private) + _vs("b", "bar", "r")) != []
    assert (
        lines(_vs("a", "foo", "r.x.svc.cluster.local", private) + _vs("b", "x", "r", private)) == []
    )
    assert lines(_vs("a", "foo", "ratings") + _vs("a", "foo", "ratings")) == []


def _only_ist0109(lines: Lines) -> Lines:
    return lambda text: [line for line in lines(text) if "[IST0109]" in line]
