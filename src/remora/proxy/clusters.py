"""Live state of the clusters of one snapshot: endpoint pools, the balancer, hash keys."""

from __future__ import annotations

import secrets
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from remora.policy.lb import hash_key, make_balancer

if TYPE_CHECKING:
    import random
    from collections.abc import Mapping

    from remora.mesh.snapshot import Cluster, Snapshot
    from remora.policy.lb import Balancer, HashPolicy
    from remora.policy.match import RequestAttributes
    from remora.proxy.upstream import EndpointPool, Pools


class ClusterState:
    """A cluster of the snapshot with its pools; built once per snapshot, shared by requests."""

    __slots__ = ("balancer", "cluster", "hash_policy", "least_request", "pools")

    def __init__(self, cluster: Cluster, pools: Pools) -> None:
        self.cluster = cluster
        self.pools: list[EndpointPool] = [pools.get(e.address, e.port) for e in cluster.endpoints]
        self.balancer: Balancer | None = (
            make_balancer(
                cluster.lb,
                [e.weight for e in cluster.endpoints],
                keys=[f"{e.address}:{e.port}" for e in cluster.endpoints],  # what Envoy hashes
            )
            if any(e.weight > 0 for e in cluster.endpoints)
            else None
        )
        self.hash_policy: HashPolicy | None = cluster.lb.hash
        self.least_request = cluster.lb.simple == "LEAST_REQUEST" and self.hash_policy is None

    def pick(self, *, rng: random.Random, key: int | None) -> int | None:
        """Index of the endpoint for this request, None when the cluster has no endpoint."""
        balancer = self.balancer
        if balancer is None:
            return None
        active = [pool.active for pool in self.pools] if self.least_request else ()
        return balancer.pick(rng=rng, active=active, hash_key=key)


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


class ClusterTable:
    """ClusterState for every cluster of a snapshot."""

    def __init__(self, snapshot: Snapshot, pools: Pools) -> None:
        self.snapshot = snapshot
        self.states = {name: ClusterState(c, pools) for name, c in snapshot.clusters.items()}

    def endpoints(self) -> set[tuple[str, int]]:
        return {(e.address, e.port) for c in self.snapshot.clusters.values() for e in c.endpoints}
