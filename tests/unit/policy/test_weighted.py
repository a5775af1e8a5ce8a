"""Route weights and the weighted round-robin schedule.

Envoy weighted clusters: https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/route/v3/route_components.proto#config-route-v3-weightedcluster
Istio HTTPRouteDestination.weight: https://istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPRouteDestination
Envoy weighted round robin (EDF): https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/load_balancers#weighted-round-robin
"""

import math
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remora.policy.weighted import WeightedChoice, edf_cycle

weight_lists = st.lists(st.integers(min_value=0, max_value=100), min_size=2, max_size=8).filter(
    lambda ws: sum(ws) > 0
)


class NoDraws(random.Random):
    """An RNG that fails the test if anything draws from it."""

    def random(self) -> float:
        raise AssertionError("the RNG was used")

    def getrandbits(self, k: int) -> int:
        raise AssertionError("the RNG was used")


def chi_square(counts: Counter[int], weights: list[int], draws: int) -> tuple[float, int]:
    total = sum(weights)
    stat = 0.0
    cells = 0
    for index, weight in enumerate(weights):
        if weight:
            expected = draws * weight / total
            stat += (counts[index] - expected) ** 2 / expected
            cells += 1
    return stat, cells - 1


@settings(derandomize=True, max_examples=60, deadline=None)
@given(weights=weight_lists, seed=st.integers(0, 2**32))
def test_envoy_weighted_clusters_frequencies_converge_to_weights(
    weights: list[int], seed: int
) -> None:
    choice = WeightedChoice(weights)
    rng = random.Random(seed)
    draws = 20_000
    counts = Counter(choice.pick(rng) for _ in range(draws))
    stat, dof = chi_square(counts, weights, draws)
    # Far above the 99.9999 % quantile of chi-square(dof); a wrong distribution scores thousands.
    assert stat < dof + 12 * math.sqrt(2 * max(dof, 1)) + 15


@given(weights=weight_lists, seed=st.integers(0, 2**32))
def test_istio_route_weight_zero_is_never_chosen(weights: list[int], seed: int) -> None:
    choice = WeightedChoice(weights)
    rng = random.Random(seed)
    picked = {choice.pick(rng) for _ in range(500)}
    assert all(weights[i] > 0 for i in picked)


def test_istio_single_destination_takes_all_traffic_without_drawing() -> None:
    # Istio: a lone destination gets 100 % whatever its weight field says.
    for weight in (0, 1, 100):
        assert WeightedChoice([weight]).pick(NoDraws()) == 0


def test_only_one_positive_weight_draws_nothing() -> None:
    assert WeightedChoice([0, 7, 0]).pick(NoDraws()) == 1


def test_draw_at_the_top_of_the_range_goes_to_the_last_positive_weight() -> None:
    class Top(random.Random):
        def random(self) -> float:
            return 1.0  # r * total == total; a real draw can round up to it

    assert WeightedChoice([3, 5, 0]).pick(Top()) == 1


@pytest.mark.parametrize("weights", [[], [-1, 2], [0, 0]])
def test_envoy_rejects_weights_with_nothing_to_pick(weights: list[int]) -> None:
    with pytest.raises(ValueError, match="weight"):
        WeightedChoice(weights)


def test_weighted_choice_compares_by_weights_for_snapshot_equality() -> None:
    assert WeightedChoice([1, 2]) == WeightedChoice((1, 2))
    assert hash(WeightedChoice([1, 2])) == hash(WeightedChoice([1, 2]))
    assert WeightedChoice([1, 2]) != WeightedChoice([2, 1])


@given(weights=weight_lists)
def test_envoy_edf_schedule_gives_each_host_its_weight_per_period(weights: list[int]) -> None:
    cycle = list(edf_cycle(weights))
    divisor = math.gcd(*weights)
    assert len(cycle) == sum(weights) // divisor
    assert Counter(cycle) == Counter({i: w // divisor for i, w in enumerate(weights) if w})


def test_envoy_edf_schedule_spreads_the_heavy_host() -> None:
    # Deadlines k/w: host 0 (weight 3) is due at 1/3, 2/3, 1; hosts 1 and 2 at 1, after it
    # by insertion order — Envoy's EdfScheduler ties.
    assert list(edf_cycle([3, 1, 1])) == [0, 0, 1, 2, 0]
    assert list(edf_cycle([1, 1, 1, 1])) == [0, 1, 2, 3]


def test_edf_cycle_of_huge_weights_is_bounded_and_keeps_ratios() -> None:
    cycle = edf_cycle([3_000_000, 1_000_000, 1])
    counts = Counter(cycle)
    assert len(cycle) <= 1 << 16
    assert counts[0] / counts[1] == pytest.approx(3, rel=1e-3)
    assert counts[2] >= 1  # scaled down, but never to zero
