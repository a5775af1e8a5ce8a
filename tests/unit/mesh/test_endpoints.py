"""Endpoints from ServiceEntry / WorkloadEntry / EndpointSlice, following the Istio "Service
Entry" and "Workload Entry" references (endpoints, ports by service port name, workloadSelector
in the same namespace, resolution DNS) and Kubernetes EndpointSlice conditions."""

from __future__ import annotations

from remora.mesh.snapshot import Snapshot
from tests.unit.mesh import service, sidecar


def _endpoints(snap: Snapshot, cluster: str) -> list[tuple[str, int, int, str]]:
    return [(e.address, e.port, e.weight, e.locality) for e in snap.clusters[cluster].endpoints]


SE_STATIC = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: default}
spec:
  hosts: [legacy.internal]
  location: MESH_INTERNAL
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}
  - {number: 9090, name: http-metrics, protocol: HTTP}
  resolution: STATIC
  endpoints:
  - {address: 10.2.0.1, ports: {http: 8081}, labels: {version: v1}, weight: 3, locality: r/z}
  - {address: 10.2.0.2, labels: {version: v2}}
---
"""


def test_service_entry_endpoints_ports_by_name_else_target_port() -> None:
    snap = sidecar(SE_STATIC)
    assert _endpoints(snap, "outbound|80||legacy.internal") == [
        ("10.2.0.1", 8081, 3, "r/z"), ("10.2.0.2", 8080, 1, ""),
    ]  # fmt: skip
    assert _endpoints(snap, "outbound|9090||legacy.internal") == [
        ("10.2.0.1", 9090, 3, "r/z"), ("10.2.0.2", 9090, 1, ""),
    ]  # fmt: skip
    table = snap.outbound_table(80)
    assert table is not None and table.find("legacy.internal") is not None


def test_service_entry_workload_selector_selects_workload_entries_of_its_namespace() -> None:
    text = """\
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
metadata: {name: vm-1, namespace: default}
spec: {address: 10.3.0.1, labels: {app: vm, version: v1}, ports: {http: 8000}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-2, namespace: default}
spec: {address: 10.3.0.2, labels: {app: other}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-3, namespace: elsewhere}
spec: {address: 10.3.0.3, labels: {app: vm}}
---
"""
    snap = sidecar(text)
    endpoints = snap.clusters["outbound|80||vm.example.com"].endpoints
    assert [(e.address, e.port, e.workload) for e in endpoints] == [("10.3.0.1", 8000, "vm-1")]
    assert dict(endpoints[0].labels) == {"app": "vm", "version": "v1"}


def test_dns_service_entry_without_endpoints_uses_its_host() -> None:
    text = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
"""
    assert _endpoints(sidecar(text), "outbound|80||api.example.com") == [
        ("api.example.com", 80, 1, ""),
    ]  # fmt: skip


def test_kubernetes_service_selects_workload_entries() -> None:
    text = service("reviews") + """\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-vm, namespace: default}
spec: {address: 10.4.0.1, labels: {app: reviews}}
---
"""
    assert _endpoints(sidecar(text), "outbound|9080||reviews.default.svc.cluster.local") == [
        ("10.4.0.1", 9080, 1, ""),
    ]  # fmt: skip


def _slice(ready: str, publish: bool) -> str:
    return f"""\
apiVersion: v1
kind: Service
metadata: {{name: db, namespace: default}}
spec:
  selector: {{app: db}}
  publishNotReadyAddresses: {str(publish).lower()}
  ports: [{{name: http, port: 80, targetPort: web}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-1
  namespace: default
  labels: {{kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{{name: other, port: 1}}, {{name: http, port: 8080}}]
endpoints:
- addresses: [10.5.0.1, 10.5.0.2]
  conditions: {{ready: {ready}}}
---
"""


def test_endpoint_slice_ports_by_name_and_readiness() -> None:
    """Kubernetes EndpointSlice: ports carry the Service port's name; not-ready endpoints
    receive traffic only with publishNotReadyAddresses."""
    cluster = "outbound|80||db.default.svc.cluster.local"
    assert _endpoints(sidecar(_slice("true", False)), cluster) == [
        ("10.5.0.1", 8080, 1, ""), ("10.5.0.2", 8080, 1, ""),
    ]  # fmt: skip
    assert _endpoints(sidecar(_slice("false", False)), cluster) == []
    assert len(_endpoints(sidecar(_slice("false", True)), cluster)) == 2


def test_service_without_endpoint_slices_has_no_endpoints() -> None:
    snap = sidecar(service("lonely"))
    assert snap.clusters["outbound|9080||lonely.default.svc.cluster.local"].endpoints == ()


def test_workload_names_as_istio_derives_them() -> None:
    """Telemetry's workload names (istio/istio pkg/kube/labels WorkloadNameFromWorkloadEntry;
    pkg/kube GetWorkloadMetaFromPod): a WorkloadEntry's auto-registration group, else its
    `service.istio.io/workload-name` label, else its name; a pod's label, else its owner's name
    (the Deployment), never the pod's own name."""
    text = service("reviews") + """\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-10-4-0-1, namespace: default}
spec: {address: 10.4.0.1, labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-10-4-0-2
  namespace: default
  labels: {service.istio.io/workload-name: reviews-vm}
spec: {address: 10.4.0.2, labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-10-4-0-3
  namespace: default
  labels: {service.istio.io/workload-name: reviews-vm}
  annotations: {istio.io/autoRegistrationGroup: reviews-group}
spec: {address: 10.4.0.3, labels: {app: reviews}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  template:
    metadata: {labels: {app: reviews, service.istio.io/workload-name: reviews-blue}}
    spec: {containers: [{name: app, image: reviews}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-abc
  namespace: default
  labels: {kubernetes.io/service-name: reviews}
addressType: IPv4
ports: [{name: http, port: 9080}]
endpoints:
- addresses: [10.1.0.1]
  targetRef: {kind: Pod, name: reviews-v1-5d8f9c-abcde}
---
"""
    cluster = sidecar(text).clusters["outbound|9080||reviews.default.svc.cluster.local"]
    assert {e.address: e.workload for e in cluster.endpoints} == {
        "10.1.0.1": "reviews-blue", "10.4.0.1": "reviews-10-4-0-1", "10.4.0.2": "reviews-vm",
        "10.4.0.3": "reviews-group",
    }  # fmt: skip
