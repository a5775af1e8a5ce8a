"""Delegation end to end and the config_dump form of a snapshot."""

from __future__ import annotations

import json

from remora.mesh.snapshot import Snapshot
from tests.unit.mesh import gateway, service, sidecar, targets

ROOT = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: front}
spec:
  hosts: [bookinfo.com]
  gateways: [mesh]
  http:
  - name: reviews
    match: [{uri: {prefix: /reviews}}]
    delegate: {name: reviews, namespace: back}
    timeout: 3s
  - name: private
    match: [{uri: {prefix: /private}}]
    delegate: {name: hidden, namespace: back}
  - name: rest
    route: [{destination: {host: productpage.front.svc.cluster.local}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: back}
spec:
  http:
  - name: v2
    match: [{uri: {prefix: /reviews/v2}}]
    route: [{destination: {host: reviews}}]
  - name: elsewhere
    match: [{uri: {prefix: /ratings}}]
    route: [{destination: {host: ratings}}]
  - name: any
    route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hidden, namespace: back}
spec:
  exportTo: ["."]
  http: [{route: [{destination: {host: reviews}}]}]
---
"""


def _routes(snap: Snapshot) -> list[tuple[str, str, list[tuple[str, int]]]]:
    table = snap.outbound_table(80)
    assert table is not None
    vhost = table.find("bookinfo.com")
    assert vhost is not None
    out = []
    for route in vhost.routes:
        prefix = route.match_dump.get("uri", {}).get("prefix", "")
        out.append((route.name, prefix or "", targets(route)))
    return out


def test_delegate_rules_merged_under_the_root_match() -> None:
    """istio.io "Virtual Service" Delegate: the delegate's rules are merged with the root's;
    a rule whose match is not within the root's is dropped; a delegate not exported to the
    root's namespace is not used; short names resolve in the delegate's namespace."""
    text = ROOT + service("reviews", "back") + service("productpage", "front")
    snap = sidecar(text, namespace="front")
    assert _routes(snap) == [
        ("reviews-v2", "/reviews/v2", [("outbound|9080||reviews.back.svc.cluster.local", 100)]),
        ("reviews-any", "/reviews", [("outbound|9080||reviews.back.svc.cluster.local", 100)]),
        ("rest", "", [("outbound|9080||productpage.front.svc.cluster.local", 100)]),
    ]
    table = snap.outbound_table(80)
    assert table is not None
    vhost = table.find("bookinfo.com")
    assert vhost is not None
    action = vhost.routes[0].action
    assert getattr(action, "timeout", None) == 3.0  # inherited from the root rule


def test_to_dict_is_json_and_readable() -> None:
    text = ROOT + service("reviews", "back") + service("productpage", "front")
    dump = json.loads(json.dumps(sidecar(text, namespace="front").to_dict()))
    vhosts = dump["routeTables"]["80"]["virtualHosts"]
    bookinfo = next(v for v in vhosts if v["domains"] == ["bookinfo.com"])
    first = bookinfo["routes"][0]
    assert first["match"] == {"uri": {"prefix": "/reviews/v2"}}
    assert first["route"]["clusters"] == [
        {"cluster": "outbound|9080||reviews.back.svc.cluster.local", "weight": 100}
    ]
    assert first["virtualService"] == "front/bookinfo"
    cluster = dump["clusters"]["outbound|9080||reviews.back.svc.cluster.local"]
    assert cluster["lb"]["simple"] == "LEAST_REQUEST"
    assert dump["listeners"][0]["name"] == "virtualOutbound"


def test_gateway_dump_is_json() -> None:
    text = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {app: gw}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: default}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{headers: {x-a: {regex: "a.*"}}}]
    redirect: {uri: /new, redirectCode: 302}
  - directResponse: {status: 503, body: {string: down}}
---
"""
    dump = json.loads(json.dumps(gateway(text, labels={"app": "gw"}).to_dict()))
    routes = dump["routeTables"]["http.80"]["virtualHosts"][0]["routes"]
    assert routes[0]["match"] == {"headers": {"x-a": {"regex": "a.*"}}}
    assert routes[0]["redirect"] == {"uri": "/new", "redirectCode": 302}
    assert routes[1]["directResponse"] == {"status": 503, "body": {"string": "down"}}
