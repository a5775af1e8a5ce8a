"""Load balancers and their configuration as Istio sets them on Envoy clusters.

Envoy supported load balancers: https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/load_balancers
Envoy LeastRequestLbConfig: https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/cluster/v3/cluster.proto#config-cluster-v3-cluster-leastrequestlbconfig
Istio LoadBalancerSettings: https://istio.io/latest/docs/reference/config/networking/destination-rule/#LoadBalancerSettings
"""

import itertools
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remora.api.networking.traffic_policy import LoadBalancerSettings
from remora.policy.hashring import hash_key
from remora.policy.lb import Balancer, HashPolicy, LbConfig, make_balancer

RING = LbConfig(hash=HashPolicy("header", "x-user"))
MAGLEV = LbConfig(hash=HashPolicy("header", "x-user"), table="MAGLEV", table_size=4099)
SIMPLE = [LbConfig(simple=s) for s in ("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "PASSTHROUGH")]
ALL_CONFIGS = [*SIMPLE, RING, MAGLEV]


def settings_of(spec: dict[str, Any]) -> LoadBalancerSettings:
    return LoadBalancerSettings.model_validate(spec)


def picks(
    balancer: Balancer,
    count: int,
    *,
    rng: random.Random,
    active: Sequence[int],
    key: int | None = None,
) -> list[int]:
    return [balancer.pick(rng=rng, active=active, hash_key=key) for _ in range(count)]


class Recording(random.Random):
    """A seeded RNG that remembers the floats it handed out."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.drawn: list[float] = []

    def random(self) -> float:
        value = super().random()
        self.drawn.append(value)
        return value


# --- configuration ------------------------------------------------------------------------


def test_istio_default_load_balancer_is_least_request() -> None:
    assert LbConfig.from_api(None) == LbConfig(simple="LEAST_REQUEST", hash=None)
    assert LbConfig.from_api(settings_of({})).simple == "LEAST_REQUEST"
    assert LbConfig.from_api(settings_of({"simple": "UNSPECIFIED"})).simple == "LEAST_REQUEST"


@pytest.mark.parametrize(
    ("simple", "expected"),
    [
        ("ROUND_ROBIN", "ROUND_ROBIN"),
        ("RANDOM", "RANDOM"),
        ("PASSTHROUGH", "PASSTHROUGH"),
        ("LEAST_REQUEST", "LEAST_REQUEST"),
        ("LEAST_CONN", "LEAST_REQUEST"),  # deprecated; Istio maps it to LEAST_REQUEST
    ],
)
def test_istio_simple_load_balancers(simple: str, expected: str) -> None:
    config = LbConfig.from_api(settings_of({"simple": simple}))
    assert config.simple == expected and config.hash is None


@pytest.mark.parametrize(
    ("spec", "policy"),
    [
        ({"httpHeaderName": "X-User"}, HashPolicy("header", "x-user")),
        ({"useSourceIp": True}, HashPolicy("source_ip")),
        ({"httpQueryParameterName": "uid"}, HashPolicy("query", "uid")),
        (
            {"httpCookie": {"name": "session", "path": "/app", "ttl": "1h"}},
            HashPolicy("cookie", "session", cookie_path="/app", cookie_ttl=3600.0),
        ),
        ({"httpCookie": {"name": "session"}}, HashPolicy("cookie", "session")),
    ],
)
def test_istio_consistent_hash_keys(spec: dict[str, Any], policy: HashPolicy) -> None:
    config = LbConfig.from_api(settings_of({"consistentHash": spec}))
    assert config.hash == policy
    assert config.table == "RING_HASH" and config.minimum_ring_size == 1024


@pytest.mark.parametrize(
    ("extra", "table", "ring", "maglev"),
    [
        ({"ringHash": {"minimumRingSize": 2048}}, "RING_HASH", 2048, 65537),
        ({"ringHash": {}}, "RING_HASH", 1024, 65537),  # 0/unset: Envoy's default 1024
        ({"minimumRingSize": 4096}, "RING_HASH", 4096, 65537),  # deprecated top-level field
        ({"maglev": {"tableSize": 1021}}, "MAGLEV", 1024, 1021),
    ],
)
def test_istio_ring_hash_and_maglev_sizes(
    extra: dict[str, Any], table: str, ring: int, maglev: int
) -> None:
    config = LbConfig.from_api(settings_of({"consistentHash": {"useSourceIp": True, **extra}}))
    assert (config.table, config.minimum_ring_size, config.table_size) == (table, ring, maglev)


@pytest.mark.parametrize(
    "fields", [{"table_size": 65536}, {"minimum_ring_size": 0}, {"choice_count": 1}]
)
def test_lb_config_refuses_what_envoy_refuses(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        LbConfig(**fields)


def test_config_dump_uses_envoy_cluster_field_names() -> None:
    assert LbConfig().to_dict() == {
        "lb_policy": "LEAST_REQUEST",
        "least_request_lb_config": {"choice_count": 2},
    }
    assert LbConfig(simple="RANDOM").to_dict() == {"lb_policy": "RANDOM"}
    cookie = HashPolicy("cookie", "s", cookie_path="/", cookie_ttl=0.5)
    assert LbConfig(hash=cookie).to_dict() == {
        "lb_policy": "RING_HASH",
        "ring_hash_lb_config": {"minimum_ring_size": 1024},
        "hash_policy": [{"cookie": {"name": "s", "path": "/", "ttl": "0.5s"}}],
    }
    assert MAGLEV.to_dict()["maglev_lb_config"] == {"table_size": 4099}
    assert HashPolicy("source_ip").to_dict() == {"connection_properties": {"source_ip": True}}
    assert HashPolicy("query", "u").to_dict() == {"query_parameter": {"name": "u"}}


# --- picking ----------------------------------------------------------------------------------


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=lambda c: c.table if c.hash else c.simple)
def test_one_host_is_always_picked(config: LbConfig) -> None:
    balancer = make_balancer(config, [3])
    assert picks(balancer, 5, rng=random.Random(1), active=[9], key=7) == [0] * 5


@settings(max_examples=30, deadline=None)
@given(
    weights=st.lists(st.integers(0, 5), min_size=2, max_size=8).filter(any),
    config=st.sampled_from(ALL_CONFIGS),
    seed=st.integers(0, 2**32),
)
def test_zero_weight_host_is_never_picked(weights: list[int], config: LbConfig, seed: int) -> None:
    rng = random.Random(seed)
    balancer = make_balancer(config, weights)
    chosen = picks(balancer, 200, rng=rng, active=[0] * len(weights))
    assert all(weights[i] > 0 for i in chosen)


@given(count=st.integers(2, 10), seed=st.integers(0, 2**32))
def test_envoy_round_robin_equal_weights_is_a_plain_rotation(count: int, seed: int) -> None:
    balancer = make_balancer(LbConfig(simple="ROUND_ROBIN"), [1] * count)
    chosen = picks(balancer, 3 * count, rng=random.Random(seed), active=[0] * count)
    assert all(b == (a + 1) % count for a, b in itertools.pairwise(chosen))
    assert Counter(chosen) == {i: 3 for i in range(count)}


@given(
    weights=st.lists(st.integers(1, 6), min_size=2, max_size=6),
    seed=st.integers(0, 2**32),
    cycles=st.integers(1, 3),
)
def test_envoy_weighted_round_robin_matches_weights_exactly_per_cycle(
    weights: list[int], seed: int, cycles: int
) -> None:
    # Any run of whole schedule periods (sum of weights picks), wherever it starts, holds
    # each host exactly weight_i times per period.
    balancer = make_balancer(LbConfig(simple="ROUND_ROBIN"), weights)
    rng = random.Random(seed)
    picks(balancer, rng.randrange(50), rng=rng, active=[0] * len(weights))
    chosen = picks(balancer, cycles * sum(weights), rng=rng, active=[0] * len(weights))
    assert Counter(chosen) == {i: cycles * w for i, w in enumerate(weights)}


def test_passthrough_balances_given_hosts_round_robin() -> None:
    balancer = make_balancer(LbConfig(simple="PASSTHROUGH"), [1, 1, 1])
    chosen = picks(balancer, 6, rng=random.Random(3), active=[0, 0, 0])
    assert Counter(chosen) == {0: 2, 1: 2, 2: 2}


def test_round_robin_first_pick_starts_at_a_random_place() -> None:
    # Envoy seeds each schedule randomly so restarted proxies do not all hit host 0 first.
    firsts = {
        picks(make_balancer(LbConfig(simple="ROUND_ROBIN"), [1] * 5), 1,
              rng=random.Random(seed), active=[0] * 5)[0]
        for seed in range(40)
    }  # fmt: skip
    assert firsts == set(range(5))


@given(seed=st.integers(0, 2**32))
def test_envoy_p2c_picks_the_idle_host_whenever_both_are_sampled(seed: int) -> None:
    # "selects N random available hosts ... and picks the host which has the fewest active
    # requests". Samples are with replacement, as in Envoy, so both draws can hit one host.
    balancer = make_balancer(LbConfig(), [1, 1])
    active = [5, 0]
    for _ in range(50):
        rng = Recording(seed)
        seed += 1
        chosen = balancer.pick(rng=rng, active=active, hash_key=None)
        sampled = {int(u * 2) for u in rng.drawn}
        assert len(rng.drawn) == 2
        assert chosen in sampled
        if sampled == {0, 1}:
            assert chosen == 1


def test_envoy_p2c_busy_host_only_wins_when_sampled_twice() -> None:
    rng = random.Random(11)
    balancer = make_balancer(LbConfig(), [1, 1, 1, 1])
    counts = Counter(picks(balancer, 20_000, rng=rng, active=[9, 0, 0, 0]))
    # P(busy) = (1/4)^2 = 6.25 %; uniform random would give 25 %.
    assert counts[0] / 20_000 == pytest.approx(1 / 16, abs=0.01)


def test_envoy_least_request_choice_count_widens_the_sample() -> None:
    rng = random.Random(5)
    balancer = make_balancer(LbConfig(choice_count=5), [1] * 4)
    counts = Counter(picks(balancer, 20_000, rng=rng, active=[0, 4, 4, 4]))
    # The idle host wins unless all 5 samples miss it: 1 − (3/4)^5 ≈ 76 %.
    assert counts[0] / 20_000 == pytest.approx(1 - 0.75**5, abs=0.015)


def test_envoy_weighted_least_request_divides_weight_by_active_plus_one() -> None:
    # weight = load_balancing_weight / (active_requests + 1)^1.0: host 0 (w 1, idle) → 1,
    # host 1 (w 4, 3 active) → 1, host 2 (w 6, 1 active) → 3: picks split 1:1:3.
    balancer = make_balancer(LbConfig(), [1, 4, 6])
    counts = Counter(picks(balancer, 5000, rng=random.Random(2), active=[0, 3, 1]))
    assert counts == pytest.approx({0: 1000, 1: 1000, 2: 3000}, abs=3)


def test_envoy_weighted_least_request_idle_follows_weights() -> None:
    balancer = make_balancer(LbConfig(), [1, 2, 0, 3])
    counts = Counter(picks(balancer, 6000, rng=random.Random(4), active=[0, 0, 0, 0]))
    assert counts == pytest.approx({0: 1000, 1: 2000, 3: 3000}, abs=3)


def test_envoy_random_ignores_endpoint_weights() -> None:
    # random_lb.cc: hosts_to_use[random % size]; only locality weights would apply.
    balancer = make_balancer(LbConfig(simple="RANDOM"), [1, 9])
    counts = Counter(picks(balancer, 20_000, rng=random.Random(8), active=[0, 0]))
    assert counts[0] / 20_000 == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("config", [RING, MAGLEV], ids=["ring", "maglev"])
def test_envoy_consistent_hash_same_key_same_host(config: LbConfig) -> None:
    keys = [f"10.0.0.{i}:80" for i in range(6)]
    balancer = make_balancer(config, [1] * 6, keys=keys)
    rebuilt = make_balancer(config, [1] * 6, keys=keys)
    rng = random.Random(0)
    for user in ("alice", "bob", "carol"):
        key = hash_key(user)
        first = picks(balancer, 10, rng=rng, active=[0] * 6, key=key)
        assert set(first) == {rebuilt.pick(rng=rng, active=[0] * 6, hash_key=key)}


@pytest.mark.parametrize("config", [RING, MAGLEV], ids=["ring", "maglev"])
def test_envoy_consistent_hash_without_a_key_picks_at_random(config: LbConfig) -> None:
    balancer = make_balancer(config, [1] * 4, keys=[f"h{i}:80" for i in range(4)])
    counts = Counter(picks(balancer, 4000, rng=random.Random(6), active=[0] * 4))
    assert set(counts) == {0, 1, 2, 3}
    assert min(counts.values()) > 600


def test_make_balancer_refuses_no_hosts() -> None:
    with pytest.raises(ValueError, match="weight"):
        make_balancer(LbConfig(), [])
    with pytest.raises(ValueError, match="weight"):
        make_balancer(LbConfig(), [0, 0])
