"""Endpoint locality, as Istio reads it: WorkloadEntry `locality`, else the
`topology.istio.io/locality` / `istio-locality` label (pilot GetLocalityLabel, "." for "/"),
else the topology.kubernetes.io/region, topology.kubernetes.io/zone and
topology.istio.io/subzone labels; an EndpointSlice endpoint's `zone` is its zone."""

from __future__ import annotations

from tests.unit.mesh import sidecar

ENTRIES = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: default}
spec:
  hosts: [vm.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: declared, namespace: default}
spec: {address: 10.3.0.1, labels: {app: vm, istio-locality: x.y}, locality: us-east/zone1/sub1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: labelled, namespace: default}
spec: {address: 10.3.0.2, labels: {app: vm, istio-locality: eu.west}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: topology, namespace: default}
spec:
  address: 10.3.0.3
  labels: {app: vm, topology.kubernetes.io/region: ap, topology.kubernetes.io/zone: ap-1,
           topology.istio.io/subzone: rack7}
---
"""

SLICE = """\
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  selector: {app: db}
  ports: [{name: http, port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: default}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db, topology.kubernetes.io/region: us-west}}
    spec: {containers: [{name: db, image: db}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-1
  namespace: default
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- addresses: [10.5.0.1]
  zone: us-west-2a
  targetRef: {kind: Pod, name: db-5d8f7c9b4-x2x7z}
- addresses: [10.5.0.2]
  zone: us-west-2b
---
"""


def test_workload_entry_locality_then_label_then_topology_labels() -> None:
    snap = sidecar(ENTRIES)
    got = {e.address: e.locality for e in snap.clusters["outbound|80||vm.example.com"].endpoints}
    assert got == {"10.3.0.1": "us-east/zone1/sub1", "10.3.0.2": "eu/west",
                   "10.3.0.3": "ap/ap-1/rack7"}  # fmt: skip


def test_endpoint_slice_zone_with_the_workload_region() -> None:
    snap = sidecar(SLICE)
    got = {e.address: e.locality
           for e in snap.clusters["outbound|80||db.default.svc.cluster.local"].endpoints}
    assert got == {"10.5.0.1": "us-west/us-west-2a", "10.5.0.2": "/us-west-2b"}
