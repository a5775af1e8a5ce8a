"""Which Sidecar resource (networking.istio.io) configures a sidecar proxy, and what of it applies.

Selection (istio.io/latest/docs/reference/config/networking/sidecar/: "preference will be given
to the resource with a workloadSelector that selects this workload instance, over a Sidecar
configuration without any workloadSelector"; a selector-less Sidecar in the root namespace is
the default of every namespace without one), as istiod does it (pilot/pkg/model/push_context.go,
initSidecarScopes and getSidecarScope): Sidecars oldest first (creation time, then name), and
of the proxy's namespace the first whose `workloadSelector.labels` the proxy carries, else the
first without selector; failing both, the first selector-less one of the root namespace
(MeshConfig rootNamespace). One Sidecar applies, whole: nothing is merged from the others.
Gateways take none (istiod gives them the default scope).

What Remora takes from it (the rest is in remora.api.unenforced):
- `outboundTrafficPolicy.mode` replaces MeshConfig's for the unknown-host virtual host; a
  Sidecar without outboundTrafficPolicy leaves MeshConfig's (convertToSidecarScope), one with an
  outboundTrafficPolicy but no mode is REGISTRY_ONLY (the proto's zero value, which istiod
  keeps);
- `inboundConnectionPool` is the connectionPool of the inbound cluster (Istio >= 1.22, cluster
  builder buildInboundClusterForPortOrUDS), compiled as a DestinationRule's connectionPool is
  (remora.mesh.trafficpolicy.cluster_policy).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from remora.api.meshconfig import MeshConfig
from remora.api.networking.sidecar import Sidecar
from remora.api.networking.traffic_policy import TrafficPolicy
from remora.api.resource import Resource
from remora.mesh.hosts import labels_subset
from remora.mesh.routes import oldest_first
from remora.mesh.snapshot import ClusterPolicy, ProxyIdentity
from remora.mesh.trafficpolicy import cluster_policy

OutboundMode = Literal["REGISTRY_ONLY", "ALLOW_ANY"]


@dataclass(frozen=True, slots=True)
class SidecarScope:
    """What the compiler takes from the Sidecar that applies to a proxy (Istio's SidecarScope,
    of which Remora keeps these fields), or from MeshConfig when none does."""

    outbound_mode: OutboundMode  # the unknown-host virtual host: allow_any or block_all
    inbound_policy: ClusterPolicy | None = None  # the inbound cluster's (inboundConnectionPool)


def selected_sidecar(resources: Iterable[Resource], identity: ProxyIdentity, *,
                     root_namespace: str) -> Sidecar | None:
    """The Sidecar that configures a proxy with `identity`; None for gateways, and for a proxy
    no Sidecar selects (Istio's default scope: MeshConfig alone)."""
    if identity.mode != "sidecar":
        return None
    sidecars = oldest_first(r for r in resources if isinstance(r, Sidecar)
                            and r.namespace in (identity.namespace, root_namespace))
    own = [s for s in sidecars if s.namespace == identity.namespace]
    for sidecar in own:
        selector = sidecar.spec.workload_selector
        if selector is not None and labels_subset(selector.labels, identity.labels):
            return sidecar
    root = [s for s in sidecars if s.namespace == root_namespace]
    for sidecar in (*own, *root):
        if sidecar.spec.workload_selector is None:
            return sidecar
    return None

def sidecar_scope(sidecar: Sidecar | None, mesh: MeshConfig) -> SidecarScope:
    """The scope `sidecar` (None: no Sidecar applies) gives under `mesh`; ValueError when its
    inboundConnectionPool cannot be compiled."""
    if sidecar is None:
        return SidecarScope(outbound_mode=mesh.outbound_mode)
    spec = sidecar.spec
    policy = spec.outbound_traffic_policy
    pool = spec.inbound_connection_pool
    return SidecarScope(
        outbound_mode=(policy.mode or "REGISTRY_ONLY") if policy is not None
        else mesh.outbound_mode,
        inbound_policy=cluster_policy(TrafficPolicy(connection_pool=pool),
                                      connect_timeout=mesh.connect_timeout_seconds)
        if pool is not None else None,
    )  # fmt: skip
