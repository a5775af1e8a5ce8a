"""What a sidecar needs for Istio mTLS to its upstreams, compiled into its snapshot.

- Endpoint.tls_mode: Istio's auto mutual TLS ("Mutual TLS Migration" task, istio.io/latest/
  docs/tasks/security/authentication/mtls-migration/; MeshConfig enableAutoMtls): a client
  sidecar sends mTLS to workloads with sidecars — the `security.istio.io/tlsMode: istio`
  endpoint label, or a WorkloadEntry's serviceAccount (pilot getTLSModeFromWorkloadEntry) —
  unless a PeerAuthentication DISABLEs mTLS for that workload on that port (pilot's EDS
  mtlsChecker).
- ClusterPolicy.tls_mode: the DestinationRule's ClientTLSSettings mode (istio.io/latest/docs/
  reference/config/networking/destination-rule/#ClientTLSSettings) after subset and
  portLevelSettings precedence.
- MeshSettings.trust_roots (ConfigMap istio-ca-root-cert, key root-cert.pem, where istiod
  publishes the mesh's root) and enable_auto_mtls.
Every one survives the wire to the proxy.
"""

from __future__ import annotations

import json
from typing import Any

from remora.api.loader import load_text
from remora.controlplane.registry_view import service_documents
from remora.mesh.compile import compile_snapshot
from remora.mesh.documents import compile_documents
from remora.mesh.encoding import SnapshotDecoder, snapshot_sections
from remora.mesh.memo import CompileMemo
from remora.mesh.snapshot import ListenerPorts, ProxyIdentity, Snapshot
from remora.mesh.wire import View, apply_message
from remora.registry.model import Instance
from tests.unit.mesh import mesh, service, sidecar
from tests.unit.mesh.test_peerauth import policy

REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"


def pods(*, tls_label: bool = True, account: str = "bookinfo-reviews") -> str:
    """Service reviews (9080 -> 8080) backed by a Deployment's pods through an EndpointSlice;
    the pods carry the label Istio's injector puts on a pod with a sidecar."""
    marker = ", security.istio.io/tlsMode: istio" if tls_label else ""
    return service("reviews", ports="[{name: http, port: 9080, targetPort: 8080}]") + f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: reviews-v1, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  template:
    metadata: {{labels: {{app: reviews, version: v1{marker}}}}}
    spec:
      serviceAccountName: {account}
      containers: [{{name: reviews, image: reviews, ports: [{{containerPort: 8080}}]}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-1
  namespace: default
  labels: {{kubernetes.io/service-name: reviews}}
addressType: IPv4
ports: [{{name: http, port: 8080}}]
endpoints:
- addresses: [10.1.0.1]
  conditions: {{ready: true}}
  targetRef: {{kind: Pod, name: reviews-v1-5d8f7c9b4-abcde}}
---
"""


def tls_modes(snap: Snapshot, cluster: str = REVIEWS) -> list[tuple[str, int, str]]:
    return [(e.address, e.port, e.tls_mode) for e in snap.clusters[cluster].endpoints]


# -- Endpoint.tls_mode ------------------------------------------------------------------------


def test_a_pod_with_a_sidecar_is_an_mtls_endpoint_and_one_without_is_plain_text() -> None:
    assert tls_modes(sidecar(pods())) == [("10.1.0.1", 8080, "istio")]
    endpoint = sidecar(pods()).clusters[REVIEWS].endpoints[0]
    assert (endpoint.namespace, endpoint.service_account) == ("default", "bookinfo-reviews")
    assert tls_modes(sidecar(pods(tls_label=False))) == [("10.1.0.1", 8080, "")]


def test_peer_authentication_disable_makes_the_endpoint_plain_text() -> None:
    """mtlsChecker: the policy in force for the endpoint's workload (its namespace and labels),
    namespace-wide or mesh-wide, DISABLE: no mTLS to it."""
    for text in (policy("default", "default", "{mtls: {mode: DISABLE}}"),
                 policy("default", "istio-system", "{mtls: {mode: DISABLE}}"),
                 policy("reviews", "default", "{selector: {matchLabels: {app: reviews}}, "
                                              "mtls: {mode: DISABLE}}")):
        assert tls_modes(sidecar(pods() + text)) == [("10.1.0.1", 8080, "")], text
    strict = policy("default", "default", "{mtls: {mode: STRICT}}")
    assert tls_modes(sidecar(pods() + strict)) == [("10.1.0.1", 8080, "istio")]


def test_port_level_disable_counts_on_the_workload_port_not_the_service_port() -> None:
    """portLevelMtls is keyed by the port the workload listens on (the Service's targetPort
    8080), as mtlsChecker asks for the endpoint's port."""
    on_target = policy("reviews", "default", "{selector: {matchLabels: {app: reviews}}, "
                                             "portLevelMtls: {8080: {mode: DISABLE}}}")
    on_service = policy("reviews", "default", "{selector: {matchLabels: {app: reviews}}, "
                                              "portLevelMtls: {9080: {mode: DISABLE}}}")
    assert tls_modes(sidecar(pods() + on_target)) == [("10.1.0.1", 8080, "")]
    assert tls_modes(sidecar(pods() + on_service)) == [("10.1.0.1", 8080, "istio")]


WORKLOAD_ENTRIES = service("ratings", selector="{app: ratings}") + """\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-labelled, namespace: default}
spec: {address: 10.2.0.1, labels: {app: ratings, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-account, namespace: default}
spec: {address: 10.2.0.2, labels: {app: ratings}, serviceAccount: ratings}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-opted-out, namespace: default}
spec: {address: 10.2.0.3, labels: {app: ratings, security.istio.io/tlsMode: disabled},
       serviceAccount: ratings}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-plain, namespace: default}
spec: {address: 10.2.0.4, labels: {app: ratings}}
---
"""


def test_a_workload_entry_has_a_sidecar_by_its_label_else_by_its_service_account() -> None:
    """pilot getTLSModeFromWorkloadEntry: "Use security.istio.io/tlsMode if its present. If
    not, set TLS mode if ServiceAccount is specified"."""
    snap = sidecar(WORKLOAD_ENTRIES)
    assert [(a, mode) for a, _, mode in
            tls_modes(snap, "outbound|9080||ratings.default.svc.cluster.local")] == [
        ("10.2.0.1", "istio"), ("10.2.0.2", "istio"), ("10.2.0.3", ""), ("10.2.0.4", "")]


def test_registry_instances_of_a_sidecar_are_mtls_endpoints_with_their_identity() -> None:
    """An instance `remora up` registers for a sidecar-fronted app (metadata
    security.istio.io/tlsMode: istio and remora.io/serviceAccount) becomes a WorkloadEntry with
    that label and serviceAccount: an mTLS endpoint whose certificate names its account."""
    kube = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "reviews", "namespace": "default"},
            "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]}}
    meshed = Instance(ip="127.0.0.1", port=7001, service="reviews",
                      metadata={"security.istio.io/tlsMode": "istio",
                                "remora.io/serviceAccount": "reviews-sa", "version": "v1"})
    plain = Instance(ip="127.0.0.1", port=7002, service="reviews", metadata={"version": "v2"})
    documents = [kube, *service_documents("reviews", "default", [meshed, plain], kube)]
    assert documents[1]["spec"]["serviceAccount"] == "reviews-sa"
    assert "serviceAccount" not in documents[2]["spec"]
    snap = compile_documents(documents, version="1", identity=ProxyIdentity(mode="sidecar"),
                             ports=ListenerPorts())
    found = [(e.port, e.tls_mode, e.namespace, e.service_account, e.labels.get("version"))
             for e in snap.clusters[REVIEWS].endpoints]
    assert found == [(7001, "istio", "default", "reviews-sa", "v1"),
                     (7002, "", "default", "unknown", "v2")]


def test_a_changed_peer_authentication_is_seen_by_endpoints_a_memo_keeps() -> None:
    """The control plane reuses a service's endpoints while their resources are the same
    objects (remora.mesh.memo): the policies that decide tls_mode are among them."""
    memo = CompileMemo()
    identity = ProxyIdentity(mode="sidecar")
    base = load_text(pods(), "pods.yaml").resources
    disable = load_text(policy("default", "default", "{mtls: {mode: DISABLE}}"), "pa.yaml")
    first = compile_snapshot(base, identity, version="1", listener_ports=ListenerPorts(),
                             memo=memo)
    second = compile_snapshot([*base, *disable.resources], identity, version="2",
                              listener_ports=ListenerPorts(), memo=memo)
    third = compile_snapshot(base, identity, version="3", listener_ports=ListenerPorts(),
                             memo=memo)
    assert [tls_modes(s)[0][2] for s in (first, second, third)] == ["istio", "", "istio"]


def test_the_inbound_cluster_endpoint_is_plain_text() -> None:
    """The sidecar talks to its own app on 127.0.0.1 in plain text, whatever the policy."""
    snap = sidecar(pods() + policy("default", "default", "{mtls: {mode: STRICT}}"),
                   labels={"app": "reviews", "security.istio.io/tlsMode": "istio"}, app_port=8080)
    (endpoint,) = snap.clusters["inbound|8080||"].endpoints
    assert endpoint.tls_mode == ""
    assert snap.inbound_mtls.mode == "STRICT"


# -- ClusterPolicy.tls_mode -------------------------------------------------------------------


def rule(traffic_policy: str, subsets: str = "[]") -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
  trafficPolicy: {traffic_policy}
  subsets: {subsets}
---
"""


def cluster_tls(text: str, cluster: str = REVIEWS) -> str | None:
    policy_ = sidecar(pods() + text).clusters[cluster].traffic_policy
    return policy_.tls_mode if policy_ is not None else None


def test_without_a_destination_rule_or_tls_the_mode_is_unset() -> None:
    """No `tls`: auto mTLS decides (the cluster's tls_mode is "")."""
    assert cluster_tls("") is None  # no DestinationRule: no traffic policy at all
    assert cluster_tls(rule("{connectionPool: {tcp: {maxConnections: 5}}}")) == ""


def test_the_rules_tls_mode() -> None:
    for mode in ("DISABLE", "ISTIO_MUTUAL", "SIMPLE"):
        assert cluster_tls(rule(f"{{tls: {{mode: {mode}}}}}")) == mode


def test_a_tls_without_a_mode_is_disable() -> None:
    """ClientTLSSettings.mode's default is DISABLE (the first value of TLSmode), and a tls that
    is set turns auto mTLS off (pilot buildAutoMtlsSettings)."""
    assert cluster_tls(rule("{tls: {sni: reviews.example.com}}")) == "DISABLE"


def test_a_subset_overrides_the_rules_tls_and_port_level_settings_replace_it() -> None:
    """Reference: subsets override the service-level settings; "Traffic settings specified at
    the destination-level will not be inherited when overridden by port-level settings"."""
    text = rule("{tls: {mode: ISTIO_MUTUAL}, portLevelSettings: "
                "[{port: {number: 9080}, loadBalancer: {simple: RANDOM}}]}",
                "[{name: v1, labels: {version: v1}, trafficPolicy: {tls: {mode: DISABLE}}},"
                " {name: v2, labels: {version: v2}}]")
    # the port-level entry for 9080 sets no tls: the rule's is not inherited
    assert cluster_tls(text) == ""
    assert cluster_tls(text, "outbound|9080|v1|reviews.default.svc.cluster.local") == "DISABLE"
    assert cluster_tls(text, "outbound|9080|v2|reviews.default.svc.cluster.local") == ""
    plain = rule("{tls: {mode: ISTIO_MUTUAL}}",
                 "[{name: v1, labels: {version: v1}, trafficPolicy: {tls: {mode: DISABLE}}},"
                 " {name: v2, labels: {version: v2}, trafficPolicy: "
                 "{loadBalancer: {simple: RANDOM}}}]")
    assert cluster_tls(plain) == "ISTIO_MUTUAL"
    assert cluster_tls(plain, "outbound|9080|v1|reviews.default.svc.cluster.local") == "DISABLE"
    assert cluster_tls(plain, "outbound|9080|v2|reviews.default.svc.cluster.local") \
        == "ISTIO_MUTUAL"
    port_tls = rule("{tls: {mode: DISABLE}, portLevelSettings: "
                    "[{port: {number: 9080}, tls: {mode: ISTIO_MUTUAL}}]}")
    assert cluster_tls(port_tls) == "ISTIO_MUTUAL"


# -- MeshSettings -----------------------------------------------------------------------------

CERT_A = "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n"
CERT_B = "-----BEGIN CERTIFICATE-----\nMIIBBBBB\n-----END CERTIFICATE-----\n"


def root_cert(namespace: str, bundle: str) -> str:
    body = "".join(f"    {line}\n" for line in bundle.splitlines())
    return f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: istio-ca-root-cert, namespace: {namespace}}}
data:
  root-cert.pem: |
{body}---
"""


def test_trust_roots_come_from_the_root_namespaces_istio_ca_root_cert() -> None:
    """istiod publishes the mesh's root certificate in ConfigMap istio-ca-root-cert, key
    root-cert.pem; a bundle holds several while a root is rotated."""
    assert sidecar("").mesh.trust_roots == ()
    snap = sidecar(root_cert("istio-system", CERT_A + CERT_B))
    assert snap.mesh.trust_roots == (CERT_A, CERT_B)
    assert sidecar(root_cert("default", CERT_A)).mesh.trust_roots == ()  # not the root namespace
    moved = mesh("rootNamespace: mesh-root") + root_cert("mesh-root", CERT_B)
    assert sidecar(moved).mesh.trust_roots == (CERT_B,)


def test_auto_mtls_is_on_unless_mesh_config_turns_it_off() -> None:
    """MeshConfig enableAutoMtls: "default: true"."""
    assert sidecar("").mesh.enable_auto_mtls is True
    assert sidecar(mesh("enableAutoMtls: true")).mesh.enable_auto_mtls is True
    assert sidecar(mesh("enableAutoMtls: false")).mesh.enable_auto_mtls is False
    assert sidecar(mesh("trustDomain: example.org")).mesh.trust_domain == "example.org"


# -- the wire ---------------------------------------------------------------------------------


def through_the_wire(snapshot: Snapshot) -> Snapshot:
    view = View.of(snapshot_sections(snapshot))
    sections, version = apply_message({}, "", json.loads(view.snapshot_line())) or ({}, "")
    return SnapshotDecoder().decode(sections, version=version)


def test_every_mtls_field_reaches_the_proxy() -> None:
    text = (pods() + rule("{tls: {mode: ISTIO_MUTUAL}}") + root_cert("istio-system", CERT_A)
            + mesh("enableAutoMtls: false")
            + policy("productpage", "default", "{selector: {matchLabels: {app: productpage}}, "
                                               "mtls: {mode: STRICT}, "
                                               "portLevelMtls: {9080: {mode: PERMISSIVE}}}"))
    sent = sidecar(text, labels={"app": "productpage"}, app_port=9080)
    received = through_the_wire(sent)
    assert received.inbound_mtls == sent.inbound_mtls
    assert (received.inbound_mtls.mode, received.inbound_mtls.mode_for(9080)) == ("STRICT",
                                                                                  "PERMISSIVE")
    assert received.mesh.trust_roots == (CERT_A,) and received.mesh.enable_auto_mtls is False
    cluster = received.clusters[REVIEWS]
    assert cluster.traffic_policy is not None and cluster.traffic_policy.tls_mode == "ISTIO_MUTUAL"
    assert [e.tls_mode for e in cluster.endpoints] == ["istio"]
    dump: dict[str, Any] = received.to_dict()
    assert dump == sent.to_dict() | {"version": received.version}
    assert dump["inboundMtls"] == {"mode": "STRICT", "portLevelMtls": {"9080": "PERMISSIVE"}}
    assert dump["clusters"][REVIEWS]["endpoints"][0]["tlsMode"] == "istio"
