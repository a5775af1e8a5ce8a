"""Endpoints of a service port, from EndpointSlices, WorkloadEntries and ServiceEntry endpoints.

As Istio builds them:
- a Kubernetes Service: the EndpointSlices labelled `kubernetes.io/service-name`, port taken from
  the slice port named like the Service port; endpoints whose `conditions.ready` is false are
  left out (unless the Service sets publishNotReadyAddresses); WorkloadEntries in the Service's
  namespace that its selector selects are endpoints too;
- a ServiceEntry: its `endpoints`, or the WorkloadEntries of its namespace its
  `workloadSelector` selects; port = the endpoint's `ports[<service port name>]`, else the
  service port's targetPort, else its number; with resolution DNS and no endpoints the host
  itself is the endpoint (the proxy resolves it when it connects).

There are no Pods in static config, so the labels of an EndpointSlice endpoint come from the
Deployment or StatefulSet whose pod name its `targetRef` carries (`<deployment>-<hash>-<id>`,
`<statefulset>-<ordinal>`); without one the endpoint has no labels and no subset selects it.
Locality (region/zone/subzone) as Istio reads it: WorkloadEntry `locality`, else the
`topology.istio.io/locality` (`istio-locality`) label, else the topology labels, with an
EndpointSlice endpoint's `zone` as its zone.

`tls_mode` "istio" marks an endpoint a client sidecar may send Istio mTLS to (auto mTLS): its
labels carry `security.istio.io/tlsMode: istio` (a WorkloadEntry without that label: it has a
serviceAccount) and no PeerAuthentication DISABLEs mTLS for it on its port (pilot's EDS
mtlsChecker; remora.mesh.peerauth). A DestinationRule's tls mode is the cluster's
(ClusterPolicy.tls_mode), not the endpoint's: endpoints are shared by every proxy.
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

from remora.api.kube.core import Service
from remora.api.kube.discovery import Endpoint as SliceEndpoint
from remora.api.kube.discovery import EndpointSlice
from remora.api.kube.workloads import Deployment, StatefulSet, Workload
from remora.api.networking.service_entry import ServiceEntry, WorkloadEntry, WorkloadEntrySpec
from remora.api.resource import Resource
from remora.mesh.hosts import MeshPort, MeshService, labels_subset
from remora.mesh.peerauth import NO_PEER_AUTHENTICATIONS, PeerAuthentications
from remora.mesh.snapshot import Endpoint, frozen_labels
from remora.policy.locality import ZONE, locality_of

_REPLICA_SET_POD = re.compile(r"[a-z0-9]+-[a-z0-9]+")
_DNS_RESOLUTIONS = ("DNS", "DNS_ROUND_ROBIN")


class EndpointIndex:
    """EndpointSlices, WorkloadEntries and workloads by namespace, indexed once per compile.

    WorkloadEntries are also indexed by each of their labels, so a selector looks only at the
    entries carrying its rarest label: 100 services over 10,000 entries is 10,000 label checks,
    not 1,000,000 (the control plane compiles every proxy's snapshot)."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self.slices: dict[tuple[str, str], list[EndpointSlice]] = defaultdict(list)
        # per namespace: each entry with its labels (metadata's, then spec's), in config order
        self.entries: dict[str, list[tuple[WorkloadEntry, dict[str, str]]]] = defaultdict(list)
        self._by_label: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        self._selected: dict[tuple[str, tuple[tuple[str, str], ...]], list[int]] = {}
        self.workloads: dict[str, list[Workload]] = defaultdict(list)
        self.peer = NO_PEER_AUTHENTICATIONS
        for resource in resources:
            if isinstance(resource, EndpointSlice) and resource.service_name:
                self.slices[(resource.namespace, resource.service_name)].append(resource)
            elif isinstance(resource, WorkloadEntry):
                entries = self.entries[resource.namespace]
                labels = {**resource.labels, **resource.spec.labels}
                for pair in labels.items():
                    self._by_label[(resource.namespace, *pair)].append(len(entries))
                entries.append((resource, labels))
            elif isinstance(resource, Deployment | StatefulSet):
                self.workloads[resource.namespace].append(resource)

    def with_peer_authentications(self, peer: PeerAuthentications) -> EndpointIndex:
        """This index (its tables shared, not copied) marking endpoints' tls_mode by `peer`:
        the index lasts while the endpoint sources do, the policies are one compile's."""
        view = copy.copy(self)
        view.peer = peer
        return view

    def selected_entries(self, namespace: str, selector: Mapping[str, str]
                         ) -> list[tuple[WorkloadEntry, dict[str, str]]]:
        """The WorkloadEntries of `namespace` whose labels contain `selector` (non-empty), in
        configuration order (found once per selector: a compile asks for each service port,
        and the control plane's compiles share one index while the entries are unchanged)."""
        entries = self.entries.get(namespace, [])
        key = (namespace, tuple(sorted(selector.items())))
        found = self._selected.get(key)
        if found is None:
            candidates = min((self._by_label.get((namespace, *pair), [])
                              for pair in selector.items()), key=len)
            found = self._selected[key] = [
                index for index in candidates if labels_subset(selector, entries[index][1])]
        return [entries[index] for index in found]

    def sources(self, service: MeshService) -> tuple[Resource, ...]:
        """Every resource `endpoints` reads for `service` (remora.mesh.memo reuses endpoints
        while these are the same objects)."""
        resource = service.resource
        if isinstance(resource, Service):
            slices = self.slices.get((resource.namespace, resource.name), [])
            workloads = self.workloads.get(resource.namespace, []) if slices else []
            selected = self.selected_entries(resource.namespace, resource.selector) \
                if resource.selector else ()
            return (resource, *slices, *workloads, *(entry for entry, _ in selected),
                    *self.peer.sources(resource.namespace))
        selector = resource.spec.workload_selector
        policies = self.peer.sources(resource.namespace)
        if selector is None:
            return (resource, *policies)
        return (resource, *(entry for entry, _ in
                            self.selected_entries(resource.namespace, selector.labels)),
                *policies)

    def endpoints(self, service: MeshService, port: MeshPort) -> tuple[Endpoint, ...]:
        """Every endpoint of `service` on `port`, in configuration order."""
        resource = service.resource
        if isinstance(resource, Service):
            found = list(self._slice_endpoints(resource, port))
            found.extend(self._entry_endpoints(resource.namespace, resource.selector, port))
            return tuple(found)
        return tuple(self._service_entry_endpoints(resource, service.host, port))

    def _slice_endpoints(self, service: Service, port: MeshPort) -> Iterable[Endpoint]:
        keep_unready = bool(service.spec.publish_not_ready_addresses)
        for endpoint_slice in self.slices.get((service.namespace, service.name), ()):
            number = next(
                (p.port for p in endpoint_slice.ports if (p.name or "") == port.name), None
            )
            if number is None:
                continue
            for item in endpoint_slice.endpoints:
                if not item.conditions.is_ready and not keep_unready:
                    continue
                workload = self._workload_of(item, endpoint_slice.namespace)
                labels = frozen_labels(workload.pod_labels if workload else {})
                locality = _slice_locality(labels, item.zone)
                account = workload.spec.template.spec.service_account_name if workload else None
                tls_mode = self.peer.endpoint_tls_mode(
                    namespace=endpoint_slice.namespace, labels=labels, port=number)
                for address in item.addresses:
                    yield Endpoint(
                        address=address, port=number, labels=labels, locality=locality,
                        workload=workload.workload_name if workload else "unknown",
                        namespace=endpoint_slice.namespace,
                        service_account=account or ("default" if workload else "unknown"),
                        tls_mode=tls_mode,
                    )  # fmt: skip

    def _workload_of(self, item: SliceEndpoint, namespace: str) -> Workload | None:
        ref = item.target_ref
        if ref is None or ref.kind != "Pod" or not ref.name:
            return None
        pod = ref.name
        best: Workload | None = None
        for workload in self.workloads.get(ref.namespace or namespace, ()):
            head = workload.name + "-"
            if not pod.startswith(head):
                continue
            rest = pod[len(head) :]
            shaped = (
                rest.isdigit()
                if isinstance(workload, StatefulSet)
                else bool(_REPLICA_SET_POD.fullmatch(rest))
            )
            if shaped and (best is None or len(workload.name) > len(best.name)):
                best = workload
        return best

    def _entry_endpoints(
        self, namespace: str, selector: Mapping[str, str], port: MeshPort
    ) -> Iterable[Endpoint]:
        if not selector:
            return
        for entry, labels in self.selected_entries(namespace, selector):
            found = _workload_endpoint(
                entry.spec, port, labels=labels, workload=entry.workload_name,
                namespace=namespace, peer=self.peer,
            )
            if found is not None:
                yield found

    def _service_entry_endpoints(
        self, entry: ServiceEntry, host: str, port: MeshPort
    ) -> Iterable[Endpoint]:
        spec = entry.spec
        if spec.workload_selector is not None:
            yield from self._entry_endpoints(entry.namespace, spec.workload_selector.labels, port)
        elif spec.endpoints:
            for item in spec.endpoints:
                found = _workload_endpoint(
                    item, port, labels=item.labels, workload="unknown", namespace=entry.namespace,
                    peer=self.peer,
                )
                if found is not None:
                    yield found
        elif spec.resolution_mode in _DNS_RESOLUTIONS and not host.startswith("*"):
            target = port.target if isinstance(port.target, int) else port.number
            yield Endpoint(address=host, port=target, namespace=entry.namespace)


def _slice_locality(labels: Mapping[str, str], zone: str | None) -> str:
    """A slice endpoint's locality: the pod's locality label, else region/zone/subzone labels
    (standing in for the node's, which Istio reads) with the slice's `zone` for the zone."""
    return locality_of({**labels, ZONE: zone} if zone else labels)


def _workload_endpoint(
    spec: WorkloadEntrySpec,
    port: MeshPort,
    *,
    labels: Mapping[str, str],
    workload: str,
    namespace: str,
    peer: PeerAuthentications,
) -> Endpoint | None:
    """A WorkloadEntry (or ServiceEntry endpoint) on a service port; None without an address
    or a port to use."""
    if not spec.address:
        return None
    number = spec.ports.get(port.name)
    if number is None and isinstance(port.target, str):
        number = spec.ports.get(port.target)
    if number is None:
        if not isinstance(port.target, int):
            return None
        number = port.target
    return Endpoint(
        address=spec.address, port=number, weight=spec.weight or 1, labels=frozen_labels(labels),
        locality=locality_of(labels, spec.locality or ""), workload=workload, namespace=namespace,
        service_account=spec.service_account or "unknown",
        tls_mode=peer.endpoint_tls_mode(namespace=namespace, labels=labels, port=number,
                                        service_account=spec.service_account or ""),
    )  # fmt: skip


def subset_endpoints(
    endpoints: tuple[Endpoint, ...], labels: Mapping[str, str]
) -> tuple[Endpoint, ...]:
    """The endpoints a DestinationRule subset selects: those whose labels contain its labels."""
    if not labels:
        return endpoints
    return tuple(e for e in endpoints if labels_subset(labels, e.labels))
