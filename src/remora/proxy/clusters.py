"""Live state of the clusters of one snapshot: endpoint pools, circuit breaker, outlier
detection, and the balancer over the hosts outlier detection leaves usable."""

from __future__ import annotations

import secrets
from dataclasses import replace
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from remora.mesh.snapshot import DEFAULT_MESH, PASSTHROUGH_CLUSTER, Endpoint
from remora.policy.circuit import Breaker, PoolLimits
from remora.policy.lb import hash_key, make_balancer
from remora.policy.locality import LocalityPicker, distribute_weights, priorities
from remora.policy.outlier import OutlierDetector
from remora.policy.retry import RetryPolicy
from remora.proxy.mtls import upstream_peer
from remora.proxy.routing import Memo, split_authority

PASSTHROUGH_DESTINATIONS = 1024  # passthrough clusters kept per snapshot (then started afresh)

if TYPE_CHECKING:
    import random
    from collections.abc import Mapping

    from remora.mesh.snapshot import Cluster, MeshSettings, ProxyIdentity, RouteAction, Snapshot
    from remora.policy.lb import Balancer, HashPolicy
    from remora.policy.locality import LevelPlan
    from remora.policy.match import RequestAttributes
    from remora.proxy.upstream import EndpointPool, PoolKey, Pools


class ClusterState:
    """A cluster of the snapshot with its pools; built once per snapshot, shared by requests."""

    __slots__ = ("balancer", "breaker", "cluster", "detector", "ejections", "hash_policy",
                 "hosts", "least_request", "level_balancers", "limits", "next_sweep", "overflows",
                 "picker", "plan", "pools", "weights")

    def __init__(self, cluster: Cluster, pools: Pools, identity: ProxyIdentity,
                 mesh: MeshSettings = DEFAULT_MESH) -> None:
        self.cluster = cluster
        self.pools: list[EndpointPool] = [
            pools.get(e.address, e.port, upstream_peer(cluster, e, mesh))
            for e in cluster.endpoints]
        policy = cluster.traffic_policy
        self.limits = policy.limits if policy is not None \
            else PoolLimits.from_api(None, cluster.connect_timeout)
        self.breaker = Breaker(self.limits)
        outlier = policy.outlier if policy is not None else None
        self.detector = (
            OutlierDetector(outlier, len(cluster.endpoints))
            if outlier is not None and cluster.endpoints else None
        )
        self.next_sweep = 0.0
        self.ejections = 0  # ejections made (for metrics)
        self.overflows = 0  # requests refused by the circuit breakers (UO)
        self.hash_policy: HashPolicy | None = cluster.lb.hash
        self.least_request = cluster.lb.simple == "LEAST_REQUEST" and self.hash_policy is None
        self.weights = [e.weight for e in cluster.endpoints]
        self.picker: LocalityPicker | None = None
        self.locality(identity, outlier_min_health=outlier.min_health_percent if outlier else 0)
        self.hosts: list[int] = []  # endpoint indexes the balancer chooses among
        self.balancer: Balancer | None = None
        self.plan: LevelPlan | None = None
        self.level_balancers: dict[tuple[int, ...], Balancer] = {}
        self.rebalance()

    def locality(self, identity: ProxyIdentity, *, outlier_min_health: float) -> None:
        """Locality load balancing as Istio enables it: `distribute` weights, and priority
        levels (failover, failoverPriority) only when outlier detection is on."""
        endpoints = self.cluster.endpoints
        localities = [e.locality for e in endpoints]
        if not identity.locality or not any(localities):
            return
        policy = self.cluster.traffic_policy
        setting = policy.locality if policy is not None else None
        if setting is not None and setting.distribute:
            shares = distribute_weights(localities, proxy=identity.locality,
                                        distribute=setting.distribute, weights=self.weights)
            if shares is not None:
                self.weights = [max(0, round(share * 1000)) for share in shares]
        levels = priorities(
            localities, proxy=identity.locality, setting=setting,
            labels=[e.labels for e in endpoints], proxy_labels=identity.labels,
            outlier_detection=self.detector is not None,
        )
        if max(levels, default=0) > 0:
            self.picker = LocalityPicker(levels, panic_threshold=outlier_min_health)

    def rebalance(self) -> None:
        """Balance over the usable hosts (outlier detection may have ejected some), per
        priority level when locality failover is on."""
        detector = self.detector
        if self.picker is not None:
            healthy = detector.healthy() if detector is not None else [True] * len(self.weights)
            self.plan = plan = self.picker.plan(healthy)
            self.level_balancers = {}
            for level in plan.hosts:
                balancer = self.balancer_for(list(level))
                if balancer is not None:
                    self.level_balancers[level] = balancer
            return
        usable = detector.usable() if detector is not None else range(len(self.weights))
        self.hosts = hosts = [i for i in usable if self.weights[i] > 0]
        self.balancer = self.balancer_for(hosts)

    def balancer_for(self, hosts: list[int]) -> Balancer | None:
        endpoints = self.cluster.endpoints
        hosts = [i for i in hosts if self.weights[i] > 0]
        if not hosts:
            return None
        return make_balancer(
            self.cluster.lb,
            [self.weights[i] for i in hosts],
            keys=[f"{endpoints[i].address}:{endpoints[i].port}" for i in hosts],  # as Envoy
        )

    def pick(self, *, rng: random.Random, key: int | None, avoid: set[int] | None = None,
             attempts: int = 1) -> int | None:
        """Endpoint index for a try, None when no host is usable. With `avoid` (hosts tried
        already, Envoy's previous_hosts retry predicate) up to `attempts` picks look for another
        host; the last pick stands if none is found."""
        plan = self.plan
        if plan is None:
            balancer = self.balancer
            hosts = self.hosts
        else:
            level = plan.pick_level(rng)
            balancer = self.level_balancers.get(level)
            hosts = [i for i in level if self.weights[i] > 0]
        if balancer is None:
            return None
        pools = self.pools
        active = [pools[i].active for i in hosts] if self.least_request else ()
        host = hosts[balancer.pick(rng=rng, active=active, hash_key=key)]
        if avoid:
            for _ in range(attempts - 1):
                if host not in avoid:
                    break
                host = hosts[balancer.pick(rng=rng, active=active, hash_key=None)]
        return host

    def record(self, host: int, *, status: int | None, local_failure: bool, now: float) -> None:
        """Tell outlier detection how a try went; an ejection changes the balanced hosts."""
        detector = self.detector
        if detector is not None and detector.record(host, status=status,
                                                    local_failure=local_failure, now=now):
            self.ejections += 1
            self.rebalance()

    def sweep(self, now: float) -> None:
        """Outlier detection's interval timer: un-eject hosts whose time is up."""
        detector = self.detector
        if detector is None or now < self.next_sweep:
            return
        self.next_sweep = now + detector.config.interval
        if detector.sweep(now):
            self.rebalance()


def request_hash(
    policy: HashPolicy, request: RequestAttributes, *, client_ip: str
) -> tuple[int | None, str | None]:
    """The consistent-hash key of a request and, for a cookie policy with a ttl when the request
    has no cookie, the Set-Cookie value to send back (Envoy generates the cookie then)."""
    kind = policy.kind
    value: str | None = None
    if kind == "header":
        value = request.headers.get(policy.name)
    elif kind == "source_ip":
        value = client_ip
    elif kind == "query":
        query = request.path.partition("?")[2]
        value = next((v for k, v in parse_qsl(query, keep_blank_values=True) if k == policy.name),
                     None)
    elif kind == "cookie":
        value = cookie_value(request.headers, policy.name)
        if value is None and policy.cookie_ttl is not None:
            value = secrets.token_hex(8)
            return hash_key(value), set_cookie(policy, value)
    return (hash_key(value) if value is not None else None), None


def cookie_value(headers: Mapping[str, str], name: str) -> str | None:
    raw = headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw.replace(",", ";"))
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def set_cookie(policy: HashPolicy, value: str) -> str:
    ttl = policy.cookie_ttl or 0
    parts = [f"{policy.name}={value}"]
    if ttl > 0:
        parts.append(f"Max-Age={int(ttl)}")
    if policy.cookie_path:
        parts.append(f"Path={policy.cookie_path}")
    parts.append("HttpOnly")
    return "; ".join(parts)


class RoutePolicies:
    """A route's retry, fault and timeout policies, compiled once per snapshot."""

    __slots__ = ("action", "fault", "retry", "timeout")

    def __init__(self, action: RouteAction, *, consistent_hash: bool) -> None:
        self.action = action
        fault = action.fault
        self.fault = fault if fault is not None and fault.active else None
        # istio/api HTTPRoute.fault: no timeouts or retries on a route with a fault
        self.timeout = None if fault is not None else action.timeout
        self.retry = RetryPolicy.from_spec(action.retries, route_timeout=self.timeout,
                                           has_fault=fault is not None,
                                           consistent_hash=consistent_hash)


class ClusterTable:
    """ClusterState for every cluster of a snapshot, and its routes' policies."""

    def __init__(self, snapshot: Snapshot, pools: Pools) -> None:
        self.snapshot = snapshot
        self.pools = pools
        self.states = {
            name: ClusterState(c, pools, snapshot.identity, snapshot.mesh)
            for name, c in snapshot.clusters.items()
        }
        self._routes: dict[tuple[int, bool], RoutePolicies] = {}
        self.decisions: Memo = {}  # routing.decide's memo for this snapshot
        self._passthrough: dict[tuple[str, str], ClusterState] = {}

    def passthrough(self, authority: str, scheme: str) -> ClusterState:
        """MeshConfig outboundTrafficPolicy ALLOW_ANY: a cluster of one endpoint, the host and
        port the request names (Envoy's ORIGINAL_DST PassthroughCluster; without traffic
        capture the request's authority is the original destination)."""
        found = self._passthrough.get((authority, scheme))
        if found is None:
            if len(self._passthrough) >= PASSTHROUGH_DESTINATIONS:
                self._passthrough.clear()
            host, port = split_authority(authority, scheme=scheme)
            template = self.snapshot.clusters[PASSTHROUGH_CLUSTER]
            cluster = replace(template, endpoints=(Endpoint(host.strip("[]"), port),))
            found = ClusterState(cluster, self.pools, self.snapshot.identity)
            self._passthrough[authority, scheme] = found
        return found

    def policies(self, action: RouteAction, *, consistent_hash: bool) -> RoutePolicies:
        key = (id(action), consistent_hash)
        found = self._routes.get(key)
        if found is None or found.action is not action:
            found = self._routes[key] = RoutePolicies(action, consistent_hash=consistent_hash)
        return found

    def sweep(self, now: float) -> None:
        for state in self.states.values():
            if state.detector is not None:
                state.sweep(now)

    def endpoints(self) -> set[PoolKey]:
        """The keys of the pools this snapshot's clusters use."""
        return {pool.key for state in self.states.values() for pool in state.pools}
