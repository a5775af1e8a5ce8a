"""Load balancing of a cluster's hosts, with Envoy's algorithms as Istio configures them.

`LbConfig.from_api` reads a DestinationRule's `loadBalancer` the way Istio's cluster builder
does (applyLoadBalancer / ApplyRingHashLoadBalancer); `make_balancer` builds the picker for one
host set. Pickers keep only their own schedule state; the RNG and the in-flight request counts
come in with each pick, so the proxy owns all clocks, randomness and counters.
Docs: https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/load_balancers
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from remora.policy.hashring import (
    DEFAULT_MIN_RING_SIZE,
    DEFAULT_TABLE_SIZE,
    Maglev,
    RingHash,
    hash_key,
    is_prime,
)
from remora.policy.weighted import check_weights, edf_cycle

if TYPE_CHECKING:
    from remora.api.networking.traffic_policy import ConsistentHashLB, LoadBalancerSettings

__all__ = [
    "Balancer",
    "HashPolicy",
    "LbConfig",
    "hash_key",  # re-exported: the proxy hashes request keys with the tables' hash
    "make_balancer",
]

Simple = Literal["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "PASSTHROUGH"]
HashKind = Literal["header", "cookie", "source_ip", "query"]
_HASH_BITS = 64
_SIMPLE: dict[str, Simple] = {
    "ROUND_ROBIN": "ROUND_ROBIN",
    "RANDOM": "RANDOM",
    "PASSTHROUGH": "PASSTHROUGH",
    "LEAST_REQUEST": "LEAST_REQUEST",
    "LEAST_CONN": "LEAST_REQUEST",  # deprecated in Istio, which maps it to LEAST_REQUEST
}


def _duration_json(seconds: float) -> str:
    """A protobuf Duration as JSON ("3600s", "0.5s"), as Envoy's config_dump writes it."""
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


@dataclass(frozen=True, slots=True)
class HashPolicy:
    """What a request is hashed on (Envoy RouteAction.HashPolicy from Istio consistentHash)."""

    kind: HashKind
    name: str = ""
    cookie_path: str = ""
    cookie_ttl: float | None = None  # seconds; set → Envoy generates the cookie when absent

    @classmethod
    def from_api(cls, ch: ConsistentHashLB) -> HashPolicy:
        if ch.http_header_name is not None:
            return cls("header", ch.http_header_name.lower())  # request names are lowercase
        if ch.http_cookie is not None:
            cookie = ch.http_cookie
            return cls("cookie", cookie.name, cookie_path=cookie.path or "", cookie_ttl=cookie.ttl)
        if ch.http_query_parameter_name is not None:
            return cls("query", ch.http_query_parameter_name)
        return cls("source_ip")  # the model guarantees exactly one key is set

    def to_dict(self) -> dict[str, Any]:
        """Envoy's hash_policy entry, for /config_dump."""
        if self.kind == "header":
            return {"header": {"header_name": self.name}}
        if self.kind == "cookie":
            cookie: dict[str, Any] = {"name": self.name}
            if self.cookie_path:
                cookie["path"] = self.cookie_path
            if self.cookie_ttl is not None:
                cookie["ttl"] = _duration_json(self.cookie_ttl)
            return {"cookie": cookie}
        if self.kind == "query":
            return {"query_parameter": {"name": self.name}}
        return {"connection_properties": {"source_ip": True}}


@dataclass(frozen=True, slots=True)
class LbConfig:
    """A cluster's load-balancing policy; `hash` set means consistent hashing (`table`)."""

    simple: Simple = "LEAST_REQUEST"
    hash: HashPolicy | None = None
    table: Literal["RING_HASH", "MAGLEV"] = "RING_HASH"
    minimum_ring_size: int = DEFAULT_MIN_RING_SIZE
    table_size: int = DEFAULT_TABLE_SIZE
    choice_count: int = 2  # Envoy LeastRequestLbConfig.choice_count default (P2C)

    def __post_init__(self) -> None:
        if self.minimum_ring_size < 1:
            raise ValueError("minimum_ring_size must be at least 1")
        if self.table_size <= 1 or not is_prime(self.table_size):
            raise ValueError(f"maglev table_size must be prime, not {self.table_size}")
        if self.choice_count < 2:  # Envoy: choice_count gte 2
            raise ValueError("choice_count must be at least 2")

    @classmethod
    def from_api(cls, lb: LoadBalancerSettings | None) -> LbConfig:
        """Istio's translation: unset/UNSPECIFIED and the deprecated LEAST_CONN → LEAST_REQUEST."""
        if lb is None:
            return cls()
        ch = lb.consistent_hash
        if ch is not None:
            if ch.maglev is not None:
                return cls(
                    hash=HashPolicy.from_api(ch),
                    table="MAGLEV",
                    table_size=ch.maglev.table_size or DEFAULT_TABLE_SIZE,
                )
            # ringHash.minimumRingSize, else the deprecated top-level field, else 1024
            return cls(hash=HashPolicy.from_api(ch), minimum_ring_size=ch.ring_size)
        return cls(simple=_SIMPLE.get(lb.simple or "UNSPECIFIED", "LEAST_REQUEST"))

    def to_dict(self) -> dict[str, Any]:
        """Envoy-shaped cluster fields (lb_policy, its config, hash_policy) for /config_dump."""
        if self.hash is not None:
            if self.table == "MAGLEV":
                table: dict[str, Any] = {"maglev_lb_config": {"table_size": self.table_size}}
            else:
                size = {"minimum_ring_size": self.minimum_ring_size}
                table = {"ring_hash_lb_config": size}
            return {"lb_policy": self.table, **table, "hash_policy": [self.hash.to_dict()]}
        if self.simple == "LEAST_REQUEST":
            return {
                "lb_policy": "LEAST_REQUEST",
                "least_request_lb_config": {"choice_count": self.choice_count},
            }
        return {"lb_policy": self.simple}


class Balancer(Protocol):
    """Picks one host of a cluster per request."""

    def pick(self, *, rng: random.Random, active: Sequence[int], hash_key: int | None) -> int:
        """Index into the host list; `active` = in-flight requests per host."""
        ...


class _Single:
    """One pickable host: no state, no RNG draws."""

    __slots__ = ("_index",)

    def __init__(self, index: int) -> None:
        self._index = index

    def pick(self, *, rng: random.Random, active: Sequence[int], hash_key: int | None) -> int:
        return self._index


class RoundRobin:
    """Envoy ROUND_ROBIN: plain rotation, or the EDF schedule when weights differ.

    The whole period of the schedule is precomputed, so a pick is one table read. The first
    pick starts at a random place in it, as Envoy seeds each worker's schedule, so proxies
    restarted together do not all send their first request to the same host.
    """

    __slots__ = ("_cycle", "_next")

    def __init__(self, weights: Sequence[int]) -> None:
        self._cycle = edf_cycle(weights)
        self._next = -1

    def pick(self, *, rng: random.Random, active: Sequence[int], hash_key: int | None) -> int:
        cycle = self._cycle
        position = self._next
        if position < 0:
            position = int(rng.random() * len(cycle))
        self._next = position + 1 if position + 1 < len(cycle) else 0
        return cycle[position]


class UniformRandom:
    """Envoy RANDOM: a uniformly random host; Envoy ignores endpoint weights here (random_lb.cc)."""

    __slots__ = ("_hosts",)

    def __init__(self, weights: Sequence[int]) -> None:
        self._hosts = tuple(i for i, w in enumerate(weights) if w > 0)

    def pick(self, *, rng: random.Random, active: Sequence[int], hash_key: int | None) -> int:
        hosts = self._hosts
        return hosts[int(rng.random() * len(hosts))]


class LeastRequest:
    """Envoy LEAST_REQUEST with equal weights: the least busy of `choice_count` random hosts.

    Hosts are sampled with replacement, as Envoy's N_CHOICES does; ties keep the first sample.
    """

    __slots__ = ("_count", "_hosts", "_more")

    def __init__(self, hosts: Sequence[int], *, choice_count: int) -> None:
        self._hosts = tuple(hosts)
        self._count = len(self._hosts)
        self._more = range(choice_count - 2)  # samples beyond the first two

    def pick(self, *, rng: random.Random, active: Sequence[int], hash_key: int | None) -> int:
        hosts = self._hosts
        count = self._count
        draw = rng.random
        best = hosts[int(draw() * count)]
        other = hosts[int(draw() * count)]
        if active[other] < active[best]:
            best = other
        for _ in self._more:
            other = hosts[int(draw() * count)]
            if active[other] < active[best]:
                best = other
        return best


class WeightedLeastRequest:
    """Envoy LEAST_REQUEST with unequal weights: EDF on weight / (active + 1).

    That is Envoy's formula with the default active_request_bias 1.0 (Istio cannot change it).
    As in Envoy, a picked host is rescheduled with the weight it has at that moment; the
    others keep their deadlines until their turn. The schedule starts at a random time.
    """

    __slots__ = ("_heap", "_inverse", "_order")

    def __init__(self, weights: Sequence[int]) -> None:
        self._inverse = [1 / w if w > 0 else 0.0 for w in weights]
        self._heap: list[tuple[float, int, int]] = []
        self._order = 0

    def _start(self, rng: random.Random) -> None:
        now = rng.random()
        for i, inverse in enumerate(self._inverse):
            if not inverse:
                continue  # weight 0: never scheduled
            deadline = (int(now / inverse) + 1) * inverse - now  # next slot after `now`
            self._heap.append((deadline, self._order, i))
            self._order += 1
        heapq.heapify(self._heap)

    def pick(self, *, rng: random.Random, active: Sequence[int], hash_key: int | None) -> int:
        heap = self._heap
        if not heap:
            self._start(rng)
        deadline, _, index = heap[0]
        self._order += 1
        heapq.heapreplace(
            heap, (deadline + (active[index] + 1) * self._inverse[index], self._order, index)
        )
        return index


class ConsistentHash:
    """RING_HASH / MAGLEV: the host owning the request's hash, or a random one without a hash."""

    __slots__ = ("_table",)

    def __init__(self, table: RingHash | Maglev) -> None:
        self._table = table

    def pick(self, *, rng: random.Random, active: Sequence[int], hash_key: int | None) -> int:
        if hash_key is None:  # Envoy hashes a random number when the request has no key
            hash_key = rng.getrandbits(_HASH_BITS)
        return self._table.host(hash_key)


def make_balancer(
    config: LbConfig, weights: Sequence[int], *, keys: Sequence[str] | None = None
) -> Balancer:
    """The picker for hosts of these weights (a weight of 0 is never picked).

    `keys` are the hosts' addresses ("10.0.0.1:8080"), which consistent hashing places on the
    ring as Envoy does; without them hosts are keyed by position, so removing one moves keys.
    PASSTHROUGH is Envoy's ORIGINAL_DST cluster (forward to the address the client dialled);
    given a host list, Remora balances it round robin. Raises ValueError for an empty host
    list or all weights 0: the proxy answers "no healthy upstream" before it gets here.
    """
    values = check_weights(weights)
    live = [i for i, w in enumerate(values) if w > 0]
    if len(live) <= 1:
        return _Single(live[0] if live else 0)
    if config.hash is not None:
        host_keys = [str(i) for i in range(len(values))] if keys is None else keys
        table: RingHash | Maglev
        if config.table == "MAGLEV":
            table = Maglev(values, host_keys, table_size=config.table_size)
        else:
            table = RingHash(values, host_keys, minimum_ring_size=config.minimum_ring_size)
        return ConsistentHash(table)
    if config.simple == "RANDOM":
        return UniformRandom(values)
    if config.simple == "LEAST_REQUEST":
        if len({values[i] for i in live}) == 1:
            return LeastRequest(live, choice_count=config.choice_count)
        return WeightedLeastRequest(values)
    return RoundRobin(values)
