"""Consistent hashing tables against Envoy's documented behaviour.

Ring hash: https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/load_balancers#ring-hash
Maglev: https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/load_balancers#maglev
Istio ConsistentHashLB: https://istio.io/latest/docs/reference/config/networking/destination-rule/#LoadBalancerSettings-ConsistentHashLB
"""

import os
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remora.policy.hashring import Maglev, RingHash, hash_key

PROBES = [hash_key(f"session-{i}") for i in range(3000)]
SMALL_PRIME = 4099  # Maglev tables in property tests; 65537 is checked once


def addresses(count: int) -> list[str]:
    return [f"10.1.{i // 250}.{i % 250}:8080" for i in range(count)]


def owners(table: RingHash | Maglev, keys: list[str]) -> list[str]:
    return [keys[table.host(h)] for h in PROBES]


def test_hash_key_is_stable_across_processes() -> None:
    # Affinity must survive restarts and agree between proxies: no per-process salt.
    code = "from remora.policy.hashring import hash_key; print(hash_key('user-42'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert int(other.stdout) == hash_key("user-42") == hash_key(b"user-42")
    assert 0 <= hash_key("user-42") < 2**64
    assert hash_key("user-42") != hash_key("user-43")


@given(count=st.integers(1, 30), key=st.text(min_size=1, max_size=20))
def test_envoy_ring_hash_same_key_same_host(count: int, key: str) -> None:
    keys = addresses(count)
    first = RingHash([1] * count, keys)
    again = RingHash([1] * count, list(keys))
    assert first.host(hash_key(key)) == again.host(hash_key(key)) == first.host(hash_key(key))


@settings(max_examples=25)
@given(order=st.permutations(range(6)))
def test_envoy_ring_hash_places_hosts_by_address_not_by_position(order: list[int]) -> None:
    keys = addresses(6)
    weights = [1, 2, 1, 3, 1, 1]
    shuffled_keys = [keys[i] for i in order]
    shuffled = RingHash([weights[i] for i in order], shuffled_keys)
    assert owners(shuffled, shuffled_keys) == owners(RingHash(weights, keys), keys)


@settings(max_examples=30)
@given(data=st.data(), count=st.integers(2, 12))
def test_envoy_ring_hash_removing_a_host_moves_only_its_keys(
    data: st.DataObject, count: int
) -> None:
    # Ketama: with each host's entries unchanged, only the removed host's keys move. The ring
    # keeps k entries per host for `count` and `count - 1` hosts when its size is k·(count−1).
    per_host = data.draw(st.integers(1, count - 1))
    removed = data.draw(st.integers(0, count - 1))
    keys = addresses(count)
    rest = keys[:removed] + keys[removed + 1 :]
    size = per_host * (count - 1)
    before = owners(RingHash([1] * count, keys, minimum_ring_size=size), keys)
    after = owners(RingHash([1] * (count - 1), rest, minimum_ring_size=size), rest)
    assert all(b == a for b, a in zip(before, after, strict=True) if b != keys[removed])
    assert keys[removed] not in after


@pytest.mark.parametrize("count", [3, 5, 8, 12, 20])
def test_envoy_ring_hash_default_ring_remaps_about_one_nth(count: int) -> None:
    # "the addition or removal of one host from a set of N hosts will affect only 1/N
    # requests" — plus the keys that move because Envoy re-scales every host's entry count
    # (ceil(1024/N) each) when N changes.
    keys = addresses(count)
    before = owners(RingHash([1] * count, keys), keys)
    after = owners(RingHash([1] * (count - 1), keys[1:]), keys[1:])
    moved = sum(b != a for b, a in zip(before, after, strict=True)) / len(PROBES)
    assert moved <= 2 / count + 0.05


def test_envoy_ring_hash_entries_are_proportional_to_weight() -> None:
    # The least-weighted host gets ceil(1/6 × 1024) = 171 entries; the others in proportion.
    ring = RingHash([1, 2, 3], addresses(3), minimum_ring_size=1024)
    assert Counter(ring.hosts) == {0: 171, 1: 342, 2: 513}
    assert ring.hashes == sorted(ring.hashes)


def test_envoy_ring_hash_share_of_requests_follows_weight() -> None:
    keys = addresses(3)
    shares = Counter(owners(RingHash([1, 2, 1], keys), keys))
    total = len(PROBES)
    assert shares[keys[1]] / total == pytest.approx(0.5, abs=0.07)
    assert shares[keys[0]] / total == pytest.approx(0.25, abs=0.07)


def test_envoy_ring_hash_never_places_zero_weight_hosts() -> None:
    ring = RingHash([1, 0, 1], addresses(3))
    assert 1 not in ring.hosts


def test_envoy_ring_hash_is_capped_at_maximum_ring_size() -> None:
    ring = RingHash([1, 1], addresses(2), minimum_ring_size=10_000, maximum_ring_size=100)
    assert len(ring.hashes) == 100


def test_envoy_maglev_doc_example_weights_1_and_2() -> None:
    # Envoy doc: "host A will have 21,846 entries and host B will have 43,691 entries".
    table = Maglev([1, 2], ["a:80", "b:80"], table_size=65537)
    assert Counter(table.table) == {0: 21846, 1: 43691}


@settings(max_examples=30, deadline=None)
@given(weights=st.lists(st.integers(1, 10), min_size=1, max_size=12))
def test_envoy_maglev_fills_table_with_shares_of_weight(weights: list[int]) -> None:
    table = Maglev(weights, addresses(len(weights)), table_size=SMALL_PRIME)
    counts = Counter(table.table)
    assert sum(counts.values()) == SMALL_PRIME and -1 not in counts
    total = sum(weights)
    for index, weight in enumerate(weights):
        assert counts[index] >= 1  # "attempts to place each host in the table at least once"
        assert counts[index] == pytest.approx(SMALL_PRIME * weight / total, abs=len(weights) + 1)


@settings(max_examples=20, deadline=None)
@given(count=st.integers(3, 20), data=st.data())
def test_envoy_maglev_minimal_disruption_on_host_removal(count: int, data: st.DataObject) -> None:
    # Maglev paper §3.4 / Envoy: "minimal disruption", not a guarantee; with M >> N almost
    # every key that was not on the removed host stays.
    removed = data.draw(st.integers(0, count - 1))
    keys = addresses(count)
    rest = keys[:removed] + keys[removed + 1 :]
    before = owners(Maglev([1] * count, keys, table_size=SMALL_PRIME), keys)
    after = owners(Maglev([1] * (count - 1), rest, table_size=SMALL_PRIME), rest)
    stayed = [b == a for b, a in zip(before, after, strict=True) if b != keys[removed]]
    assert stayed.count(False) / len(PROBES) <= 0.03
    assert keys[removed] not in after


def test_envoy_maglev_table_does_not_depend_on_host_order() -> None:
    keys = addresses(5)
    forward = Maglev([1, 2, 3, 4, 5], keys, table_size=SMALL_PRIME)
    backward = Maglev([5, 4, 3, 2, 1], keys[::-1], table_size=SMALL_PRIME)
    assert owners(forward, keys) == owners(backward, keys[::-1])


@pytest.mark.parametrize("size", [0, 1, 4, 65536, 5000011])
def test_envoy_maglev_table_size_must_be_prime_below_limit(size: int) -> None:
    with pytest.raises(ValueError, match="prime"):
        Maglev([1], ["a:80"], table_size=size)


def test_tables_refuse_mismatched_or_empty_host_lists() -> None:
    with pytest.raises(ValueError, match="host keys"):
        RingHash([1, 1], ["a:80"])
    with pytest.raises(ValueError, match="positive weight"):
        Maglev([0, 0], ["a:80", "b:80"], table_size=SMALL_PRIME)
