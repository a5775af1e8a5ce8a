"""Locality load balancing: Istio's priorities and weights, Envoy's priority-level selection.

Istio turns `localityLbSetting` into EDS priorities and locality weights relative to the
calling proxy (istio/istio pilot/pkg/networking/core/loadbalancer/loadbalancer.go,
ApplyLocalityLoadBalancer; docs https://istio.io/latest/docs/tasks/traffic-management/locality-load-balancing/):
- `distribute`: the first rule whose `from` matches the proxy sets locality weights; endpoints in
  localities no `to` entry covers get no traffic; no priorities;
- otherwise, only with outlierDetection set (Envoy never fails over without it): default
  failover ranks endpoints 0 same region/zone/subzone, 1 same region/zone, 2 same region,
  3 other regions; a `failover {from, to}` rule for the proxy's region keeps region `to` at 3
  and moves every other region to 4; `failoverPriority` ranks by how many of the listed labels,
  in order, match the proxy's (`label=value` fixes the value), before any locality failover;
  priorities are then renumbered 0..N without gaps.

Envoy then sends traffic by priority level (docs "Priority levels", "Panic threshold",
https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/priority):
a level's health is min(100, 1.4 × its healthy %); levels take load in order, each as much as
its health (scaled when the total is under 100) of what is left; a level is in panic (use all of
its hosts) when its healthy % is below the panic threshold, unless the total health reaches 100.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from remora.api.networking.traffic_policy import LocalityLoadBalancerSetting

REGION = "topology.kubernetes.io/region"
ZONE = "topology.kubernetes.io/zone"
SUBZONE = "topology.istio.io/subzone"
NETWORK = "topology.istio.io/network"
LOCALITY_LABELS = ("topology.istio.io/locality", "istio-locality")
OVERPROVISIONING = 140  # Envoy's default overprovisioning factor, in percent


@dataclass(frozen=True, slots=True)
class Distribute:
    """A `distribute` rule: from the proxy's locality `from_` (may end in `*`), weights `to`."""

    from_: str | None
    to: Mapping[str, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "to", MappingProxyType(dict(self.to)))


@dataclass(frozen=True, slots=True)
class Failover:
    """A `failover` rule: traffic from region `from_` fails over to region `to`."""

    from_: str | None
    to: str | None


@dataclass(frozen=True, slots=True)
class LocalitySetting:
    """A DestinationRule's `localityLbSetting`, compiled (the names are Istio's)."""

    enabled: bool | None = None
    distribute: tuple[Distribute, ...] = ()
    failover: tuple[Failover, ...] = ()
    failover_priority: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, setting: LocalityLoadBalancerSetting) -> LocalitySetting:
        return cls(
            enabled=setting.enabled,
            distribute=tuple(Distribute(d.from_, d.to) for d in setting.distribute),
            failover=tuple(Failover(f.from_, f.to) for f in setting.failover),
            failover_priority=tuple(setting.failover_priority),
        )


def split_locality(locality: str) -> tuple[str, str, str]:
    """Split "region/zone/subzone" into its three parts ("" where absent)."""
    parts = locality.split("/", 2)
    parts += [""] * (3 - len(parts))
    return parts[0], parts[1], parts[2]


def join_locality(region: str, zone: str = "", subzone: str = "") -> str:
    """The "region/zone/subzone" string, without trailing empty parts."""
    return "/".join((region, zone, subzone)).rstrip("/")


def locality_of(labels: Mapping[str, str], declared: str = "") -> str:
    """An endpoint's locality as Istio reads it: the declared one (WorkloadEntry `locality`),
    else the `topology.istio.io/locality` / `istio-locality` label ("." for "/"), else the
    region, zone and subzone topology labels."""
    if declared:
        return join_locality(*split_locality(declared))
    for name in LOCALITY_LABELS:
        if value := labels.get(name):
            value = value if "/" in value else value.replace(".", "/")
            return join_locality(*split_locality(value))
    return join_locality(labels.get(REGION, ""), labels.get(ZONE, ""), labels.get(SUBZONE, ""))


def locality_matches(locality: str, rule: str) -> bool:
    """Istio's LocalityMatch: `rule` parts equal, `*`, or (zone/subzone) left out."""
    have, want = split_locality(locality), split_locality(rule)
    if want[0] != "*" and want[0] != have[0]:
        return False
    return all(w in ("*", "") or w == h for h, w in zip(have[1:], want[1:], strict=True))


def _with_topology(labels: Mapping[str, str], locality: str) -> dict[str, str]:
    """Istio's AugmentLabels: the locality's parts as topology labels."""
    out = dict(labels)
    for name, value in zip((REGION, ZONE, SUBZONE), split_locality(locality), strict=True):
        if value:
            out[name] = value
    return out


def priorities(
    localities: Sequence[str],
    *,
    proxy: str,
    setting: LocalitySetting | None,
    labels: Sequence[Mapping[str, str]] | None = None,
    proxy_labels: Mapping[str, str] | None = None,
    outlier_detection: bool = True,
) -> list[int]:
    """The priority of each endpoint (0 highest) for a proxy in locality `proxy`.

    `setting` None means the mesh default (locality LB enabled, default failover).
    """
    flat = [0] * len(localities)
    off = setting is not None and (setting.enabled is False or bool(setting.distribute))
    if off or not outlier_detection:
        return flat
    failover = setting.failover if setting is not None else []
    ranked = setting.failover_priority if setting is not None else []
    if ranked:
        if not proxy_labels:  # Istio: no proxy labels, no failoverPriority
            return flat
        mine = _with_topology(proxy_labels, proxy)
        theirs = [
            _with_topology(labels[i] if labels is not None else {}, loc)
            for i, loc in enumerate(localities)
        ]
        ranks = _compact([_label_rank(ranked, mine, t) for t in theirs])
        if not failover:
            return ranks
    else:
        ranks = flat
    region = split_locality(proxy)[0]
    target = next((f.to for f in failover if f.from_ == region), None)
    has_rule = any(f.from_ == region for f in failover)
    return _compact([
        rank * 5 + _failover_rank(proxy, loc, has_rule=has_rule, target=target)
        for rank, loc in zip(ranks, localities, strict=True)
    ])  # fmt: skip


def _failover_rank(proxy: str, locality: str, *, has_rule: bool, target: str | None) -> int:
    """Istio's LbPriority (0..3) plus failover: other regions than `to` drop to 4."""
    mine, theirs = split_locality(proxy), split_locality(locality)
    same = 0
    while same < 3 and mine[same] == theirs[same]:
        same += 1
    if same:
        return 3 - same
    return 4 if has_rule and theirs[0] != target else 3


def _label_rank(names: Sequence[str], proxy: Mapping[str, str], host: Mapping[str, str]) -> int:
    """Istio's applyFailoverPriorityPerLocality: n - (index of the first label that differs);
    a differing leading network label pushes the endpoint behind all others instead."""
    lowest = len(names)
    adjust = 0
    for position, entry in enumerate(names):
        name, _, fixed = entry.partition("=")
        wanted = fixed if "=" in entry else proxy.get(name, "")
        if wanted != host.get(name, ""):
            if position == 0 and name == NETWORK:
                adjust = lowest
                continue
            return lowest - position + adjust
    return adjust


def _compact(values: Sequence[int]) -> list[int]:
    """Renumber to 0..N in order, as Envoy needs priorities without gaps."""
    order = {value: rank for rank, value in enumerate(sorted(set(values)))}
    return [order[value] for value in values]


def distribute_weights(
    localities: Sequence[str],
    *,
    proxy: str,
    distribute: Sequence[Distribute],
    weights: Sequence[int] | None = None,
) -> list[float] | None:
    """Per-endpoint weights from the first `distribute` rule matching the proxy, or None.

    As Istio's applyLocalityWeights: each `to` entry's weight is split over the localities it
    matches in proportion to their endpoint weight (ceil); endpoints of localities no entry
    matches get 0. Envoy then picks a locality by weight and an endpoint in it by its weight,
    which an endpoint weight of locality weight × own weight / locality total reproduces.
    """
    rule = next((d for d in distribute if locality_matches(proxy, d.from_ or "")), None)
    if rule is None:
        return None
    own = list(weights) if weights is not None else [1] * len(localities)
    by_locality: dict[str, int] = {}
    for locality, weight in zip(localities, own, strict=True):
        by_locality[locality] = by_locality.get(locality, 0) + weight
    assigned: dict[str, float] = {}
    for pattern, weight in rule.to.items():
        matched = [
            loc for loc in by_locality if loc not in assigned and locality_matches(loc, pattern)
        ]
        total = sum(by_locality[loc] for loc in matched)
        for loc in matched:
            assigned[loc] = math.ceil(by_locality[loc] * weight / total) if total else 0
    return [
        assigned.get(loc, 0) * w / by_locality[loc] if by_locality[loc] else 0.0
        for loc, w in zip(localities, own, strict=True)
    ]


def level_health(healthy: int, total: int, overprovisioning: int = OVERPROVISIONING) -> int:
    """Envoy's health score of a level: min(100, overprovisioning × healthy / total)."""
    return min(100, overprovisioning * healthy // total) if total else 0


def priority_loads(health: Sequence[int], hosts: Sequence[int]) -> list[int]:
    """Envoy's per-level load in percent (summing to 100) from each level's health score.

    Each level takes min(what is left, health × 100 / normalized total) in order; rounding
    leftovers go to the first level with health. When no level has health, the load follows
    host counts (total panic).
    """
    loads = [0] * len(health)
    total = min(100, sum(health))
    if total == 0:
        count = sum(hosts)
        if count:
            loads = [100 * n // count for n in hosts]
            loads[next(i for i, n in enumerate(hosts) if n)] += 100 - sum(loads)
        return loads
    left = 100
    for level, score in enumerate(health):
        loads[level] = min(left, score * 100 // total)
        left -= loads[level]
    if left:
        loads[next(i for i, score in enumerate(health) if score)] += left
    return loads


@dataclass(frozen=True, slots=True)
class LevelPlan:
    """Which hosts each priority level offers and the share of requests it takes."""

    loads: tuple[int, ...]
    hosts: tuple[tuple[int, ...], ...]
    _cumulative: tuple[int, ...]

    def pick_level(self, rng: random.Random) -> tuple[int, ...]:
        """The hosts of a level drawn by load (empty when nothing is usable: 503 UH)."""
        level = bisect.bisect_right(self._cumulative, rng.randrange(100))
        return self.hosts[min(level, len(self.hosts) - 1)] if self.hosts else ()


class LocalityPicker:
    """Envoy's priority-level selection over a cluster's hosts, given their priorities."""

    __slots__ = ("_levels", "panic_threshold")

    def __init__(self, priorities: Sequence[int], *, panic_threshold: float = 0) -> None:
        count = max(priorities, default=-1) + 1
        levels: list[list[int]] = [[] for _ in range(count)]
        for host, level in enumerate(priorities):
            levels[level].append(host)
        self._levels = tuple(tuple(level) for level in levels)
        self.panic_threshold = panic_threshold

    def plan(self, healthy: Sequence[bool]) -> LevelPlan:
        """The plan for this health state; rebuild it when an ejection or sweep changes it."""
        ups = [[h for h in level if healthy[h]] for level in self._levels]
        sizes = [len(level) for level in self._levels]
        health = [level_health(len(up), n) for up, n in zip(ups, sizes, strict=True)]
        total = min(100, sum(health))
        if total == 0 and self.panic_threshold == 0:
            # Envoy: panic disabled and nothing available — P0 takes the load and finds no host
            loads = [100] + [0] * (len(sizes) - 1) if sizes else []
            hosts: list[tuple[int, ...]] = [()] * len(sizes)
        else:
            loads = priority_loads(health, sizes)
            hosts = [
                level if total < 100 and in_panic(len(up), len(level), self.panic_threshold)
                else tuple(up)
                for up, level in zip(ups, self._levels, strict=True)
            ]  # fmt: skip
        cumulative = []
        running = 0
        for load in loads:
            running += load
            cumulative.append(running)
        return LevelPlan(tuple(loads), tuple(hosts), tuple(cumulative))


def in_panic(healthy: int, total: int, threshold: float) -> bool:
    """Envoy's isHostSetInPanic: the healthy % is below the panic threshold."""
    return (100.0 * healthy / total if total else 0.0) < threshold
