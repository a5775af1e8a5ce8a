"""Which PeerAuthentication is in force for a workload: the mTLS mode its sidecar accepts.

As Istio resolves it (istio.io "PeerAuthentication" reference and the "Authentication Policy"
task; pilot/pkg/security/authn ComposePeerAuthentication):
- three levels: workload-specific (a policy of the workload's namespace whose `selector`
  matches its labels), namespace-wide (no selector, or one with no labels, in its namespace),
  mesh-wide (no selector, in the root namespace); the narrowest level that sets a mode wins;
- several policies at one level: the oldest (creationTimestamp, then name) is the one used;
- a policy with a selector in the root namespace is ignored, for every workload, the root
  namespace's own included ("PeerAuthentication policies with workload selectors are ignored
  when deployed in the root namespace");
- `mtls` absent or `UNSET` inherits the parent level's mode; with no policy at all the mode
  is PERMISSIVE;
- `portLevelMtls` counts on the workload-specific policy only (it requires a selector); an
  UNSET port takes the workload's resolved mode. Its keys are the workload's ports (the
  container / target port), not the Service's.

Pure: reads nothing but its arguments (remora.mesh.compile hands it the resources).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from remora.api.resource import Resource
from remora.api.security import MutualTLS, PeerAuthentication
from remora.mesh.hosts import ROOT_NAMESPACE, labels_subset
from remora.mesh.routes import oldest_first
from remora.mesh.snapshot import DEFAULT_INBOUND_MTLS, InboundMtls, MtlsMode

TLS_MODE_LABEL = "security.istio.io/tlsMode"  # Istio's marker of a workload with a sidecar
ISTIO_TLS_MODE = "istio"


def _mode(mtls: MutualTLS | None) -> MtlsMode | None:
    """The mode a level sets; None when it inherits (no `mtls`, or UNSET)."""
    mode = mtls.mode if mtls is not None else None
    if mode is None or mode == "UNSET":
        return None
    return mode


def _has_selector(policy: PeerAuthentication) -> bool:
    selector = policy.spec.selector
    return selector is not None and bool(selector.match_labels)


def resolve(policies: Iterable[PeerAuthentication], *, root_namespace: str, namespace: str,
            labels: Mapping[str, str]) -> InboundMtls:
    """The InboundMtls of a workload of `namespace` with `labels`, given the policies of its
    namespace and of the root namespace (others are ignored)."""
    mesh: PeerAuthentication | None = None
    scope: PeerAuthentication | None = None
    workload: PeerAuthentication | None = None
    for policy in oldest_first(policies):  # the first one found at a level is the oldest
        if not _has_selector(policy):
            if policy.namespace == root_namespace and mesh is None:
                mesh = policy
            elif policy.namespace == namespace != root_namespace and scope is None:
                scope = policy
        elif policy.namespace == namespace != root_namespace and workload is None:
            assert policy.spec.selector is not None  # _has_selector
            if labels_subset(policy.spec.selector.match_labels, labels):
                workload = policy
    mode: MtlsMode = "PERMISSIVE"
    for level in (mesh, scope, workload):
        found = _mode(level.spec.mtls) if level is not None else None
        mode = found or mode
    if workload is None or not workload.spec.port_level_mtls:
        return InboundMtls(mode=mode) if mode != "PERMISSIVE" else DEFAULT_INBOUND_MTLS
    ports = {port: _mode(mtls) or mode for port, mtls in workload.spec.port_level_mtls.items()}
    return InboundMtls(mode=mode, ports=ports)


class PeerAuthentications:
    """The PeerAuthentications of one compile, by namespace, with each workload's resolution
    remembered (many endpoints share a namespace and labels, as pilot's mtlsChecker caches)."""

    def __init__(self, resources: Iterable[Resource], *,
                 root_namespace: str = ROOT_NAMESPACE) -> None:
        self.root_namespace = root_namespace
        self._by_namespace: dict[str, list[PeerAuthentication]] = defaultdict(list)
        for resource in resources:
            if isinstance(resource, PeerAuthentication):
                self._by_namespace[resource.namespace].append(resource)
        self._resolved: dict[tuple[str, frozenset[tuple[str, str]]], InboundMtls] = {}

    def sources(self, namespace: str) -> tuple[PeerAuthentication, ...]:
        """The policies that may apply to a workload of `namespace` (its own, the root's)."""
        own = self._by_namespace.get(namespace, [])
        if namespace == self.root_namespace:
            return tuple(own)
        return (*own, *self._by_namespace.get(self.root_namespace, []))

    def for_workload(self, namespace: str, labels: Mapping[str, str]) -> InboundMtls:
        """The InboundMtls of a workload of `namespace` with `labels`."""
        policies = self.sources(namespace)
        if not policies:
            return DEFAULT_INBOUND_MTLS
        key = (namespace, frozenset(labels.items()))
        found = self._resolved.get(key)
        if found is None:
            found = self._resolved[key] = resolve(
                policies, root_namespace=self.root_namespace, namespace=namespace,
                labels=labels)
        return found

    def endpoint_tls_mode(self, *, namespace: str, labels: Mapping[str, str], port: int,
                          service_account: str = "") -> str:
        """"istio" when the endpoint's workload has a sidecar taking mTLS on `port`, else "".

        pilot's mtlsChecker: the `security.istio.io/tlsMode` label says whether there is a
        sidecar (for a WorkloadEntry without that label, a serviceAccount says so:
        getTLSModeFromWorkloadEntry; pass it only for those), and a PeerAuthentication that
        DISABLEs mTLS for the workload on the port turns it off."""
        marked = labels.get(TLS_MODE_LABEL)
        if marked is None and service_account:
            marked = ISTIO_TLS_MODE
        if marked != ISTIO_TLS_MODE:
            return ""
        if self.for_workload(namespace, labels).mode_for(port) == "DISABLE":
            return ""
        return ISTIO_TLS_MODE


NO_PEER_AUTHENTICATIONS = PeerAuthentications(())
