"""Locality priorities (Istio) and priority-level loads (Envoy).

Istio: pilot/pkg/networking/core/loadbalancer/loadbalancer.go; istio.io "Locality failover",
DestinationRule reference (LocalityLoadBalancerSetting). Envoy: docs "Priority levels",
"Panic threshold", "Overprovisioning factor".
"""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from remora.api.networking.traffic_policy import LocalityLoadBalancerSetting
from remora.policy.locality import (
    LocalityPicker,
    distribute_weights,
    level_health,
    locality_matches,
    locality_of,
    priorities,
    priority_loads,
)


def setting(spec: dict[str, object]) -> LocalityLoadBalancerSetting:
    return LocalityLoadBalancerSetting.model_validate(spec)


def test_locality_of_reads_declared_then_labels() -> None:
    assert locality_of({}, "us-east/zone1/") == "us-east/zone1"
    assert locality_of({"istio-locality": "us.east"}) == "us/east"
    assert locality_of({"topology.istio.io/locality": "a/b/c", "istio-locality": "x"}) == "a/b/c"
    labels = {"topology.kubernetes.io/region": "r", "topology.kubernetes.io/zone": "z",
              "topology.istio.io/subzone": "s"}  # fmt: skip
    assert locality_of(labels) == "r/z/s"
    assert locality_of({}) == ""


def test_locality_match_wildcards() -> None:
    assert locality_matches("us-west/zone1/a", "us-west/zone1/*")
    assert locality_matches("us-west/zone1/a", "us-west")
    assert locality_matches("us-west/zone1/a", "*")
    assert not locality_matches("us-west/zone2/a", "us-west/zone1/*")


def test_default_failover_ranks_by_region_zone_subzone() -> None:
    # Istio LbPriority: 0 all match, 1 region+zone, 2 region, 3 other regions
    hosts = ["r1/z1/s1", "r1/z1/s2", "r1/z2/s1", "r2/z1/s1"]
    assert priorities(hosts, proxy="r1/z1/s1", setting=None) == [0, 1, 2, 3]
    # missing levels are compacted away
    assert priorities(["r2/z9", "r1/z1/s1"], proxy="r1/z1/s1", setting=None) == [1, 0]


def test_no_failover_without_outlier_detection_or_when_disabled() -> None:
    hosts = ["r1/z1", "r2/z1"]
    assert priorities(hosts, proxy="r1/z1", setting=None, outlier_detection=False) == [0, 0]
    off = setting({"enabled": False})
    assert priorities(hosts, proxy="r1/z1", setting=off) == [0, 0]


def test_istio_locality_failover_task_order() -> None:
    # istio.io Locality failover: sleep in region1.zone1, failover region1 -> region3:
    # region1.zone1, then region1.zone2, then region3.zone4, then region2.zone3
    hosts = ["region2/zone3", "region1/zone2", "region3/zone4", "region1/zone1"]
    rule = setting({"failover": [{"from": "region1", "to": "region3"}]})
    assert priorities(hosts, proxy="region1/zone1", setting=rule) == [3, 1, 2, 0]


def test_failover_priority_labels_in_order() -> None:
    # DestinationRule reference, failoverPriority: more leading labels matching -> higher
    names = ["topology.kubernetes.io/region", "topology.kubernetes.io/zone"]
    rule = setting({"failoverPriority": names})
    hosts = ["r1/z1", "r1/z2", "r2/z1"]
    got = priorities(hosts, proxy="r1/z1", setting=rule, labels=[{}, {}, {}],
                     proxy_labels={"app": "sleep"})  # fmt: skip
    assert got == [0, 1, 2]


def test_failover_priority_override_and_network_last() -> None:
    rule = setting({"failoverPriority": ["topology.istio.io/network", "version=v2"]})
    labels = [{"topology.istio.io/network": "n1", "version": "v1"},
              {"topology.istio.io/network": "n1", "version": "v2"},
              {"topology.istio.io/network": "n2", "version": "v2"},
              {"topology.istio.io/network": "n2", "version": "v1"}]  # fmt: skip
    got = priorities([""] * 4, proxy="", setting=rule, labels=labels,
                     proxy_labels={"topology.istio.io/network": "n1", "version": "v1"})
    # same network first (v2 override before v1), then the other network in the same order
    assert got == [1, 0, 2, 3]


def test_failover_priority_without_proxy_labels_is_ignored() -> None:
    rule = setting({"failoverPriority": ["version"]})
    assert priorities(["a", "b"], proxy="a", setting=rule, labels=[{}, {}]) == [0, 0]


def test_distribute_weights_from_the_istio_docs() -> None:
    rule = setting({"distribute": [
        {"from": "us-west/zone1/*", "to": {"us-west/zone1/*": 80, "us-west/zone2/*": 20}},
        {"from": "us-west/zone2/*", "to": {"us-west/zone1/*": 20, "us-west/zone2/*": 80}},
    ]})  # fmt: skip
    hosts = ["us-west/zone1/a", "us-west/zone1/a", "us-west/zone2/b", "us-east/zone3/c"]
    got = distribute_weights(hosts, proxy="us-west/zone1/x", distribute=rule.distribute)
    assert got == [40.0, 40.0, 20.0, 0.0]
    assert priorities(hosts, proxy="us-west/zone1/x", setting=rule) == [0, 0, 0, 0]
    assert distribute_weights(hosts, proxy="eu/z/s", distribute=rule.distribute) is None


def test_distribute_splits_a_wildcard_over_localities_by_weight() -> None:
    rule = setting({"distribute": [{"from": "*", "to": {"r1/*": 80, "r2/*": 20}}]})
    got = distribute_weights(["r1/a", "r1/a", "r1/b", "r2/c"], proxy="r1/a",
                             distribute=rule.distribute)  # fmt: skip
    assert got == [27.0, 27.0, 27.0, 20.0]  # ceil(2 × 80 / 3) = 54 over two hosts, ceil(80 / 3)


def test_envoy_priority_table_with_two_levels() -> None:
    # Envoy "Priority levels": P=1 fully healthy, load to P=0 = min(100, 1.4 × healthy %)
    for healthy, expected in ((100, [100, 0]), (72, [100, 0]), (71, [99, 1]), (50, [70, 30]),
                              (25, [35, 65]), (0, [0, 100])):  # fmt: skip
        assert priority_loads([level_health(healthy, 100), 100], [100, 100]) == expected


def test_loads_scale_when_total_health_is_under_100() -> None:
    # 20 % and 20 % healthy: health 28 + 28 = 56 -> 50 / 50
    assert priority_loads([28, 28], [10, 10]) == [50, 50]
    # rounding leftovers go to the first level with health
    assert priority_loads([35, 35, 28], [4, 4, 5]) == [37, 35, 28]


def test_total_panic_follows_host_counts() -> None:
    assert priority_loads([0, 0], [1, 3]) == [25, 75]


def test_picker_spills_from_a_degraded_level() -> None:
    picker = LocalityPicker([0, 0, 1, 1])
    plan = picker.plan([True, False, True, True])  # P0 50 % healthy -> 70 / 30
    assert plan.loads == (70, 30)
    assert plan.hosts == ((0,), (2, 3))
    rng = random.Random(7)
    draws = [plan.pick_level(rng) for _ in range(10_000)]
    share = sum(d == (0,) for d in draws) / len(draws)
    assert 0.67 < share < 0.73


def test_picker_panic_uses_all_hosts_of_the_level() -> None:
    picker = LocalityPicker([0, 0, 0, 0], panic_threshold=50)
    plan = picker.plan([True, False, False, False])
    assert plan.loads == (100,) and plan.hosts == ((0, 1, 2, 3),)
    # no panic threshold: only the healthy host; nothing healthy: no host at all (UH)
    assert LocalityPicker([0, 0]).plan([True, False]).hosts == ((0,),)
    assert LocalityPicker([0, 1]).plan([False, False]).pick_level(random.Random(1)) == ()


def test_panic_is_disregarded_when_lower_levels_cover_the_load() -> None:
    plan = LocalityPicker([0, 0, 1], panic_threshold=60).plan([True, False, True])
    assert plan.loads == (70, 30)
    assert plan.hosts == ((0,), (2,))


@given(levels=st.lists(st.tuples(st.integers(1, 20), st.integers(0, 20)), min_size=1,
                       max_size=5))  # fmt: skip
def test_loads_sum_to_100_and_favor_healthy_leading_levels(
    levels: list[tuple[int, int]],
) -> None:
    sizes = [n for n, _ in levels]
    health = [level_health(min(h, n), n) for n, h in levels]
    loads = priority_loads(health, sizes)
    assert sum(loads) == 100
    if health[0] == 100:
        assert loads[0] == 100
    if sum(health):
        assert all(load == 0 for load, score in zip(loads, health, strict=True) if not score)
