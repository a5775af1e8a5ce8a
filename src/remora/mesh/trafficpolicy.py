"""Which DestinationRule applies to a host for this proxy, and the traffic policy of a cluster.

Lookup (Istio, "Destination Rule" reference and exportTo): rules visible to the proxy's
namespace, searched in the proxy's namespace, then the service's, then the root namespace
(istio-system), then any other namespace exporting to the proxy; in a namespace the most specific
host wins (exact, then the longest wildcard); several rules for the same host in one namespace
merge (oldest first: its trafficPolicy, subsets added unless their name is taken). A rule with a
workloadSelector applies only to matching workloads of its namespace.

Policy of a cluster (pilot MergeSubsetTrafficPolicy; "Destination Rule" reference: "Traffic
settings specified at the destination-level will not be inherited when overridden by port-level
settings"): a portLevelSettings entry for the port replaces loadBalancer, connectionPool,
outlierDetection and tls wholesale; a subset's policy (after its own port level) then overrides
the rule's field by field. `cluster_policy` compiles the result into what the proxy reads
(remora.mesh.snapshot.ClusterPolicy): pool limits, outlier detection, locality settings, and
the tls mode ("" when the effective policy sets none: auto mTLS decides, istio.io "Mutual TLS
Migration" / MeshConfig enableAutoMtls). As the rest of `tls`, the mode comes whole from the
port-level entry for the port, else from the subset's policy when it sets `tls`, else the rule's
(`tls_mode`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from remora.api.networking.destination_rule import DestinationRule, Subset
from remora.api.networking.names import host_subset_of, to_fqdn
from remora.api.networking.traffic_policy import TrafficPolicy
from remora.api.resource import Resource
from remora.mesh.clienttls import CredentialLookup, client_tls
from remora.mesh.frozen import config_dump
from remora.mesh.hosts import ROOT_NAMESPACE, labels_subset, visible
from remora.mesh.snapshot import ClusterPolicy, ProxyIdentity
from remora.policy.circuit import PoolLimits
from remora.policy.locality import LocalitySetting
from remora.policy.outlier import OutlierConfig

_REPLACED = ("connection_pool", "load_balancer", "outlier_detection", "tls")
_KEPT = ("tunnel", "proxy_protocol", "retry_budget")


@dataclass
class MergedRule:
    """The DestinationRules of one namespace for one host, merged."""

    host: str
    namespace: str
    names: list[str] = field(default_factory=list)
    traffic_policy: TrafficPolicy | None = None
    subsets: dict[str, Subset] = field(default_factory=dict)

    def add(self, rule: DestinationRule) -> None:
        self.names.append(rule.key)
        if self.traffic_policy is None:
            self.traffic_policy = rule.spec.traffic_policy
        for subset in rule.spec.subsets:
            self.subsets.setdefault(subset.name, subset)


class DestinationRules:
    """The DestinationRules visible to one proxy, by namespace and host."""

    def __init__(self, resources: Iterable[Resource], identity: ProxyIdentity, *,
                 root_namespace: str = ROOT_NAMESPACE) -> None:
        self._root_namespace = root_namespace
        self._by_namespace: dict[str, dict[str, MergedRule]] = {}
        for rule in resources:
            if not isinstance(rule, DestinationRule) or not _applies(rule, identity):
                continue
            host = to_fqdn(rule.spec.host, rule.namespace)
            rules = self._by_namespace.setdefault(rule.namespace, {})
            rules.setdefault(host, MergedRule(host, rule.namespace)).add(rule)
        self._proxy_namespace = identity.namespace

    def for_host(self, host: str, service_namespace: str) -> MergedRule | None:
        """The rule for traffic to `host` (a service of `service_namespace`)."""
        order = [self._proxy_namespace, service_namespace, self._root_namespace]
        order.extend(ns for ns in self._by_namespace if ns not in order)
        for namespace in order:
            found = _most_specific(self._by_namespace.get(namespace, {}), host)
            if found is not None:
                return found
        return None


def _applies(rule: DestinationRule, identity: ProxyIdentity) -> bool:
    selector = rule.spec.workload_selector
    if selector is not None:
        return rule.namespace == identity.namespace and labels_subset(
            selector.match_labels, identity.labels
        )
    return visible(rule.spec.export_to, owner_namespace=rule.namespace,
                   namespace=identity.namespace)  # fmt: skip


def _most_specific(rules: dict[str, MergedRule], host: str) -> MergedRule | None:
    exact = rules.get(host)
    if exact is not None:
        return exact
    wildcards = [r for h, r in rules.items() if h.startswith("*") and host_subset_of(host, h)]
    return max(wildcards, key=lambda r: len(r.host), default=None)


def _port_level(policy: TrafficPolicy, port: int) -> tuple[TrafficPolicy, bool]:
    """The policy for `port`: its portLevelSettings entry alone when there is one."""
    for settings in policy.port_level_settings:
        if settings.port is not None and settings.port.number == port:
            values = {name: getattr(settings, name) for name in _REPLACED}
            return TrafficPolicy(**values), True
    return policy, False


def effective_policy(
    rule: TrafficPolicy | None, subset: TrafficPolicy | None, *, port: int
) -> TrafficPolicy | None:
    """The traffic policy of the cluster for `port` (and a subset, when one is routed to)."""
    base = _port_level(rule, port)[0] if rule is not None else None
    if subset is None:
        return _without_port_levels(base)
    override, port_level = _port_level(subset, port)
    if base is None:
        return _without_port_levels(override)
    merged = {name: getattr(base, name) for name in (*_REPLACED, *_KEPT)}
    for name in _REPLACED:
        value = getattr(override, name)
        if value is not None or port_level:
            merged[name] = value
    for name in _KEPT:
        if getattr(override, name) is not None:
            merged[name] = getattr(override, name)
    return TrafficPolicy(**merged)


def _without_port_levels(policy: TrafficPolicy | None) -> TrafficPolicy | None:
    if policy is None or not policy.port_level_settings:
        return policy
    return policy.model_copy(update={"port_level_settings": []})


def tls_mode(policy: TrafficPolicy) -> str:
    """The policy's tls mode; "" without `tls`. A `tls` without `mode` is DISABLE, the proto's
    default (pilot buildAutoMtlsSettings: a ClientTLSSettings set turns auto mTLS off)."""
    if policy.tls is None:
        return ""
    return policy.tls.mode or "DISABLE"


def no_credentials(name: str, _client: bool) -> str:
    return f"secret {name} is not available here"


def cluster_policy(policy: TrafficPolicy, *, connect_timeout: float,
                   credential: CredentialLookup = no_credentials) -> ClusterPolicy:
    """The effective policy of a cluster as the proxy uses it; `connect_timeout` is MeshConfig's
    connectTimeout, which connectionPool.tcp.connectTimeout overrides; `credential` finds the
    Secret a `tls.credentialName` names."""
    balancer = policy.load_balancer
    setting = balancer.locality_lb_setting if balancer is not None else None
    return ClusterPolicy(
        limits=PoolLimits.from_api(policy.connection_pool, connect_timeout),
        outlier=OutlierConfig.from_api(policy.outlier_detection),
        locality=LocalitySetting.from_api(setting) if setting is not None else None,
        config=config_dump(policy),
        tls_mode=tls_mode(policy),
        tls=client_tls(policy.tls, credential),
    )
