"""IST0101 host / host:port / host+subset / mirror, and IST0112 (virtualservice/destinationhosts.go,
destinationrules.go in istio/istio)."""

from __future__ import annotations

from tests.unit.analysis.conftest import Lines

VS_SUBSETS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 50
    - destination:
        host: reviews
        subset: v3
      weight: 50
    mirror:
      host: reviews
      subset: v4
"""

DR_V1_V4 = """\
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews.default.svc.cluster.local
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v4
    labels: {version: v4}
"""


def test_missing_subsets_point_at_the_subset_field(lines: Lines) -> None:
    assert lines(VS_SUBSETS, file="vs.yaml") == [
        "Error [IST0101] (VirtualService default/reviews vs.yaml:12) "
        'Referenced host+subset in destinationrule not found: "reviews+v1"',
        "Error [IST0101] (VirtualService default/reviews vs.yaml:16) "
        'Referenced host+subset in destinationrule not found: "reviews+v3"',
        "Error [IST0101] (VirtualService default/reviews vs.yaml:20) "
        'Referenced mirror+subset in destinationrule not found: "reviews+v4"',
    ]


def test_subsets_defined_by_a_rule_for_the_same_host_fqdn(lines: Lines) -> None:
    assert lines(VS_SUBSETS + DR_V1_V4, file="vs.yaml") == [
        "Error [IST0101] (VirtualService default/reviews vs.yaml:16) "
        'Referenced host+subset in destinationrule not found: "reviews+v3"',
    ]


def test_rule_in_another_namespace_does_not_define_the_short_host(lines: Lines) -> None:
    other = DR_V1_V4.replace("reviews.default.svc.cluster.local", "reviews").replace(
        "name: reviews\nspec", "name: reviews\n  namespace: other\nspec"
    )
    assert len(lines(VS_SUBSETS + other)) == 3


def test_wildcard_destination_rule_defines_subsets(lines: Lines) -> None:
    wildcard = DR_V1_V4.replace(
        "reviews.default.svc.cluster.local", '"*.default.svc.cluster.local"'
    )
    assert [line[-20:] for line in lines(VS_SUBSETS + wildcard)] == [
        'found: "reviews+v3"'.rjust(20)
    ]


SERVICE = """\
---
apiVersion: v1
kind: Service
metadata:
  name: reviews
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
"""

VS_HOSTS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviewz
      weight: 1
    - destination:
        host: reviews
        port:
          number: 9090
      weight: 1
    mirrors:
    - destination:
        host: ratings.default.svc.cluster.local
"""


def test_hosts_and_ports_checked_when_services_are_in_the_input(lines: Lines) -> None:
    assert lines(VS_HOSTS + SERVICE, file="vs.yaml") == [
        "Error [IST0101] (VirtualService default/reviews vs.yaml:11) "
        'Referenced host not found: "reviewz"',
        "Error [IST0101] (VirtualService default/reviews vs.yaml:16) "
        'Referenced host:port not found: "reviews:9090"',
        "Error [IST0101] (VirtualService default/reviews vs.yaml:20) "
        'Referenced mirror host not found: "ratings.default.svc.cluster.local"',
    ]


def test_hosts_not_checked_without_services_in_the_input(lines: Lines) -> None:
    assert lines(VS_HOSTS) == []


def test_hosts_resolve_to_services_and_service_entries(lines: Lines) -> None:
    entry = """\
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ext
  namespace: egress
spec:
  hosts: ["*.default.svc.cluster.local"]
  ports:
  - {number: 9090, name: http, protocol: HTTP}
  resolution: NONE
"""
    good = VS_HOSTS.replace("reviewz", "reviews").replace("9090", "9080")
    assert lines(good + SERVICE + entry) == []


def test_port_selector_required_for_a_multi_port_service(lines: Lines) -> None:
    two_ports = SERVICE + "  - {name: grpc, port: 9081}\n"
    vs = VS_HOSTS.replace("reviewz", "reviews").replace("9090", "9080")
    assert lines(vs + two_ports, file="vs.yaml")[1] == (
        "Error [IST0112] (VirtualService default/reviews vs.yaml:11) This VirtualService routes "
        'to a service "reviews" that exposes multiple ports [9080 9081]. Specifying a port in '
        "the destination is required to disambiguate."
    )


def test_service_export_to_limits_visibility(lines: Lines) -> None:
    private = SERVICE.replace(
        "name: reviews\nspec",
        "name: reviews\n  namespace: team\n"
        "  annotations:\n    networking.istio.io/exportTo: .\nspec",
    )
    vs = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: caller
spec:
  hosts: [caller]
  http:
  - route:
    - destination:
        host: reviews.team.svc.cluster.local
"""
    assert lines(vs + private) == [
        "Error [IST0101] (VirtualService default/caller in.yaml:10) "
        'Referenced host not found: "reviews.team.svc.cluster.local"',
    ]
    assert lines(vs.replace("name: caller\n", "name: caller\n  namespace: team\n") + private) == []


def test_no_port_selector_needed_when_the_ports_are_named(lines: Lines) -> None:
    two_ports = SERVICE + "  - {name: grpc, port: 9081}\n"
    vs = VS_HOSTS.replace("reviewz", "reviews").replace("9090", "9081")
    vs = vs.replace(
        "host: reviews\n      weight", "host: reviews\n        port: {number: 9080}\n      weight"
    )
    vs = vs.replace(
        "host: ratings.default.svc.cluster.local", "{host: reviews, port: {number: 9081}}"
    )
    vs = vs.replace("- destination:\n        {host", "- destination: {host")
    assert lines(vs + two_ports) == []
