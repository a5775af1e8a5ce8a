"""Weighted choices: route destinations by weight and Envoy's weighted round-robin schedule.

Both are built once per snapshot and picked from per request, so all arithmetic that does not
depend on the request happens in the constructors.
"""

from __future__ import annotations

import heapq
import math
import random
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_CYCLE = 1 << 16
"""Longest precomputed round-robin cycle; larger weight sums are scaled down to fit."""


def check_weights(weights: Sequence[int]) -> tuple[int, ...]:
    """Weights as a tuple; refuse what Envoy refuses (no entries, negatives, nothing to pick)."""
    values = tuple(weights)
    if not values:
        raise ValueError("at least one weight is required")
    if any(w < 0 for w in values):
        raise ValueError(f"weights must not be negative: {list(values)}")
    if len(values) > 1 and sum(values) == 0:
        raise ValueError("weights must not all be 0")
    return values


@dataclass(frozen=True, slots=True)
class WeightedChoice:
    """Destination i with probability weight_i / sum (Envoy weighted_clusters); 0 never.

    One destination is always index 0, whatever its weight, and draws nothing from the RNG:
    Istio ignores the weight of a lone destination. `weights` may be given as any sequence; it
    is kept as a tuple, and the bisect bounds are computed from it once.
    """

    weights: tuple[int, ...]
    _bounds: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _total: int = field(init=False, repr=False, compare=False)
    _last: int = field(init=False, repr=False, compare=False)
    _only: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        weights = check_weights(self.weights)
        object.__setattr__(self, "weights", weights)
        running = 0
        bounds = []
        for weight in weights:
            running += weight
            bounds.append(running)
        object.__setattr__(self, "_bounds", tuple(bounds))
        object.__setattr__(self, "_total", running)
        positive = [i for i, w in enumerate(weights) if w > 0] or [0]
        # r * total can round up to total itself; that draw belongs to the last positive weight.
        object.__setattr__(self, "_last", positive[-1])
        object.__setattr__(self, "_only", positive[0] if len(positive) == 1 else -1)

    def pick(self, rng: random.Random) -> int:
        """Index of the chosen destination."""
        if self._only >= 0:
            return self._only
        index = bisect_right(self._bounds, rng.random() * self._total)
        return index if index <= self._last else self._last

    def __repr__(self) -> str:
        return f"WeightedChoice({list(self.weights)})"


def _cycle_weights(weights: tuple[int, ...]) -> tuple[int, ...]:
    """Smallest integer weights with the same ratios, scaled down if the cycle is too long."""
    divisor = math.gcd(*weights) or 1  # all 0: one host of weight 0
    reduced = tuple(w // divisor for w in weights)
    total = sum(reduced)
    if total <= MAX_CYCLE:
        return reduced
    return tuple(0 if w == 0 else max(1, w * MAX_CYCLE // total) for w in reduced)


def edf_cycle(weights: Sequence[int]) -> array[int]:
    """One period of Envoy's earliest-deadline-first schedule, as host indices.

    Host i is due at k / weight_i (k = 1, 2, ...); the earliest deadline goes first and ties
    go in insertion order, as in Envoy's EdfScheduler. After sum(weights) picks every host
    has been picked exactly weight_i times and the state repeats, so the period is the whole
    schedule. Deadlines are k / w computed afresh (no running sums), so equal ratios tie exactly.
    """
    reduced = _cycle_weights(check_weights(weights))
    heap = [(1 / w, order, i) for order, (i, w) in enumerate(enumerate(reduced)) if w > 0]
    heapq.heapify(heap)
    picks = [1] * len(reduced)
    order = len(heap)
    cycle: array[int] = array("I")
    for _ in range(sum(reduced)):
        _, _, index = heap[0]
        cycle.append(index)
        picks[index] += 1
        heapq.heapreplace(heap, (picks[index] / reduced[index], order, index))
        order += 1
    return cycle
